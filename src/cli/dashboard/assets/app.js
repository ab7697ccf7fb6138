"use strict";
// The tt dashboard: reads the JSON API, follows /api/events, and redraws.
// The token comes from the URL (?token= or #token=) and stays in memory.
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || new URLSearchParams(location.hash.slice(1)).get("token") || "";
const FINAL = new Set(["completed", "failed", "cancelled"]);
const ENDS = new Set(["completed", "failed", "retried", "requeued", "cancelled", "rejected"]);
const $ = (id) => document.getElementById(id);
const S = { town: null, tasks: [], byId: new Map(), events: [], lastId: null,
  selected: null, collapsed: new Set(), expanded: new Set(), live: false };

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false)
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

async function api(path, opts) {
  const o = opts || {};
  const r = await fetch(path, { method: o.method || "GET", body: o.body,
    headers: { "X-TT-Token": TOKEN, "Content-Type": "application/json" } });
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (!r.ok) {
    const msg = body && body.error ? body.error + (body.help ? " — " + body.help : "") : r.status + " " + r.statusText;
    const err = new Error(msg); err.status = r.status; throw err;
  }
  return body;
}

function age(ms) {
  if (ms === null || ms === undefined) return "-";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60) + "s";
  return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
}

function setLive(on) {
  S.live = on;
  $("disconnected").hidden = on;
  document.body.classList.toggle("stale", !on);
  $("live").className = on ? "live on" : "live";
  $("live").textContent = on ? "live" : "disconnected";
}

// ---- refreshing: at most one read in flight, another queued behind it.
let busy = false, again = false;
function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  (async () => {
    try {
      const [town, tasks] = await Promise.all([api("/api/town"), api("/api/tasks")]);
      S.town = town; S.tasks = tasks; S.byId = new Map(tasks.map((t) => [t.id, t]));
      render();
      if (S.selected) await loadPanel();
    } catch (e) {
      if (!S.live) return;
      $("attention").replaceChildren(h("div", { class: "err" }, "cannot read the town: " + e.message));
    } finally {
      busy = false;
      if (again) { again = false; setTimeout(refresh, 30); }
    }
  })();
}

// ---- the event stream, resumed after the last id seen.
let source = null;
function connect() {
  const q = "?token=" + encodeURIComponent(TOKEN) + (S.lastId ? "&after=" + encodeURIComponent(S.lastId) : "");
  source = new EventSource("/api/events" + q);
  source.onopen = () => { setLive(true); refresh(); };
  source.onmessage = (m) => {
    let ev; try { ev = JSON.parse(m.data); } catch (_) { return; }
    S.lastId = m.lastEventId || ev.id;
    S.events.push(ev);
    if (S.events.length > 5000) S.events.splice(0, S.events.length - 5000);
    refresh();
  };
  source.onerror = () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) { source.close(); setTimeout(connect, 1000); }
  };
}

async function start() {
  setLive(false);
  $("live").textContent = "connecting…";
  try {
    const hist = await api("/api/history?limit=2000");
    S.events = hist.events; S.lastId = hist.last_event_id;
  } catch (e) {
    $("attention").replaceChildren(h("div", { class: "err" }, e.message));
    if (e.status === 401 || e.status === 403) return;
  }
  connect();
}

// ---- drawing
function render() {
  const t = S.town;
  $("town").textContent = t.town;
  document.title = "tt · " + t.town;
  renderAttention(); renderCounts(); renderGraph(); renderTimeline(); renderAgents();
}

function taskAttrs(id) {
  const t = S.byId.get(id);
  return { "data-task": id, "data-status": t ? t.status : "unknown" };
}

function renderAttention() {
  const n = S.town.needs_you, items = [];
  const item = (kind, id, text) => h("div", Object.assign({ class: "item", onclick: () => id && select(id) }, id ? taskAttrs(id) : {}),
    h("span", { class: "kind" }, kind), id ? h("b", {}, id + " ") : null, text);
  for (const q of n.questions) items.push(item("question", q.task, q.question + (q.choices.length ? " [" + q.choices.join(" / ") + "]" : "") + " — waiting " + age(q.waiting_ms)));
  for (const f of n.failed) items.push(item("failed", f.task, f.error || f.reason || ""));
  if (n.failed_total > n.failed.length) items.push(item("failed", null, "… and " + (n.failed_total - n.failed.length) + " more"));
  for (const b of n.blocked) items.push(item("blocked", b.task, b.reason));
  for (const a of S.town.agents) if (a.state === "dead") items.push(item("dead agent", null, a.id + (a.task ? " (was on " + a.task + ")" : "")));
  const open = S.tasks.some((x) => !FINAL.has(x.status));
  if (!S.town.runner && open) items.push(item("no runner", null, "nothing is dispatched — start `tt run`"));
  $("attention").replaceChildren(...items);
}

function renderCounts() {
  const c = S.town.counts, kids = [];
  for (const s of ["pending", "assigned", "running", "completed", "failed", "cancelled"])
    kids.push(h("span", { class: "c", "data-count": s }, h("b", {}, c[s] || 0), s));
  kids.push(h("span", { class: "c" }, h("b", {}, S.town.ready), "ready"));
  const since = Date.now() - 5 * 60 * 1000;
  const done = S.events.filter((e) => e.kind === "completed" && e.at >= since).length;
  kids.push(h("span", { class: "c quiet" }, h("b", {}, done), "completed in the last 5 min"));
  $("counts").replaceChildren(...kids);
}

// Dependency waves: a task comes after everything it depends on; a group
// stands where its first child does (or later, for its own dependencies).
function waves(kids) {
  const memo = new Map();
  const wave = (id, seen) => {
    if (memo.has(id)) return memo.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const t = S.byId.get(id);
    let w = 0;
    for (const d of (t && t.depends_on) || []) if (S.byId.has(d)) w = Math.max(w, wave(d, seen) + 1);
    const under = kids.get(id) || [];
    if (under.length) w = Math.max(w, Math.min(...under.map((c) => wave(c.id, seen))));
    memo.set(id, w);
    return w;
  };
  for (const t of S.tasks) wave(t.id, new Set());
  return memo;
}

function renderGraph() {
  const kids = new Map();
  for (const t of S.tasks) {
    const p = t.parent && S.byId.has(t.parent) ? t.parent : "";
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(t);
  }
  const wv = waves(kids);
  const big = S.tasks.length > 500;
  const collapsed = (id) => S.collapsed.has(id) || (big && !S.expanded.has(id));
  const block = (parent) => {
    const cols = new Map();
    for (const t of kids.get(parent) || []) {
      const w = wv.get(t.id) || 0;
      if (!cols.has(w)) cols.set(w, []);
      cols.get(w).push(t);
    }
    const order = [...cols.keys()].sort((a, b) => a - b);
    return h("div", { class: "waves" }, order.map((w) => h("div", { class: "wave" }, cols.get(w).map(one))));
  };
  const one = (t) => {
    const sel = S.selected === t.id ? " sel" : "";
    if (t.group) {
      const shut = collapsed(t.id), p = t.progress || {};
      return h("div", Object.assign({ class: "group" + (shut ? " collapsed" : "") + sel }, taskAttrs(t.id)),
        h("div", { class: "ghead", onclick: (ev) => {
          if (ev.target.classList.contains("tog")) toggle(t.id, shut); else select(t.id);
        } }, h("span", { class: "tog", title: "collapse / expand" }, shut ? "▸" : "▾"),
        t.id, h("span", { class: "quiet" }, " " + (p.completed || 0) + "/" + (p.total || 0))),
        shut ? null : block(t.id));
    }
    const ready = t.status === "pending" && !t.waiting;
    return h("div", Object.assign({ class: "node" + (ready ? " ready" : "") + sel, title: t.waiting || t.status,
      onclick: () => select(t.id) }, taskAttrs(t.id)), t.id);
  };
  $("graph").replaceChildren(block(""));
  requestAnimationFrame(drawEdges);
}

function toggle(id, shut) {
  if (shut) { S.collapsed.delete(id); S.expanded.add(id); } else { S.collapsed.add(id); S.expanded.delete(id); }
  renderGraph();
}

function drawEdges() {
  const wrap = $("graph-wrap"), svg = $("edges"), base = wrap.getBoundingClientRect();
  const shown = new Map();
  for (const el of $("graph").querySelectorAll(".node[data-task], .group[data-task] > .ghead"))
    shown.set(el.dataset.task || el.parentNode.dataset.task, el);
  const visible = (id) => {
    for (let cur = id, n = 0; cur && n < 1000; n++) {
      if (shown.has(cur)) return shown.get(cur);
      const t = S.byId.get(cur); cur = t && t.parent;
    }
    return null;
  };
  const paths = [];
  for (const t of S.tasks) for (const d of t.depends_on || []) {
    if (paths.length > 4000) break;
    const a = visible(d), b = visible(t.id);
    if (!a || !b || a === b) continue;
    const r1 = a.getBoundingClientRect(), r2 = b.getBoundingClientRect();
    const x1 = r1.right - base.left + wrap.scrollLeft, y1 = r1.top + r1.height / 2 - base.top + wrap.scrollTop;
    const x2 = r2.left - base.left + wrap.scrollLeft, y2 = r2.top + r2.height / 2 - base.top + wrap.scrollTop;
    const mx = (x1 + x2) / 2;
    const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
    p.setAttribute("data-edge", d + "→" + t.id);
    paths.push(p);
  }
  // Sized to the graph, not the wrapper: the wrapper's scroll size would
  // include the SVG itself and grow with every redraw.
  const g = $("graph");
  svg.setAttribute("width", g.offsetLeft + g.scrollWidth); svg.setAttribute("height", g.offsetTop + g.scrollHeight);
  svg.replaceChildren(...paths);
}

function attemptsFromEvents() {
  const open = new Map(), bars = [];
  for (const e of S.events) {
    const key = e.task + "#" + e.attempt;
    if (e.kind === "started") {
      const b = { task: e.task, attempt: e.attempt, lane: e.agent || "?", start: e.at, end: null, outcome: "running" };
      open.set(key, b); bars.push(b);
    } else if (ENDS.has(e.kind) && open.has(key)) {
      const b = open.get(key); b.end = e.at; b.outcome = e.kind; open.delete(key);
    }
  }
  return bars.slice(-400);
}

function renderTimeline() {
  const bars = attemptsFromEvents(), now = Date.now();
  if (!bars.length) { $("timeline").replaceChildren(h("p", { class: "quiet" }, "no attempts yet")); return; }
  const t0 = Math.min(...bars.map((b) => b.start)), t1 = Math.max(now, ...bars.map((b) => b.end || now));
  const span = Math.max(1, t1 - t0), lanes = new Map();
  for (const b of bars) { if (!lanes.has(b.lane)) lanes.set(b.lane, []); lanes.get(b.lane).push(b); }
  const rows = [...lanes.keys()].sort().map((lane) => h("div", { class: "lane" },
    h("span", { class: "who", title: lane }, lane),
    h("div", { class: "track" }, lanes.get(lane).map((b) => {
      const left = (100 * (b.start - t0)) / span, width = (100 * ((b.end || now) - b.start)) / span;
      return h("div", Object.assign({ class: "bar" + (b.attempt > 1 ? " retry" : ""), "data-outcome": b.outcome,
        style: `left:${left}%;width:${width}%`, title: `${b.task} #${b.attempt} ${b.outcome} ${age((b.end || now) - b.start)}`,
        onclick: () => select(b.task) }, taskAttrs(b.task)));
    }))));
  $("timeline").replaceChildren(...rows);
}

function renderAgents() {
  const a = S.town.agents;
  if (!a.length) { $("agents").replaceChildren(h("tr", {}, h("td", { class: "quiet" }, "no agents registered"))); return; }
  $("agents").replaceChildren(h("tr", {}, ["agent", "state", "task", "heartbeat", "host"].map((x) => h("th", {}, x))),
    ...a.map((x) => h("tr", { class: x.state === "dead" ? "dead" : null, "data-agent": x.id, "data-state": x.state },
      h("td", {}, x.id), h("td", {}, x.state), h("td", {}, x.task ? x.task + (x.attempt ? " #" + x.attempt : "") : "-"),
      h("td", {}, x.heartbeat_age_ms === null || x.heartbeat_age_ms === undefined ? "-" : age(x.heartbeat_age_ms) + " ago"),
      h("td", {}, x.host || "-"))));
}

// ---- the task panel and its actions
function select(id) {
  S.selected = id;
  renderGraph();
  loadPanel();
}

async function loadPanel() {
  const id = S.selected;
  let t;
  try { t = await api("/api/tasks/" + encodeURIComponent(id)); } catch (e) {
    $("panel").replaceChildren(h("p", { class: "err" }, e.message)); return;
  }
  if (S.selected !== id) return;
  const dl = h("dl", {});
  const row = (k, v) => { if (v !== null && v !== undefined && v !== "") dl.append(h("dt", {}, k), h("dd", {}, v)); };
  row("status", t.status + (t.waiting ? " — " + t.waiting : ""));
  row("agent", t.agent || "- (backlog)");
  row("parent", t.parent);
  row("depends on", (t.depends_on || []).join(", "));
  row("tags", (t.tags || []).join(", "));
  row("attempt", t.attempt);
  row("worker", t.worker);
  row("exit code", t.exit_code);
  row("error", t.error);
  row("reason", t.reason);
  if (t.group && t.progress) row("progress", `${t.progress.completed}/${t.progress.total} done, ${t.progress.failed} failed, ${t.progress.running} running`);
  else if (t.progress) row("reported", t.progress.text);
  for (const [k, v] of Object.entries(t.facts || {})) row(k, typeof v === "string" ? v : JSON.stringify(v));
  const buttons = h("div", {});
  if (t.status === "failed" || t.status === "cancelled")
    buttons.append(h("button", { "data-action": "retry", onclick: () => act(id, "retry") }, "retry"));
  if (!FINAL.has(t.status))
    buttons.append(h("button", { "data-action": "cancel", onclick: () => act(id, "cancel", { reason: "cancelled from the dashboard" }) }, "cancel"));
  let question = null;
  if (t.question) {
    const input = h("input", { type: "text", placeholder: "answer", "data-answer": id });
    const choices = (t.question.choices || []).map((c, i) =>
      h("button", { "data-action": "answer", "data-choice": i + 1, onclick: () => act(id, "answer", { choice: i + 1 }) }, c));
    question = h("div", { class: "question" }, h("b", {}, "question: "), t.question.text, h("div", {}, choices.length ? choices : [input,
      h("button", { "data-action": "answer", onclick: () => act(id, "answer", { text: input.value }) }, "answer")]));
  }
  const attempts = (t.attempts || []).length ? h("table", {}, h("tr", {}, ["#", "worker", "outcome", "exit", "took"].map((x) => h("th", {}, x))),
    t.attempts.map((a) => h("tr", { "data-attempt": a.attempt, "data-outcome": a.outcome }, h("td", {}, a.attempt), h("td", {}, a.worker || "-"),
      h("td", {}, a.outcome), h("td", {}, a.exit_code || "-"), h("td", {}, a.duration_ms === null || a.duration_ms === undefined ? "-" : (a.duration_ms / 1000).toFixed(1) + "s")))) : null;
  $("panel").replaceChildren(h("div", Object.assign({ class: "task" }, { "data-task": t.id, "data-status": t.status }),
    h("h2", {}, t.id), buttons, h("div", { id: "action-result" }), question, dl,
    t.description ? h("p", {}, t.description) : null,
    attempts ? h("h2", {}, "attempts") : null, attempts,
    t.output && t.output.trim() ? [h("h2", {}, t.status === "running" ? "output (live tail)" : "output (tail)"), h("pre", {}, t.output)] : null));
}

async function act(id, action, body) {
  const out = () => $("action-result");
  try {
    await api("/api/tasks/" + encodeURIComponent(id) + "/" + action, { method: "POST", body: JSON.stringify(body || {}) });
    refresh();
  } catch (e) {
    if (out()) out().replaceChildren(h("p", { class: "err" }, e.message));
  }
}

window.addEventListener("resize", () => requestAnimationFrame(drawEdges));
setInterval(() => { if (S.town && S.live) { renderTimeline(); renderAgents(); } }, 1000);
start();
