// ISR web UI: play, analyse, delete and the live REC badge. No build step, no
// framework; loaded as a file so the Content-Security-Policy can forbid inline script.
"use strict";

(function () {
  const live = document.getElementById("live");
  const tbody = document.getElementById("files");
  // The server's threshold (from the config's key table); absent, the server's default.
  const threshold = document.body.dataset.threshold;
  const SVG = "http://www.w3.org/2000/svg";

  function say(text) {
    // Clearing first makes screen readers announce a repeated message again.
    live.textContent = "";
    window.setTimeout(() => { live.textContent = text; }, 50);
  }

  function rowOf(el) { return el.closest("tr.file"); }
  function detailOf(row) { return document.getElementById("detail-" + row.dataset.id); }

  function syncDetail(row) {
    const detail = detailOf(row);
    const open = Array.from(detail.querySelectorAll(".player, .analysis")).some((d) => !d.hidden);
    detail.hidden = !open;
  }

  function togglePlayer(button) {
    const row = rowOf(button);
    const player = document.getElementById(button.getAttribute("aria-controls"));
    const audio = player.querySelector("audio");
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    player.hidden = !open;
    syncDetail(row);
    if (open) {
      if (!audio.getAttribute("src")) { audio.src = audio.dataset.src; }
      audio.play().catch(async (err) => {
        if (err && err.name === "NotSupportedError") {
          // No source could load: gone from the server, or a format this browser lacks.
          const res = await fetch(audio.dataset.src, { method: "HEAD" }).catch(() => null);
          if (res && res.status === 404) { gone(row); return; }
          say("This browser cannot play " + row.dataset.name + "; download it instead.");
          return;
        }
        say("Press play in the player to start " + row.dataset.name);
      });
      audio.focus();
    } else {
      audio.pause();
      button.focus();
    }
  }

  function fmt(s) { return s.toFixed(1) + " s"; }

  // Levels are drawn on one fixed scale, FLOOR_DB (bottom) to 0 dBFS (top), so two
  // files can be compared by eye: a quiet file looks quiet. rms is linear, 1 = full scale.
  const FLOOR_DB = -60;
  const GRID_DB = [-20, -40];

  function dbfs(v) { return v > 0 ? 20 * Math.log10(v) : -Infinity; }
  function dbText(v) {
    const db = dbfs(v);
    return (db === -Infinity ? "-inf" : db.toFixed(1)) + " dBFS";
  }
  // Height above the bottom as a fraction of the chart, 0..1.
  function heightOf(db) { return Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB)); }
  function topPercent(db) { return ((1 - heightOf(db)) * 100).toFixed(3) + "%"; }

  function el(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) { e.setAttribute(k, String(v)); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function levels(rms) {
    if (rms.length === 0) { return { peak: 0, mean: 0 }; }
    let peak = 0;
    let power = 0;
    for (const v of rms) { peak = Math.max(peak, v); power += v * v; }
    return { peak: peak, mean: Math.sqrt(power / rms.length) };
  }

  function drawAnalysis(container, name, data) {
    const rms = data.rms;
    const n = Math.max(rms.length, 1);
    const loud = data.loud;
    const lv = levels(rms);
    const summary = loud.length === 0
      ? "no section reaches the threshold"
      : loud.length + " loud section" + (loud.length === 1 ? "" : "s") + ": " +
        loud.map((s) => fmt(s[0]) + " to " + fmt(s[1])).join(", ");
    const levelsText = "peak level " + dbText(lv.peak) + ", mean level " + dbText(lv.mean) +
      ", threshold " + dbText(data.threshold);
    const label = "Loudness of " + name + " over " + fmt(data.duration_s) + " on a scale of " +
      FLOOR_DB + " to 0 dBFS: " + levelsText + "; " + summary;

    // The outer SVG has no viewBox, so its text is never stretched; the inner one
    // stretches one unit per window across, one unit per dB down.
    const svg = el("svg", { role: "img", "aria-label": label, class: "chart" });
    svg.appendChild(el("title", {}, label));
    const plot = el("svg", {
      class: "plot", "aria-hidden": "true", x: 0, y: 0, width: "100%", height: "100%",
      viewBox: "0 0 " + n + " " + -FLOOR_DB, preserveAspectRatio: "none",
    });
    const w = data.window_ms / 1000;
    for (const [a, b] of loud) {
      plot.appendChild(el("rect", {
        class: "loud", x: a / w, width: Math.max((b - a) / w, 0.5), y: 0, height: -FLOOR_DB,
      }));
    }
    let d = "";
    rms.forEach((v, i) => {
      const h = heightOf(dbfs(v)) * -FLOOR_DB;
      if (h > 0) { d += "M" + i + " " + (-FLOOR_DB - h).toFixed(2) + "h1V" + -FLOOR_DB + "h-1z"; }
    });
    plot.appendChild(el("path", { class: "bar", d: d || "M0 " + -FLOOR_DB + "z" }));
    svg.appendChild(plot);
    for (const db of GRID_DB) {
      const y = topPercent(db);
      svg.appendChild(el("line", { class: "grid", x1: 0, x2: "100%", y1: y, y2: y }));
      svg.appendChild(el("text", { class: "scale", x: 4, y: y, dy: -3 }, db + " dB"));
    }
    svg.appendChild(el("text", { class: "scale", x: 4, y: 0, dy: "1em" }, "0 dBFS"));
    svg.appendChild(el("text", { class: "scale", x: 4, y: "100%", dy: -4 }, FLOOR_DB + " dB"));
    const tdb = dbfs(data.threshold);
    const ty = topPercent(tdb);
    svg.appendChild(el("line", { class: "threshold", x1: 0, x2: "100%", y1: ty, y2: ty }));
    svg.appendChild(el("text", {
      class: "threshold-label", x: "100%", y: ty, dx: -4,
      dy: heightOf(tdb) > 0.85 ? "1.1em" : -4, "text-anchor": "end",
    }, "threshold " + dbText(data.threshold)));

    const p = document.createElement("p");
    p.textContent = "Duration " + fmt(data.duration_s) + "; " + levelsText + "; " + summary + ".";
    container.replaceChildren(svg, p);
    return summary;
  }

  function dropRow(row) {
    // Removes a file's rows; returns the row whose buttons should take the focus.
    const detail = detailOf(row);
    let next = detail.nextElementSibling || row.previousElementSibling;
    if (next && next.classList.contains("detail")) { next = next.previousElementSibling; }
    detail.remove();
    row.remove();
    const count = document.querySelector("#list-h .count");
    if (count) {
      const n = parseInt(count.textContent.replace(/\D/g, ""), 10);
      if (!Number.isNaN(n)) { count.textContent = "(" + Math.max(0, n - 1) + ")"; }
    }
    return next;
  }

  function focusNear(next) {
    const target = next && next.querySelector("button.delete:not(:disabled), button.play");
    if (target) { target.focus(); } else { document.getElementById("recordings").focus(); }
  }

  function gone(row) {
    // Deleted since the page was drawn (by retention, or from another browser).
    focusNear(dropRow(row));
    say(row.dataset.name + " no longer exists; removed from the list.");
  }

  async function analyse(button) {
    const row = rowOf(button);
    const container = document.getElementById(button.getAttribute("aria-controls"));
    button.disabled = true;
    say("Analysing " + row.dataset.name + "…");
    try {
      const res = await fetch("/api/analyse/" + row.dataset.url +
        (threshold ? "?threshold=" + encodeURIComponent(threshold) : ""));
      if (res.status === 404) { gone(row); return; }
      if (!res.ok) { throw new Error((await res.text()) || res.statusText); }
      const data = await res.json();
      const summary = drawAnalysis(container, row.dataset.name, data);
      container.hidden = false;
      syncDetail(row);
      say("Analysis of " + row.dataset.name + ": " + summary + ".");
    } catch (err) {
      say("Analysis of " + row.dataset.name + " failed: " + err.message);
    } finally {
      button.disabled = false;
      if (button.isConnected) { button.focus(); }
    }
  }

  async function remove(button) {
    const row = rowOf(button);
    const name = row.dataset.name;
    if (!window.confirm("Delete " + name + " and its sidecar? This cannot be undone.")) { return; }
    let res;
    try {
      res = await fetch("/api/files/" + row.dataset.url, { method: "DELETE" });
    } catch (err) {
      say("Could not delete " + name + ": " + err.message);
      return;
    }
    if (res.status === 204 || res.status === 404) {
      const next = dropRow(row);
      say("Deleted " + name + ".");
      focusNear(next);
    } else if (res.status === 409) {
      say(name + " is being recorded and cannot be deleted.");
    } else {
      say("Could not delete " + name + ": " + res.status + " " + res.statusText);
    }
  }

  function markRecording(recording) {
    const set = new Set(recording);
    for (const row of document.querySelectorAll("tr.file")) {
      const rec = set.has(row.dataset.name);
      row.querySelector(".rec").hidden = !rec;
      const del = row.querySelector("button.delete");
      if (!del) { continue; }  // the UI over the store deletes nothing
      del.disabled = rec;
      if (rec) { del.title = "Being recorded: cannot delete"; } else { del.removeAttribute("title"); }
    }
    return set;
  }

  function renderStatus(st) {
    const rec = document.getElementById("recorder");
    if (!rec) { return; }  // over the store: no recorder of its own
    rec.className = st.recorder_alive ? "alive" : "gone";
    rec.textContent = st.recorder_alive ? "Recorder running" : "Recorder not running" +
      (st.updated ? " (last seen " + st.updated.slice(0, 19).replace("T", " ") + ")" : "");
    const list = document.getElementById("sources");
    const items = Object.keys(st.sources).sort().map((name) => {
      const s = st.sources[name] || {};
      const li = document.createElement("li");
      li.className = "source state-" + s.state;
      const strong = document.createElement("strong");
      strong.textContent = name;
      li.append(strong, ": " + s.state +
        (s.last_error && (s.state === "retrying" || s.state === "failed") ? ": " + s.last_error : ""));
      return li;
    });
    list.replaceChildren(...items);
  }

  async function addNewRows(missing) {
    // Only the first, unfiltered page shows new files as they appear.
    const b = document.body.dataset;
    if (b.page !== "1" || b.q || b.folder || !tbody) { return; }
    const res = await fetch("/?partial=rows");
    if (!res.ok) { return; }
    const tpl = document.createElement("template");
    tpl.innerHTML = await res.text();
    const fresh = Array.from(tpl.content.querySelectorAll("tr.file")).filter(
      (r) => !document.getElementById(r.id));
    for (const r of fresh.reverse()) {
      const d = tpl.content.getElementById("detail-" + r.dataset.id);
      tbody.prepend(r, d);
    }
    void missing;
  }

  async function refresh() {
    try {
      const res = await fetch("/api/status", { cache: "no-store" });
      if (!res.ok) { return; }
      const st = await res.json();
      renderStatus(st);
      markRecording(st.recording);
      const shown = new Set(Array.from(document.querySelectorAll("tr.file"), (r) => r.dataset.name));
      const missing = st.recording.filter((n) => !shown.has(n));
      if (missing.length) {
        await addNewRows(missing);
        markRecording(st.recording);
      }
    } catch (err) {
      // The server may be restarting; the next tick tries again.
    }
  }

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button");
    if (!button || !rowOf(button)) { return; }
    if (button.classList.contains("play")) { togglePlayer(button); }
    else if (button.classList.contains("analyse")) { analyse(button); }
    else if (button.classList.contains("delete")) { remove(button); }
  });

  window.setInterval(refresh, 5000);
})();
