// charts.js: metric plots with dygraphs (Debian's libjs-dygraphs, served at /vendor/dygraphs):
// one chart per metric, one line per run, redrawn in place as new steps arrive.
export const METRICS = [
  ["reward_mean", "Reward (mean)"], ["exact_match", "Exact-match rate"], ["format_valid", "Format-valid rate"],
  ["kl", "KL to reference"], ["response_len", "Response length (tokens)"], ["loss", "Loss"],
  ["tokens_per_s", "Tokens / s"], ["eval_exact_match", "Held-out exact match"],
];

const charts = new Map();  // container id -> Dygraph
window.__toolrlCharts = charts;  // for the browser test

// runs: [{id, metrics: [{step, …}]}]. Draws every metric that any run has.
export function drawCharts(container, runs) {
  const present = METRICS.filter(([k]) => runs.some(r => r.metrics.some(m => typeof m[k] === "number")));
  if (!present.length) { container.innerHTML = '<p class="muted">No metrics yet: they appear as the worker reports steps.</p>'; charts.clear(); return; }
  container.querySelector(":scope > p.muted")?.remove();
  for (const [key, title] of present) {
    const id = `chart-${key}`;
    let box = container.querySelector(`#${id}`);
    if (!box) {
      const wrap = document.createElement("div");
      wrap.innerHTML = `<div class="chart-title">${title}</div><div class="chart" id="${id}"></div>`;
      container.appendChild(wrap);
      box = wrap.querySelector(".chart");
    }
    const steps = [...new Set(runs.flatMap(r => r.metrics.filter(m => typeof m[key] === "number").map(m => m.step)))].sort((a, b) => a - b);
    const rows = steps.map(s => [s, ...runs.map(r => { const m = r.metrics.find(x => x.step === s && typeof x[key] === "number"); return m ? m[key] : null; })]);
    const labels = ["step", ...runs.map(r => r.id)];
    if (!rows.length) continue;
    const opts = { labels, connectSeparatedPoints: true, drawPoints: true, strokeWidth: 1.5, legend: "follow", xlabel: "step" };
    let g = charts.get(id);
    if (g && g.getLabels().join() === labels.join()) g.updateOptions({ file: rows });
    else { if (g) g.destroy(); g = new Dygraph(box, rows, opts); charts.set(id, g); }
  }
}
