// mkrt HMI: one page, six views, live over Server-Sent Events. No
// framework, no build step; charts are drawn on a canvas.
"use strict";
const $ = (s) => document.querySelector(s);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) e.append(k);
  return e;
};
const S = { me: null, infos: [], byName: {}, vals: [], dirty: new Set(), health: null, alarms: { alarms: [], recent: [] }, lat: {}, es: null, results: {} };
const COLORS = ["#1d4ed8", "#b91c1c", "#15803d", "#b45309", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"];

async function api(path, body) {
  const opt = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opt);
  let data = {};
  try { data = await r.json(); } catch (e) { /* empty */ }
  if (r.status === 401 && path !== "/api/login") { showLogin(); }
  return { status: r.status, data };
}

function showLogin(msg) {
  if (S.es) { S.es.close(); S.es = null; }
  S.me = null;
  $("#app").hidden = true; $("#page").replaceChildren();
  $("#login").hidden = false;
  $("#login-error").textContent = msg || "";
}

async function start() {
  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("/api/login", { user: $("#user").value, password: $("#password").value });
    $("#password").value = "";
    if (r.status !== 200) { $("#login-error").textContent = r.data.error || ("login failed: " + r.status); return; }
    enter(r.data);
  });
  $("#logout").addEventListener("click", async () => { await api("/api/logout", {}); showLogin("logged out"); });
  window.addEventListener("hashchange", render);
  const r = await api("/api/me");
  if (r.status === 200) enter(r.data); else showLogin();
}

function enter(me) {
  S.me = me;
  $("#login").hidden = true; $("#app").hidden = false;
  $("#who").textContent = me.user + " (" + me.role + ")";
  api("/api/overview").then((r) => { if (r.status === 200 && r.data.name) $("#plant-name").textContent = r.data.name; });
  connect();
  render();
}

function connect() {
  if (S.es) S.es.close();
  const es = new EventSource("/api/events");
  S.es = es;
  es.onopen = () => banner("");
  es.onerror = () => banner("live updates lost: reconnecting…");
  es.addEventListener("tags-reset", (e) => {
    S.infos = JSON.parse(e.data); S.byName = {}; S.vals = [];
    for (const t of S.infos) S.byName[t.name] = t;
    if (page() === "tags" || page() === "trends") render();
  });
  es.addEventListener("tags", (e) => {
    for (const [i, v, q, r, t] of JSON.parse(e.data)) { S.vals[i] = { v, q, r, t }; S.dirty.add(i); }
    hmiStats.events++;
    schedule();
  });
  es.addEventListener("health", (e) => {
    S.health = JSON.parse(e.data);
    const now = Date.now();
    for (const t of S.health.tasks || []) {
      const h = S.lat[t.name] || (S.lat[t.name] = []);
      h.push({ t: now, w: t.wakeup_ns["p99"], x: t.exec_ns["p99"] });
      if (h.length > 1200) h.shift();
    }
    const st = $("#state");
    st.textContent = S.health.state + (S.health.fault ? ": " + S.health.fault : "");
    st.className = "state " + S.health.state.split(" ")[0];
    schedule();
  });
  es.addEventListener("alarms", (e) => {
    S.alarms = JSON.parse(e.data);
    const n = S.alarms.alarms.filter((a) => a.active).length;
    $("#alarm-count").textContent = n ? "(" + n + ")" : "";
    if (page() === "alarms") render();
  });
  es.addEventListener("logout", () => showLogin("session ended: log in again"));
}

function banner(msg) { $("#banner").hidden = !msg; $("#banner").textContent = msg; }
const page = () => (location.hash || "#overview").slice(1).split("?")[0];
const param = (k) => new URLSearchParams((location.hash.split("?")[1]) || "").get(k);
let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; update(); });
}
let timer = null;
function every(ms, f) { clearInterval(timer); timer = setInterval(f, ms); f(); }

const fmt = (v, info) => {
  if (v === null || v === undefined) return "—";
  if (info && info.type === "bool") return v ? "true" : "false";
  if (typeof v === "number") return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(+v.toFixed(4));
  return String(v);
};
const age = (t) => { if (!t) return "—"; const s = (Date.now() - t) / 1000; return s < 60 ? s.toFixed(1) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h"; };
const running = () => S.health && S.health.state === "running";
const ns = (n) => n >= 1e6 ? (n / 1e6).toFixed(2) + " ms" : (n / 1e3).toFixed(1) + " µs";

function render() {
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("on", a.getAttribute("href").slice(1) === page());
  clearInterval(timer);
  const p = page();
  const views = { overview: vOverview, tags: vTags, trends: vTrends, alarms: vAlarms, sequences: vSequences, latency: vLatency, audit: vAudit };
  $("#page").replaceChildren();
  (views[p] || vOverview)($("#page"));
  update();
}
let updaters = [];
// hmiStats counts the live "tags" events, the page updates and the time
// they took (for tests).
window.hmiStats = { events: 0, updates: 0, ms: 0, max: 0 };
function update() {
  const t0 = performance.now();
  for (const f of updaters) f();
  const d = performance.now() - t0;
  hmiStats.updates++; hmiStats.ms += d; hmiStats.max = Math.max(hmiStats.max, d);
}
function onUpdate(f) { updaters = [f]; }

// Overview
function vOverview(root) {
  onUpdate(() => {});
  every(2000, async () => {
    const r = await api("/api/overview");
    if (r.status !== 200 || page() !== "overview") return;
    const o = r.data, h = o.health;
    $("#plant-name").textContent = o.name || "mkrt";
    const card = (title, big, ...rest) => el("div", { class: "card" }, el("h3", { text: title }), el("div", { class: "big", text: big }), ...rest);
    const devs = el("table", {}, el("tr", {}, el("th", { text: "device" }), el("th", { text: "address" }), el("th", { text: "quality" })));
    for (const d of o.devices) devs.append(el("tr", {}, el("td", { text: d.name }), el("td", { text: d.address }), el("td", { class: "q-" + d.quality, text: d.quality + (d.reason ? " (" + d.reason + ")" : "") })));
    const links = el("table", {});
    for (const [k, v] of Object.entries(o.links)) if (v) links.append(el("tr", {}, el("th", { text: k }), el("td", { text: v })));
    const ho = el("table", {}, el("tr", {}, el("th", { text: "time" }), el("th", { text: "what" }), el("th", { text: "by" }), el("th", { text: "generation" }), el("th", { text: "result" })));
    for (const e of o.handovers) ho.append(el("tr", {}, el("td", { text: new Date(e.time).toLocaleString() }), el("td", { text: e.source + (e.changes ? ": " + e.changes.join(", ") : "") }), el("td", { text: e.who }), el("td", { text: e.generation || "" }), el("td", { class: e.ok ? "ok" : "error", text: e.ok ? "ok" : (e.error || e.reason || "failed") })));
    if (!o.handovers.length) ho.append(el("tr", {}, el("td", { colspan: 5, class: "mute", text: "no apply or hand-over in the audit log" })));
    const br = o.bridge || {}, pt = o.partition;
    const iso = pt && pt.isolation ? "cpuset " + pt.isolation.cpuset + ", " + pt.isolation.irqs_moved + " IRQs moved" + (pt.isolation.degradations && pt.isolation.degradations.length ? " (" + pt.isolation.degradations.length + " degraded)" : "") : "";
    root.replaceChildren(
      el("h2", { text: (o.name || "") + (o.description ? " — " + o.description : "") }),
      el("div", { class: "cards" },
        card("partition", h.state, el("div", { text: "backend " + o.backend + ", cpus " + o.cpus })),
        card("cycle", String(h.cycle), el("div", { class: h.rt ? "ok" : "error", text: h.rt ? "rt: full" : "rt: degraded " + (h.rt_reason || "") })),
        card("last fault", h.fault || (pt && pt.last_fault ? pt.last_fault.reason : "none")),
        ...(pt ? [card("restarts", String(pt.restarts), el("div", { id: "partition-detail", class: "mute", text: "supervisor: " + pt.state + (pt.outputs && pt.outputs.driver ? ", outputs driven by " + pt.outputs.driver : "") + (iso ? "; " + iso : "") }))] : []),
        card("alarms active", String(S.alarms.alarms.filter((a) => a.active).length)),
        card("bridge", (br.Published || 0) + " published", el("div", { class: "mute", text: "MQTT clients " + (br.BrokerClients || 0) + ", trend memory " + (o.trend_bytes / 1024).toFixed(0) + " KiB" }))),
      el("h3", { text: "Devices" }), devs, el("h3", { text: "Links" }), links, el("h3", { text: "Applies and hand-overs" }), ho);
  });
}

// Tags
function vTags(root) {
  const filter = el("input", { id: "filter", placeholder: "filter tags", value: param("q") || "" });
  const tb = el("tbody");
  const writer = S.me && S.me.role === "writer";
  root.append(el("div", { class: "toolbar" }, el("h2", { text: "Tags" }), filter),
    el("table", { id: "tags" }, el("thead", {}, el("tr", {}, ...["tag", "value", "unit", "quality", "age", "write", "result"].map((t) => el("th", { text: t })))), tb));
  const rows = [];
  let all = true, shown = 0, wasLive = true;
  const build = () => {
    all = true;
    const f = filter.value.toLowerCase();
    tb.replaceChildren(); rows.length = 0;
    for (const t of S.infos) {
      if (f && !(t.name + " " + (t.device || "") + " " + (t.description || "")).toLowerCase().includes(f)) continue;
      const val = el("td", { class: "num val" }), q = el("td"), a = el("td", { class: "num" }), res = el("td", { class: "result" });
      let w = el("td", { class: "mute", text: t.writable ? "" : "read-only" });
      if (t.writable) {
        const inp = el("input", { class: "w", "data-tag": t.name, placeholder: t.type === "bool" ? "true/false" : (t.min !== undefined ? t.min + "…" + t.max : t.type) });
        const send = async () => {
          let v = inp.value.trim();
          let body;
          if (t.type === "string") body = v; else if (v === "true" || v === "false") body = v === "true"; else body = Number(v);
          res.textContent = "…"; res.className = "result";
          const r = await api("/api/write", { tag: t.name, value: body });
          const d = r.data;
          res.textContent = d.ok ? "applied at cycle " + d.cycle : "refused: " + (d.error || r.status);
          res.className = "result " + (d.ok ? "ok" : "error");
        };
        inp.addEventListener("keydown", (e) => { if (e.key === "Enter") send(); });
        w = el("td", {}, inp, " ", el("button", { type: "button", "data-set": t.name, onclick: send, text: "Set" }));
        if (!writer) { w.title = "read-only user: the write will be refused"; }
      }
      const tr = el("tr", { "data-tag": t.name }, el("td", {}, el("a", { href: "#trends?tags=" + encodeURIComponent(t.name), text: t.name, title: t.description || "" })), val, el("td", { text: t.unit || "" }), q, a, w, res);
      tb.append(tr);
      rows.push({ t, tr, val, q, a });
    }
    update();
  };
  filter.addEventListener("input", build);
  build();
  onUpdate(() => {
    // Only the rows whose tag changed are written, and the ages once a
    // second, so a table of thousands of tags keeps up.
    const live = running(), now = Date.now(), ages = now - shown >= 1000 || live !== wasLive;
    if (ages) { shown = now; wasLive = live; }
    for (const r of rows) {
      const s = S.vals[r.t.id];
      if (!s) continue;
      if (all || S.dirty.has(r.t.id)) {
        r.val.textContent = fmt(s.v, r.t);
        r.q.textContent = s.q + (s.r ? " (" + s.r + ")" : "");
        r.q.className = "q-" + s.q;
      }
      if (all || ages || S.dirty.has(r.t.id)) {
        r.a.textContent = age(s.t);
        r.tr.classList.toggle("stale", !live);
      }
    }
    all = false;
    S.dirty.clear();
  });
}

// Trends
function vTrends(root) {
  const chosen = new Set((param("tags") || "").split(",").filter(Boolean));
  if (!chosen.size) for (const t of S.infos) if (t.type !== "string" && chosen.size < 2) chosen.add(t.name);
  const picks = el("div", { class: "picks" });
  for (const t of S.infos) {
    if (t.type === "string") continue;
    const cb = el("input", { type: "checkbox", value: t.name, checked: chosen.has(t.name) });
    cb.addEventListener("change", () => { cb.checked ? chosen.add(t.name) : chosen.delete(t.name); draw(); });
    picks.append(el("label", {}, cb, " " + t.name));
  }
  const span = el("select", {}, ...[["1 min", 60e3], ["5 min", 300e3], ["15 min", 900e3], ["1 hour", 3600e3]].map(([n, v]) => el("option", { value: v, text: n, selected: v === Number(param("span") || 300e3) })));
  const cv = el("canvas", { id: "trend" });
  root.append(el("div", { class: "toolbar" }, el("h2", { text: "Trends" }), span), picks, cv, el("p", { class: "mute", id: "trend-note" }));
  onUpdate(() => {});
  const draw = async () => {
    if (page() !== "trends") return;
    const names = [...chosen];
    const since = Date.now() - Number(span.value);
    const r = await api("/api/trend?since=" + since + "&tags=" + encodeURIComponent(names.join(",")));
    if (r.status !== 200) return;
    chart(cv, r.data.series.map((s, i) => ({ name: s.tag + (s.unit ? " [" + s.unit + "]" : ""), t: s.t, v: s.v, color: COLORS[i % COLORS.length] })), since, Date.now());
    $("#trend-note").textContent = "one sample every " + r.data.every_ms / 1000 + " s, kept for " + r.data.span_ms / 60000 + " min";
    cv.dataset.points = r.data.series.reduce((n, s) => n + s.v.filter((x) => x !== null).length, 0);
  };
  span.addEventListener("change", draw);
  every(1000, draw);
}

// chart draws series [{name, t[], v[], color}] against time t0..t1.
function chart(cv, series, t0, t1, opt = {}) {
  const dpr = window.devicePixelRatio || 1;
  const W = cv.clientWidth, H = cv.clientHeight;
  cv.width = W * dpr; cv.height = H * dpr;
  const g = cv.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, W, H);
  const L = 60, R = 10, T = 24, B = 28;
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const v of s.v) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.05; lo -= pad; hi += pad;
  const tr = opt.log ? (v) => Math.log10(Math.max(v, 1)) : (v) => v;
  const ylo = tr(lo), yhi = tr(hi);
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => H - B - (tr(v) - ylo) / (yhi - ylo) * (H - T - B);
  g.strokeStyle = "#d8dbe2"; g.fillStyle = "#6b7280"; g.font = "11px system-ui"; g.lineWidth = 1;
  for (let i = 0; i <= 5; i++) {
    const yy = T + i * (H - T - B) / 5;
    g.beginPath(); g.moveTo(L, yy); g.lineTo(W - R, yy); g.stroke();
    const v = opt.log ? Math.pow(10, yhi - i * (yhi - ylo) / 5) : hi - i * (hi - lo) / 5;
    g.fillText(opt.fmt ? opt.fmt(v) : +v.toPrecision(4), 4, yy + 4);
  }
  for (let i = 0; i <= 6; i++) {
    const t = t0 + i * (t1 - t0) / 6, xx = x(t);
    g.beginPath(); g.moveTo(xx, T); g.lineTo(xx, H - B); g.stroke();
    g.fillText(new Date(t).toLocaleTimeString(), Math.min(xx - 20, W - 60), H - 8);
  }
  let lx = L;
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 2; g.beginPath();
    let up = false;
    for (let i = 0; i < s.t.length; i++) {
      if (s.v[i] === null) { up = false; continue; }
      up ? g.lineTo(x(s.t[i]), y(s.v[i])) : g.moveTo(x(s.t[i]), y(s.v[i]));
      up = true;
    }
    g.stroke();
    g.fillStyle = s.color; g.fillRect(lx, 8, 10, 10); g.fillStyle = "#1d2330"; g.fillText(s.name, lx + 14, 17);
    lx += g.measureText(s.name).width + 34;
  }
}

// Alarms
function vAlarms(root) {
  const writer = S.me && S.me.role === "writer";
  const t = el("tbody"), rec = el("tbody");
  root.append(el("h2", { text: "Alarms" }),
    el("table", { id: "alarms" }, el("thead", {}, el("tr", {}, ...["alarm", "state", "since", "value", "block", "acknowledge"].map((h) => el("th", { text: h })))), t),
    el("h3", { text: "Recent" }),
    el("table", { id: "recent" }, el("thead", {}, el("tr", {}, ...["time", "alarm", "event", "value", "by"].map((h) => el("th", { text: h })))), rec));
  onUpdate(() => {});
  for (const a of S.alarms.alarms) {
    let ack;
    if (!a.ackable) ack = el("span", { class: "mute", text: "read-only (no " + a.name + "_ack tag)" });
    else if (a.acked) ack = el("span", { class: "ok", text: "acknowledged by " + a.acked_by });
    else if (a.active && writer) ack = el("button", { type: "button", "data-ack": a.name, text: "Acknowledge", onclick: async () => {
      const r = await api("/api/ack", { alarm: a.name });
      if (!r.data.ok) ack.replaceWith(el("span", { class: "error", text: r.data.error }));
    } });
    else ack = el("span", { class: "mute", text: a.active ? "viewers cannot acknowledge" : "" });
    t.append(el("tr", { class: a.active ? "active" : "", "data-alarm": a.name },
      el("td", { text: a.name, title: a.description || "" }), el("td", { text: a.active ? "ACTIVE" + (a.reason ? " (" + a.reason + ")" : "") : "normal" }),
      el("td", { text: a.active && a.since ? new Date(a.since).toLocaleTimeString() : "" }), el("td", { class: "num", text: a.value !== undefined ? fmt(a.value) : "" }),
      el("td", { text: a.block ? a.block + "." + a.port : "" }), el("td", {}, ack)));
  }
  for (const e of S.alarms.recent) rec.append(el("tr", {}, el("td", { text: new Date(e.time).toLocaleTimeString() }), el("td", { text: e.alarm }), el("td", { text: e.event }), el("td", { class: "num", text: e.value !== undefined ? fmt(e.value) : "" }), el("td", { text: e.by || "" })));
}

// Sequences: each sequence block's step, time in step and state, live
// from the tags its outputs write; writers hold, resume and abort it by
// writing the tags its inputs read (a rising edge for hold and resume),
// through the same audited write path as the Tags page.
function vSequences(root) {
  const writer = S.me && S.me.role === "writer";
  const box = el("div");
  root.append(el("h2", { text: "Sequences" }), box);
  const rows = [];
  const val = (name) => { const t = name && S.byName[name]; const s = t && S.vals[t.id]; return s ? s.v : undefined; };
  const show = (res, d, what) => { res.textContent = d.ok ? what + " at cycle " + d.cycle : "refused: " + (d.error || ""); res.className = "result " + (d.ok ? "ok" : "error"); };
  const write = async (tag, v) => (await api("/api/write", { tag, value: v })).data;
  const pulse = async (tag, res, what) => {
    if (val(tag)) { const d = await write(tag, false); if (!d.ok) return show(res, d, what); }
    show(res, await write(tag, true), what);
  };
  onUpdate(() => {
    for (const r of rows) {
      const i = val(r.d.step), n = val(r.d.name), t = val(r.d.time), held = val(r.d.held), al = val(r.d.alarm);
      r.step.textContent = n || (i !== undefined && r.d.steps[i] !== undefined ? r.d.steps[i] : "—");
      r.time.textContent = t === undefined ? "—" : fmt(t) + " s";
      r.state.textContent = val(r.d.abort) ? "abort on" : held === undefined ? "—" : held ? "held" : "running";
      r.alarm.textContent = al ? "step timed out" : ""; r.alarm.className = al ? "error" : "";
    }
  });
  api("/api/sequences").then((r) => {
    if (r.status !== 200 || page() !== "sequences") return;
    const defs = r.data.sequences;
    if (!defs.length) { box.append(el("p", { class: "mute", text: "this config has no sequence block" })); return; }
    const tb = el("tbody");
    box.append(el("table", { id: "sequences" }, el("thead", {}, el("tr", {}, ...["sequence", "step", "time in step", "state", "alarm", "steps", "commands", "result"].map((h) => el("th", { text: h })))), tb));
    for (const d of defs) {
      const step = el("td"), time = el("td", { class: "num" }), state = el("td"), alarm = el("td"), res = el("td", { class: "result" }), cmds = el("td");
      const btn = (label, tag, f) => { if (tag && writer) cmds.append(el("button", { type: "button", "data-seq": d.block + ":" + label.toLowerCase(), text: label, onclick: () => f(tag) }), " "); };
      btn("Hold", d.hold, (tag) => pulse(tag, res, "hold"));
      btn("Resume", d.resume, (tag) => pulse(tag, res, "resume"));
      btn("Abort", d.abort, async (tag) => show(res, await write(tag, true), "abort on"));
      btn("Clear abort", d.abort, async (tag) => show(res, await write(tag, false), "abort off"));
      if (!cmds.childNodes.length) cmds.append(el("span", { class: "mute", text: writer ? "no writable hold/resume/abort tag" : "viewers cannot command" }));
      tb.append(el("tr", { "data-sequence": d.block }, el("td", { text: d.task + "." + d.block }), step, time, state, alarm, el("td", { class: "mute", text: d.steps.join(" → ") }), cmds, res));
      rows.push({ d, step, time, state, alarm });
    }
    update();
  });
}

// Latency
function vLatency(root) {
  const tb = el("tbody"), cv = el("canvas", { id: "latency" }), hist = el("canvas", { id: "latency-p99" });
  root.append(el("h2", { text: "Task latency" }),
    el("table", {}, el("thead", {}, el("tr", {}, ...["task", "cycles", "overruns", "wake-up p50", "p99", "p99.9", "max", "exec p50", "p99", "p99.9", "max"].map((h) => el("th", { text: h })))), tb),
    el("h3", { text: "Percentiles (log scale)" }), cv, el("h3", { text: "p99 over time" }), hist);
  onUpdate(() => {
    const h = S.health;
    if (!h) return;
    tb.replaceChildren();
    const bars = [];
    for (const t of h.tasks) {
      const w = t.wakeup_ns, x = t.exec_ns;
      tb.append(el("tr", {}, el("td", { text: t.name }), el("td", { class: "num", text: t.cycles }), el("td", { class: "num " + (t.overruns ? "error" : ""), text: t.overruns }),
        ...[w.p50, w.p99, w["p99.9"], w.max, x.p50, x.p99, x["p99.9"], x.max].map((v) => el("td", { class: "num", text: ns(v) }))));
      bars.push({ name: t.name, w, x });
    }
    drawBars(cv, bars);
    const series = [];
    let i = 0;
    for (const [name, pts] of Object.entries(S.lat)) {
      series.push({ name: name + " wake-up p99", t: pts.map((p) => p.t), v: pts.map((p) => p.w), color: COLORS[i++ % 8] });
      series.push({ name: name + " exec p99", t: pts.map((p) => p.t), v: pts.map((p) => p.x), color: COLORS[i++ % 8] });
    }
    const now = Date.now();
    chart(hist, series, now - 5 * 60e3, now, { fmt: ns });
  });
}

// drawBars draws each task's wake-up and exec percentiles as grouped bars
// on a log scale, the way latency reports show them.
function drawBars(cv, tasks) {
  const dpr = window.devicePixelRatio || 1, W = cv.clientWidth, H = cv.clientHeight;
  cv.width = W * dpr; cv.height = H * dpr;
  const g = cv.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, W, H);
  const L = 70, B = 40, T = 20, keys = ["p50", "p99", "p99.9", "max"];
  let hi = 1e3;
  for (const t of tasks) for (const k of keys) hi = Math.max(hi, t.w[k], t.x[k]);
  const lo = 100, lhi = Math.log10(hi * 2), llo = Math.log10(lo);
  const y = (v) => H - B - (Math.log10(Math.max(v, lo)) - llo) / (lhi - llo) * (H - T - B);
  g.font = "11px system-ui"; g.fillStyle = "#6b7280"; g.strokeStyle = "#d8dbe2";
  for (let d = Math.ceil(llo); d <= lhi; d++) { const yy = y(Math.pow(10, d)); g.beginPath(); g.moveTo(L, yy); g.lineTo(W, yy); g.stroke(); g.fillText(ns(Math.pow(10, d)), 4, yy + 4); }
  const groups = tasks.length * 2, gw = (W - L) / Math.max(groups, 1), bw = gw / 5;
  let gi = 0;
  for (const t of tasks) for (const [what, p] of [["wake-up", t.w], ["exec", t.x]]) {
    keys.forEach((k, i) => { g.fillStyle = COLORS[i]; const x0 = L + gi * gw + i * bw + bw / 2; g.fillRect(x0, y(p[k]), bw * 0.9, H - B - y(p[k])); });
    g.fillStyle = "#1d2330"; g.fillText(t.name + " " + what, L + gi * gw + bw / 2, H - B + 16); gi++;
  }
  keys.forEach((k, i) => { g.fillStyle = COLORS[i]; g.fillRect(L + i * 60, 4, 10, 10); g.fillStyle = "#1d2330"; g.fillText(k, L + i * 60 + 14, 13); });
}

// Audit
function vAudit(root) {
  const q = el("input", { id: "audit-filter", placeholder: "filter: tag, user, source, status" });
  const tb = el("tbody");
  root.append(el("div", { class: "toolbar" }, el("h2", { text: "Audit" }), q, el("span", { class: "mute", id: "audit-path" })),
    el("table", { id: "audit" }, el("thead", {}, el("tr", {}, ...["time", "source", "who", "tag", "old", "new", "result", "cycle"].map((h) => el("th", { text: h })))), tb));
  onUpdate(() => {});
  const load = async () => {
    if (page() !== "audit") return;
    const r = await api("/api/audit?n=300&q=" + encodeURIComponent(q.value));
    if (r.status !== 200) return;
    $("#audit-path").textContent = r.data.path;
    tb.replaceChildren();
    for (const e of r.data.entries) tb.append(el("tr", {}, el("td", { text: new Date(e.time).toLocaleString() }), el("td", { text: e.source }), el("td", { text: e.who }), el("td", { text: e.tag }),
      el("td", { class: "num", text: e.old === undefined ? "" : fmt(e.old) }), el("td", { class: "num", text: e.new === undefined ? "" : fmt(e.new) }),
      el("td", { class: e.ok ? "ok" : "error", text: e.ok ? (e.status || "applied") : (e.reason || e.status || e.error || "failed") }), el("td", { class: "num", text: e.cycle || "" })));
  };
  q.addEventListener("input", load);
  every(3000, load);
}

start();
