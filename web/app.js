// app.js: the dashboard: a hash router and its five views (runs, one run, new run,
// playground, models), built only on the public REST API (api.js) and dygraphs (charts.js).
import { api, ApiError, apiKey, jobMetrics, listAll, setApiKey } from "./api.js";
import { drawCharts } from "./charts.js";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtTime = t => t ? new Date(t * 1000).toLocaleString() : "—";
const fmtDur = s => s == null || !isFinite(s) ? "—" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
const num = (v, d = 3) => typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(d)) : "—";

let timer = null;  // the current view's refresh timer
function refreshEvery(ms, fn) { clearInterval(timer); timer = setInterval(fn, ms); }

function showError(e) {
  const box = $("#error");
  if (!e) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = e.message || String(e);
}

async function guarded(fn) {
  try { await fn(); showError(null); } catch (e) { showError(e); }
}

// ---- runs -------------------------------------------------------------------------------

function progress(j) {
  const now = Date.now() / 1000;
  const elapsed = j.started_at ? (j.finished_at || now) - j.started_at : null;
  const eta = j.status === "running" && j.step > 0 && j.total_steps > 0 ? elapsed / j.step * (j.total_steps - j.step) : null;
  return { elapsed, eta, text: j.total_steps ? `${j.step} / ${j.total_steps}` : (j.step ? String(j.step) : "—") };
}

async function viewRuns(el) {
  el.innerHTML = `<h2>Runs</h2>
    <div class="toolbar"><label for="flt" style="margin:0">Status</label>
      <select id="flt" style="width:auto"><option value="">all</option><option>queued</option><option>running</option>
      <option>succeeded</option><option>failed</option><option>cancelled</option></select>
      <a href="#/new"><button class="secondary">New run</button></a>
      <span class="muted" id="count"></span></div>
    <div class="card table-wrap"><table id="runs"><thead><tr><th>Job</th><th>Status</th><th>Method</th><th>Base model</th>
      <th>Progress</th><th>Elapsed</th><th>ETA</th><th>Latest reward</th><th>Created</th></tr></thead><tbody></tbody></table></div>`;
  const flt = $("#flt");
  flt.value = sessionStorage.getItem("toolrl.filter") || "";
  const latest = new Map();
  const load = () => guarded(async () => {
    const jobs = await listAll("/v1/fine_tuning/jobs", 5000);
    const shown = jobs.filter(j => !flt.value || j.status === flt.value);
    // latest reward of running and recently finished jobs (a few requests, not one per job)
    for (const j of shown.slice(0, 20)) {
      if (j.status === "running" || !latest.has(j.id)) {
        const ev = await api(`/v1/fine_tuning/jobs/${j.id}/events?limit=20`);
        const m = ev.data.find(e => e.type === "metrics" && e.data);
        latest.set(j.id, m ? (m.data.reward_mean ?? m.data.loss) : null);
      }
    }
    $("#count").textContent = `${shown.length} of ${jobs.length} runs`;
    $("#runs tbody").innerHTML = shown.length ? shown.map(j => {
      const p = progress(j);
      return `<tr data-id="${esc(j.id)}"><td><a href="#/run/${esc(j.id)}">${esc(j.id)}</a></td>
        <td class="status ${esc(j.status)}">${esc(j.status)}</td><td>${esc(j.method.type)}</td><td>${esc(j.model)}</td>
        <td>${p.text}</td><td>${fmtDur(p.elapsed)}</td><td>${fmtDur(p.eta)}</td><td>${num(latest.get(j.id))}</td>
        <td>${fmtTime(j.created_at)}</td></tr>`;
    }).join("") : `<tr><td colspan="9" class="muted">No runs yet. <a href="#/new">Start one.</a></td></tr>`;
    const active = jobs.some(j => ["queued", "running", "validating_files"].includes(j.status));
    refreshEvery(active ? 3000 : 15000, load);
  });
  flt.onchange = () => { sessionStorage.setItem("toolrl.filter", flt.value); load(); };
  await load();
}

// ---- one run ------------------------------------------------------------------------------

async function viewRun(el, id) {
  el.innerHTML = `<h2>Run <span id="rid"></span></h2>
    <div class="card" id="info">Loading…</div>
    <div class="toolbar"><button class="danger" id="cancel">Cancel</button>
      <label for="cmp" style="margin:0">Compare with</label><input id="cmp" placeholder="ftjob-… ftjob-…" style="max-width:22rem"></div>
    <h3>Metrics</h3><div class="card charts" id="charts"></div>
    <h3>Checkpoints</h3><div class="card table-wrap"><table id="ckpts"><thead><tr><th>Step</th><th>Model name</th>
      <th>Metrics</th><th>Created</th><th></th></tr></thead><tbody></tbody></table></div>
    <h3>Evaluation</h3><div class="card" id="evals"></div>
    <div class="card"><div class="toolbar"><label for="eval-limit" style="margin:0">BFCL examples per category</label>
      <input id="eval-limit" type="number" min="1" value="20" style="max-width:6rem">
      <button class="secondary" id="eval-base">Evaluate base model</button>
      <button class="secondary" id="eval-ft" disabled>Evaluate fine-tuned model</button></div>
      <div class="table-wrap"><table id="evalruns"><thead><tr><th>Eval run</th><th>Model</th><th>Status</th><th>Progress</th>
        <th>Overall</th><th></th></tr></thead><tbody></tbody></table></div></div>
    <h3>Events</h3><div class="card table-wrap"><table id="events"><thead><tr><th>Time</th><th>Level</th><th>Message</th></tr></thead><tbody></tbody></table></div>`;
  $("#rid").textContent = id;
  const cmp = $("#cmp");
  cmp.value = sessionStorage.getItem(`toolrl.cmp.${id}`) || "";
  $("#cancel").onclick = () => guarded(async () => { await api(`/v1/fine_tuning/jobs/${id}/cancel`, { method: "POST" }); await load(); });
  // BFCL evaluation runs, queued for a worker (POST /v1/evals/bfcl/runs); results land in the table above
  let models = [];
  const evaluate = which => guarded(async () => {
    const limit = parseInt($("#eval-limit").value, 10);
    await api("/v1/evals/bfcl/runs", { method: "POST", json: { model: models[which], ...(limit > 0 ? { limit } : {}) } });
    await load();
  });
  $("#eval-base").onclick = () => evaluate(0);
  $("#eval-ft").onclick = () => evaluate(1);
  const load = () => guarded(async () => {
    const j = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}`);
    const p = progress(j);
    const hp = j.method[j.method.type]?.hyperparameters || j.hyperparameters || {};
    $("#info").innerHTML = `<div class="grid">
      <div><label>Status</label><span class="status ${esc(j.status)}">${esc(j.status)}</span></div>
      <div><label>Method</label>${esc(j.method.type)}${j.method.reinforcement?.grader ? ` · grader ${esc(j.method.reinforcement.grader.variant)}` : ""}</div>
      <div><label>Base model</label>${esc(j.model)}</div><div><label>Progress</label>${p.text}</div>
      <div><label>Elapsed / ETA</label>${fmtDur(p.elapsed)} / ${fmtDur(p.eta)}</div>
      <div><label>Fine-tuned model</label>${esc(j.fine_tuned_model || "—")}</div>
      <div><label>Training file</label>${esc(j.training_file)}</div><div><label>Trained tokens</label>${j.trained_tokens}</div></div>
      ${j.error ? `<p class="errors">${esc(j.error.message)}</p>` : ""}
      <details><summary class="muted">Hyperparameters</summary><pre>${esc(JSON.stringify(hp, null, 1))}</pre></details>`;
    $("#cancel").disabled = !["queued", "running", "validating_files"].includes(j.status);
    const ids = [id, ...cmp.value.split(/[\s,]+/).filter(x => x && x !== id)];
    const runs = [];
    for (const rid of ids) runs.push({ id: rid, metrics: await jobMetrics(rid) });
    drawCharts($("#charts"), runs);
    $("#charts").dataset.points = String(runs[0].metrics.length);
    const ck = await listAll(`/v1/fine_tuning/jobs/${id}/checkpoints`, 200);
    $("#ckpts tbody").innerHTML = ck.length ? ck.map(c => `<tr><td>${c.step_number}</td><td>${esc(c.fine_tuned_model_checkpoint)}</td>
      <td class="wrap">${esc(Object.entries(c.metrics || {}).filter(([k]) => /reward|exact|format|loss/.test(k)).map(([k, v]) => `${k} ${num(v)}`).join(", "))}</td>
      <td>${fmtTime(c.created_at)}</td><td><button class="secondary" data-serve="${esc(c.id)}">Serve</button></td></tr>`).join("")
      : `<tr><td colspan="5" class="muted">No checkpoints yet.</td></tr>`;
    for (const b of el.querySelectorAll("button[data-serve]"))
      b.onclick = () => guarded(async () => {
        const m = await api(`/v1/fine_tuning/jobs/${id}/checkpoints/${b.dataset.serve}/serve`, { method: "POST" });
        b.textContent = "Served"; b.disabled = true;
        sessionStorage.setItem("toolrl.playModel", m.id);
      });
    const last = runs[0].metrics.filter(m => typeof m.eval_exact_match === "number");
    const held = last.length
      ? `<p>Held-out (greedy) exact match: first ${num(last[0].eval_exact_match)} at step ${last[0].step}, latest ${num(last[last.length - 1].eval_exact_match)} at step ${last[last.length - 1].step}.</p>`
      : `<p class="muted">No held-out evaluation yet (every eval_interval steps).</p>`;
    // BFCL per category, before (the base model) and after (the fine-tuned model), as stored by `toolrl eval --db`
    const byCat = async m => {
      const out = new Map();
      if (!m) return out;
      for (const r of await listAll(`/v1/evals?suite=bfcl&model=${encodeURIComponent(m)}`, 500))
        if (!out.has(r.category)) out.set(r.category, r);  // newest first
      return out;
    };
    const before = await byCat(j.model), after = await byCat(j.fine_tuned_model);
    const cats = [...new Set([...before.keys(), ...after.keys()])];
    const pct = r => r ? `${(100 * r.score).toFixed(1)}%${r.n_cases ? ` <span class="muted">(n=${r.n_cases})</span>` : ""}` : "—";
    $("#evals").innerHTML = held + (cats.length
      ? `<div class="table-wrap"><table id="bfcl"><thead><tr><th>BFCL category</th><th>before (${esc(j.model)})</th><th>after</th></tr></thead>
         <tbody>${cats.map(c => `<tr><td>${esc(c)}</td><td>${pct(before.get(c))}</td><td>${pct(after.get(c))}</td></tr>`).join("")}</tbody></table></div>`
      : `<p class="muted">No BFCL results stored for these models yet: evaluate them below (a worker runs it), or run <code>toolrl eval --suite bfcl --db var/toolrl.db --model-id NAME</code>.</p>`);
    models = [j.model, j.fine_tuned_model];
    $("#eval-ft").disabled = !j.fine_tuned_model;
    const eruns = (await listAll("/v1/evals/bfcl/runs", 200)).filter(r => models.includes(r.model));
    $("#evalruns tbody").innerHTML = eruns.length ? eruns.map(r => `<tr data-run="${esc(r.id)}"><td>${esc(r.id)}</td>
      <td>${esc(r.model)}</td><td class="status ${esc(r.status)}">${esc(r.status)}</td>
      <td>${r.progress.total ? `${r.progress.done}/${r.progress.total}` : "—"}</td>
      <td>${r.summary && typeof r.summary.overall === "number" ? `${(100 * r.summary.overall).toFixed(1)}%` : "—"}</td>
      <td>${["queued", "in_progress"].includes(r.status) ? `<button class="danger" data-cancel-eval="${esc(r.id)}">Cancel</button>` : ""}</td></tr>`).join("")
      : `<tr><td colspan="6" class="muted">No evaluation runs for these models.</td></tr>`;
    for (const b of el.querySelectorAll("button[data-cancel-eval]"))
      b.onclick = () => guarded(async () => {
        await api(`/v1/evals/bfcl/runs/${encodeURIComponent(b.dataset.cancelEval)}`, { method: "POST" });
        await load();
      });
    const evalActive = eruns.some(r => ["queued", "in_progress"].includes(r.status));
    const ev = await listAll(`/v1/fine_tuning/jobs/${id}/events`, 300);
    $("#events tbody").innerHTML = ev.map(e => `<tr><td>${fmtTime(e.created_at)}</td><td>${esc(e.level)}</td><td class="wrap">${esc(e.message)}</td></tr>`).join("");
    refreshEvery(["queued", "running", "validating_files"].includes(j.status) || evalActive ? 2000 : 20000, load);
  });
  cmp.onchange = () => { sessionStorage.setItem(`toolrl.cmp.${id}`, cmp.value); load(); };
  await load();
}

// ---- new run ------------------------------------------------------------------------------

async function viewNew(el) {
  const models = (await api("/v1/models")).data;
  el.innerHTML = `<h2>New run</h2><form id="f" class="card">
    <label for="file">Training file (JSONL in the unified format, docs/data.md)</label><input id="file" type="file" accept=".jsonl,.json">
    <div id="file-status" class="muted"></div>
    <label for="model">Base model</label><select id="model">${models.map(m => `<option>${esc(m.id)}</option>`).join("")}</select>
    <label for="method">Method</label><select id="method"><option value="reinforcement">reinforcement (GRPO)</option><option value="supervised">supervised (SFT)</option></select>
    <div id="grader-box"><label for="grader">Reward</label><select id="grader"><option>binary</option><option>no_think</option>
      <option>partial</option><option>partial_funcname</option></select></div>
    <label for="suffix">Suffix (optional)</label><input id="suffix" maxlength="64">
    <h3>Hyperparameters</h3><div class="grid" id="hp"></div>
    <p><button id="submit" type="submit">Start run</button></p></form>`;
  const fillDefaults = () => guarded(async () => {
    const d = await api(`/v1/fine_tuning/hyperparameters?method=${$("#method").value}`);
    $("#grader-box").hidden = $("#method").value !== "reinforcement";
    const keys = Object.keys(d).filter(k => !["method", "grader"].includes(k));
    $("#hp").innerHTML = keys.map(k => `<div><label for="hp-${k}">${k}</label><input id="hp-${k}" data-key="${k}" value="${esc(d[k])}"></div>`).join("");
  });
  $("#method").onchange = fillDefaults;
  await fillDefaults();
  $("#f").onsubmit = ev => {
    ev.preventDefault();
    guarded(async () => {
      const input = $("#file");
      if (!input.files.length) throw new Error("Choose a training file first.");
      $("#submit").disabled = true;
      try {
        const form = new FormData();
        form.append("purpose", "fine-tune");
        form.append("file", input.files[0]);
        let f;
        try {
          f = await api("/v1/files", { method: "POST", form });
        } catch (e) {  // a refused file (a bad line, too large): its reason beside the form
          if (!(e instanceof ApiError) || ![400, 413].includes(e.status) || !e.body?.error) throw e;
          $("#file-status").innerHTML = `<span class="errors">The file was not accepted: ${esc(e.body.error.message)}</span>`;
          return;
        }
        $("#file-status").textContent = `${f.filename}: ${f.line_count} examples, sha256 ${f.sha256.slice(0, 12)}…`;
        const hp = {};
        for (const i of el.querySelectorAll("#hp input")) {
          const v = i.value.trim();
          hp[i.dataset.key] = v === "true" ? true : v === "false" ? false : v !== "" && !isNaN(Number(v)) ? Number(v) : v;
        }
        const type = $("#method").value;
        const method = { type, [type]: { hyperparameters: hp } };
        if (type === "reinforcement") method.reinforcement.grader = { type: "tool_call", variant: $("#grader").value };
        const body = { model: $("#model").value, training_file: f.id, method };
        if ($("#suffix").value) body.suffix = $("#suffix").value;
        const job = await api("/v1/fine_tuning/jobs", { method: "POST", json: body });
        location.hash = `#/run/${job.id}`;
      } finally { $("#submit").disabled = false; }
    });
  };
}

// ---- playground ---------------------------------------------------------------------------

async function viewPlayground(el) {
  const models = (await api("/v1/models")).data;
  const pick = sessionStorage.getItem("toolrl.playModel");
  el.innerHTML = `<h2>Playground</h2><div class="card">
    <label for="pm">Model</label><select id="pm">${models.map(m => `<option ${m.id === pick ? "selected" : ""}>${esc(m.id)}</option>`).join("")}</select>
    <label for="tn">Tool name</label><input id="tn" value="get_weather">
    <label for="ts">Tool parameters (JSON schema)</label><textarea id="ts">{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}</textarea>
    <label for="tc">tool_choice</label><select id="tc"><option>auto</option><option>required</option><option>none</option></select>
    <label for="msg">Message</label><textarea id="msg" style="min-height:3rem">What is the weather in Paris?</textarea>
    <p><button id="send">Send</button></p></div>
    <div class="card" id="out"><p class="muted">The reply appears here: reasoning, tool calls and the raw output.</p></div>`;
  $("#send").onclick = () => guarded(async () => {
    let schema;
    try { schema = JSON.parse($("#ts").value); } catch (e) { throw new Error(`The tool schema is not JSON: ${e.message}`); }
    $("#send").disabled = true;
    $("#out").innerHTML = `<p class="muted">Generating…</p>`;
    try {
      const r = await api("/v1/chat/completions", { method: "POST", json: {
        model: $("#pm").value, max_tokens: 400, temperature: 0,
        messages: [{ role: "user", content: $("#msg").value }],
        tools: [{ type: "function", function: { name: $("#tn").value, description: "", parameters: schema } }],
        tool_choice: $("#tc").value } });
      const m = r.choices[0].message;
      const calls = m.tool_calls || [];
      $("#out").innerHTML = `<h3>Reasoning</h3><pre id="out-reasoning">${esc(m.reasoning_content || "—")}</pre>
        <h3>Tool calls</h3>${calls.length ? `<pre id="out-calls">${esc(calls.map(c => `${c.function.name}(${c.function.arguments})`).join("\n"))}</pre>` : `<p class="muted" id="out-calls">none</p>`}
        <h3>Content</h3><pre id="out-content">${esc(m.content ?? "null")}</pre>
        <p class="muted">finish_reason ${esc(r.choices[0].finish_reason)} · ${r.usage.prompt_tokens} prompt + ${r.usage.completion_tokens} completion tokens</p>
        <details><summary class="muted">Raw response</summary><pre>${esc(JSON.stringify(r, null, 1))}</pre></details>`;
    } finally { $("#send").disabled = false; }
  });
}

// ---- models -------------------------------------------------------------------------------

async function viewModels(el) {
  const models = (await api("/v1/models")).data;
  el.innerHTML = `<h2>Models</h2><div class="card table-wrap"><table><thead><tr><th>Model</th><th>Kind</th><th>Parent</th>
    <th>Job</th><th>Served</th><th>Created</th></tr></thead><tbody>${models.map(m => `<tr><td>${esc(m.id)}</td>
    <td>${esc(m.kind || "base")}</td><td>${esc(m.parent || "—")}</td><td>${m.fine_tuning_job ? `<a href="#/run/${esc(m.fine_tuning_job)}">${esc(m.fine_tuning_job)}</a>` : "—"}</td>
    <td>${m.served ? "yes" : m.kind ? "" : "base"}</td><td>${fmtTime(m.created)}</td></tr>`).join("")}</tbody></table></div>`;
}

// ---- router -------------------------------------------------------------------------------

async function route() {
  clearInterval(timer);
  showError(null);
  const [, page = "runs", arg] = location.hash.replace(/^#/, "").split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === page);
  const el = $("#view");
  el.innerHTML = "";
  try {  // the views report their own errors; this catches what escapes them (and never clears one)
    if (page === "run" && arg) await viewRun(el, decodeURIComponent(arg));
    else if (page === "new") await viewNew(el);
    else if (page === "playground") await viewPlayground(el);
    else if (page === "models") await viewModels(el);
    else await viewRuns(el);
  } catch (e) { showError(e); }
}

const key = $("#api-key");
key.value = apiKey();
key.onchange = () => { setApiKey(key.value.trim()); route(); };
window.addEventListener("hashchange", route);
route();
