// ISR timeline page: a source's day as a bar; play from any moment through clips of
// the timeline (/api/clip, which the <audio> element seeks in with Range), export a
// span with its manifest. No build step, no framework, no inline script (CSP).
//
// Times are shown as the recorder's clock showed them (body data-zone, an IANA name),
// wherever the browser is; without a zone name, at the UTC offset of the day's start.
"use strict";

(function () {
  const data = document.body.dataset;
  const ZONE = data.zone || "";
  const MAX_CLIP_MS = (parseFloat(data.maxClipHours) || 24) * 3600e3;
  const REFRESH_MS = 30000;
  const LIST_LIMIT = 300;
  const SUMMARY_GAPS = 20;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  const bar = $("bar");
  const sourceSel = $("source");
  const zoomSel = $("zoom");
  const dayInput = $("day");
  const atInput = $("at");
  const spanFrom = $("span-from");
  const spanTo = $("span-to");
  const player = $("player");
  const hearing = $("hearing");
  const hearingNote = $("hearing-note");
  const clipLink = $("export-clip");
  const manifestLink = $("export-manifest");
  const spanInfo = $("span-info");
  const live = $("live");
  const main = $("timeline");

  // -- time in the recorder's zone ---------------------------------------------------

  let zoneFormat = null;
  try {
    if (ZONE) {
      zoneFormat = new Intl.DateTimeFormat("en-GB", {
        timeZone: ZONE, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
      });
    }
  } catch (err) {
    zoneFormat = null; // a name this browser does not know: offsets instead
  }
  let fallbackOffsetMs = 0;

  function wallParts(ms) {
    if (zoneFormat) {
      const p = {};
      for (const part of zoneFormat.formatToParts(new Date(ms))) { p[part.type] = part.value; }
      return {
        y: +p.year, mo: +p.month, d: +p.day, h: +p.hour % 24, mi: +p.minute, s: +p.second,
      };
    }
    const t = new Date(ms + fallbackOffsetMs);
    return {
      y: t.getUTCFullYear(), mo: t.getUTCMonth() + 1, d: t.getUTCDate(),
      h: t.getUTCHours(), mi: t.getUTCMinutes(), s: t.getUTCSeconds(),
    };
  }

  function pad(n) { return String(n).padStart(2, "0"); }
  function clock(ms) { const p = wallParts(ms); return pad(p.h) + ":" + pad(p.mi) + ":" + pad(p.s); }
  function dayOf(ms) { const p = wallParts(ms); return p.y + "-" + pad(p.mo) + "-" + pad(p.d); }
  function offsetMs(ms) {
    const p = wallParts(ms);
    return Date.UTC(p.y, p.mo - 1, p.d, p.h, p.mi, p.s) - Math.floor(ms / 1000) * 1000;
  }
  function parseIso(text) { return Date.parse(text); }
  function isoOffsetMs(text) {
    const m = /([+-])(\d\d):?(\d\d)$/.exec(text);
    return m ? (m[1] === "-" ? -1 : 1) * (+m[2] * 60 + +m[3]) * 60000 : 0;
  }
  function seconds(hms) {
    const m = /^(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?$/.exec(hms || "");
    return m ? +m[1] * 3600 + +m[2] * 60 + +(m[3] || 0) : null;
  }
  function hms(text) {
    // a time field's value as HH:MM:SS
    const s = seconds(text);
    return s === null ? "" : pad(Math.floor(s / 3600)) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
  }
  // The instant the recorder's clock showed `time` on `day` (an approximation the
  // server corrects: what is sent is the local time itself, read by the server's rule).
  function instantOf(day, time) {
    const [y, mo, d] = day.split("-").map(Number);
    const wall = Date.UTC(y, mo - 1, d) + seconds(time) * 1000;
    let t = wall - offsetMs(wall);
    t = wall - offsetMs(t);
    return t;
  }
  function shiftDay(day, n) {
    const [y, mo, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, mo - 1, d + n)).toISOString().slice(0, 10);
  }
  function longDay(day) {
    const [y, mo, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, mo - 1, d)).toLocaleDateString("en-GB", {
      timeZone: "UTC", weekday: "long", day: "numeric", month: "long", year: "numeric",
    });
  }
  // A length as people say it, never more than it is (1 h 59 min 56 s is "1 h 59 min").
  function human(s) {
    if (s < 10) { return (Math.floor(s * 10 + 1e-9) / 10).toString() + " s"; }
    const r = Math.floor(s + 1e-9);
    if (r < 60) { return r + " s"; }
    if (r < 3600) { return Math.floor(r / 60) + " min" + (r % 60 ? " " + (r % 60) + " s" : ""); }
    const m = Math.floor(r / 60);
    if (m < 48 * 60) { return Math.floor(m / 60) + " h" + (m % 60 ? " " + (m % 60) + " min" : ""); }
    const h = Math.floor(m / 60);
    return Math.floor(h / 24) + " d" + (h % 24 ? " " + (h % 24) + " h" : "");
  }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  // -- state ----------------------------------------------------------------------

  let sources = [];
  let source = "";
  let day = "";
  let tl = null;                 // /api/timeline's answer, times in ms
  let dayStart = 0;
  let dayEnd = 0;
  let cursor = 0;                // the slider's value (ms)
  let selection = null;          // {from, to} ms, drawn on the bar
  let clip = null;               // what the player holds: {query, start, end, parts}
  let refreshTimer = 0;
  let spanCheck = 0;
  const svg = {};

  function say(text) {
    live.textContent = "";
    window.setTimeout(() => { live.textContent = text; }, 50);
  }

  async function getJson(url) {
    let res;
    try {
      res = await fetch(url, { cache: "no-store" });
    } catch (err) {
      return { status: 0, ok: false, body: { error: "the server did not answer" } };
    }
    let body = null;
    try { body = await res.json(); } catch (err) { body = null; }
    return { status: res.status, ok: res.ok, body: body };
  }
  function errorText(r) {
    return (r.body && r.body.error) || ("the server answered " + r.status);
  }

  // -- the bar --------------------------------------------------------------------

  function el(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) { e.setAttribute(k, String(v)); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  // The bar shows [viewStart, viewEnd): the whole day, or a zoomed part around the cursor.
  let viewStart = 0;
  let viewEnd = 0;
  const ZOOMS = { day: 0, rec: 0, "6h": 6 * 3600e3, "1h": 3600e3, "10m": 600e3, "2m": 120e3 };
  const TICK_STEPS = [10e3, 30e3, 60e3, 300e3, 600e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3];

  function setView() {
    const runs = recordedRuns();
    if (zoomSel.value === "rec" && runs.length) {
      // What was recorded this day, with a margin.
      const a = runs[0][0];
      const b = runs[runs.length - 1][1];
      const pad = Math.max((b - a) * 0.04, 5000);
      viewStart = Math.max(dayStart, a - pad);
      viewEnd = Math.min(dayEnd, b + pad);
      return;
    }
    const span = ZOOMS[zoomSel.value] || 0;
    if (!span || span >= dayEnd - dayStart) {
      viewStart = dayStart;
      viewEnd = dayEnd;
      return;
    }
    viewStart = Math.max(dayStart, Math.min(dayEnd - span, cursor - span / 2));
    viewEnd = viewStart + span;
  }
  function viewSeconds() { return (viewEnd - viewStart) / 1000; }
  function x(ms) { return (Math.max(viewStart, Math.min(viewEnd, ms)) - viewStart) / 1000; }
  function pct(ms) { return (100 * x(ms) / viewSeconds()).toFixed(3) + "%"; }
  function vline(cls, ms, y1, y2) {
    return el("line", {
      class: cls, x1: x(ms), x2: x(ms), y1: y1, y2: y2, "vector-effect": "non-scaling-stroke",
    });
  }
  function visible(a, b) { return b > viewStart && a < viewEnd; }

  function recordedRuns() {
    // Consecutive files drawn as one run: fewer shapes, the same picture.
    const runs = [];
    for (const s of tl.segments) {
      const a = Math.max(s.start, dayStart);
      const b = Math.min(s.end, dayEnd);
      if (b <= a) { continue; }
      const last = runs[runs.length - 1];
      if (last && a - last[1] < 1000) { last[1] = Math.max(last[1], b); } else { runs.push([a, b]); }
    }
    return runs;
  }

  function nowMs() {
    const rec = tl.segments.filter((s) => s.recording);
    return rec.length ? Math.max(...rec.map((s) => s.end)) : null;
  }

  function lastRecorded() {
    return tl.segments.reduce((m, s) => Math.max(m, Math.min(s.end, dayEnd)), dayStart);
  }

  function ticks(narrow) {
    // Wall-clock-aligned ticks, at most 4 (narrow) or 8 across the view.
    const most = narrow ? 4 : 8;
    const step = TICK_STEPS.find((st) => (viewEnd - viewStart) / st <= most) || TICK_STEPS[TICK_STEPS.length - 1];
    const off = offsetMs(viewStart);
    const out = [];
    for (let t = Math.ceil((viewStart + off) / step) * step - off; t <= viewEnd + 1; t += step) { out.push(t); }
    return { step: step, at: out };
  }

  function drawBar() {
    setView();
    const width = viewSeconds();
    const px = Math.max(bar.clientWidth, 1);
    const least = width * 2 / px; // two pixels: a run of a few seconds stays visible
    const outer = el("svg", { class: "bar-svg", width: "100%", height: "100%", "aria-hidden": "true", focusable: "false" });
    const plot = el("svg", {
      class: "plot", x: 0, y: 0, width: "100%", height: 44,
      viewBox: "0 0 " + width + " 100", preserveAspectRatio: "none",
    });
    plot.appendChild(el("rect", { class: "day", x: 0, y: 22, width: width, height: 78 }));
    for (const [a, b] of recordedRuns()) {
      if (!visible(a, b)) { continue; }
      const r = el("rect", { class: "rec", x: x(a), y: 22, width: Math.max(least, x(b) - x(a)), height: 78 });
      r.appendChild(el("title", {}, "Recorded " + clock(a) + " to " + clock(b)));
      plot.appendChild(r);
    }
    // Where one file ends and the next goes on, a hairline, when they are far enough
    // apart on the screen to tell: playing crosses them without a pause.
    const edges = tl.segments.filter((s) => s.start > dayStart && visible(s.start, s.start + 1));
    if (edges.length && edges.length < px / 8) {
      for (const s of edges) { plot.appendChild(vline("file-edge", s.start, 22, 100)); }
    }
    for (const g of tl.gaps) {
      if (!visible(g.start, g.end + 1)) { continue; }
      plot.appendChild(el("rect", { class: "gap", x: x(g.start), y: 22, width: Math.max(0, x(g.end) - x(g.start)), height: 78 }));
      const m = vline("gap-mark", g.start, 22, 100);
      m.appendChild(el("title", {}, "Gap at " + gapWhen(g) + ", " + human(g.seconds) + ": " + g.cause));
      plot.appendChild(m);
    }
    for (const t of tl.titles) {
      if (t.at < dayStart || !visible(t.at, t.at + 1)) { continue; }
      const m = vline("title-mark", t.at, 0, 18);
      m.appendChild(el("title", {}, clock(t.at) + " " + t.title));
      plot.appendChild(m);
    }
    // The span chosen: a band above the bar and an outline around it, so the colours
    // of what lies under it stay true.
    svg.selection = el("rect", { class: "selection", x: 0, y: 0, width: 0, height: 18 });
    svg.selectionBox = el("rect", {
      class: "selection-box", x: 0, y: 22, width: 0, height: 78, "vector-effect": "non-scaling-stroke",
    });
    plot.append(svg.selection, svg.selectionBox);
    const now = nowMs();
    const showNow = now !== null && visible(now, now + 1);
    if (showNow) { plot.appendChild(vline("now", now, 0, 100)); }
    svg.playhead = vline("playhead", viewStart, 0, 100);
    svg.cursor = vline("cursor", viewStart, 0, 100);
    plot.append(svg.playhead, svg.cursor);
    outer.appendChild(plot);
    const tk = ticks(px < 480);
    for (const t of tk.at) {
      const at = pct(t);
      const f = x(t) / width;
      outer.appendChild(el("line", { class: "tick", x1: at, x2: at, y1: 44, y2: 50 }));
      const anchor = f < 0.03 ? "start" : (f > 0.97 ? "end" : "middle");
      const label = t >= dayEnd ? "24:00" : (tk.step < 60e3 ? clock(t) : clock(t).slice(0, 5));
      outer.appendChild(el("text", { class: "tick-label", x: at, y: 64, "text-anchor": anchor }, label));
    }
    if (showNow) {
      const right = x(now) / width > 0.9;
      outer.appendChild(el("text", {
        class: "now-label", x: pct(now), y: 16, dx: right ? -4 : 4, "text-anchor": right ? "end" : "start",
      }, "now"));
    }
    bar.replaceChildren(outer);
    bar.dataset.viewStart = String(viewStart); // what the bar shows (ms), for scripts and tests
    bar.dataset.viewEnd = String(viewEnd);
    bar.setAttribute("aria-valuemax", String(Math.round((dayEnd - dayStart) / 1000)));
    drawCursor();
    drawSelection();
    drawPlayhead();
  }

  function drawCursor() {
    if (!svg.cursor) { return; }
    for (const k of ["x1", "x2"]) { svg.cursor.setAttribute(k, String(x(cursor))); }
    bar.setAttribute("aria-valuenow", String(Math.round((cursor - dayStart) / 1000)));
    bar.setAttribute("aria-valuetext", clock(cursor));
  }

  function drawSelection() {
    if (!svg.selection) { return; }
    const on = selection && selection.to > selection.from;
    for (const r of [svg.selection, svg.selectionBox]) {
      r.setAttribute("x", String(on ? x(selection.from) : 0));
      r.setAttribute("width", String(on ? x(selection.to) - x(selection.from) : 0));
      r.setAttribute("visibility", on ? "visible" : "hidden");
    }
  }

  function drawPlayhead() {
    if (!svg.playhead) { return; }
    const at = clip ? wallAt(player.currentTime) : null;
    const on = at !== null && at >= viewStart && at <= viewEnd;
    svg.playhead.setAttribute("visibility", on ? "visible" : "hidden");
    if (on) { for (const k of ["x1", "x2"]) { svg.playhead.setAttribute(k, String(x(at))); } }
  }

  function setCursor(ms, fromField) {
    cursor = Math.max(dayStart, Math.min(dayEnd - 1000, Math.round(ms / 1000) * 1000));
    if (svg.cursor && (cursor < viewStart || cursor > viewEnd)) { drawBar(); } else { drawCursor(); }
    if (!fromField) { atInput.value = clock(cursor); }
  }

  // -- the text alternative ------------------------------------------------------------

  // When a gap began: its time, with its date when that was another day.
  function gapWhen(g) { return (dayOf(g.start) === day ? "" : dayOf(g.start) + " ") + clock(g.start); }
  function gapText(g) { return gapWhen(g) + " " + human(g.seconds) + " " + g.cause; }

  function summarise() {
    const gaps = tl.gaps;
    const runs = recordedRuns();
    if (!runs.length) {
      return "Nothing was recorded on " + longDay(day) + ".";
    }
    const recording = nowMs() !== null;
    let text = "Recorded " + human(tl.covered_seconds) + ", " + clock(runs[0][0]) + " to " +
      (recording ? "now (still recording)" : clock(runs[runs.length - 1][1]));
    text += "; " + plural(gaps.length, "gap");
    if (gaps.length) {
      text += ": " + gaps.slice(0, SUMMARY_GAPS).map(gapText).join("; ");
      if (gaps.length > SUMMARY_GAPS) { text += "; and " + (gaps.length - SUMMARY_GAPS) + " more (see Gaps)"; }
    }
    const titles = tl.titles.filter((t) => t.at >= dayStart).length;
    if (titles) { text += "; " + plural(titles, "title"); }
    return text + ".";
  }

  function playButton(ms, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.dataset.at = String(ms);
    b.textContent = clock(ms);
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = " play " + label;
    b.appendChild(hidden);
    return b;
  }

  function fillLists() {
    const gapItems = tl.gaps.slice(0, LIST_LIMIT).map((g) => {
      const li = document.createElement("li");
      const before = g.start - 5000 >= dayStart;
      const b = before
        ? playButton(g.start - 5000, "from 5 seconds before this gap")
        : playButton(g.end, "from where the recording resumed");
      b.firstChild.textContent = gapWhen(g);
      li.append(b, " " + human(g.seconds) + ", " + g.cause);
      return li;
    });
    const titles = tl.titles.filter((t) => t.at >= dayStart);
    const titleItems = titles.slice(0, LIST_LIMIT).map((t) => {
      const li = document.createElement("li");
      li.append(playButton(t.at, "from this title"), " " + t.title);
      return li;
    });
    for (const [items, all, what] of [[gapItems, tl.gaps, "gaps"], [titleItems, titles, "titles"]]) {
      if (!all.length) {
        const li = document.createElement("li");
        li.textContent = "No " + what + ".";
        items.push(li);
      } else if (all.length > LIST_LIMIT) {
        const li = document.createElement("li");
        li.textContent = "…and " + (all.length - LIST_LIMIT) + " more.";
        items.push(li);
      }
    }
    $("gap-list").replaceChildren(...gapItems);
    $("title-list").replaceChildren(...titleItems);
  }

  // -- loading -------------------------------------------------------------------------

  function query(params) {
    return Object.entries(params).map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
  }

  async function loadSources() {
    const r = await getJson("/api/sources");
    if (!r.ok) { throw new Error(errorText(r)); }
    sources = (r.body.sources || []).map((s) => ({ ...s, lastMs: parseIso(s.last) }));
    sourceSel.replaceChildren(...sources.map((s) => {
      const o = document.createElement("option");
      o.value = s.name;
      o.textContent = s.name + (s.recording ? " (recording)" : "");
      return o;
    }));
  }

  let loads = 0;
  async function loadDay(keep) {
    window.clearTimeout(refreshTimer);
    const seq = ++loads;
    main.setAttribute("aria-busy", "true");
    const r = await getJson("/api/timeline?" + query({ source: source, from: day, to: shiftDay(day, 1) }));
    if (seq !== loads) { return false; } // another day or source was asked for meanwhile
    main.removeAttribute("aria-busy");
    if (!r.ok) {
      $("summary").textContent = "Cannot show " + source + " on " + day + ": " + errorText(r);
      return false;
    }
    const wall = keep ? clock(cursor) : null;
    const b = r.body;
    fallbackOffsetMs = isoOffsetMs(b.from);
    tl = {
      from: parseIso(b.from), to: parseIso(b.to), covered_seconds: b.covered_seconds,
      segments: b.segments.map((s) => ({ ...s, start: parseIso(s.start), end: parseIso(s.end) })),
      gaps: b.gaps.map((g) => ({ ...g, start: parseIso(g.start), end: parseIso(g.end) })),
      titles: b.titles.map((t) => ({ ...t, at: parseIso(t.at) })),
    };
    dayStart = tl.from;
    dayEnd = tl.to;
    $("day-h").textContent = source + ", " + longDay(day);
    $("summary").textContent = summarise();
    fillLists();
    drawBar();
    if (wall) {
      setCursor(instantOf(day, wall));
    } else {
      const runs = recordedRuns();
      setCursor(runs.length ? runs[0][0] : dayStart);
    }
    updateSpan();
    bar.dataset.day = day; // drawn: what scripts and tests wait for
    if (nowMs() !== null) { refreshTimer = window.setTimeout(() => loadDay(true), REFRESH_MS); }
    return true;
  }

  function remember() {
    const params = query({ source: source, day: day }) + (zoomSel.value !== "day" ? "&zoom=" + zoomSel.value : "");
    window.history.replaceState(null, "", "/timeline?" + params);
  }

  async function choose(newSource, newDay) {
    source = newSource;
    day = newDay;
    sourceSel.value = source;
    dayInput.value = day;
    remember();
    return loadDay(false);
  }

  async function init() {
    try {
      await loadSources();
    } catch (err) {
      $("summary").textContent = "Cannot list the sources: " + err.message;
      return;
    }
    if (!sources.length) {
      $("day-h").textContent = "No recordings yet";
      $("summary").textContent = "Nothing has been recorded yet.";
      return;
    }
    const named = sources.find((s) => s.name === data.source);
    const latest = sources.reduce((a, b) => (b.lastMs > a.lastMs ? b : a));
    const pick = named || latest;
    let d = data.day || data.today;
    // Today is empty for a source that stopped before it: show its last day instead.
    if (!data.day && !pick.recording && dayOf(pick.lastMs) < d) { d = dayOf(pick.lastMs); }
    if (await choose(pick.name, d) && data.at) {
      atInput.value = hms(data.at);
      setCursor(instantOf(day, atInput.value), true);
    }
  }

  // -- playing -------------------------------------------------------------------------

  // The wall-clock time of a position in the clip: the parts, one after another, are
  // what the clip holds (a gap between two parts takes no time in the clip).
  function audioSpans(m) {
    // The wall-clock spans the clip's audio covers, in order: its parts, less any gap
    // that lies inside one (a source that lost audio but kept its connection).
    const gaps = m.gaps.map((g) => [parseIso(g.start), parseIso(g.end)]);
    const spans = [];
    for (const p of m.parts) {
      let a = parseIso(p.start);
      const b = parseIso(p.end);
      for (const [gs, ge] of gaps) {
        if (gs > a && ge < b) { spans.push({ start: a, end: gs }); a = ge; }
      }
      spans.push({ start: a, end: b });
    }
    return spans;
  }

  function wallAt(position) {
    if (!clip) { return null; }
    let acc = 0;
    for (const p of clip.spans) {
      const d = (p.end - p.start) / 1000;
      if (position < acc + d) { return p.start + (position - acc) * 1000; }
      acc += d;
    }
    return clip.end;
  }

  async function playFrom(fromMs, fromText, chained) {
    const limit = lastRecorded();
    if (fromMs >= limit - 100) {
      say("Nothing was recorded after " + clock(fromMs) + " on this day.");
      return;
    }
    let toMs = Math.min(dayEnd, limit, fromMs + MAX_CLIP_MS);
    const params = { source: source, from: fromText || new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() };
    let r = await getJson("/api/clip.json?" + query(params));
    if (r.status === 409) {
      // The format changes inside: play up to the change (the answer's `at`, else the
      // end of this file), then go on from there.
      const seg = tl.segments.find((s) => s.start <= fromMs && fromMs < s.end) ||
        tl.segments.find((s) => s.start > fromMs);
      const at = r.body && r.body.at ? parseIso(r.body.at) : (seg ? seg.end : NaN);
      if (at > fromMs && at < toMs) {
        toMs = at;
        params.to = new Date(toMs).toISOString();
        r = await getJson("/api/clip.json?" + query(params));
      }
    }
    if (r.status === 404) {
      say("Nothing was recorded from " + clock(fromMs) + " to " + clock(toMs) + ".");
      return;
    }
    if (!r.ok) { say("Cannot play from " + clock(fromMs) + ": " + errorText(r)); return; }
    const m = r.body;
    clip = {
      query: query(params), start: parseIso(m.start), end: parseIso(m.end),
      spans: audioSpans(m),
    };
    player.src = "/api/clip?" + clip.query;
    hearing.textContent = clock(clip.start);
    hearingNote.textContent = "";
    drawPlayhead();
    if (!chained) {
      if (clip.start > fromMs + 1000) {
        say("Nothing was recorded at " + clock(fromMs) + "; playing from " + clock(clip.start) + ", the next recording.");
      } else {
        say("Playing " + source + " from " + clock(clip.start) + ".");
      }
    }
    try {
      await player.play();
    } catch (err) {
      if (err && err.name === "NotAllowedError") { say("Press play in the player to start."); }
      else if (err && err.name !== "AbortError") { say("This browser cannot play this recording; export it instead."); }
    }
  }

  function playCursor(text) { return playFrom(cursor, text, false); }

  function showHeard() {
    const at = wallAt(player.currentTime);
    if (at === null) { return; }
    const text = clock(at);
    if (hearing.textContent !== text) {
      hearing.textContent = text;
      hearingNote.textContent = dayOf(at) === day ? "" : "(" + dayOf(at) + ")";
      drawPlayhead();
    }
  }
  // timeupdate comes only four times a second: while playing, the clock follows every
  // frame, so it turns with the second it shows (a clock's display, never ahead).
  let ticking = false;
  function tick() {
    showHeard();
    if (!player.paused && !player.ended) { window.requestAnimationFrame(tick); } else { ticking = false; }
  }
  player.addEventListener("playing", () => {
    if (!ticking) { ticking = true; window.requestAnimationFrame(tick); }
  });
  player.addEventListener("timeupdate", showHeard);
  // A clip ends at the end of the day, after max_clip_hours, or where the format
  // changes; a source still recording has more by now. Go on from where it ended: on
  // this day, on the next one (the page turns to it), or, live, once more is written.
  const RETRY_MS = 2000;
  const RETRIES = 5;
  async function goOn(tries) {
    if (!clip) { return; }
    const end = clip.end;
    const src = player.src;
    const info = sources.find((s) => s.name === source);
    const recording = nowMs() !== null || Boolean(info && info.recording);
    if (end >= dayEnd - 500 && (recording || (info && info.lastMs > dayEnd))) {
      await choose(source, shiftDay(day, 1));
    } else if (recording) {
      await loadDay(true);
    }
    if (player.src !== src) { return; } // something else was asked for meanwhile
    if (end < lastRecorded() - 500) {
      await playFrom(end, null, true);
    } else if (recording && tries < RETRIES) {
      window.setTimeout(() => goOn(tries + 1), RETRY_MS);
    } else {
      say("End of the recording at " + clock(end) + ".");
    }
  }
  player.addEventListener("ended", () => goOn(0));

  // -- the span -------------------------------------------------------------------------

  function spanParams() {
    const a = hms(spanFrom.value);
    const b = hms(spanTo.value);
    if (!a || !b || !day) { return null; }
    // 00:00:00 as the end is the midnight that ends the day.
    const endsDay = b === "00:00:00";
    if (!endsDay && seconds(b) <= seconds(a)) { return { error: "To must be after From." }; }
    return {
      q: query({ source: source, from: day + "T" + a, to: endsDay ? shiftDay(day, 1) : day + "T" + b }),
      from: instantOf(day, a), to: endsDay ? dayEnd : instantOf(day, b), a: a, b: b,
    };
  }

  function updateSpan() {
    const p = spanParams();
    const exports = clipLink.parentElement;
    window.clearTimeout(spanCheck);
    if (!p || p.error) {
      selection = null;
      drawSelection();
      exports.hidden = true;
      spanInfo.textContent = p ? p.error : "Choose a span: type two times, or drag along the bar.";
      return;
    }
    selection = { from: p.from, to: p.to };
    drawSelection();
    clipLink.href = "/api/clip?" + p.q + "&download=1";
    manifestLink.href = "/api/clip.json?" + p.q;
    manifestLink.setAttribute("download", source + "_" + day.replaceAll("-", "") + "_" +
      p.a.replaceAll(":", "") + "-" + p.b.replaceAll(":", "") + ".json");
    spanInfo.textContent = p.a + " to " + p.b + " (" + human((p.to - p.from) / 1000) + ")…";
    spanCheck = window.setTimeout(() => checkSpan(p), 250);
  }

  async function checkSpan(p) {
    const exports = clipLink.parentElement;
    const r = await getJson("/api/clip.json?" + p.q);
    if (spanParams()?.q !== p.q) { return; } // changed meanwhile
    const asked = p.a + " to " + p.b + " (" + human((p.to - p.from) / 1000) + ")";
    if (r.status === 404) {
      exports.hidden = true;
      spanInfo.textContent = asked + ": nothing was recorded in this span.";
      return;
    }
    if (!r.ok) {
      exports.hidden = true;
      spanInfo.textContent = asked + ": " + errorText(r);
      return;
    }
    const m = r.body;
    const held = audioSpans(m).reduce((s, x) => s + (x.end - x.start), 0) / 1000;
    exports.hidden = false;
    spanInfo.textContent = asked + ": the clip holds " + human(held) + " from " +
      clock(parseIso(m.start)) + " to " + clock(parseIso(m.end)) + " in " +
      plural(m.parts.length, "file") + (m.gaps.length ? ", across " + plural(m.gaps.length, "gap") : "") +
      ", " + m.format + ".";
  }

  // -- input -----------------------------------------------------------------------------

  function msAt(clientX) {
    const r = bar.getBoundingClientRect();
    const f = Math.max(0, Math.min(1, (clientX - r.left) / r.width));
    return viewStart + f * (viewEnd - viewStart);
  }

  let drag = null;
  bar.addEventListener("pointerdown", (ev) => {
    if (!tl || ev.button !== 0) { return; }
    drag = { x: ev.clientX, ms: msAt(ev.clientX), moved: false };
    bar.setPointerCapture(ev.pointerId);
    bar.focus();
    ev.preventDefault();
  });
  bar.addEventListener("pointermove", (ev) => {
    if (!drag) { return; }
    if (Math.abs(ev.clientX - drag.x) > 6) { drag.moved = true; }
    if (drag.moved) {
      const b = msAt(ev.clientX);
      selection = { from: Math.min(drag.ms, b), to: Math.max(drag.ms, b) };
      drawSelection();
    }
  });
  bar.addEventListener("pointerup", (ev) => {
    if (!drag) { return; }
    const d = drag;
    drag = null;
    if (!d.moved) {
      setCursor(d.ms);
      playCursor(null);
      return;
    }
    const b = msAt(ev.clientX);
    const from = Math.floor(Math.min(d.ms, b) / 1000) * 1000;
    const to = Math.ceil(Math.max(d.ms, b) / 1000) * 1000;
    spanFrom.value = clock(from);
    spanTo.value = to >= dayEnd ? "00:00:00" : clock(to);
    updateSpan();
    say("Span " + spanFrom.value + " to " + clock(Math.min(to, dayEnd)) + " chosen; export it below.");
  });
  bar.addEventListener("pointercancel", () => { drag = null; drawSelection(); });

  const KEYS = { ArrowLeft: -60, ArrowDown: -60, ArrowRight: 60, ArrowUp: 60, PageDown: -600, PageUp: 600 };
  bar.addEventListener("keydown", (ev) => {
    if (!tl) { return; }
    if (ev.key in KEYS) { setCursor(cursor + KEYS[ev.key] * 1000); }
    else if (ev.key === "Home") { setCursor(dayStart); }
    else if (ev.key === "End") { setCursor(dayEnd); }
    else if (ev.key === "Enter" || ev.key === " ") { playCursor(null); }
    else { return; }
    ev.preventDefault();
  });

  $("play-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = hms(atInput.value);
    if (!t || !tl) { say("Type a time to play from."); return; }
    setCursor(instantOf(day, t), true);
    playCursor(day + "T" + t);
  });
  atInput.addEventListener("change", () => {
    const t = hms(atInput.value);
    if (t && tl) { setCursor(instantOf(day, t), true); }
  });
  for (const f of [spanFrom, spanTo]) {
    f.addEventListener("input", updateSpan);
    f.addEventListener("change", updateSpan);
  }
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button.link[data-at]");
    if (!b) { return; }
    setCursor(+b.dataset.at);
    playCursor(null);
  });
  sourceSel.addEventListener("change", () => choose(sourceSel.value, day));
  dayInput.addEventListener("change", () => {
    if (/^\d{4}-\d{2}-\d{2}$/.test(dayInput.value)) { choose(source, dayInput.value); }
  });
  $("prev-day").addEventListener("click", () => choose(source, shiftDay(day, -1)));
  $("next-day").addEventListener("click", () => choose(source, shiftDay(day, 1)));
  $("pick").addEventListener("submit", (ev) => { ev.preventDefault(); choose(sourceSel.value, dayInput.value); });
  zoomSel.addEventListener("change", () => { if (tl) { drawBar(); remember(); } });
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => { if (tl) { drawBar(); } }, 200);
  });

  if (data.zoom && data.zoom in ZOOMS) { zoomSel.value = data.zoom; }
  init();
})();
