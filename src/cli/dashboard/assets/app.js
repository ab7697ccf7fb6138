"use strict";
// The tt dashboard. It follows /api/events?tasks=1 — every task at first,
// then only the tasks that changed — and applies what arrived once per
// animation frame (or every 100 ms when frames are not drawn): each change
// patches the elements of its task, nothing is redrawn whole. The graph is
// laid out in script and only what is in view (and a margin) has elements;
// #tasks keeps one hidden element per task, so every task stays findable.
// The token comes from the URL (?token= or #token=) and stays in memory.
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || new URLSearchParams(location.hash.slice(1)).get("token") || "";
const STATUSES = ["pending", "assigned", "running", "completed", "failed", "cancelled"];
const FINAL = new Set(["completed", "failed", "cancelled"]);
const ENDS = new Set(["completed", "failed", "retried", "requeued", "cancelled", "rejected"]);
// Above this many tasks, groups start collapsed.
const BIG = 500;
// Graph geometry, in px: a row, gaps between rows and columns, the inset
// of a group's children, the widest label; and how far beyond the visible
// part elements are kept.
const ROW = 24, VGAP = 6, HGAP = 40, PAD = 8, GPAD = 10, MAXW = 320, MARGIN = 400;
// Most edges drawn at once (those in view come first).
const EDGES_MAX = 3000;
// Events kept for the timeline.
const EVENTS_KEPT = 5000;
// Least time between two reads of /api/town and of the task panel, and
// between two drawings of the timeline.
const TOWN_GAP = 500, PANEL_GAP = 300, TIMELINE_GAP = 250;
// Attention items, and the height of one when the strip is a scrolled list.
const ATTENTION_ROW = 22, ATTENTION_ALL = 30;
const $ = (id) => document.getElementById(id);
const S = { town: null, tasks: new Map(), order: [], events: [], lastId: null, selected: null,
  collapsed: new Set(), expanded: new Set(), live: false, counts: {}, ready: 0, completedAt: [] };

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

// A call of `fn` at most every `gap` ms and one at a time; calls in
// between are folded into one that runs after.
function throttled(gap, fn) {
  let busy = false, again = false, timer = null, last = 0;
  const run = async () => {
    timer = null; busy = true; last = Date.now();
    try { await fn(); } finally {
      busy = false;
      if (again) { again = false; call(); }
    }
  };
  const call = () => {
    if (busy) { again = true; return; }
    if (!timer) timer = setTimeout(run, Math.max(0, last + gap - Date.now()));
  };
  return call;
}

// ---- the town's overview (attention, agents, runner): read again after
// changes, at most every TOWN_GAP ms.
const refreshTown = throttled(TOWN_GAP, async () => {
  try {
    S.town = await api("/api/town");
    $("town").textContent = S.town.town;
    document.title = "tt · " + S.town.town;
    renderAttention(); renderAgents();
  } catch (e) {
    if (S.live) $("attention").replaceChildren(h("div", { class: "err" }, "cannot read the town: " + e.message));
  }
});

// ---- the event stream, resumed after the last id seen; the tasks come
// along (`tasks` events) and are applied per frame.
let source = null;
function connect() {
  const q = "?tasks=1&token=" + encodeURIComponent(TOKEN) + (S.lastId ? "&after=" + encodeURIComponent(S.lastId) : "");
  source = new EventSource("/api/events" + q);
  source.onopen = () => { setLive(true); refreshTown(); };
  source.onmessage = (m) => {
    let ev; try { ev = JSON.parse(m.data); } catch (_) { return; }
    S.lastId = m.lastEventId || ev.id;
    S.events.push(ev);
    if (ev.kind === "completed") S.completedAt.push(ev.at);
    if (S.events.length > EVENTS_KEPT * 1.2) S.events = S.events.slice(-EVENTS_KEPT);
    refreshTimeline();
  };
  source.addEventListener("tasks", (m) => {
    let v; try { v = JSON.parse(m.data); } catch (_) { return; }
    pending.push(v);
    schedule();
  });
  source.onerror = () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) { source.close(); setTimeout(connect, 1000); }
  };
}

let pending = [], frame = null, timer = null;
function schedule() {
  if (frame !== null) return;
  frame = requestAnimationFrame(flush);
  timer = setTimeout(flush, 100);
}

// Applies what arrived since the last frame: the newest whole town, if
// any, then the changes after it.
function flush() {
  if (frame === null) return;
  cancelAnimationFrame(frame); clearTimeout(timer); frame = null;
  const batch = pending; pending = [];
  let from = 0;
  for (let i = 0; i < batch.length; i++) if (batch[i].full) from = i;
  const touched = new Set();
  for (let i = from; i < batch.length; i++) {
    if (batch[i].full) applyAll(batch[i].tasks);
    else for (const t of batch[i].tasks) { applyOne(t); touched.add(t.id); }
  }
  renderCounts();
  refreshTown();
  if (batch[from].full) refreshTimeline();
  if (S.selected && (batch[from].full || touched.has(S.selected))) refreshPanel();
  if (tt.renderedAt === null && batch.length) {
    requestAnimationFrame(() => setTimeout(() => { if (tt.renderedAt === null) tt.renderedAt = performance.now(); }));
  }
}

function applyAll(list) {
  S.tasks = new Map(); S.order = [];
  for (const t of list) { S.tasks.set(t.id, t); S.order.push(t.id); }
  S.counts = {}; S.ready = 0;
  for (const t of list) count(t, 1);
  const index = $("tasks"), rows = [];
  INDEX.clear();
  for (const t of list) {
    const e = document.createElement("i");
    e.dataset.task = t.id; e.dataset.status = t.status;
    INDEX.set(t.id, e); rows.push(e);
  }
  index.replaceChildren(...rows);
  layout(true);
}

function applyOne(t) {
  const old = S.tasks.get(t.id);
  if (!old) return; // a new task comes with the whole town
  count(old, -1); count(t, 1);
  S.tasks.set(t.id, t);
  const i = INDEX.get(t.id);
  if (i && i.dataset.status !== t.status) i.dataset.status = t.status;
  const el = G.shown.get(t.id);
  if (el) paint(el, t);
}

function isReady(t) { return t.status === "pending" && !t.waiting; }

function count(t, n) {
  S.counts[t.status] = (S.counts[t.status] || 0) + n;
  if (isReady(t)) S.ready += n;
}

// ---- drawing
const INDEX = new Map();

function renderCounts() {
  const kids = [];
  for (const s of STATUSES) kids.push(h("span", { class: "c", "data-count": s }, h("b", {}, S.counts[s] || 0), s));
  kids.push(h("span", { class: "c" }, h("b", {}, S.ready), "ready"));
  const since = Date.now() - 5 * 60 * 1000;
  let k = 0;
  while (k < S.completedAt.length && S.completedAt[k] < since) k++;
  if (k) S.completedAt.splice(0, k);
  kids.push(h("span", { class: "c quiet" }, h("b", {}, S.completedAt.length), "completed in the last 5 min"));
  $("counts").replaceChildren(...kids);
}

function taskAttrs(id) {
  const t = S.tasks.get(id);
  return { "data-task": id, "data-status": t ? t.status : "unknown" };
}

function renderAttention() {
  const n = S.town.needs_you, items = [];
  const item = (kind, id, text) => ({ kind, id, text });
  for (const q of n.questions) items.push(item("question", q.task, q.question + (q.choices.length ? " [" + q.choices.join(" / ") + "]" : "") + " — waiting " + age(q.waiting_ms)));
  for (const f of n.failed) items.push(item("failed", f.task, f.error || f.reason || ""));
  if (n.failed_total > n.failed.length) items.push(item("failed", null, "… and " + (n.failed_total - n.failed.length) + " more"));
  for (const b of n.blocked) items.push(item("blocked", b.task, b.reason));
  for (const a of S.town.agents) if (a.state === "dead") items.push(item("dead agent", null, a.id + (a.task ? " (was on " + a.task + ")" : "")));
  const open = STATUSES.some((s) => !FINAL.has(s) && S.counts[s] > 0);
  if (!S.town.runner && open) items.push(item("no runner", null, "nothing is dispatched — start `tt run`"));
  listInto($("attention"), items, ATTENTION_ROW, (it) => h("div", Object.assign({ class: "item" }, it.id ? taskAttrs(it.id) : {}),
    h("span", { class: "kind" }, it.kind), it.id ? h("b", {}, it.id + " ") : null, it.text));
}

// Rows into `box`: all of them when they are few, else a scrolled list
// that has elements only for the rows in view (and a few more).
function listInto(box, rows, rowH, make) {
  box.onscroll = null;
  if (rows.length <= ATTENTION_ALL) { box.classList.remove("vlist"); box.replaceChildren(...rows.map(make)); return; }
  const top = box.classList.contains("vlist") ? box.scrollTop : 0;
  box.classList.add("vlist");
  const spacer = h("div", { class: "spacer", style: `height:${rows.length * rowH}px` });
  box.replaceChildren(spacer);
  box.scrollTop = top;
  const draw = () => {
    const first = Math.max(0, Math.floor(box.scrollTop / rowH) - 5);
    const last = Math.min(rows.length, Math.ceil((box.scrollTop + box.clientHeight) / rowH) + 5);
    const shown = [];
    for (let i = first; i < last; i++) {
      const e = make(rows[i]);
      e.style.top = i * rowH + "px"; e.style.height = rowH + "px";
      shown.push(e);
    }
    spacer.replaceChildren(...shown);
  };
  let queued = false;
  box.onscroll = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; draw(); }); } };
  draw();
}

// ---- the graph: laid out in script (columns are dependency waves; a
// group is a box around its children), drawn only where it is in view.
const G = { items: new Map(), list: [], edges: [], w: 0, h: 0, shown: new Map() };

// Dependency waves: a task comes after everything it depends on; a group
// stands where its first child does (or later, for its own dependencies).
// Iterative, so a chain of thousands does not exhaust the stack.
function waves(kids) {
  const memo = new Map(), open = new Set();
  for (const root of S.order) {
    if (memo.has(root)) continue;
    const stack = [[root, false]];
    while (stack.length) {
      const top = stack[stack.length - 1], id = top[0], t = S.tasks.get(id);
      if (!top[1]) {
        if (memo.has(id) || open.has(id)) { stack.pop(); continue; }
        open.add(id); top[1] = true;
        for (const d of (t && t.depends_on) || []) if (S.tasks.has(d) && !memo.has(d) && !open.has(d)) stack.push([d, false]);
        for (const c of kids.get(id) || []) if (!memo.has(c) && !open.has(c)) stack.push([c, false]);
        continue;
      }
      stack.pop(); open.delete(id);
      let w = 0;
      for (const d of (t && t.depends_on) || []) if (memo.has(d)) w = Math.max(w, memo.get(d) + 1);
      const under = kids.get(id) || [];
      if (under.length) w = Math.max(w, Math.min(...under.map((c) => memo.get(c) || 0)));
      memo.set(id, w);
    }
  }
  return memo;
}

// Width of a label in the page's font (bold: a group's header).
const measurers = {};
function textWidth(text, bold) {
  const key = bold ? "b" : "n";
  if (!measurers[key]) {
    const c = document.createElement("canvas").getContext("2d"), f = getComputedStyle(document.body);
    c.font = (bold ? "bold " : "") + f.fontSize + " " + f.fontFamily;
    measurers[key] = c;
  }
  return measurers[key].measureText(text).width;
}

function progressText(t) {
  const p = t.progress || {};
  return " " + (p.completed || 0) + "/" + (p.total || 0);
}

// Positions every task (or the collapsed group it is in) and every edge.
// `fresh`: the town was read whole (its shape may have changed).
function layout(fresh) {
  const kids = new Map();
  for (const id of S.order) {
    const t = S.tasks.get(id), p = t.parent && S.tasks.has(t.parent) ? t.parent : "";
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(id);
  }
  const wv = waves(kids), big = S.order.length > BIG;
  const shut = (id) => S.collapsed.has(id) || (big && !S.expanded.has(id));
  const items = new Map(), list = [];
  const place = (parent, x0, y0, depth) => {
    const cols = new Map();
    for (const id of kids.get(parent) || []) {
      if (items.has(id)) continue;
      const w = wv.get(id) || 0;
      if (!cols.has(w)) cols.set(w, []);
      cols.get(w).push(id);
    }
    let x = x0, height = 0;
    for (const w of [...cols.keys()].sort((a, b) => a - b)) {
      let y = y0, colW = 0;
      for (const id of cols.get(w)) {
        const t = S.tasks.get(id);
        const it = { id, x, y, w: 0, h: ROW, group: !!t.group, shut: false, depth };
        items.set(id, it); list.push(it);
        if (t.group) {
          it.w = Math.min(MAXW, textWidth(id + progressText(t), true) + 40);
          it.shut = shut(id);
          if (!it.shut && (kids.get(id) || []).length) {
            const [iw, ih] = place(id, x + GPAD, y + ROW + 2, depth + 1);
            it.w = Math.max(it.w, iw + 2 * GPAD);
            it.h = ROW + 2 + ih + GPAD;
          }
        } else it.w = Math.min(MAXW, textWidth(id) + 24);
        y += it.h + VGAP; colW = Math.max(colW, it.w);
      }
      x += colW + HGAP; height = Math.max(height, y - y0 - VGAP);
    }
    return [Math.max(0, x - x0 - HGAP), height];
  };
  let [w, hgt] = place("", PAD, PAD, 0);
  // Tasks whose parents loop (hand-edited Redis) hang under no root:
  // one more column, so they are drawn all the same.
  let y = PAD;
  for (const id of S.order) if (!items.has(id) && !S.tasks.get(id).group) {
    const it = { id, x: w + PAD + HGAP, y, w: Math.min(MAXW, textWidth(id) + 24), h: ROW, group: false, shut: false, depth: 0 };
    items.set(id, it); list.push(it); y += ROW + VGAP;
  }
  if (y > PAD) { w += HGAP + MAXW; hgt = Math.max(hgt, y); }
  // An edge ends at the task, or at the collapsed group it is hidden in.
  const at = (id) => {
    for (let cur = id, n = 0; cur && n <= S.order.length; n++) {
      if (items.has(cur)) return items.get(cur);
      const t = S.tasks.get(cur); cur = t && t.parent;
    }
    return null;
  };
  const edges = [], seen = new Set();
  for (const id of S.order) for (const d of S.tasks.get(id).depends_on || []) {
    const a = at(d), b = at(id);
    if (!a || !b || a === b) continue;
    const key = a.id + "→" + b.id;
    if (seen.has(key)) continue;
    seen.add(key);
    edges.push({ key, x1: a.x + a.w, y1: a.y + ROW / 2, x2: b.x, y2: b.y + ROW / 2 });
  }
  G.items = items; G.list = list; G.edges = edges; G.w = w + 2 * PAD; G.h = hgt + 2 * PAD;
  const graph = $("graph");
  graph.style.width = G.w + "px"; graph.style.height = G.h + "px";
  for (const el of G.shown.values()) el.remove();
  G.shown.clear();
  if (fresh) $("graph-wrap").dataset.tasks = S.order.length;
  drawWindow();
}

// Elements for what is in view, and for nothing else.
function drawWindow() {
  const wrap = $("graph-wrap");
  const x0 = wrap.scrollLeft - MARGIN, y0 = wrap.scrollTop - MARGIN;
  const x1 = wrap.scrollLeft + wrap.clientWidth + MARGIN, y1 = wrap.scrollTop + wrap.clientHeight + MARGIN;
  const inView = (x, y, w, hh) => x < x1 && x + w > x0 && y < y1 && y + hh > y0;
  const want = new Set();
  for (const it of G.list) if (inView(it.x, it.y, it.w, it.h)) want.add(it.id);
  for (const [id, el] of G.shown) if (!want.has(id)) { el.remove(); G.shown.delete(id); }
  const add = document.createDocumentFragment();
  for (const it of G.list) if (want.has(it.id) && !G.shown.has(it.id)) {
    const el = element(it);
    G.shown.set(it.id, el); add.append(el);
  }
  $("graph").append(add);
  const paths = [];
  for (const e of G.edges) {
    if (paths.length >= EDGES_MAX) break;
    const left = Math.min(e.x1, e.x2), top = Math.min(e.y1, e.y2);
    if (!inView(left, top, Math.abs(e.x2 - e.x1) + 1, Math.abs(e.y2 - e.y1) + 1)) continue;
    const mx = (e.x1 + e.x2) / 2;
    const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", `M${e.x1},${e.y1} C${mx},${e.y1} ${mx},${e.y2} ${e.x2},${e.y2}`);
    p.setAttribute("data-edge", e.key);
    paths.push(p);
  }
  const svg = $("edges");
  svg.setAttribute("width", G.w); svg.setAttribute("height", G.h);
  svg.replaceChildren(...paths);
}

function element(it) {
  const t = S.tasks.get(it.id);
  const style = `left:${it.x}px;top:${it.y}px;width:${it.w}px;height:${it.h}px`;
  let el;
  if (it.group) {
    el = h("div", { class: "group" + (it.shut ? " collapsed" : ""), style: style + `;z-index:${it.depth}` },
      h("div", { class: "ghead" }, h("span", { class: "tog", title: "collapse / expand" }, it.shut ? "▸" : "▾"),
        it.id, h("span", { class: "quiet prog" }, progressText(t))));
  } else {
    el = h("div", { class: "node", style }, it.id);
  }
  el.dataset.task = it.id;
  paint(el, t);
  return el;
}

// A task's element after its task changed: status, ready ring, title,
// a group's progress.
function paint(el, t) {
  if (el.dataset.status !== t.status) el.dataset.status = t.status;
  el.classList.toggle("sel", S.selected === t.id);
  if (el.classList.contains("node")) {
    el.classList.toggle("ready", isReady(t));
    el.title = t.waiting || t.status;
  } else {
    const p = el.querySelector(".prog");
    const text = progressText(t);
    if (p && p.textContent !== text) p.textContent = text;
  }
}

let scrolled = false;
function onScroll() {
  if (scrolled) return;
  scrolled = true;
  requestAnimationFrame(() => { scrolled = false; drawWindow(); });
}

function toggle(id) {
  const it = G.items.get(id);
  if (!it) return;
  if (it.shut) { S.collapsed.delete(id); S.expanded.add(id); } else { S.collapsed.add(id); S.expanded.delete(id); }
  layout(false);
}

// Opens the groups above `id`, scrolls it into view and selects it.
function reveal(id) {
  if (!S.tasks.has(id)) return false;
  let opened = false;
  for (let cur = S.tasks.get(id).parent, n = 0; cur && S.tasks.has(cur) && n <= S.order.length; n++) {
    const it = G.items.get(cur);
    if (it && it.shut) { S.collapsed.delete(cur); S.expanded.add(cur); opened = true; }
    cur = S.tasks.get(cur).parent;
  }
  if (opened) layout(false);
  const it = G.items.get(id), wrap = $("graph-wrap");
  if (it && (it.y < wrap.scrollTop || it.y + ROW > wrap.scrollTop + wrap.clientHeight ||
      it.x < wrap.scrollLeft || it.x + it.w > wrap.scrollLeft + wrap.clientWidth)) {
    wrap.scrollTop = Math.max(0, it.y - wrap.clientHeight / 3);
    wrap.scrollLeft = Math.max(0, it.x - wrap.clientWidth / 3);
    drawWindow();
  }
  select(id);
  return true;
}

// ---- the timeline: one bar per attempt, from the events.
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

const refreshTimeline = throttled(TIMELINE_GAP, () => renderTimeline());

function renderTimeline() {
  const bars = attemptsFromEvents(), now = Date.now();
  if (!bars.length) { $("timeline").replaceChildren(h("p", { class: "quiet" }, "no attempts yet")); return; }
  let t0 = Infinity, t1 = now;
  for (const b of bars) { t0 = Math.min(t0, b.start); t1 = Math.max(t1, b.end || now); }
  const span = Math.max(1, t1 - t0), lanes = new Map();
  for (const b of bars) { if (!lanes.has(b.lane)) lanes.set(b.lane, []); lanes.get(b.lane).push(b); }
  const rows = [...lanes.keys()].sort().map((lane) => h("div", { class: "lane" },
    h("span", { class: "who", title: lane }, lane),
    h("div", { class: "track" }, lanes.get(lane).map((b) => {
      const left = (100 * (b.start - t0)) / span, width = (100 * ((b.end || now) - b.start)) / span;
      return h("div", Object.assign({ class: "bar" + (b.attempt > 1 ? " retry" : ""), "data-outcome": b.outcome,
        style: `left:${left}%;width:${width}%`, title: `${b.task} #${b.attempt} ${b.outcome} ${age((b.end || now) - b.start)}` }, taskAttrs(b.task)));
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
  const old = S.selected && G.shown.get(S.selected);
  S.selected = id;
  if (old) old.classList.remove("sel");
  const now = G.shown.get(id);
  if (now) now.classList.add("sel");
  loadPanel();
}

const refreshPanel = throttled(PANEL_GAP, () => loadPanel());

async function loadPanel() {
  const id = S.selected;
  if (!id) return;
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
    refreshTown(); refreshPanel();
  } catch (e) {
    if (out()) out().replaceChildren(h("p", { class: "err" }, e.message));
  }
}

// ---- for user scripts and tests (docs/DASHBOARD.md)
const tt = window.tt = {
  // A task as the page holds it (the keys of /api/events?tasks=1), or null.
  task: (id) => S.tasks.get(id) || null,
  // Every task, in dispatch order.
  tasks: () => S.order.map((id) => S.tasks.get(id)),
  // Opens the groups above a task, scrolls to it and selects it.
  reveal,
  // performance.now() when the first full town was drawn.
  renderedAt: null,
};

async function start() {
  setLive(false);
  $("live").textContent = "connecting…";
  $("graph-wrap").addEventListener("scroll", onScroll, { passive: true });
  $("graph").addEventListener("click", (ev) => {
    const el = ev.target.closest("[data-task]");
    if (!el) return;
    if (ev.target.classList.contains("tog")) toggle(el.dataset.task); else select(el.dataset.task);
  });
  const pick = (ev) => { const el = ev.target.closest("[data-task]"); if (el) reveal(el.dataset.task); };
  $("attention").addEventListener("click", pick);
  $("timeline").addEventListener("click", pick);
  try {
    const hist = await api("/api/history?limit=2000");
    S.events = hist.events; S.lastId = hist.last_event_id;
    const since = Date.now() - 5 * 60 * 1000;
    S.completedAt = S.events.filter((e) => e.kind === "completed" && e.at >= since).map((e) => e.at);
  } catch (e) {
    $("attention").replaceChildren(h("div", { class: "err" }, e.message));
    if (e.status === 401 || e.status === 403) return;
  }
  connect();
}

window.addEventListener("resize", onScroll);
// Bars grow and heartbeats age without events.
let ticks = 0;
setInterval(() => {
  if (!S.live) return;
  renderTimeline();
  if (++ticks % 5 === 0) refreshTown();
}, 1000);
start();
