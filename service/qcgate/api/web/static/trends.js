// Trends: quality over time per station and protocol as inline SVG, the site's limits drawn; drift table.
"use strict";
(function () {
  const charts = document.getElementById("trend-charts");
  const message = document.getElementById("trends-message");
  const form = document.getElementById("trend-filters");
  const NS = "http://www.w3.org/2000/svg";
  const W = 720, H = 240, M = 40;

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(title, points, limits, drift) {
    const times = points.map((p) => Date.parse(p.time));
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const x = (t) => M + (W - 2 * M) * (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0));
    const y = (q) => M + (H - 2 * M) * (1 - q / 100);
    const root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title, class: "trend" });
    root.append(svg("title", {}, title));
    root.append(svg("rect", { x: M, y: M, width: W - 2 * M, height: H - 2 * M, fill: "none", stroke: "#888" }));
    root.append(svg("text", { x: W / 2, y: 20, "text-anchor": "middle" }, title));
    for (const q of [0, 50, 100]) root.append(svg("text", { x: M - 6, y: y(q) + 4, "text-anchor": "end" }, String(q)));
    const lines = [["quality_warn", "limit warn"], ["quality_fail", "limit fail"]];
    for (const [key, cls] of lines) {
      if (typeof limits[key] !== "number") continue;
      root.append(svg("line", { x1: M, x2: W - M, y1: y(limits[key]), y2: y(limits[key]), class: cls }));
      root.append(svg("text", { x: W - M + 4, y: y(limits[key]) + 4, class: cls }, key.replace("quality_", "")));
    }
    if (drift && typeof drift.baseline_median === "number") {
      root.append(svg("line", { x1: M, x2: W - M, y1: y(drift.baseline_median), y2: y(drift.baseline_median), class: "baseline" }));
    }
    const path = points.map((p, i) => (i ? "L" : "M") + x(times[i]).toFixed(1) + "," + y(p.quality).toFixed(1)).join(" ");
    root.append(svg("path", { d: path, class: "series-line" }));
    points.forEach((p, i) => {
      const dot = svg("circle", { cx: x(times[i]).toFixed(1), cy: y(p.quality).toFixed(1), r: 3, class: "dot flag-" + (p.flag || "none") });
      dot.append(svg("title", {}, p.time + ": quality " + p.quality.toFixed(0) + (p.percentile !== null && p.percentile !== undefined ? ", percentile " + p.percentile.toFixed(0) : "")));
      root.append(dot);
    });
    const when = (t) => new Date(t).toISOString().slice(0, 10);
    root.append(svg("text", { x: M, y: H - 12 }, when(t0)));
    root.append(svg("text", { x: W - M, y: H - 12, "text-anchor": "end" }, when(t1)));
    return root;
  }

  async function load() {
    const data = new FormData(form);
    const q = new URLSearchParams();
    for (const key of ["station", "protocol"]) if (data.get(key)) q.set(key, data.get(key));
    if (data.get("since")) q.set("since", data.get("since") + "T00:00:00Z");
    const result = await qc.api("/api/v1/trends?" + q.toString());
    charts.replaceChildren();
    if (!result.ok) { message.textContent = qc.explain(result, "Trends"); return; }
    const groups = new Map();
    for (const p of result.body.points || []) {
      const key = p.station + " · " + p.protocol;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(p);
    }
    const drift = new Map((result.body.drift || []).map((d) => [d.station + " · " + d.protocol, d]));
    message.textContent = groups.size ? groups.size + " station and protocol groups." : "No scored series yet.";
    for (const [key, points] of groups) {
      const d = drift.get(key);
      const title = key + (d && d.drifting ? " (drifting)" : "");
      charts.append(qc.el("figure", {}, chart(title, points, result.body.limits || {}, d)));
    }
    const driftBox = document.getElementById("drift");
    const rows = result.body.drift || [];
    driftBox.replaceChildren(rows.length ? qc.table(rows, ["station", "protocol", "n", "baseline_median", "baseline_mad", "statistic", "drifting"]) : qc.el("p", { text: "No drift figures yet." }));
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); load(); });
  load();
})();
