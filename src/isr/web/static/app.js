// ISR web UI: play, analyse, delete and the live REC badge. No build step, no
// framework; loaded as a file so the Content-Security-Policy can forbid inline script.
"use strict";

(function () {
  const live = document.getElementById("live");
  const tbody = document.getElementById("files");
  const threshold = document.body.dataset.threshold || "0.05";
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
      audio.play().catch(() => say("Press play in the player to start " + row.dataset.name));
      audio.focus();
    } else {
      audio.pause();
      button.focus();
    }
  }

  function fmt(s) { return s.toFixed(1) + " s"; }

  function drawAnalysis(container, name, data) {
    const rms = data.rms;
    const n = Math.max(rms.length, 1);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + n + " 100");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const loud = data.loud;
    const summary = loud.length === 0
      ? "no section reaches the threshold " + data.threshold
      : loud.length + " loud section" + (loud.length === 1 ? "" : "s") + ": " +
        loud.map((s) => fmt(s[0]) + " to " + fmt(s[1])).join(", ");
    const label = "Loudness of " + name + " over " + fmt(data.duration_s) + ", " + summary;
    svg.setAttribute("aria-label", label);
    const title = document.createElementNS(SVG, "title");
    title.textContent = label;
    svg.appendChild(title);
    const w = data.window_ms / 1000;
    for (const [a, b] of loud) {
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("class", "loud");
      r.setAttribute("x", String(a / w));
      r.setAttribute("width", String(Math.max((b - a) / w, 0.5)));
      r.setAttribute("y", "0");
      r.setAttribute("height", "100");
      svg.appendChild(r);
    }
    let d = "";
    rms.forEach((v, i) => {
      const h = Math.min(1, v) * 100;
      d += "M" + i + " " + (100 - h).toFixed(1) + "h1V100h-1z";
    });
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("class", "bar");
    path.setAttribute("d", d || "M0 100z");
    svg.appendChild(path);
    const t = 100 - Math.min(1, data.threshold) * 100;
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("class", "threshold");
    line.setAttribute("x1", "0"); line.setAttribute("x2", String(n));
    line.setAttribute("y1", String(t)); line.setAttribute("y2", String(t));
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.appendChild(line);
    const p = document.createElement("p");
    p.textContent = "Duration " + fmt(data.duration_s) + "; threshold " + data.threshold + "; " + summary + ".";
    container.replaceChildren(svg, p);
    return summary;
  }

  async function analyse(button) {
    const row = rowOf(button);
    const container = document.getElementById(button.getAttribute("aria-controls"));
    button.disabled = true;
    say("Analysing " + row.dataset.name + "…");
    try {
      const res = await fetch("/api/analyse/" + row.dataset.url + "?threshold=" + encodeURIComponent(threshold));
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
      button.focus();
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
      say("Deleted " + name + ".");
      const target = next && next.querySelector("button.delete:not(:disabled), button.play");
      if (target) { target.focus(); } else { document.getElementById("recordings").focus(); }
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
      del.disabled = rec;
      if (rec) { del.title = "Being recorded: cannot delete"; } else { del.removeAttribute("title"); }
    }
    return set;
  }

  function renderStatus(st) {
    const rec = document.getElementById("recorder");
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
