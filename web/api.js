// api.js: the dashboard's only way to the server: the public REST API (the same one the
// openai SDK uses), with the API key from this browser's storage. Errors become exceptions
// carrying the server's OpenAI-style message.
const KEY = "toolrl.apiKey";

export function apiKey() { return localStorage.getItem(KEY) || ""; }
export function setApiKey(k) { if (k) localStorage.setItem(KEY, k); else localStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error ? body.error : null;
    super(e ? `${status}: ${e.message}${e.param ? ` (${e.param})` : ""}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", json, form } = {}) {
  const headers = {};
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form) body = form;
  const r = await fetch(path, { method, headers, body });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// Every item of a paginated list (follows has_more / last_id), at most `max`.
export async function listAll(path, max = 500) {
  const out = [];
  let after = null;
  while (out.length < max) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=100${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    out.push(...page.data);
    if (!page.has_more || !page.data.length) break;
    after = page.last_id;
  }
  return out;
}

// The metrics events of a job, oldest first: [{step, reward_mean, …}, …]
export async function jobMetrics(id) {
  const ev = await listAll(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events`, 5000);
  return ev.filter(e => e.type === "metrics" && e.data).map(e => e.data).sort((a, b) => a.step - b.step);
}
