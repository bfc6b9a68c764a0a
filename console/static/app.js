// gpuspace console: one module, no dependencies, no build step.
//
// Rules this file keeps:
//  * Every string from the API goes into the page as text (h() makes text
//    nodes; nothing here parses markup or builds it from strings).
//  * The session token lives in an HttpOnly cookie; the page holds only the
//    session's CSRF token, sent as X-CSRF-Token on every change.
//  * State comes from the REST API once per (re)connection of the event
//    stream and is then kept current by its events: no polling.

const SVGNS = "http://www.w3.org/2000/svg";

// NAME_PATTERN is a Kubernetes DNS label (workspace and GPR names). Chromium
// compiles pattern attributes with the RegExp "v" flag, where a bare "-" in
// a class is a syntax error (and the input then validates nothing): escape it.
const NAME_PATTERN = "[a-z0-9]([\\-a-z0-9]*[a-z0-9])?";

// ---------------------------------------------------------------- DOM helpers

// h makes an element. attrs: plain attributes (set with setAttribute),
// "on*" functions as listeners, "class". children: nodes, strings (text),
// arrays, null.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const $ = (sel) => document.querySelector(sel);

function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 3500);
}

// ---------------------------------------------------------------- API

const state = {
  session: null, // {role, workspace, keyName, expiresAt, csrfToken}
  nodes: new Map(), // name -> PlanNode
  plan: new Map(), // gprId -> PlanGPR (provisioned and queued)
  anon: [], // other workspaces' GPRs, without ids (scoped keys)
  gprs: new Map(), // gprId -> GPR (GET /gpr/list rendering)
  workspaces: new Map(), // name -> WorkspaceSummary
  planNow: null,
  loaded: false,
  selected: null,
};

class APIError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || (body && body.message) || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body, extraHeaders) {
  const headers = { Accept: "application/json", ...(extraHeaders || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.session && state.session.csrfToken) headers["X-CSRF-Token"] = state.session.csrfToken;
  const res = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (res.status === 401 && state.session && !path.startsWith("/api/v1/console/session")) {
    loggedOut("Your session ended; log in again.");
  }
  if (!res.ok) throw new APIError(res.status, data);
  return data ? data.data : null;
}

const can = {
  owner: () => state.session && state.session.role === "Owner",
  write: (ws) => {
    const se = state.session;
    if (!se) return false;
    if (se.role === "Owner") return true;
    return se.role === "Editor" && (ws === undefined || ws === se.workspace);
  },
};

// ---------------------------------------------------------------- session

// SIGNED_IN (localStorage) says this browser has a session cookie.
const SIGNED_IN = "gpuspace.signedIn";

async function boot() {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  window.addEventListener("hashchange", () => { state.selected = null; render(); focusMain(); });
  offerSSO();
  // Probe the session only when this browser logged in before (or comes
  // back from the SSO log-in): the cookie is HttpOnly, and a 401 on a
  // first visit would be a console error.
  const fromSSO = location.hash === "#/sso";
  if (fromSSO) history.replaceState(null, "", "#/pool");
  if (fromSSO || localStorage.getItem(SIGNED_IN)) {
    try {
      const se = await api("GET", "/api/v1/console/session");
      if (se.csrfToken) return started(se);
    } catch { /* the session ended */ }
  }
  localStorage.removeItem(SIGNED_IN);
  const failed = /^#\/sso-(failed|unavailable)/.test(location.hash) ? location.hash.split("/").pop() : "";
  if (failed) history.replaceState(null, "", "#");
  showLogin(failed ? "Log-in with SSO did not succeed (" + failed + "); try again, or use an API key." : "");
}

// offerSSO shows "Log in with SSO" when the server has single sign-on.
async function offerSSO() {
  try {
    const r = await fetch("/sso/config", { cache: "no-store" });
    $("#sso").hidden = !(r.ok && (await r.json()).enabled);
  } catch { /* no SSO */ }
}

function showLogin(msg) {
  $("#login").hidden = false;
  $("#nav").hidden = true;
  $("#who").hidden = true;
  $("#view").replaceChildren();
  $("#login-error").textContent = msg || "";
  $("#apikey").focus();
}

async function login(ev) {
  ev.preventDefault();
  const key = $("#apikey").value.trim();
  $("#login-error").textContent = "";
  try {
    const se = await api("POST", "/api/v1/console/session", { apiKey: key }, { "X-Gpuspace-Console": "1" });
    $("#apikey").value = "";
    started(se);
  } catch (e) {
    $("#login-error").textContent = e.status === 401 ? "That API key is not valid." : e.message;
  }
}

async function logout() {
  stopStream();
  try { await api("DELETE", "/api/v1/console/session"); } catch { /* gone anyway */ }
  localStorage.removeItem(SIGNED_IN);
  state.session = null;
  showLogin("Logged out.");
}

function loggedOut(msg) {
  if (!state.session) return;
  localStorage.removeItem(SIGNED_IN);
  state.session = null;
  stopStream();
  showLogin(msg);
}

function started(se) {
  state.session = se;
  localStorage.setItem(SIGNED_IN, "1");
  $("#login").hidden = true;
  $("#nav").hidden = false;
  $("#who").hidden = false;
  $("#identity").textContent = se.role + (se.workspace ? " of " + se.workspace : "") + " · " + se.keyName;
  for (const a of document.querySelectorAll("#nav a")) {
    const need = a.dataset.needs;
    a.hidden = (need === "owner" && !can.owner()) || (need === "write" && !can.write());
  }
  if (!location.hash || location.hash === "#") location.hash = "#/pool";
  scheduleRenew();
  startStream();
  render();
}

// The token lives 15 minutes by default; renew two minutes before.
function scheduleRenew() {
  clearTimeout(scheduleRenew.timer);
  const at = Date.parse(state.session.expiresAt) - Date.now() - 120000;
  scheduleRenew.timer = setTimeout(renew, Math.max(at, 5000));
}

async function renew() {
  try {
    const se = await api("POST", "/api/v1/console/session", {}, { "X-Gpuspace-Console": "1" });
    state.session = se;
    scheduleRenew();
  } catch {
    loggedOut("Your session ended; log in again.");
  }
}

// ---------------------------------------------------------------- live state

let stream = null;

function startStream() {
  stopStream();
  setLive("connecting", "");
  stream = new EventSource("/api/v1/events");
  stream.addEventListener("ready", () => { setLive("live", "on"); reload(); });
  stream.addEventListener("reset", () => reload());
  stream.addEventListener("gpr", (e) => applyGPR(JSON.parse(e.data)));
  stream.addEventListener("node", (e) => applyNode(JSON.parse(e.data)));
  stream.addEventListener("workspace", (e) => applyWorkspace(JSON.parse(e.data)));
  stream.onerror = () => {
    setLive("reconnecting", "off");
    if (stream && stream.readyState === EventSource.CLOSED) {
      // Refused (the token expired or the key went): renew, then again.
      setTimeout(async () => { await renew(); if (state.session) startStream(); }, 2000);
    }
  };
}

function stopStream() {
  if (stream) stream.close();
  stream = null;
}

function setLive(text, cls) {
  const l = $("#live");
  l.textContent = text;
  l.className = "live " + cls;
}

// reload reads everything the pages show, after the stream is subscribed
// (its ready event), so no change falls between the read and the stream.
async function reload() {
  try {
    const [plan, wsl, gl] = await Promise.all([
      api("GET", "/api/v1/plan"),
      api("GET", "/api/v1/slice-workspace/list"),
      api("GET", "/api/v1/gpr/list"),
    ]);
    setPlan(plan);
    state.workspaces = new Map(wsl.workspaces.map((w) => [w.name, w]));
    state.gprs = new Map(gl.items.map((g) => [g.gprId, g]));
    state.loaded = true;
    render();
  } catch (e) {
    if (state.session) toast("Could not load: " + e.message);
  }
}

function setPlan(plan) {
  state.planNow = Date.parse(plan.now);
  state.nodes = new Map(plan.nodes.map((n) => [n.name, n]));
  state.plan = new Map();
  state.anon = [];
  for (const g of plan.gprs) {
    if (g.gprId) state.plan.set(g.gprId, g);
    else state.anon.push(g);
  }
}

function applyGPR(ev) {
  const id = ev.gprId;
  if (ev.change === "deleted") {
    state.plan.delete(id);
    state.gprs.delete(id);
  } else {
    if (ev.gpr) state.gprs.set(id, ev.gpr);
    if (ev.plan) {
      const prev = state.plan.get(id);
      const next = { ...ev.plan };
      // A status event carries no fresh estimate; keep the one shown until
      // the plan pass tells it.
      if (prev && ev.change !== "estimate" && next.provisioningStatus === "Queued" && !next.start) {
        next.start = prev.start; next.end = prev.end; next.nodes = prev.nodes;
      }
      state.plan.set(id, next);
    } else if (ev.change === "released" || ev.change === "failed") {
      state.plan.delete(id);
    }
    if (ev.change === "estimate" && state.gprs.has(id) && ev.plan) {
      const g = state.gprs.get(id);
      state.gprs.set(id, { ...g, estimatedStartTime: ev.plan.start });
    }
  }
  bumpWorkspace(ev.sliceName);
  later();
}

function applyNode(ev) {
  const n = ev.node;
  if (ev.change === "removed") state.nodes.delete(n.name);
  else {
    const prev = state.nodes.get(n.name);
    // Facts come with every event; keep them when an event only names the node.
    state.nodes.set(n.name, prev && !n.gpuCount ? { ...prev, state: n.state, gprId: n.gprId, sliceName: n.sliceName, until: n.until } : n);
    // Node events carry no topology; the plan's last word stands.
    const cur = state.nodes.get(n.name);
    if (prev && prev.domain && !cur.domain) cur.domain = prev.domain;
  }
  later();
}

function applyWorkspace(ev) {
  if (ev.change === "deleted") state.workspaces.delete(ev.name);
  else state.workspaces.set(ev.name, ev.workspace);
  later();
}

// A workspace's active GPR and queue length follow its GPRs.
function bumpWorkspace(name) {
  const w = state.workspaces.get(name);
  if (!w) return;
  let active = "", queued = 0;
  for (const g of state.gprs.values()) {
    if (g.sliceName !== name) continue;
    if (g.status.provisioningStatus === "Provisioned") active = g.gprId;
    if (g.status.provisioningStatus === "Queued") queued++;
  }
  state.workspaces.set(name, { ...w, activeGPR: active, queuedGPRs: queued });
}

// later re-renders once per frame, whatever the number of events.
function later() {
  if (later.pending) return;
  later.pending = true;
  requestAnimationFrame(() => { later.pending = false; render(true); });
}

// ---------------------------------------------------------------- routing

function route() {
  const parts = (location.hash || "#/pool").slice(2).split("/").map(decodeURIComponent);
  return { page: parts[0] || "pool", arg: parts[1] };
}

const pages = { pool: poolPage, timeline: timelinePage, workspaces: workspacesPage, ws: workspacePage,
  new: newGPRPage, gpr: gprPage, keys: keysPage };

// Pages with forms are not rebuilt by live updates (the user is typing);
// they refresh their live parts themselves.
const livePages = new Set(["pool", "timeline", "workspaces", "ws", "gpr"]);

function render(live) {
  if (!state.session) return;
  const r = route();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === r.page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (live && !livePages.has(r.page)) return;
  const page = pages[r.page] || poolPage;
  const view = $("#view");
  if (live && view.contains(document.activeElement) && document.activeElement.matches("input,select,textarea")) return;
  const keep = document.activeElement && document.activeElement.id;
  view.replaceChildren(page(r.arg));
  if (keep && live) { const el = document.getElementById(keep); if (el) el.focus(); }
}

function focusMain() { $("#main").focus({ preventScroll: true }); }

// ---------------------------------------------------------------- formatting

// One formatter each: making an Intl formatter per call (toLocaleString)
// costs more than drawing the bar it labels.
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

function fmtTime(iso) {
  if (!iso) return "—";
  return dateTimeFmt.format(new Date(iso));
}

function fmtIn(iso) {
  if (!iso) return "";
  const ms = Date.parse(iso) - Date.now();
  if (ms <= 0) return "now";
  const m = Math.round(ms / 60000);
  if (m < 60) return "in " + m + " min";
  const hh = Math.floor(m / 60);
  return "in " + hh + " h " + (m % 60) + " min";
}

const stateBadge = (st) => h("span", { class: "state " + st }, st);
const gprLink = (id, label) => h("a", { href: "#/gpr/" + encodeURIComponent(id) }, label || id);
const wsLink = (name) => h("a", { href: "#/ws/" + encodeURIComponent(name) }, name);

function loading() { return h("p", { class: "muted" }, "Loading…"); }

// ---------------------------------------------------------------- Pool

function poolPage() {
  if (!state.loaded) return loading();
  const nodes = [...state.nodes.values()];
  let gpus = 0, free = 0, held = 0, bad = 0;
  for (const n of nodes) {
    gpus += n.gpuCount;
    if (n.state === "held") held++;
    else if (n.state === "unhealthy") bad++;
    else free++;
  }
  const groups = new Map();
  for (const n of nodes) {
    // Grouped by kind, then by network block (topology domain).
    const k = n.clusterName + " · " + n.gpuShape + (n.domain ? " · " + n.domain : "");
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(n);
  }
  const total = (label, v) => h("div", { class: "total" }, h("b", null, String(v)), label);
  return h("section", { "aria-labelledby": "pool-h" },
    h("h1", { id: "pool-h" }, "GPU pool"),
    h("div", { class: "totals", id: "totals" },
      total("nodes", nodes.length), total("GPUs", gpus), total("free nodes", free), total("held nodes", held), total("unhealthy", bad)),
    [...groups.keys()].sort().map((k) => {
      const ns = groups.get(k).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
      const f = ns.filter((n) => n.state === "free").length;
      return h("div", { class: "card" },
        h("h2", null, k, " ", h("span", { class: "muted" }, `— ${ns.length} nodes, ${f} free`)),
        h("div", { class: "tablewrap" }, h("table", { class: "pool" },
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "Node"), h("th", { scope: "col" }, "GPUs"),
            h("th", { scope: "col", class: "hide-narrow" }, "Memory/GPU"), h("th", { scope: "col", class: "hide-narrow" }, "Instance type"),
            h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Held by"), h("th", { scope: "col" }, "Until"))),
          h("tbody", null, ns.map((n) => h("tr", { "data-node": n.name },
            h("td", null, n.name), h("td", null, String(n.gpuCount)),
            h("td", { class: "hide-narrow" }, n.memory + " GB"), h("td", { class: "hide-narrow" }, n.instanceType || "—"),
            h("td", null, stateBadge(n.state), !n.healthy && n.state === "held" ? [" ", stateBadge("unhealthy")] : null),
            h("td", null, n.gprId ? [wsLink(n.sliceName), " / ", gprLink(n.gprId)] : n.state === "held" ? h("span", { class: "muted" }, "another workspace") : "—"),
            h("td", null, n.until ? fmtTime(n.until) : "—")))))));
    }),
    nodes.length === 0 ? h("p", { class: "muted" }, "No GPU nodes yet.") : null);
}

// ---------------------------------------------------------------- Timeline

// timelineModel turns the plan into rows and bars; pure, so the browser
// test can time it with a large synthetic plan (window.gpuspaceConsole).
function timelineModel(nodes, gprs, nowMs) {
  const byNode = new Map();
  for (const n of nodes) byNode.set(n.name, []);
  let end = nowMs + 3600e3;
  const unplaced = [];
  for (const g of gprs) {
    const st = g.start ? Date.parse(g.start) : NaN;
    const en = g.end ? Date.parse(g.end) : NaN;
    if (isNaN(st) || isNaN(en) || !g.nodes || g.nodes.length === 0) { if (g.provisioningStatus === "Queued") unplaced.push(g); continue; }
    if (en > end) end = en;
    for (const n of g.nodes) {
      const list = byNode.get(n);
      // The likely end, when the workspace's history predicts an early
      // release: the bar past it is drawn lighter.
      const le = g.likelyEnd ? Date.parse(g.likelyEnd) : NaN;
      if (list) list.push({ g, st, en, le: !isNaN(le) && le > st && le < en ? le : null });
    }
  }
  const groups = new Map();
  for (const n of nodes) {
    const k = n.clusterName + " · " + n.gpuShape + " ×" + n.gpuCount;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(n);
  }
  // At most a week ahead, so hours stay readable.
  end = Math.min(end, nowMs + 7 * 86400e3);
  return { byNode, groups, start: nowMs - 5 * 60e3, end: end + 10 * 60e3, unplaced };
}

function timelineSVG(model, onSelect) {
  const rowH = 22, labelW = 190, groupH = 24, axisH = 26;
  const width = Math.max(720, Math.min(document.documentElement.clientWidth - 48, 2400));
  const plotW = width - labelW - 10;
  const span = model.end - model.start;
  const x = (t) => labelW + ((Math.max(t, model.start) - model.start) / span) * plotW;
  let rows = 0;
  for (const ns of model.groups.values()) rows += ns.length;
  const height = axisH + model.groups.size * groupH + rows * rowH + 8;
  const svg = s("svg", { width, height, role: "group", "aria-label": "Queue timeline: one row per node, bars are GPRs" });
  // Axis: hour ticks (or coarser).
  const hour = 3600e3;
  const stepH = Math.max(1, Math.ceil(span / hour / 12));
  const axis = s("g", null);
  for (let t = Math.ceil(model.start / hour) * hour; t < model.end; t += stepH * hour) {
    axis.append(s("line", { class: "gridline", x1: x(t), x2: x(t), y1: axisH - 4, y2: height }));
    if (x(t) + 64 < width) axis.append(s("text", { class: "tick", x: x(t) + 2, y: 14 }, timeFmt.format(new Date(t))));
  }
  svg.append(axis);
  let y = axisH;
  const bars = s("g", null);
  for (const k of [...model.groups.keys()].sort()) {
    svg.append(s("text", { class: "grp", x: 4, y: y + 16 }, k));
    y += groupH;
    for (const n of model.groups.get(k).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }))) {
      if (n.state === "unhealthy" || !n.healthy) svg.append(s("rect", { class: "down", x: labelW, y, width: plotW, height: rowH - 2 }));
      svg.append(s("text", { class: "lbl", x: 8, y: y + 15 }, n.name));
      for (const b of model.byNode.get(n.name) || []) {
        const g = b.g;
        const cls = "bar " + (g.gprId ? g.provisioningStatus : "other") + (state.selected && state.selected === g.gprId ? " sel" : "");
        const likely = b.le ? `, likely released by ${fmtTime(g.likelyEnd)}` : "";
        const label = g.gprId
          ? `${g.gprName || g.gprId} (${g.sliceName}) ${g.provisioningStatus}, priority ${g.priority}: ${fmtTime(g.start)} – ${fmtTime(g.end)}${g.provisioningStatus === "Queued" ? " (likely start" + (g.latestStart && g.latestStart !== g.start ? ", at the latest " + fmtTime(g.latestStart) : "") + ")" : ""}${likely}`
          : `another workspace's GPR, priority ${g.priority}: ${fmtTime(g.start)} – ${fmtTime(g.end)}${likely}`;
        // The <title> is the tooltip and the accessible name.
        const r = s("rect", { class: cls, x: x(b.st), y: y + 2, width: Math.max(3, x(b.en) - x(b.st)), height: rowH - 6, rx: 3,
          tabindex: g.gprId ? 0 : null, role: g.gprId ? "button" : "img", "data-gpr": g.gprId || null },
          s("title", null, label));
        bars.append(r);
        if (b.le) {
          // Inside the requested bar: the part after the likely end, lighter.
          bars.append(s("rect", { class: "beyond", x: x(b.le), y: y + 4, width: Math.max(1, x(b.en) - x(b.le)), height: rowH - 10, "aria-hidden": "true" }));
        }
      }
      y += rowH;
    }
  }
  svg.append(bars);
  // One listener for every bar.
  const pick = (e) => { const id = e.target.getAttribute && e.target.getAttribute("data-gpr"); return id || null; };
  bars.addEventListener("click", (e) => { const id = pick(e); if (id) onSelect(id); });
  bars.addEventListener("keydown", (e) => {
    const id = pick(e);
    if (id && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); onSelect(id); }
  });
  const nx = x(Date.now());
  svg.append(s("line", { class: "now", x1: nx, x2: nx, y1: axisH - 6, y2: height }), s("text", { class: "tick", x: nx + 3, y: axisH - 8 }, "now"));
  return svg;
}

function timelinePage() {
  if (!state.loaded) return loading();
  const gprs = [...state.plan.values(), ...state.anon];
  const model = timelineModel([...state.nodes.values()], gprs, Date.now());
  const sel = h("div", { class: "selected card", id: "tl-selected", "aria-live": "polite" }, state.selected ? gprSummary(state.selected) : h("p", { class: "muted" }, "Select a bar (click, or Tab and Enter) to see its GPR."));
  const select = (id) => {
    state.selected = id;
    for (const r of document.querySelectorAll(".tl .bar.sel")) r.classList.remove("sel");
    for (const r of document.querySelectorAll(`.tl .bar[data-gpr="${CSS.escape(id)}"]`)) r.classList.add("sel");
    sel.replaceChildren(gprSummary(id));
  };
  const queued = gprs.filter((g) => g.provisioningStatus === "Queued" && g.gprId).length;
  return h("section", { "aria-labelledby": "tl-h" },
    h("h1", { id: "tl-h" }, "Queue timeline"),
    h("p", { class: "muted" }, `${state.plan.size - queued} provisioned, ${queued} queued. Queued GPRs are drawn where the current plan likely starts them; the lighter end of a bar is time requested that its workspace's history says it will likely not use.`),
    h("div", { class: "legend" }, h("span", null, h("span", { class: "sw Provisioned" }), "provisioned (until its end)"),
      h("span", null, h("span", { class: "sw Queued" }), "queued (likely start)"),
      h("span", null, h("span", { class: "sw beyond" }), "requested, likely released before"), h("span", null, h("span", { class: "sw other" }), "another workspace"),
      h("span", null, h("span", { class: "sw down" }), "node unhealthy")),
    h("div", { class: "tl", id: "timeline" }, timelineSVG(model, select)),
    sel,
    model.unplaced.length ? h("div", { class: "card" }, h("h2", null, "Waiting without an estimate"),
      h("ul", null, model.unplaced.map((g) => h("li", null, g.gprId ? gprLink(g.gprId, g.gprName || g.gprId) : "another workspace's GPR",
        g.sliceName ? " (" + g.sliceName + ")" : "", g.reason ? ": " + g.reason : ": its matching nodes are busy with no end, unhealthy or cordoned")))) : null);
}

function gprSummary(id) {
  const p = state.plan.get(id);
  const g = state.gprs.get(id);
  if (!p && !g) return h("p", null, "GPR " + id + " is gone.");
  const phase = (g && g.status.provisioningStatus) || p.provisioningStatus;
  return h("div", null,
    h("h2", null, gprLink(id, (g && g.gprName) || (p && p.gprName) || id), " ", stateBadge(phase)),
    h("dl", { class: "kv" },
      h("dt", null, "Workspace"), h("dd", null, (g && g.sliceName) || p.sliceName),
      h("dt", null, "Priority"), h("dd", null, String((g && g.priority) || p.priority)),
      h("dt", null, phase === "Queued" ? "Estimated start" : "Started"), h("dd", null, p && p.start ? fmtTime(p.start) + " " + (phase === "Queued" ? fmtIn(p.start) : "") : "—"),
      h("dt", null, "Ends"), h("dd", null, p && p.end ? fmtTime(p.end) : "—"),
      h("dt", null, phase === "Queued" ? "Planned nodes" : "Nodes"), h("dd", null, p && p.nodes.length ? p.nodes.join(", ") : "—")));
}

// ---------------------------------------------------------------- Workspaces

function workspacesPage() {
  if (!state.loaded) return loading();
  const list = [...state.workspaces.values()].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  return h("section", { "aria-labelledby": "ws-h" },
    h("h1", { id: "ws-h" }, "Workspaces"),
    can.owner() ? newWorkspaceForm() : null,
    h("div", { class: "tablewrap" }, h("table", null,
      h("thead", null, h("tr", null, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "User"),
        h("th", { scope: "col", class: "hide-narrow" }, "Description"), h("th", { scope: "col" }, "Clusters"),
        h("th", { scope: "col" }, "Active GPR"), h("th", { scope: "col" }, "Queued"), h("th", { scope: "col" }, "Ready"))),
      h("tbody", null, list.map((w) => h("tr", { "data-ws": w.name },
        h("td", null, wsLink(w.name)), h("td", null, w.username), h("td", { class: "hide-narrow desc" }, w.sliceDescription),
        h("td", null, w.clusters.join(", ")), h("td", null, w.activeGPR ? gprLink(w.activeGPR) : "—"),
        h("td", null, String(w.queuedGPRs)), h("td", null, w.ready ? "yes" : "not yet")))))),
    list.length === 0 ? h("p", { class: "muted" }, "No workspaces you may read.") : null);
}

function newWorkspaceForm() {
  const err = h("p", { class: "error", role: "alert" });
  const submit = async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const name = f.elements.wsname.value.trim();
    const body = {
      workspaceName: name,
      username: f.elements.wsuser.value.trim(),
      email: f.elements.wsemail.value.trim(),
      clusters: f.elements.wsclusters.value.split(",").map((x) => x.trim()).filter(Boolean),
      namespaces: f.elements.wsns.value.split(",").map((x) => x.trim()).filter(Boolean),
      sliceDescription: f.elements.wsdesc.value,
    };
    if (body.namespaces.length === 0) body.namespaces = [name];
    err.textContent = "";
    try {
      await api("POST", "/api/v1/slice-workspace", body);
      toast("Workspace " + name + " created");
      const wl = await api("GET", "/api/v1/slice-workspace/list");
      state.workspaces = new Map(wl.workspaces.map((w) => [w.name, w]));
      render();
    } catch (e) { err.textContent = fieldErrors(e); }
  };
  const clusters = [...new Set([...state.nodes.values()].map((n) => n.clusterName))].sort();
  return h("details", { class: "card" }, h("summary", null, "New workspace"),
    h("form", { id: "ws-form", onsubmit: submit },
      h("div", { class: "grid2" },
        h("div", null, h("label", { for: "wsname" }, "Name"), h("input", { id: "wsname", name: "wsname", type: "text", required: true, pattern: NAME_PATTERN, maxlength: 63 })),
        h("div", null, h("label", { for: "wsuser" }, "User"), h("input", { id: "wsuser", name: "wsuser", type: "text", required: true })),
        h("div", null, h("label", { for: "wsemail" }, "Email"), h("input", { id: "wsemail", name: "wsemail", type: "email" })),
        h("div", null, h("label", { for: "wsclusters" }, "Clusters (comma-separated)"), h("input", { id: "wsclusters", name: "wsclusters", type: "text", required: true, value: clusters.join(", ") || "worker-1" })),
        h("div", null, h("label", { for: "wsns" }, "Namespaces (comma-separated; default: the name)"), h("input", { id: "wsns", name: "wsns", type: "text" })),
        h("div", null, h("label", { for: "wsdesc" }, "Description"), h("input", { id: "wsdesc", name: "wsdesc", type: "text", maxlength: 1024 }))),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create workspace")), err));
}

function fieldErrors(e) {
  const d = e.body && e.body.error && e.body.error.data;
  if (Array.isArray(d) && d.length) return e.message + ": " + d.map((x) => (x.field || "") + " " + (x.reason || x.message || "")).join("; ");
  return e.message;
}

function workspacePage(name) {
  const w = state.workspaces.get(name);
  if (!state.loaded) return loading();
  if (!w) return h("p", null, "No workspace " + name + " (or you may not read it).");
  const gprs = [...state.gprs.values()].filter((g) => g.sliceName === name);
  const active = gprs.filter((g) => g.status.provisioningStatus === "Provisioned");
  const queue = gprs.filter((g) => g.status.provisioningStatus === "Queued").sort((a, b) => b.priority - a.priority || a.createdAt.localeCompare(b.createdAt));
  const done = gprs.filter((g) => g.status.provisioningStatus === "Complete" || g.status.provisioningStatus === "Error");
  const row = (g) => h("tr", null, h("td", null, gprLink(g.gprId, g.gprName)), h("td", null, stateBadge(g.status.provisioningStatus)),
    h("td", null, String(g.priority)), h("td", null, g.numberOfGPUNodes + " × " + g.numberOfGPUs + " " + (g.gpuShape || "any")),
    h("td", null, g.status.provisioningStatus === "Queued" ? fmtTime(g.estimatedStartTime) + " " + fmtIn(g.estimatedStartTime) : fmtTime(g.status.startTimestamp)));
  const table = (list) => list.length ? h("div", { class: "tablewrap" }, h("table", null,
    h("thead", null, h("tr", null, ["GPR", "Status", "Priority", "Nodes × GPUs", "Start"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, list.map(row)))) : h("p", { class: "muted" }, "None.");
  return h("section", { "aria-labelledby": "wsd-h" },
    h("h1", { id: "wsd-h" }, "Workspace ", w.name),
    h("div", { class: "card" }, h("dl", { class: "kv" },
      h("dt", null, "User"), h("dd", null, w.username, w.email ? " <" + w.email + ">" : ""),
      h("dt", null, "Description"), h("dd", { class: "desc" }, w.sliceDescription || "—"),
      h("dt", null, "Clusters"), h("dd", null, w.clusters.join(", ")),
      h("dt", null, "Namespaces"), h("dd", null, w.namespaces.map((n) => n.namespace + " (" + n.clusters.join(", ") + ")").join("; ")),
      h("dt", null, "Ready"), h("dd", null, w.ready ? "yes" : "not yet")),
      can.write(name) ? h("div", { class: "actions" }, w.clusters.map((c) => h("button", { type: "button", onclick: () => downloadKubeconfig(name, c) }, "Download kubeconfig (" + c + ")")),
        h("a", { href: "#/new/" + encodeURIComponent(name) }, "New GPR in " + name)) : null),
    h("h2", null, "Active GPR"), table(active),
    h("h2", null, "Queue"), table(queue),
    h("h2", null, "Finished"), table(done));
}

async function downloadKubeconfig(ws, cluster) {
  try {
    toast("Asking for the kubeconfig…");
    const d = await api("GET", "/api/v1/slice-workspace/kube-config?workspaceName=" + encodeURIComponent(ws) + "&clusterName=" + encodeURIComponent(cluster));
    const url = URL.createObjectURL(new Blob([d.kubeConfig], { type: "application/yaml" }));
    const a = h("a", { href: url, download: ws + "-" + cluster + ".kubeconfig" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { toast("kubeconfig: " + e.message); }
}

// ---------------------------------------------------------------- New GPR

function newGPRPage(ws) {
  if (!can.write()) return h("p", null, "Your key may not create GPRs.");
  const mine = [...state.workspaces.values()].map((w) => w.name).filter((n) => can.write(n)).sort();
  const shapes = [...new Set([...state.nodes.values()].map((n) => n.gpuShape))].sort();
  const preview = h("div", { class: "preview", id: "gpr-preview", "aria-live": "polite" }, "Fill in the request to see when it would start.");
  const limits = h("p", { class: "muted", id: "gpr-limits" });
  const err = h("p", { class: "error", role: "alert" });
  const num = (id, label, attrs) => h("div", null, h("label", { for: id }, label), h("input", { id, name: id, type: "number", ...attrs }));
  const form = h("form", { id: "gpr-form", novalidate: true },
    h("div", { class: "grid2" },
      h("div", null, h("label", { for: "g-ws" }, "Workspace"), h("select", { id: "g-ws", name: "g-ws", required: true },
        mine.map((n) => h("option", { value: n, selected: n === ws }, n)))),
      h("div", null, h("label", { for: "g-name" }, "Name"), h("input", { id: "g-name", name: "g-name", type: "text", required: true, pattern: NAME_PATTERN, maxlength: 63, value: "train" })),
      h("div", null, h("label", { for: "g-shape" }, "GPU shape"), h("select", { id: "g-shape", name: "g-shape" },
        h("option", { value: "" }, "any"), shapes.map((x) => h("option", { value: x }, x)))),
      h("div", null, h("label", { for: "g-cluster" }, "Cluster (empty: the workspace's first)"), h("input", { id: "g-cluster", name: "g-cluster", type: "text" })),
      h("div", null, h("label", { for: "g-itype" }, "Instance type (empty: any)"), h("input", { id: "g-itype", name: "g-itype", type: "text" }))),
    h("div", { class: "row" },
      num("g-gpus", "GPUs per node", { min: 1, max: 64, value: 1, required: true }),
      num("g-nodes", "Nodes", { min: 1, max: 1024, value: 1, required: true }),
      num("g-mem", "Memory per GPU (GB, 0: any)", { min: 0, max: 4096, value: 0 }),
      num("g-prio", "Priority (1–300)", { min: 1, max: 300, value: 101, required: true })),
    h("fieldset", null, h("legend", null, "Duration (exitDuration)"), h("div", { class: "row" },
      num("g-d", "Days", { min: 0, max: 365, value: 0 }), num("g-h", "Hours", { min: 0, max: 23, value: 1 }), num("g-m", "Minutes", { min: 0, max: 59, value: 0 }))),
    h("div", { class: "row" },
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "g-evict", name: "g-evict" }), "enable eviction"),
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "g-requeue", name: "g-requeue" }), "requeue on failure")),
    limits, preview,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "g-submit" }, "Create GPR")), err);

  const body = () => {
    const e = form.elements;
    const b = {
      gprName: e["g-name"].value.trim(), sliceName: e["g-ws"].value,
      numberOfGPUs: +e["g-gpus"].value, numberOfGPUNodes: +e["g-nodes"].value, priority: +e["g-prio"].value,
      exitDuration: `${+e["g-d"].value || 0}d${+e["g-h"].value || 0}h${+e["g-m"].value || 0}m`,
      enableEviction: e["g-evict"].checked, requeueOnFailure: e["g-requeue"].checked,
    };
    if (e["g-shape"].value) b.gpuShape = e["g-shape"].value;
    if (e["g-cluster"].value.trim()) b.clusterName = e["g-cluster"].value.trim();
    if (e["g-itype"].value.trim()) b.instanceType = e["g-itype"].value.trim();
    if (+e["g-mem"].value > 0) b.memoryPerGPU = +e["g-mem"].value;
    return b;
  };
  let seq = 0;
  const update = async () => {
    const my = ++seq;
    const b = body();
    try {
      const w = await api("POST", "/api/v1/gpr/waittime", b);
      if (my !== seq) return;
      preview.className = "preview" + (w.satisfiable ? "" : " bad");
      preview.textContent = !w.satisfiable ? "No node could ever satisfy this: " + w.reason
        : w.estimatedStartTime ? "Would likely start " + fmtTime(w.estimatedStartTime) + " (" + (w.estimatedWaitTime === "0h0m0s" ? "now" : "wait " + w.estimatedWaitTime) + ")" +
          (w.latestStartTime && w.latestStartTime !== w.estimatedStartTime ? ", at the latest " + fmtTime(w.latestStartTime) : "")
          : "No estimate now: " + (w.reason || "the matching nodes are unavailable");
    } catch (e) {
      if (my !== seq) return;
      preview.className = "preview bad";
      preview.textContent = fieldErrors(e);
    }
  };
  const showLimits = async () => {
    limits.textContent = "";
    try {
      // The list, not GET /workspace-policies/{name}: a workspace with no
      // policy is normal, and its 404 would be a console error.
      const ws = form.elements["g-ws"].value;
      const list = await api("GET", "/api/v1/workspace-policies");
      const p = ((list && list.items) || []).find((x) => x.workspaceName === ws);
      if (!p) return;
      const parts = [];
      if (p.priorityRange) parts.push("priority " + p.priorityRange);
      if (p.maxGPRs) parts.push("at most " + p.maxGPRs + " GPRs");
      if (p.maxExitDurationPerGPR) parts.push("duration up to " + p.maxExitDurationPerGPR);
      if (p.gpuShapes && p.gpuShapes.length) parts.push("shapes " + p.gpuShapes.join(", "));
      if (p.maxGpuPerGpr) parts.push("at most " + p.maxGpuPerGpr + " GPUs per GPR");
      if (p.maxMemoryPerGpr) parts.push("at most " + p.maxMemoryPerGpr + " GB per GPR");
      if (p.enableAutoEviction) parts.push("may evict lower priorities");
      if (parts.length) limits.textContent = "Workspace policy: " + parts.join("; ") + ".";
    } catch { /* no policy, or none served */ }
  };
  let timer;
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 250); });
  form.elements["g-ws"].addEventListener("change", showLimits);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    if (!form.reportValidity()) return;
    try {
      const d = await api("POST", "/api/v1/gpr", body());
      toast("GPR " + d.gprId + " created");
      location.hash = "#/gpr/" + encodeURIComponent(d.gprId);
    } catch (e) { err.textContent = fieldErrors(e); }
  });
  setTimeout(() => { update(); showLimits(); }, 0);
  return h("section", { "aria-labelledby": "new-h" }, h("h1", { id: "new-h" }, "New GPU provision request"), h("div", { class: "card" }, form));
}

// ---------------------------------------------------------------- GPR detail

function gprPage(id) {
  const g = state.gprs.get(id);
  if (!state.loaded) return loading();
  if (!g) return h("p", null, "No GPR " + id + " (or it was deleted).");
  const p = state.plan.get(id);
  const phase = g.status.provisioningStatus;
  const w = can.write(g.sliceName);
  const err = h("p", { class: "error", role: "alert" });
  const act = async (what, method, body) => {
    err.textContent = "";
    try { await api(method, "/api/v1/gpr", body); toast(what); } catch (e) { err.textContent = fieldErrors(e); }
  };
  return h("section", { "aria-labelledby": "gpr-h" },
    h("h1", { id: "gpr-h" }, "GPR ", g.gprName, " ", stateBadge(phase)),
    h("div", { class: "card" }, h("dl", { class: "kv", id: "gpr-facts" },
      h("dt", null, "Id"), h("dd", null, g.gprId),
      h("dt", null, "Workspace"), h("dd", null, wsLink(g.sliceName)),
      h("dt", null, "Status"), h("dd", { id: "gpr-status" }, phase),
      h("dt", null, "Request"), h("dd", null, `${g.numberOfGPUNodes} node(s) × ${g.numberOfGPUs} GPU(s), ${g.gpuShape || "any shape"}${g.memoryPerGPU ? ", ≥" + g.memoryPerGPU + " GB/GPU" : ""}, cluster ${g.clusterName || "—"}`),
      h("dt", null, "Priority"), h("dd", null, String(g.priority)),
      h("dt", null, "Duration"), h("dd", null, g.exitDuration),
      h("dt", null, phase === "Queued" ? "Likely start" : "Started"), h("dd", { id: "gpr-likely" }, phase === "Queued" ? fmtTime(g.estimatedStartTime) + " " + fmtIn(g.estimatedStartTime) : fmtTime(g.status.startTimestamp)),
      phase === "Queued" ? h("dt", null, "Latest start") : null, phase === "Queued" ? h("dd", { id: "gpr-latest" }, g.latestStartTime ? fmtTime(g.latestStartTime) + " " + fmtIn(g.latestStartTime) : "—") : null,
      h("dt", null, "Ends"), h("dd", null, p && p.end ? fmtTime(p.end) : g.status.completionTimestamp ? fmtTime(g.status.completionTimestamp) : "—"),
      h("dt", null, phase === "Queued" ? "Planned nodes" : "Nodes"), h("dd", { id: "gpr-nodes" }, (phase === "Queued" ? (p && p.nodes) || [] : g.status.nodes).join(", ") || "—"),
      h("dt", null, "Topology"), h("dd", { id: "gpr-domains" }, gprDomains(g, phase === "Queued" ? (p && p.nodes) || [] : g.status.nodes)),
      h("dt", null, "Reason"), h("dd", null, g.status.failureReason || g.status.internalState || "—"),
      h("dt", null, "Created"), h("dd", null, fmtTime(g.createdAt)))),
    w && (phase === "Queued" || phase === "Provisioned") ? h("div", { class: "card", id: "gpr-actions" },
      h("h2", null, "Change"),
      h("form", { onsubmit: (e) => { e.preventDefault(); act("Priority changed", "PUT", { gprId: id, priority: +e.target.elements["p-prio"].value }); } },
        h("label", { for: "p-prio" }, "Priority"), h("input", { id: "p-prio", name: "p-prio", type: "number", min: 1, max: 300, value: g.priority }),
        " ", h("button", { type: "submit" }, "Set priority")),
      h("form", { onsubmit: (e) => { e.preventDefault(); act("Renamed", "PUT", { gprId: id, gprName: e.target.elements["p-name"].value.trim() }); } },
        h("label", { for: "p-name" }, "Name"), h("input", { id: "p-name", name: "p-name", type: "text", value: g.gprName, pattern: NAME_PATTERN, maxlength: 63 }),
        " ", h("button", { type: "submit" }, "Rename")),
      h("div", { class: "actions" },
        phase === "Provisioned" ? h("button", { type: "button", class: "danger", id: "early-release", onclick: () => { if (confirm("Release the nodes of " + g.gprName + " now?")) act("Released", "PUT", { gprId: id, earlyRelease: true }); } }, "Release early") : null,
        phase === "Queued" ? h("button", { type: "button", class: "danger", id: "delete-gpr", onclick: () => { if (confirm("Delete " + g.gprName + "?")) act("Deleted", "DELETE", { gprId: id }); } }, "Delete") : null),
      err) : null);
}

// gprDomains says where a GPR's nodes sit: each network block with its
// count, and what the GPR asked for.
function gprDomains(g, nodes) {
  const count = new Map();
  for (const name of nodes) {
    const d = (state.nodes.get(name) || {}).domain || "no topology";
    count.set(d, (count.get(d) || 0) + 1);
  }
  const where = [...count.keys()].sort().map((d) => `${d} (${count.get(d)})`).join(", ") || "—";
  const t = g.topology;
  const asked = t ? (t.required ? "required " + t.required : "preferred " + t.preferred) + (t.sliceSize ? `, slices of ${t.sliceSize}` : "") : "";
  return asked ? `${where}; ${asked}` : where;
}

// ---------------------------------------------------------------- API keys

function keysPage() {
  if (!can.owner()) return h("p", null, "Only an Owner manages API keys.");
  const list = h("div", { id: "keys-list" }, loading());
  const shown = h("div", { id: "key-once" });
  const err = h("p", { class: "error", role: "alert" });
  const refresh = async () => {
    try {
      const d = await api("GET", "/api/v1/api-key/list");
      list.replaceChildren(h("div", { class: "tablewrap" }, h("table", null,
        h("thead", null, h("tr", null, ["Name", "Role", "Workspace", "User", "Valid until", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, d.items.map((k) => h("tr", null, h("td", null, k.name), h("td", null, k.role), h("td", null, k.workspaceName || "all"),
          h("td", null, k.userName || "—"), h("td", null, k.validUntil ? fmtTime(k.validUntil) : "never"),
          h("td", null, h("button", { type: "button", class: "danger", "aria-label": "Delete key " + k.name, onclick: async () => {
            if (!confirm("Delete key " + k.name + "? Its tokens stop working at once.")) return;
            try { await api("DELETE", "/api/v1/api-key", { apiKeyId: k.apiKeyId }); toast("Key deleted"); refresh(); } catch (e) { err.textContent = e.message; }
          } }, "Delete"))))))));
    } catch (e) { list.replaceChildren(h("p", { class: "error" }, e.message)); }
  };
  const submit = async (ev) => {
    ev.preventDefault();
    const e = ev.target.elements;
    err.textContent = "";
    const body = { name: e["k-name"].value.trim(), role: e["k-role"].value, userName: e["k-user"].value.trim() };
    if (e["k-ws"].value) body.workspaceName = e["k-ws"].value;
    if (e["k-until"].value) body.validUntil = e["k-until"].value;
    try {
      const d = await api("POST", "/api/v1/api-key", body);
      const input = h("input", { class: "once", id: "new-key", type: "text", readonly: true, value: d.apiKey, "aria-label": "The new API key" });
      shown.replaceChildren(h("div", { class: "preview" }, h("p", null, h("b", null, "Copy the key now: it is shown this once."), " "), input,
        h("div", { class: "actions" }, h("button", { type: "button", onclick: async () => { try { await navigator.clipboard.writeText(d.apiKey); toast("Copied"); } catch { input.select(); } } }, "Copy"))));
      input.select();
      ev.target.reset();
      refresh();
    } catch (e2) { err.textContent = fieldErrors(e2); }
  };
  setTimeout(refresh, 0);
  return h("section", { "aria-labelledby": "keys-h" },
    h("h1", { id: "keys-h" }, "API keys"),
    h("div", { class: "card" }, h("h2", null, "New key"),
      h("form", { id: "key-form", onsubmit: submit }, h("div", { class: "grid2" },
        h("div", null, h("label", { for: "k-name" }, "Name"), h("input", { id: "k-name", name: "k-name", type: "text", required: true, maxlength: 253 })),
        h("div", null, h("label", { for: "k-role" }, "Role"), h("select", { id: "k-role", name: "k-role" }, ["Viewer", "Editor", "Owner"].map((r) => h("option", { value: r }, r)))),
        h("div", null, h("label", { for: "k-ws" }, "Workspace (required for Editor)"), h("select", { id: "k-ws", name: "k-ws" }, h("option", { value: "" }, "all"),
          [...state.workspaces.keys()].sort().map((n) => h("option", { value: n }, n)))),
        h("div", null, h("label", { for: "k-user" }, "For (user)"), h("input", { id: "k-user", name: "k-user", type: "text" })),
        h("div", null, h("label", { for: "k-until" }, "Valid until (empty: never)"), h("input", { id: "k-until", name: "k-until", type: "date" }))),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create key")), err), shown),
    h("div", { class: "card" }, h("h2", null, "Keys"), list));
}

// ---------------------------------------------------------------- test hook

// The browser test times the timeline with a large synthetic plan through
// this (DevTools evaluation; page scripts gain nothing from it).
window.gpuspaceConsole = {
  renderTimeline(plan) {
    const t0 = performance.now();
    const model = timelineModel(plan.nodes, plan.gprs, Date.parse(plan.now));
    const svg = timelineSVG(model, () => {});
    const box = h("div", { class: "tl", id: "timeline-bench" }, svg);
    $("#view").replaceChildren(box);
    box.getBoundingClientRect();
    return performance.now() - t0;
  },
};

boot();

// ---------------------------------------------------------------- policies and templates

// policiesPage: every workspace policy the caller may read, the GPR
// templates, and (for an Owner, who alone may list them) the template
// bindings. Read-only; policies are set with PUT /workspace-policies.
function policiesPage() {
  const body = h("div", { id: "policies-body" }, loading());
  const table = (id, head, rows, empty) => rows.length === 0 ? h("p", { class: "muted", id: id + "-empty" }, empty)
    : h("div", { class: "tablewrap" }, h("table", { id },
      h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, rows.map((r) => h("tr", { "data-name": r[0] }, r.map((c) => h("td", null, c)))))));
  const load = async () => {
    try {
      const [pl, tl, bl] = await Promise.all([api("GET", "/api/v1/workspace-policies"), api("GET", "/api/v1/gpr-template/list"),
        can.owner() ? api("GET", "/api/v1/gpr-template-binding/list") : Promise.resolve(null)]);
      const none = (v) => (v ? String(v) : "no limit");
      body.replaceChildren(
        h("h2", null, "Workspace policies"),
        table("policies", ["Workspace", "Priority up to", "GPRs at once", "Longest duration", "GPU shapes", "GPUs per GPR", "Idle release"],
          (pl.items || []).map((p) => [p.workspaceName, p.priorityRange, none(p.maxGPRs), p.maxExitDurationPerGPR || "—",
            (p.gpuShapes || []).join(", ") || "any", none(p.maxGpuPerGpr), p.enforceIdleTimeOut ? "enforced" : "off"]),
          "No workspace has a policy: none has limits."),
        h("h2", null, "GPR templates"),
        table("templates", ["Name", "Shape", "GPUs", "Duration", "Priority", "Cluster"],
          (tl.items || []).map((t) => [t.name, t.gpuShape || "any", (t.numberOfGPUNodes || 1) + " × " + t.numberOfGPUs, t.exitDuration,
            String(t.priority || "—"), t.clusterName || "any"]),
          "No GPR templates."),
        bl ? h("h2", null, "Template bindings") : null,
        bl ? table("bindings", ["Workspace", "Auto-GPR", "Default templates"],
          (bl.templateBindings || []).map((b) => [b.name, b.enableAutoGPR ? "on" : "off",
            (b.clusters || []).map((c) => c.clusterName + ": " + (c.defaultTemplateName || "—")).join("; ") || "—"]),
          "No template bindings.") : null);
    } catch (e) { body.replaceChildren(h("p", { class: "error" }, e.message)); }
  };
  setTimeout(load, 0);
  return h("section", { "aria-labelledby": "pol-h" }, h("h1", { id: "pol-h" }, "Policies and templates"), body);
}
pages.policies = policiesPage;
