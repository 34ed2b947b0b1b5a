// Armada web UI: plain JavaScript, no build step. The state is read once
// over the HTTP API and then kept up to date from GET /v1/events.
"use strict";

// Script errors are kept for the browser tests to check.
window.armadaErrors = [];
window.addEventListener("error", e => window.armadaErrors.push(`${e.message} (app.js:${e.lineno}:${e.colno})`));
window.addEventListener("unhandledrejection", e => window.armadaErrors.push(String(e.reason)));

const $ = (sel, el = document) => el.querySelector(sel);
const $$ = (sel, el = document) => [...el.querySelectorAll(sel)];
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]);
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const ENDED = new Set(["stopped", "failed", "lost"]);
const MAX_ROWS = 500;
const SHIP_STATES = ["queued", "scheduled", "starting", "ready", "allocated", "reserved", "stopping", "stopped", "failed", "lost"];

// ---- API ----

// APIError is an answer of the API that is not 2xx: its code, message and
// field, as the API sent them.
class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status; this.code = e.code || ""; this.field = e.field || "";
  }
}

// token is the cluster's API token when it has one (armada join --token):
// asked for once when the API answers 401, kept in this browser, sent as a
// header (and, on the event stream, which cannot send headers, as ?token=).
let token = localStorage.getItem("armada-token") || "";

function authHeaders(h) {
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

function askToken() {
  const t = window.prompt("This cluster requires its API token (armada join --token / ARMADA_TOKEN):", "");
  if (t === null) return false;
  token = t.trim();
  localStorage.setItem("armada-token", token);
  return true;
}

async function api(method, path, body, ctype, retried) {
  const opts = { method, headers: authHeaders({}) };
  if (body !== undefined) {
    opts.body = typeof body === "string" ? body : JSON.stringify(body);
    opts.headers["Content-Type"] = ctype || (typeof body === "string" ? "application/yaml" : "application/json");
  }
  const r = await fetch(path, opts);
  if (r.status === 401 && !retried && askToken()) return api(method, path, body, ctype, true);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) throw new APIError(r.status, data);
  return { data, index: Number(r.headers.get("X-Armada-Index") || 0) };
}

// errorText is how an API error reads where the user acted.
function errorText(e) {
  if (!(e instanceof APIError)) return String(e.message || e);
  return `${e.field ? e.field + ": " : ""}${e.message} (HTTP ${e.status}${e.code ? ", " + e.code : ""})`;
}

// ---- store: the cluster state, kept live by the event stream ----

const store = {
  status: {}, nodes: new Map(), fleets: new Map(), ships: new Map(), blueprints: new Map(),
  index: 0, lastId: "",
};

// Event handlers per topic; a topic without one only moves the index.
// Adding a topic is one entry here.
const topics = {
  node: e => upsert(store.nodes, e, o => o.name),
  fleet: e => upsert(store.fleets, e, o => o.name),
  ship: e => upsert(store.ships, e, o => o.id),
  allocation: e => upsert(store.ships, e, o => o.id),
  blueprint: e => upsert(store.blueprints, e, o => o.name),
  cluster: e => { if (e.object) store.status.cluster_id = e.object.cluster_id; },
  deployment: () => {},
};

function upsert(map, e, key) {
  if (e.op === "delete") map.delete(e.key);
  else if (e.object) map.set(key(e.object), e.object);
}

async function loadAll() {
  const st = await api("GET", "/v1/status");
  const [nodes, fleets, ships, bps] = await Promise.all([
    api("GET", "/v1/nodes"), api("GET", "/v1/fleets"), api("GET", "/v1/ships"), api("GET", "/v1/blueprints")]);
  store.status = st.data;
  store.nodes = new Map(nodes.data.map(n => [n.name, n]));
  store.fleets = new Map(fleets.data.map(f => [f.name, f]));
  store.ships = new Map(ships.data.map(s => [s.id, s]));
  // The list holds summaries; events bring each blueprint's latest spec.
  store.blueprints = new Map(bps.data.map(b => [b.name, Object.assign({ version: b.latest }, b)]));
  store.index = st.index;
  return st.index;
}

// ---- the event stream ----

let source = null;
let retryTimer = 0;

function setConn(state, text) {
  const el = $("#conn");
  el.className = "conn " + state;
  el.lastElementChild.textContent = text;
  el.title = state === "live" ? `following the event stream at index ${store.index}` : text;
}

// connect follows /v1/events from the given index. The browser reconnects
// by itself after a network error (with Last-Event-ID, so nothing is missed
// or seen twice); a stream the server refuses or drops starts over from a
// fresh read of the state.
function connect(since) {
  if (source) source.close();
  const es = new EventSource(`/v1/events?since=${since}${token ? "&token=" + encodeURIComponent(token) : ""}`);
  source = es;
  es.onopen = () => {
    setConn("live", "live");
    if (!window.armadaLiveAt) window.armadaLiveAt = performance.now();
  };
  es.onerror = () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CLOSED) resync();
    else setConn("lost", "connection lost — reconnecting…");
  };
  const onEvent = msg => {
    let e;
    try { e = JSON.parse(msg.data); } catch { return; }
    store.lastId = msg.lastEventId;
    store.index = Math.max(store.index, e.index);
    (topics[e.topic] || (() => {}))(e);
    changed(e.topic, e);
  };
  for (const t of Object.keys(topics)) es.addEventListener(t, onEvent);
  es.addEventListener("leader", msg => {
    const l = JSON.parse(msg.data);
    store.status.leader = l.leader; store.status.term = l.term;
    changed("leader");
  });
  es.addEventListener("dropped", () => { es.close(); resync(); });
}

async function resync() {
  if (source) { source.close(); source = null; }
  setConn("lost", "connection lost — reconnecting…");
  clearTimeout(retryTimer);
  try {
    const since = await loadAll();
    connect(since);
    changed("all");
  } catch {
    retryTimer = setTimeout(resync, 2000);
  }
}

// changed re-renders the page once per frame, however many events came.
let pending = false;
const changedTopics = new Set();
function changed(topic, e) {
  changedTopics.add(topic);
  countsCache = null;
  if (e && page && page.onEvent) page.onEvent(e);
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    const t = new Set(changedTopics);
    changedTopics.clear();
    renderHeader();
    if (page && page.update) page.update(t);
  });
}

function renderHeader() {
  const s = store.status;
  $("#leader").textContent = s.leader ? `leader ${s.leader} · term ${s.term}` : "no leader";
}

// ---- helpers for pages ----

const badge = s => `<span class="badge s-${esc(s)}">${esc(s)}</span>`;
const chips = m => Object.entries(m || {}).sort().map(([k, v]) => `<span class="chip">${esc(k)}=${esc(v)}</span>`).join("") || `<span class="muted">—</span>`;
const shipLink = s => `<a class="mono" href="#/ships/${encodeURIComponent(s.id)}">${esc(s.id)}</a>`;
const fleetLink = n => n ? `<a href="#/fleets/${encodeURIComponent(n)}">${esc(n)}</a>` : `<span class="muted">—</span>`;
const nodeLink = n => n ? `<a href="#/ships?node=${encodeURIComponent(n)}">${esc(n)}</a>` : `<span class="muted">—</span>`;
const ports = s => Object.entries(s.ports || {}).sort().map(([k, v]) => `<span class="chip">${esc(k)}:${v}</span>`).join("") || `<span class="muted">—</span>`;

function ago(ms) {
  if (!ms) return "—";
  const d = Math.max(0, (Date.now() - ms) / 1000);
  if (d < 60) return `${Math.floor(d)}s`;
  if (d < 3600) return `${Math.floor(d / 60)}m`;
  if (d < 172800) return `${Math.floor(d / 3600)}h${Math.floor(d % 3600 / 60)}m`;
  return `${Math.floor(d / 86400)}d`;
}

function meter(used, cap, unit) {
  const pct = cap > 0 ? Math.min(100, Math.round(100 * used / cap)) : 0;
  return `<div class="meter" title="${used} of ${cap} ${unit} allocated"><div class="bar ${pct > 85 ? "hot" : ""}"><i style="width:${pct}%"></i></div>` +
    `<small>${used.toLocaleString()} / ${cap.toLocaleString()} ${unit}</small></div>`;
}

function shipsOf(pred) {
  return [...store.ships.values()].filter(pred).sort((a, b) => (a.created - b.created) || (a.id < b.id ? -1 : 1));
}

// fleetCounts counts a fleet's ships from the live ship list. The counts
// of every fleet are made in one pass and kept until the next change.
let countsCache = null;
function fleetCounts(f) {
  if (!countsCache) {
    countsCache = new Map();
    for (const s of store.ships.values()) {
      if (!s.fleet || ENDED.has(s.state)) continue;
      let c = countsCache.get(s.fleet);
      if (!c) countsCache.set(s.fleet, c = { total: 0, ready: 0, allocated: 0, pending: 0, versions: new Map() });
      c.total++;
      const k = `${s.blueprint}@${s.version}`;
      const v = c.versions.get(k) || { ships: 0, ready: 0 };
      v.ships++;
      if (s.state === "ready") { c.ready++; v.ready++; } else if (s.state === "allocated") { c.allocated++; v.ready++; } else c.pending++;
      c.versions.set(k, v);
    }
  }
  return countsCache.get(f.name) || { total: 0, ready: 0, allocated: 0, pending: 0, versions: new Map() };
}

function progress(c, desired) {
  const d = Math.max(desired, c.total, 1);
  const w = n => `${(100 * n / d).toFixed(1)}%`;
  return `<div class="progress" role="img" aria-label="${c.ready} ready, ${c.allocated} allocated, ${c.pending} pending of ${desired}">` +
    `<i class="p-ready" style="width:${w(c.ready)}"></i><i class="p-allocated" style="width:${w(c.allocated)}"></i><i class="p-pending" style="width:${w(c.pending)}"></i></div>`;
}

function versionsText(f) {
  const sum = (f.versions || []).reduce((a, v) => a + (v.weight || 0), 0) || 1;
  return (f.versions || []).map(v => `<span class="chip">${esc(v.blueprint)} v${v.version || "latest"} · ${Math.round(100 * (v.weight || 0) / sum)}%</span>`).join("");
}

// ---- YAML: emit specs for editing, and find a field's line ----

function yamlScalar(v) {
  if (typeof v !== "string") return String(v);
  if (/^[A-Za-z0-9_./][A-Za-z0-9_ ./-]*$/.test(v) && !/\s$/.test(v) &&
      !/^(true|false|null|yes|no|on|off|y|n|~|[-+]?[0-9][0-9_.eE+-]*)$/i.test(v)) return v;
  return JSON.stringify(v);
}

function yamlLines(v, ind) {
  const out = [];
  const isObj = x => x && typeof x === "object";
  if (Array.isArray(v)) {
    for (const item of v) {
      if (!isObj(item)) { out.push(`${ind}- ${yamlScalar(item)}`); continue; }
      const sub = yamlLines(item, ind + "  ");
      if (sub.length) sub[0] = `${ind}- ${sub[0].slice(ind.length + 2)}`;
      out.push(...sub);
    }
    return out;
  }
  for (const [k, val] of Object.entries(v)) {
    if (val === null || val === undefined) continue;
    if (typeof val === "string" && val.includes("\n")) {
      out.push(`${ind}${k}: |${val.endsWith("\n") ? "" : "-"}`);
      for (const l of val.replace(/\n$/, "").split("\n")) out.push(l ? `${ind}  ${l}` : "");
    } else if (Array.isArray(val)) {
      if (!val.length) continue;
      out.push(`${ind}${k}:`, ...yamlLines(val, ind + "  "));
    } else if (isObj(val)) {
      if (!Object.keys(val).length) continue;
      out.push(`${ind}${k}:`, ...yamlLines(val, ind + "  "));
    } else out.push(`${ind}${k}: ${yamlScalar(val)}`);
  }
  return out;
}

function blueprintYAML(bp) {
  const spec = { ...bp };
  for (const k of ["version", "versions", "created", "updated", "secret_names", "latest"]) delete spec[k];
  let y = yamlLines(spec, "").join("\n") + "\n";
  if (bp.secret_names && bp.secret_names.length) {
    y += `# secrets are never shown: write ${bp.secret_names.join(", ")} again under secrets: to keep them\n`;
  }
  return y;
}

function fleetYAML(f) {
  const spec = { name: f.name, replicas: f.replicas, versions: f.versions, placement: f.placement, buffer: f.buffer, update: f.update };
  return yamlLines(spec, "").join("\n") + "\n";
}

const indentOf = l => l.length - l.trimStart().length;
const meaningful = l => l.trim() !== "" && !l.trim().startsWith("#");

// fieldLine finds the line (0-based) of a field path like
// "versions[1].weight" or "health.port" in YAML text, or -1.
function fieldLine(text, path) {
  const lines = text.split("\n");
  const segs = (path || "").match(/[^.[\]]+|\[\d+\]/g) || [];
  let lo = 0, hi = lines.length, parent = -1, found = -1;
  const blockEnd = (j, ind) => {
    let k = j + 1;
    while (k < lines.length && (!meaningful(lines[k]) || indentOf(lines[k]) > ind)) k++;
    return k;
  };
  for (const seg of segs) {
    const m = /^\[(\d+)\]$/.exec(seg);
    let hit = -1;
    if (m) {
      let n = -1, ind = -1;
      for (let j = lo; j < hi; j++) {
        const l = lines[j];
        if (!meaningful(l) || !l.trimStart().startsWith("-")) continue;
        if (ind < 0) ind = indentOf(l);
        if (indentOf(l) !== ind) continue;
        if (++n === Number(m[1])) { hit = j; break; }
      }
      if (hit < 0) return found;
      found = hit; parent = indentOf(lines[hit]) + 1; lo = hit; hi = blockEnd(hit, indentOf(lines[hit]));
      continue;
    }
    const re = new RegExp(`^(\\s*)(- )?${seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*:`);
    for (let j = lo; j < hi; j++) {
      const mm = re.exec(lines[j]);
      if (mm && mm[1].length + (mm[2] ? 2 : 0) > parent) { hit = j; break; }
    }
    if (hit < 0) {
      // A flow mapping on the line found so far ({type: tcp, port: x}).
      if (found >= 0 && new RegExp(`[{,]\\s*${seg}\\s*:`).test(lines[found])) return found;
      if (found < 0 || segs.indexOf(seg) === segs.length - 1) {
        const any = lines.findIndex(l => re.test(l));
        return any >= 0 ? any : found;
      }
      return found;
    }
    const keyInd = (/^\s*- /.test(lines[hit]) ? 2 : 0) + indentOf(lines[hit]);
    found = hit; parent = keyInd; lo = hit + 1; hi = blockEnd(hit, keyInd);
  }
  return found;
}

// editor makes a YAML editor with line numbers that marks a field's line.
function editor(el, text, onSave) {
  el.innerHTML = `<div class="editor"><div class="gutter" aria-hidden="true"></div>` +
    `<textarea spellcheck="false" autocapitalize="off" aria-label="${esc(el.dataset.label || "YAML")}"></textarea><div class="hl" hidden></div></div>` +
    `<div class="error field-error" role="alert" tabindex="-1"></div>`;
  const ta = $("textarea", el), gutter = $(".gutter", el), hl = $(".hl", el), err = $(".field-error", el);
  let mark = -1;
  const lines = () => {
    const n = ta.value.split("\n").length;
    let s = "";
    for (let i = 1; i <= n; i++) s += (i - 1 === mark ? `<b>${i}</b>` : i) + "\n";
    gutter.innerHTML = s;
    gutter.scrollTop = ta.scrollTop;
    if (mark >= 0) { hl.hidden = false; hl.style.top = `${8 + mark * 19 - ta.scrollTop}px`; } else hl.hidden = true;
  };
  ta.value = text;
  ta.addEventListener("input", () => { if (mark >= 0) { mark = -1; err.textContent = ""; } lines(); });
  ta.addEventListener("scroll", lines);
  ta.addEventListener("keydown", ev => {
    if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
      // Two spaces; Escape first leaves the editor with Tab.
      if (ta.dataset.escaped) { delete ta.dataset.escaped; return; }
      ev.preventDefault();
      ta.setRangeText("  ", ta.selectionStart, ta.selectionEnd, "end");
      lines();
    } else if (ev.key === "Escape") ta.dataset.escaped = "1";
    else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && onSave) { ev.preventDefault(); onSave(); }
  });
  const goto = () => {
    if (mark < 0) return;
    const off = ta.value.split("\n").slice(0, mark).join("\n").length + (mark ? 1 : 0);
    ta.focus();
    ta.setSelectionRange(off, off + (ta.value.split("\n")[mark] || "").length);
    ta.scrollTop = Math.max(0, mark * 19 - 80);
  };
  err.addEventListener("click", goto);
  err.addEventListener("keydown", ev => { if (ev.key === "Enter") goto(); });
  lines();
  return {
    get value() { return ta.value; },
    set value(v) { ta.value = v; mark = -1; err.textContent = ""; lines(); },
    // showError puts an API error at its field's line.
    showError(e) {
      mark = -1;
      if (e instanceof APIError) {
        const m = /line (\d+)/.exec(e.message);
        if (e.field) mark = fieldLine(ta.value, e.field);
        else if (m) mark = Number(m[1]) - 1;
      }
      err.innerHTML = (e instanceof APIError && e.field ? `<code>${esc(e.field)}</code>: ${esc(e.message)}` : esc(e.message || e)) +
        (e instanceof APIError ? ` <span class="muted">(HTTP ${e.status}${e.code ? ", " + esc(e.code) : ""})</span>` : "") +
        (mark >= 0 ? ` <span class="muted">— line ${mark + 1}</span>` : "");
      err.dataset.field = (e && e.field) || "";
      err.dataset.line = mark >= 0 ? String(mark + 1) : "";
      lines();
      if (mark >= 0) ta.scrollTop = Math.max(0, mark * 19 - 80);
      lines();
    },
    clear() { mark = -1; err.textContent = ""; lines(); },
  };
}

// act runs an API call from a control, showing its error in out.
async function act(button, out, fn) {
  out.textContent = "";
  out.className = "error";
  button.disabled = true;
  try { return await fn(); } catch (e) { out.textContent = errorText(e); return undefined; } finally { button.disabled = false; }
}

// ---- pages ----

let page = null;
// generation counts the pages shown: an answer that arrives after its page
// was left is dropped (current(gen) is false).
let generation = 0;
const current = gen => gen === generation;

const pages = {
  cluster() {
    return {
      title: "Cluster",
      html: `<h1>Cluster</h1><div class="cards" id="cards"></div>
        <h2>Nodes</h2><div class="panel"><table><thead><tr><th>Node</th><th>Status</th><th>Role</th><th>Address</th><th>Labels</th>
        <th>CPU</th><th>Memory</th><th class="num">Ships</th><th></th></tr></thead><tbody id="nodes"></tbody></table><div class="error" id="node-err" role="alert"></div></div>
        <h2>Topology</h2><div class="legend">${["ready", "allocated", "starting", "queued", "failed"].map(s => `<span><i class="cell c-${s}"></i>${s}</span>`).join("")}</div>
        <div class="topo" id="topo"></div>`,
      mount(el) {
        el.addEventListener("click", async ev => {
          const b = ev.target.closest("button[data-drain]");
          if (!b) return;
          const enable = b.dataset.drain === "true";
          await act(b, $("#node-err"), () => api("POST", `/v1/nodes/${encodeURIComponent(b.dataset.node)}/drain`, { enable }));
        });
      },
      update() {
        const s = store.status;
        const nodes = [...store.nodes.values()].sort(byName);
        const voters = nodes.filter(n => n.role === "voter"), nonvoters = nodes.filter(n => n.role === "nonvoter");
        const alive = nodes.filter(n => n.status === "alive").length;
        $("#cards").innerHTML = [["Leader", s.leader || "none"], ["Term", s.term ?? "—"], ["Index", store.index],
          ["Nodes alive", `${alive} / ${nodes.length}`], ["Voters", voters.map(n => n.name).join(", ") || "—"],
          ["Non-voters", nonvoters.map(n => n.name).join(", ") || "—"], ["Ships live", shipsOf(x => !ENDED.has(x.state)).length]]
          .map(([k, v]) => `<div class="card"><div class="k">${k}</div><div class="v" title="${esc(v)}">${esc(v)}</div></div>`).join("");
        $("#nodes").innerHTML = nodes.map(n => `<tr data-node="${esc(n.name)}" data-status="${esc(n.status)}">
          <td><b>${esc(n.name)}</b>${n.name === s.leader ? ` <span class="badge s-allocated" title="Raft leader">leader</span>` : ""}${n.drain ? ` <span class="badge s-stopping">draining</span>` : ""}</td>
          <td>${badge(n.status)}</td><td>${esc(n.role)}</td><td class="mono">${esc(n.http_addr || n.address)}</td><td>${chips(n.labels)}</td>
          <td>${meter(n.allocated?.cpu_mhz || 0, n.capacity?.cpu_mhz || 0, "MHz")}</td><td>${meter(n.allocated?.memory_mb || 0, n.capacity?.memory_mb || 0, "MB")}</td>
          <td class="num"><a href="#/ships?node=${encodeURIComponent(n.name)}">${n.ships || 0}</a></td>
          <td class="row-actions">${n.worker ? `<button data-node="${esc(n.name)}" data-drain="${!n.drain}">${n.drain ? "Undrain" : "Drain"}</button>` : ""}</td></tr>`).join("") ||
          `<tr><td colspan="9" class="empty">No nodes yet.</td></tr>`;
        $("#topo").innerHTML = nodes.filter(n => n.worker || n.ships).map(n => {
          const ships = shipsOf(x => x.node === n.name && !(ENDED.has(x.state) && x.state !== "lost"));
          return `<div class="node ${esc(n.status)}" data-node="${esc(n.name)}"><header><span>${esc(n.name)}</span>${badge(n.status)}</header>
            <div class="cells">${ships.map(x => `<a class="cell c-${esc(x.state)}" data-ship="${esc(x.id)}" data-state="${esc(x.state)}" href="#/ships/${encodeURIComponent(x.id)}" title="${esc(x.id)} · ${esc(x.fleet || "no fleet")} · ${esc(x.state)}" aria-label="ship ${esc(x.id)} ${esc(x.state)}"></a>`).join("") || `<span class="muted">no ships</span>`}</div></div>`;
        }).join("") || `<p class="muted">No nodes run ships.</p>`;
      },
    };
  },

  fleets() {
    return {
      title: "Fleets",
      html: `<h1>Fleets <a class="btn primary" href="#/fleets/new" id="new-fleet">New fleet</a></h1>
        <div class="panel"><table><thead><tr><th>Fleet</th><th class="num">Replicas</th><th class="num">Ready</th><th class="num">Allocated</th>
        <th>Progress</th><th>Versions</th><th>Updated</th></tr></thead><tbody id="fleets"></tbody></table></div>`,
      update() {
        const fleets = [...store.fleets.values()].sort(byName);
        $("#fleets").innerHTML = fleets.map(f => {
          const c = fleetCounts(f);
          return `<tr data-fleet="${esc(f.name)}"><td>${fleetLink(f.name)}</td><td class="num">${f.replicas}</td><td class="num">${c.ready}</td>
            <td class="num">${c.allocated}</td><td>${progress(c, f.replicas)}</td><td>${versionsText(f)}</td><td>${ago(f.updated)}</td></tr>`;
        }).join("") || `<tr><td colspan="7" class="empty">No fleets yet. <a href="#/fleets/new">Create one</a>.</td></tr>`;
      },
    };
  },

  fleetNew() {
    const bp = [...store.blueprints.keys()].sort()[0] || "my-blueprint";
    const tmpl = `name: my-fleet\nreplicas: 3\nversions:\n  - blueprint: ${bp}\n    weight: 100\nplacement:\n  strategy: spread\n`;
    let ed;
    const save = async () => {
      const y = ed.value;
      const name = (/^name:\s*(\S+)/m.exec(y) || [])[1] || "";
      const btn = $("#fleet-save");
      btn.disabled = true;
      try {
        await api("PUT", `/v1/fleets/${encodeURIComponent(name.replace(/^["']|["']$/g, "")) || "-"}`, y);
        location.hash = `#/fleets/${encodeURIComponent(name.replace(/^["']|["']$/g, ""))}`;
      } catch (e) { ed.showError(e); } finally { btn.disabled = false; }
    };
    return {
      title: "New fleet",
      html: `<h1><a href="#/fleets">Fleets</a> / new</h1><div class="panel"><p class="muted">A fleet keeps <code>replicas</code> ships of its blueprint versions running, split by weight. Ctrl+Enter saves.</p>
        <div id="fleet-editor" data-label="Fleet YAML"></div><p><button class="primary" id="fleet-save">Create fleet</button></p></div>`,
      mount() { ed = editor($("#fleet-editor"), tmpl, save); $("#fleet-save").onclick = save; $("#fleet-editor textarea").focus(); },
    };
  },

  fleet(name) {
    let ed, deployments = null;
    const loadDeployments = async () => {
      const gen = generation;
      let got = null;
      try { got = (await api("GET", `/v1/fleets/${encodeURIComponent(name)}/deployments`)).data; } catch { got = null; }
      if (!current(gen)) return;
      deployments = got;
      renderDeployments();
    };
    const renderDeployments = () => {
      const el = $("#deployments");
      if (!el) return;
      const list = Array.isArray(deployments) ? deployments : [];
      if (!list.length) { el.innerHTML = `<p class="muted">No deployments: changing the fleet's versions or weights starts one.</p>`; return; }
      const vs = l => (l || []).map(v => `${esc(v.blueprint)} v${v.version}${l.length > 1 ? ` (${v.weight})` : ""}`).join(", ");
      const cur = list.find(d => d.state === "running");
      let html = "";
      if (cur) {
        const pct = cur.total ? Math.min(100, 100 * cur.updated / cur.total) : 0;
        html += `<p id="deploy-current">Deployment ${cur.id} ${badge(cur.state)} <span class="mono">${cur.updated} / ${cur.total} updated, ${cur.old} old</span>
          · ${vs(cur.from)} → ${vs(cur.to)} · max ${cur.max_parallel} at a time</p>
          <div class="bar ok" style="max-width:420px" role="progressbar" aria-valuenow="${cur.updated}" aria-valuemax="${cur.total}"><i style="width:${pct}%"></i></div>`;
      }
      html += `<table id="deploy-history"><thead><tr><th>#</th><th>State</th><th>From → to</th><th class="num">Updated</th><th>Started</th><th>Reason</th></tr></thead><tbody>` +
        list.map(d => `<tr data-deployment="${d.id}"><td class="mono">${d.id}</td><td>${badge(d.state)}${d.rolled_back ? ` <span class="badge s-failed">rolled back</span>` : ""}</td>
          <td>${vs(d.from)} → ${vs(d.to)}</td><td class="num">${d.updated}/${d.total}</td><td>${ago(d.started)} ago</td><td>${esc(d.reason || "")}</td></tr>`).join("") +
        `</tbody></table>`;
      el.innerHTML = html;
    };
    return {
      title: `Fleet ${name}`,
      html: `<h1><a href="#/fleets">Fleets</a> / ${esc(name)} <span id="fleet-gone"></span></h1>
        <div class="cols"><div class="panel"><h2 style="margin-top:0">Status</h2><div id="fleet-status"></div>
          <h2>Controls</h2>
          <form id="scale-form" class="toolbar"><label>Replicas<input id="scale-n" type="number" min="0" max="100000" required></label>
            <button type="submit" id="scale-btn">Scale</button></form><div class="error" id="scale-err" role="alert"></div>
          <form id="alloc-form" class="toolbar"><button type="submit" id="alloc-btn" title="Take one ready ship of this fleet for a session">Allocate a ship</button>
            <button type="button" class="danger" id="fleet-delete">Delete fleet</button></form>
          <div class="error" id="alloc-err" role="alert"></div><div class="okmsg" id="alloc-ok" role="status"></div>
          <h2>Deployments</h2><div id="deployments"><p class="muted">Loading…</p></div></div>
        <div class="panel"><h2 style="margin-top:0">Spec</h2><div id="fleet-editor" data-label="Fleet YAML"></div>
          <p><button class="primary" id="fleet-save">Apply changes</button> <span class="muted">Ctrl+Enter</span></p><div class="okmsg" id="fleet-ok" role="status"></div></div></div>
        <h2>Ships</h2><div class="panel"><table><thead><tr><th>Ship</th><th>Version</th><th>Node</th><th>State</th><th>Address</th><th>Ports</th><th>Reason</th><th>Age</th></tr></thead>
        <tbody id="fleet-ships"></tbody></table></div>`,
      mount() {
        const f = store.fleets.get(name);
        ed = editor($("#fleet-editor"), f ? fleetYAML(f) : `name: ${name}\n`, () => save());
        $("#fleet-editor textarea").addEventListener("input", () => { ed.touched = true; });
        const save = async () => {
          const ok = $("#fleet-ok");
          ok.textContent = "";
          try { await api("PUT", `/v1/fleets/${encodeURIComponent(name)}`, ed.value); ed.clear(); ed.touched = false; ok.textContent = "Applied."; } catch (e) { ed.showError(e); }
        };
        $("#fleet-save").onclick = save;
        $("#scale-n").value = f ? f.replicas : 0;
        $("#scale-form").onsubmit = ev => {
          ev.preventDefault();
          act($("#scale-btn"), $("#scale-err"), () => api("POST", `/v1/fleets/${encodeURIComponent(name)}/scale`, { replicas: Number($("#scale-n").value) }));
        };
        $("#alloc-form").onsubmit = async ev => {
          ev.preventDefault();
          const ok = $("#alloc-ok");
          ok.textContent = "";
          const r = await act($("#alloc-btn"), $("#alloc-err"), () => api("POST", "/v1/allocate", { fleet: name }));
          if (r) {
            const s = r.data && (r.data.ship || r.data);
            ok.innerHTML = s && s.id ? `Allocated ${shipLink(s)} at <span class="mono">${esc(s.address || "")}</span> ${ports(s)}` : "Allocated.";
          }
        };
        $("#fleet-delete").onclick = () => {
          if (!confirm(`Delete fleet ${name}? Its ships stop.`)) return;
          act($("#fleet-delete"), $("#alloc-err"), async () => { await api("DELETE", `/v1/fleets/${encodeURIComponent(name)}`); location.hash = "#/fleets"; });
        };
        loadDeployments();
      },
      onEvent(e) { if (e.topic === "deployment") loadDeployments(); },
      update(t) {
        const f = store.fleets.get(name);
        $("#fleet-gone").innerHTML = f ? "" : `<span class="badge s-failed">deleted</span>`;
        if (!f) return;
        if (t.has("fleet") && !ed.touched) { ed.value = fleetYAML(f); }
        if (t.has("fleet") && document.activeElement !== $("#scale-n")) $("#scale-n").value = f.replicas;
        const c = fleetCounts(f);
        const wsum = (f.versions || []).reduce((a, v) => a + (v.weight || 0), 0) || 1;
        const share = w => `${Math.round(100 * (w || 0) / wsum)}%`;
        const vrows = (f.status?.versions || f.versions || []).map(v => {
          const live = c.versions.get(`${v.blueprint}@${v.version}`) || { ships: 0, ready: 0 };
          return `<tr><td><a href="#/blueprints/${encodeURIComponent(v.blueprint)}">${esc(v.blueprint)}</a> v${v.version}</td><td class="num">${share(v.weight)}</td>
            <td class="num">${v.desired ?? "—"}</td><td class="num">${live.ships}</td><td class="num">${live.ready}</td></tr>`;
        }).join("");
        $("#fleet-status").innerHTML = `<div class="cards small"><div class="card"><div class="k">Replicas</div><div class="v">${f.replicas}</div></div>
          <div class="card"><div class="k">Ready</div><div class="v" id="fleet-ready">${c.ready}</div></div>
          <div class="card"><div class="k">Allocated</div><div class="v">${c.allocated}</div></div>
          <div class="card"><div class="k">Pending</div><div class="v">${c.pending}</div></div></div>
          ${progress(c, f.replicas)}
          <table style="margin-top:10px"><thead><tr><th>Version</th><th class="num">Weight</th><th class="num">Desired</th><th class="num">Ships</th><th class="num">Ready</th></tr></thead><tbody>${vrows}</tbody></table>
          <p class="muted">Placement: ${esc(f.placement?.strategy || "spread")} · generation ${f.generation || 1} · updated ${ago(f.updated)} ago</p>`;
        const ships = shipsOf(s => s.fleet === name && (!ENDED.has(s.state) || Date.now() - s.updated < 120000));
        $("#fleet-ships").innerHTML = ships.map(s => shipRow(s)).join("") || `<tr><td colspan="8" class="empty">No ships.</td></tr>`;
      },
    };
  },

  ships(query) {
    const q = new URLSearchParams(query);
    const sel = (id, label, opts, v) => `<label>${label}<select id="${id}"><option value="">all</option>${opts.map(o => `<option${o === v ? " selected" : ""}>${esc(o)}</option>`).join("")}</select></label>`;
    return {
      title: "Ships",
      html: `<h1>Ships</h1><form class="toolbar" id="ship-filter" role="search">
        <span id="f-fleet"></span><span id="f-node"></span>${sel("f-state", "State", SHIP_STATES, q.get("state") || "")}
        <label>Search<input id="f-text" type="search" placeholder="id, reason…" value="${esc(q.get("q") || "")}"></label>
        <label><span><input type="checkbox" id="f-ended"${q.get("ended") ? " checked" : ""}> show ended</span></label></form>
        <div class="panel"><table><thead><tr><th>Ship</th><th>Fleet</th><th>Version</th><th>Node</th><th>State</th><th>Address</th><th>Ports</th><th>Reason</th><th>Age</th></tr></thead>
        <tbody id="ships"></tbody></table><p class="muted" id="ships-count"></p></div>`,
      mount() {
        const apply = () => {
          const p = new URLSearchParams();
          for (const [k, id] of [["fleet", "f-fleet-s"], ["node", "f-node-s"], ["state", "f-state"], ["q", "f-text"]]) { const v = $("#" + id)?.value; if (v) p.set(k, v); }
          if ($("#f-ended").checked) p.set("ended", "1");
          history.replaceState(null, "", `#/ships${p.toString() ? "?" + p : ""}`);
          q.forEach((_, k) => q.delete(k)); p.forEach((v, k) => q.set(k, v));
          this.update(new Set(["all"]));
        };
        $("#ship-filter").addEventListener("change", apply);
        $("#f-text").addEventListener("input", apply);
        $("#ship-filter").addEventListener("submit", ev => ev.preventDefault());
      },
      update() {
        const fleets = [...new Set([...store.fleets.keys(), ...[...store.ships.values()].map(s => s.fleet).filter(Boolean)])].sort();
        const nodes = [...store.nodes.keys()].sort();
        const keep = (id, html) => { const el = $("#" + id); if (el.dataset.opts !== html) { el.dataset.opts = html; el.innerHTML = html; } };
        keep("f-fleet", sel("f-fleet-s", "Fleet", fleets, q.get("fleet") || ""));
        keep("f-node", sel("f-node-s", "Node", nodes, q.get("node") || ""));
        const text = (q.get("q") || "").toLowerCase();
        const ships = shipsOf(s => (!q.get("fleet") || s.fleet === q.get("fleet")) && (!q.get("node") || s.node === q.get("node")) &&
          (!q.get("state") || s.state === q.get("state")) && (q.get("ended") || q.get("state") || !ENDED.has(s.state)) &&
          (!text || `${s.id} ${s.reason || ""} ${s.fleet || ""} ${s.blueprint}`.toLowerCase().includes(text)));
        // The newest first when there are more than a page can show.
        const shown = ships.length > MAX_ROWS ? ships.slice(-MAX_ROWS) : ships;
        $("#ships").innerHTML = shown.map(s => shipRow(s, true)).join("") || `<tr><td colspan="9" class="empty">No ships match.</td></tr>`;
        $("#ships-count").textContent = `${ships.length} of ${store.ships.size} ships` + (shown.length < ships.length ? ` — the newest ${MAX_ROWS} shown; filter to see others` : "");
      },
    };
  },

  ship(id) {
    let abort = null;
    const follow = async () => {
      if (abort) abort.abort();
      abort = new AbortController();
      const pre = $("#logs"), err = $("#logs-err"), state = $("#logs-state");
      pre.textContent = ""; err.textContent = "";
      try {
        const r = await fetch(`/v1/ships/${encodeURIComponent(id)}/logs?tail=500&follow=true`, { signal: abort.signal, headers: authHeaders({}) });
        if (!r.ok) { let b = null; try { b = await r.json(); } catch { /* not JSON */ } throw new APIError(r.status, b); }
        const rd = r.body.getReader(), dec = new TextDecoder();
        state.textContent = "following";
        for (;;) {
          const { value, done } = await rd.read();
          if (done) break;
          const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent = (pre.textContent + dec.decode(value, { stream: true })).slice(-200000);
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }
        state.textContent = "ended";
      } catch (e) {
        if (e.name === "AbortError") return;
        state.textContent = "";
        err.textContent = errorText(e);
      }
    };
    return {
      title: `Ship ${id}`,
      html: `<h1><a href="#/ships">Ships</a> / <span class="mono">${esc(id)}</span> <span id="ship-state"></span></h1>
        <div class="cols"><div class="panel"><dl class="kv" id="ship-detail"></dl>
        <p><button class="danger" id="ship-stop">Stop ship</button></p><div class="error" id="ship-err" role="alert"></div></div>
        <div class="panel"><div class="section-head"><h2 style="margin-top:0">Logs <span class="muted" id="logs-state"></span></h2><button id="logs-reload">Reconnect</button></div>
        <div class="error" id="logs-err" role="alert"></div><pre class="logs" id="logs" tabindex="0" aria-label="Ship logs"></pre></div></div>`,
      mount() {
        $("#ship-stop").onclick = () => act($("#ship-stop"), $("#ship-err"), () => api("DELETE", `/v1/ships/${encodeURIComponent(id)}`));
        $("#logs-reload").onclick = follow;
        this.node = store.ships.get(id)?.node || "";
        follow();
      },
      update() {
        const s = store.ships.get(id);
        if (!s) { $("#ship-state").innerHTML = `<span class="badge">gone</span>`; return; }
        $("#ship-state").innerHTML = badge(s.state);
        $("#ship-detail").innerHTML = [["Fleet", fleetLink(s.fleet)], ["Blueprint", `<a href="#/blueprints/${encodeURIComponent(s.blueprint)}">${esc(s.blueprint)}</a> v${s.version}`],
          ["Node", nodeLink(s.node)], ["State", `${badge(s.state)} <span class="muted">desired ${esc(s.desired)}</span>`], ["Address", `<span class="mono">${esc(s.address || "—")}</span>`],
          ["Ports", ports(s)], ["Reason", esc(s.reason || "—")], ["Resources", `${s.resources?.cpu_mhz || 0} MHz · ${s.resources?.memory_mb || 0} MB`],
          ["Labels", chips(s.labels)], ["Created", `${ago(s.created)} ago`], ["Updated", `${ago(s.updated)} ago`]]
          .map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
        $("#ship-stop").disabled = ENDED.has(s.state) || s.desired === "stop";
        if (s.node && s.node !== this.node) { this.node = s.node; follow(); }
      },
      unmount() { if (abort) abort.abort(); },
    };
  },

  blueprints() {
    return {
      title: "Blueprints",
      html: `<h1>Blueprints <a class="btn primary" href="#/blueprints/new" id="new-blueprint">New blueprint</a></h1>
        <div class="panel"><table><thead><tr><th>Blueprint</th><th class="num">Latest</th><th>Versions</th><th>Resources</th><th>Ports</th><th>Used by</th><th>Updated</th></tr></thead>
        <tbody id="blueprints"></tbody></table></div>`,
      update() {
        const used = name => [...store.fleets.values()].filter(f => (f.versions || []).some(v => v.blueprint === name)).map(f => fleetLink(f.name)).join(", ") || `<span class="muted">—</span>`;
        $("#blueprints").innerHTML = [...store.blueprints.values()].sort(byName).map(b => `<tr data-blueprint="${esc(b.name)}">
          <td><a href="#/blueprints/${encodeURIComponent(b.name)}">${esc(b.name)}</a></td><td class="num">v${b.version || b.latest}</td>
          <td>${(b.versions || []).length}</td><td>${b.resources ? `${b.resources.cpu_mhz} MHz · ${b.resources.memory_mb} MB` : `<span class="muted">—</span>`}</td>
          <td>${(b.ports || []).map(p => `<span class="chip">${esc(p.name)}/${esc(p.protocol || "tcp")}</span>`).join("") || `<span class="muted">—</span>`}</td>
          <td>${used(b.name)}</td><td>${ago(b.updated)}</td></tr>`).join("") ||
          `<tr><td colspan="7" class="empty">No blueprints yet. <a href="#/blueprints/new">Create one</a>.</td></tr>`;
      },
    };
  },

  blueprint(name) {
    const isNew = name === undefined;
    let ed, versions = [];
    const tmpl = `name: my-service\nunit: |\n  [Service]\n  ExecStart=/usr/bin/python3 -m http.server \${ARMADA_PORT_HTTP}\nresources:\n  cpu_mhz: 100\n  memory_mb: 64\nports:\n  - name: http\n    protocol: tcp\nhealth:\n  type: tcp\n  port: http\n`;
    const save = async () => {
      const y = ed.value;
      const n = isNew ? ((/^name:\s*(\S+)/m.exec(y) || [])[1] || "").replace(/^["']|["']$/g, "") : name;
      const gen = generation, ok = $("#bp-ok"), btn = $("#bp-save");
      ok.textContent = "";
      btn.disabled = true;
      try {
        const r = await api("PUT", `/v1/blueprints/${encodeURIComponent(n) || "-"}`, y);
        if (!current(gen)) return;
        ed.clear();
        if (isNew) location.hash = `#/blueprints/${encodeURIComponent(n)}`;
        else { ok.textContent = `Saved as version ${r.data.version}.`; loadVersions(); }
      } catch (e) { ed.showError(e); } finally { btn.disabled = false; }
    };
    const loadVersions = async () => {
      const gen = generation;
      let got;
      try { got = (await api("GET", `/v1/blueprints/${encodeURIComponent(name)}/versions`)).data || []; } catch (e) { if (current(gen)) $("#bp-err").textContent = errorText(e); return; }
      if (!current(gen)) return;
      versions = got;
      const opts = sel => versions.map(v => `<option value="${v.version}"${v.version === sel ? " selected" : ""}>v${v.version}</option>`).join("");
      const last = versions[versions.length - 1], prev = versions[versions.length - 2] || last;
      $("#diff-a").innerHTML = opts(prev?.version); $("#diff-b").innerHTML = opts(last?.version);
      if (!ed.touched) ed.value = last ? blueprintYAML(last) : "";
      renderDiff();
    };
    const renderDiff = () => {
      const a = versions.find(v => v.version === Number($("#diff-a").value)), b = versions.find(v => v.version === Number($("#diff-b").value));
      if (!a || !b) { $("#diff").innerHTML = ""; return; }
      $("#diff").innerHTML = diffTable(blueprintYAML(a), blueprintYAML(b), `v${a.version}`, `v${b.version}`);
    };
    return {
      title: isNew ? "New blueprint" : `Blueprint ${name}`,
      html: `<h1><a href="#/blueprints">Blueprints</a> / ${isNew ? "new" : esc(name)}</h1>
        <div class="error" id="bp-err" role="alert"></div>
        <div class="cols"><div class="panel"><h2 style="margin-top:0">${isNew ? "Blueprint" : "Edit: saving makes a new version"}</h2>
          <p class="muted">YAML or JSON. The API checks every field; an error is shown at its line. Ctrl+Enter saves.</p>
          <div id="bp-editor" data-label="Blueprint YAML"></div>
          <p><button class="primary" id="bp-save">${isNew ? "Create blueprint" : "Save new version"}</button>
          ${isNew ? "" : `<button class="danger" id="bp-delete">Delete blueprint</button>`}</p><div class="okmsg" id="bp-ok" role="status"></div></div>
        ${isNew ? "" : `<div class="panel"><div class="section-head"><h2 style="margin-top:0">Versions side by side</h2>
          <span class="inline"><label>Left<select id="diff-a"></select></label><label>Right<select id="diff-b"></select></label></span></div><div class="diff" id="diff"></div></div>`}</div>`,
      mount() {
        ed = editor($("#bp-editor"), isNew ? tmpl : "", save);
        $("#bp-editor textarea").addEventListener("input", () => { ed.touched = true; });
        $("#bp-save").onclick = save;
        if (isNew) { $("#bp-editor textarea").focus(); return; }
        $("#diff-a").onchange = renderDiff; $("#diff-b").onchange = renderDiff;
        $("#bp-delete").onclick = () => {
          if (!confirm(`Delete blueprint ${name} and all its versions?`)) return;
          act($("#bp-delete"), $("#bp-err"), async () => { await api("DELETE", `/v1/blueprints/${encodeURIComponent(name)}`); location.hash = "#/blueprints"; });
        };
        loadVersions();
      },
      onEvent(e) { if (!isNew && e.topic === "blueprint" && e.key === name && e.op === "put") loadVersions(); },
    };
  },
};

function shipRow(s, withFleet) {
  return `<tr data-ship="${esc(s.id)}" data-state="${esc(s.state)}" data-node="${esc(s.node || "")}"><td>${shipLink(s)}</td>${withFleet ? `<td>${fleetLink(s.fleet)}</td>` : ""}
    <td>${esc(s.blueprint)} v${s.version}</td><td>${nodeLink(s.node)}</td><td>${badge(s.state)}</td><td class="mono">${esc(s.address || "—")}</td>
    <td>${ports(s)}</td><td class="muted">${esc(s.reason || "")}</td><td>${ago(s.created)}</td></tr>`;
}

// diffTable aligns two texts line by line (longest common subsequence).
function diffTable(a, b, la, lb) {
  const x = a.replace(/\n$/, "").split("\n"), y = b.replace(/\n$/, "").split("\n");
  const n = x.length, m = y.length, L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const ops = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { ops.push([i++, j++]); } else if (j < m && (i >= n || L[i][j + 1] >= L[i + 1][j])) { ops.push([-1, j++]); } else { ops.push([i++, -1]); }
  }
  // A run of removed and added lines reads as changed lines, side by side.
  const rows = [];
  for (let k = 0; k < ops.length;) {
    if (ops[k][0] >= 0 && ops[k][1] >= 0) { rows.push([ops[k][0] + 1, x[ops[k][0]], ops[k][1] + 1, y[ops[k][1]], ""]); k++; continue; }
    const dels = [], adds = [];
    for (; k < ops.length && !(ops[k][0] >= 0 && ops[k][1] >= 0); k++) { if (ops[k][0] >= 0) dels.push(ops[k][0]); else adds.push(ops[k][1]); }
    for (let r = 0; r < Math.max(dels.length, adds.length); r++) {
      const d = dels[r], a = adds[r];
      rows.push([d === undefined ? "" : d + 1, d === undefined ? "" : x[d], a === undefined ? "" : a + 1, a === undefined ? "" : y[a], (d === undefined ? "" : "del") + (a === undefined ? "" : "add")]);
    }
  }
  return `<table><thead><tr><th class="ln"></th><th>${esc(la)}</th><th class="ln"></th><th>${esc(lb)}</th></tr></thead><tbody>${rows.map(([ia, ta, ib, tb, k]) =>
    `<tr><td class="ln">${ia}</td><td class="${k.startsWith("del") ? "del" : ""}">${esc(ta)}</td><td class="ln">${ib}</td><td class="${k.endsWith("add") ? "add" : ""}">${esc(tb)}</td></tr>`).join("")}</tbody></table>`;
}

// ---- routing ----

function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const [section, arg] = parts;
  if (page && page.unmount) page.unmount();
  generation++;
  let p, nav = section || "cluster";
  switch (section) {
    case undefined: p = pages.cluster(); break;
    case "fleets": p = arg === "new" ? pages.fleetNew() : arg ? pages.fleet(arg) : pages.fleets(); break;
    case "ships": p = arg ? pages.ship(arg) : pages.ships(query || ""); break;
    case "blueprints": p = arg === "new" ? pages.blueprint(undefined) : arg ? pages.blueprint(arg) : pages.blueprints(); break;
    default: p = { title: "Not found", html: `<h1>Not found</h1><p><a href="#/">Back to the cluster</a></p>` }; nav = "";
  }
  for (const a of $$("[data-nav]")) {
    const on = a.dataset.nav === nav;
    a.classList.toggle("active", on);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  page = p;
  document.title = `${p.title} · Armada`;
  const main = $("#main");
  main.innerHTML = p.html;
  if (p.mount) p.mount(main);
  if (p.update) p.update(new Set(["all"]));
}

// Mounting a page with query changes (filters) is done by the page itself.
window.addEventListener("hashchange", route);
setInterval(() => { if (page && page.update && document.visibilityState === "visible") page.update(new Set(["tick"])); }, 5000);

async function boot() {
  window.armadaBoot = Date.now();
  for (;;) {
    try {
      const since = await loadAll();
      renderHeader();
      route();
      connect(since);
      return;
    } catch (e) {
      $("#main").innerHTML = `<div class="error" role="alert">Cannot reach the API: ${esc(errorText(e))}. Retrying…</div>`;
      setConn("lost", "API unreachable — retrying…");
      await new Promise(r => setTimeout(r, 2000));
    }
  }
}
boot();
