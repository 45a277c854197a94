// The imgate operator console: plain JavaScript, no build step, served by the admin listener.
// Every call goes to the admin API of this origin with the admin secret the operator typed
// (kept in sessionStorage: this tab only) and `X-Imgate-Actor: console:<name>` (the audit log's who).

const $ = (sel, root = document) => root.querySelector(sel);
const byTest = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);
const KEY = "imgate.console";
const WINDOW_MS = 5 * 60 * 1000; // the charts' span
const POLL_MS = 1000;

let session = null; // {name, secret}

// ---- the API ------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.secret}`, "X-Imgate-Actor": `console:${session.name}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                            cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the admin API (${e.message})`);
  }
  let data = null;
  const text = await r.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const err = (data && data.error) || {};
    const detail = err.message || err.code || text.slice(0, 200) || r.statusText;
    throw new ApiError(r.status, err.code || String(r.status), `${method} ${path}: ${r.status} ${detail}`);
  }
  return data;
}

// An API call from a view: its error shown (a 401 signs the console out), never thrown on.
async function call(method, path, body) {
  try {
    const data = await api(method, path, body);
    return { ok: true, data };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut("The admin secret was refused (changed on the server?): sign in again.");
    } else {
      showError(e.message);
    }
    return { ok: false, error: e };
  }
}

function showError(message) {
  const el = byTest("error");
  el.textContent = message;
  el.title = "click to dismiss";
  el.hidden = false;
}
byTest("error").addEventListener("click", () => { byTest("error").hidden = true; });
window.addEventListener("error", (e) => showError(`The page failed: ${e.message}`));
window.addEventListener("unhandledrejection", (e) => showError(`The page failed: ${e.reason}`));

// ---- small DOM helpers ----------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "onclick") el.addEventListener("click", v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

const pad = (n) => String(n).padStart(2, "0");
function when(ms) {
  if (ms === null || ms === undefined || ms === 0) return "—";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return when(ms);
}
const cell = (text, attrs = {}) => h("td", { text: text === null || text === undefined ? "—" : String(text), ...attrs });

// ---- sign-in --------------------------------------------------------------------------------
const form = byTest("signin");

function showSignIn(message) {
  $("#console").hidden = true;
  form.hidden = false;
  const err = byTest("signin-error");
  err.textContent = message || "";
  err.hidden = !message;
}

function signOut(message) {
  session = null;
  sessionStorage.removeItem(KEY);
  stopTimers();
  showSignIn(message);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = form.elements.name.value.trim();
  const secret = form.elements.secret.value;
  byTest("signin-error").hidden = true;
  session = { name, secret };
  try {
    await api("GET", "/v1/stats");
  } catch (err) {
    session = null;
    showSignIn(err.status === 401 ? "Wrong admin secret: the server refused it." : err.message);
    return;
  }
  sessionStorage.setItem(KEY, JSON.stringify(session));
  form.elements.secret.value = "";
  start();
});

byTest("signout").addEventListener("click", () => signOut(""));

// ---- tabs -----------------------------------------------------------------------------------
let tab = "users";
const timers = new Set();

function stopTimers() {
  for (const t of timers) clearTimeout(t);
  timers.clear();
  metrics.running = false;
  userDetail.uid = null;
}

// Runs `fn` every `ms` after it finishes, while `alive()` says so: one loop per `key` (starting
// a key's loop again ends its previous one).
const loops = {};
function every(key, ms, fn, alive) {
  const gen = (loops[key] = (loops[key] || 0) + 1);
  const live = () => loops[key] === gen && alive();
  const tick = async () => {
    if (!live()) return;
    await fn();
    if (!live()) return;
    const t = setTimeout(() => { timers.delete(t); tick(); }, ms);
    timers.add(t);
  };
  tick();
}

function show(name) {
  tab = name;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.dataset.view !== name;
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  if (name === "groups") { groups.load(true); if (groups.conv) groups.open(groups.conv); }
  if (name === "connections") every("connections", 2000, () => connections.load(), () => session && tab === "connections");
  if (name === "audit") audit.load(true);
  if (name === "metrics") metrics.drawAll();
}
for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => show(b.dataset.tab));

function start() {
  form.hidden = true;
  $("#console").hidden = false;
  byTest("who").textContent = `signed in as console:${session.name}`;
  metrics.start();
  show("users");
  users.search(true);
}

// ---- users ----------------------------------------------------------------------------------
const users = {
  next: null,
  prefix: "",
  async search(fresh) {
    if (fresh) {
      this.prefix = byTest("user-search").value.trim();
      this.next = null;
      byTest("user-results").replaceChildren();
    }
    const q = new URLSearchParams({ limit: "50" });
    if (this.prefix) q.set("prefix", this.prefix);
    if (!fresh && this.next) q.set("after", this.next);
    const r = await call("GET", `/v1/users?${q}`);
    if (!r.ok) return;
    const list = byTest("user-results");
    for (const u of r.data.items) {
      list.append(h("li", { "data-testid": "user-item", "data-uid": u.uid },
        h("button", { type: "button", class: "item", onclick: () => userDetail.open(u.uid) },
          h("strong", { text: u.uid }), " ", h("span", { class: "sub", text: u.name }),
          u.disabled ? h("span", { class: "badge off", text: "disabled" }) : null)));
    }
    if (!list.children.length) list.append(h("li", { class: "sub", text: "No user matches." }));
    this.next = r.data.next;
    byTest("user-more").hidden = !this.next;
  },
};
byTest("user-search-form").addEventListener("submit", (e) => { e.preventDefault(); users.search(true); });
let searchDelay = null;
byTest("user-search").addEventListener("input", () => {
  clearTimeout(searchDelay);
  if (byTest("user-search").checkValidity()) searchDelay = setTimeout(() => users.search(true), 300);
});
byTest("user-more").addEventListener("click", () => users.search(false));

const userDetail = {
  uid: null,
  user: null,
  open(uid) {
    this.uid = uid;
    byTest("issued").hidden = true;
    for (const li of document.querySelectorAll('[data-testid="user-item"]')) {
      li.classList.toggle("selected", li.dataset.uid === uid);
    }
    // While it is shown, refreshed every 2 s: presence follows what the devices do.
    every("user", 2000, () => this.load(uid), () => session && this.uid === uid);
  },
  async load(uid) {
    const [u, devices, tokens] = await Promise.all([
      call("GET", `/v1/users/${encodeURIComponent(uid)}`),
      call("GET", `/v1/users/${encodeURIComponent(uid)}/devices`),
      call("GET", `/v1/users/${encodeURIComponent(uid)}/tokens`),
    ]);
    if (this.uid !== uid) return;
    if (!u.ok || !devices.ok || !tokens.ok) { this.uid = null; return; } // (the error is shown)
    this.user = u.data;
    byTest("user-placeholder").hidden = true;
    byTest("user-card").hidden = false;
    byTest("user-uid").textContent = u.data.uid;
    byTest("user-name").textContent = u.data.name;
    byTest("user-created").textContent = when(u.data.created_at);
    const state = byTest("user-state");
    state.textContent = u.data.disabled ? "disabled" : "enabled";
    state.className = `badge ${u.data.disabled ? "off" : "on"}`;
    byTest("user-toggle").textContent = u.data.disabled ? "Enable" : "Disable";
    byTest("devices").replaceChildren(...devices.data.items.map((d) => h("tr",
      { "data-testid": "device", "data-device": d.device, "data-online": String(d.online) },
      cell(d.device), cell(d.platform || "—"),
      h("td", {}, h("span", { class: `badge ${d.online ? "on" : "off"}`, "data-testid": "device-presence",
                             text: d.online ? "online" : "offline" })),
      cell(d.last_seen ? `${ago(d.last_seen)}` : "never", { title: when(d.last_seen) }),
      cell(d.tokens), cell(ago(d.last_used_at), { title: when(d.last_used_at) }),
      h("td", {}, d.tokens ? h("button", { type: "button", "data-testid": "device-revoke",
                                           onclick: () => this.revoke(d.device) }, "Revoke") : null))));
    if (!devices.data.items.length) byTest("devices").append(h("tr", {}, h("td", { colspan: 7, class: "sub", text: "No devices." })));
    byTest("tokens").replaceChildren(...tokens.data.map((t) => {
      const expired = t.expires_at !== null && t.expires_at <= Date.now();
      const st = t.revoked_at ? `revoked ${when(t.revoked_at)}` : expired ? "expired" : "live";
      return h("tr", { "data-testid": "token", "data-device": t.device, "data-state": t.revoked_at ? "revoked" : expired ? "expired" : "live" },
        cell(t.id), cell(t.device), cell(t.platform || "—"), cell(when(t.created_at)),
        cell(t.expires_at ? when(t.expires_at) : "never"), cell(st), cell(ago(t.last_used_at)));
    }));
  },
  async revoke(device) {
    const path = `/v1/users/${encodeURIComponent(this.uid)}/tokens/revoke`;
    if (!window.confirm(device ? `Revoke the tokens of ${this.uid}'s ${device} and disconnect it?`
                               : `Revoke every token of ${this.uid} and disconnect all their devices?`)) return;
    const r = await call("POST", path, device ? { device } : {});
    if (r.ok) await this.load(this.uid);
  },
  async toggle() {
    if (!this.user) return;
    const verb = this.user.disabled ? "enable" : "disable";
    if (verb === "disable" && !window.confirm(`Disable ${this.user.uid}? Their devices are disconnected.`)) return;
    const r = await call("POST", `/v1/users/${encodeURIComponent(this.user.uid)}/${verb}`);
    if (r.ok) {
      await this.load(this.user.uid);
      const li = document.querySelector(`[data-testid="user-item"][data-uid="${CSS.escape(this.user.uid)}"]`);
      if (li) li.querySelector(".badge")?.remove();
      if (li && r.data.disabled) li.querySelector("button").append(h("span", { class: "badge off", text: "disabled" }));
    }
  },
  async issue(e) {
    e.preventDefault();
    const f = e.target;
    const body = { device: f.elements.device.value.trim(), platform: f.elements.platform.value.trim() };
    if (f.elements.ttl.value) body.ttl_s = Number(f.elements.ttl.value);
    const r = await call("POST", `/v1/users/${encodeURIComponent(this.uid)}/tokens`, body);
    if (!r.ok) return;
    byTest("issued-token").textContent = r.data.token;
    byTest("issued").hidden = false;
    f.reset();
    await this.load(this.uid);
  },
};
byTest("user-toggle").addEventListener("click", () => userDetail.toggle());
byTest("user-revoke-all").addEventListener("click", () => userDetail.revoke(null));
byTest("issue-form").addEventListener("submit", (e) => userDetail.issue(e));

// ---- groups ---------------------------------------------------------------------------------
// GET /v1/groups pages {gid, conv, name, owner, members: count}; GET /v1/groups/{conv} is one group
// with members [{uid, role}] (owner first). Adding and removing members is done by the server as the
// group's owner, with the group's rules (the owner stays; unknown or blocking users are refused).
const groups = {
  next: null,
  member: "",
  conv: null, // the group open in the detail pane
  async load(fresh) {
    if (fresh) {
      this.member = byTest("group-member-filter").value.trim();
      this.next = null;
    }
    const q = new URLSearchParams({ limit: "50" });
    if (this.member) q.set("member", this.member);
    if (!fresh && this.next) q.set("after", this.next);
    const r = await call("GET", `/v1/groups?${q}`);
    if (!r.ok) return;
    const list = byTest("group-list");
    if (fresh) list.replaceChildren();
    for (const g of r.data.items) {
      list.append(h("li", { "data-testid": "group-item", "data-conv": g.conv, class: g.conv === this.conv ? "selected" : null },
        h("button", { type: "button", class: "item", onclick: () => this.open(g.conv) },
          h("strong", { text: g.name || g.conv }), " ",
          h("span", { class: "sub", "data-testid": "group-item-count", text: `${g.members} members · owner ${g.owner || "—"}` }))));
    }
    if (!list.children.length) list.append(h("li", { class: "sub", text: "No groups." }));
    this.next = r.data.next;
    byTest("group-more").hidden = !this.next;
  },
  async open(conv) {
    this.conv = conv;
    const r = await call("GET", `/v1/groups/${encodeURIComponent(conv)}`);
    if (this.conv !== conv) return; // another group was picked meanwhile
    if (!r.ok) return;
    const g = r.data;
    for (const li of byTest("group-list").children) li.classList.toggle("selected", li.dataset.conv === g.conv);
    byTest("group-placeholder").hidden = true;
    byTest("group-card").hidden = false;
    byTest("group-name").textContent = g.name || g.gid;
    byTest("group-conv").textContent = g.conv;
    byTest("group-owner").textContent = g.owner || "—";
    byTest("group-count").textContent = String(g.members.length);
    byTest("group-members").replaceChildren(...g.members.map((m) => h("tr",
      { "data-testid": "group-member", "data-uid": m.uid, "data-role": m.role },
      h("td", {}, h("button", { type: "button", class: "link", onclick: () => { show("users"); userDetail.open(m.uid); } }, m.uid)),
      h("td", {}, h("span", { class: `badge${m.role === "member" ? "" : " on"}`, text: m.role })),
      h("td", {}, m.role === "owner" ? null : h("button", { type: "button", "data-testid": "group-member-remove",
                                                             onclick: () => this.remove(g.conv, m.uid) }, "Remove")))));
    if (!g.members.length) byTest("group-members").append(h("tr", {}, h("td", { colspan: 3, class: "sub", text: "No members." })));
  },
  async changed(conv) {
    await this.open(conv);
    const li = document.querySelector(`[data-testid="group-item"][data-conv="${CSS.escape(conv)}"] [data-testid="group-item-count"]`);
    const count = byTest("group-count").textContent;
    if (li) li.textContent = `${count} members · owner ${byTest("group-owner").textContent}`;
  },
  async remove(conv, uid) {
    if (!window.confirm(`Remove ${uid} from ${byTest("group-name").textContent}? They get the member event.`)) return;
    const r = await call("DELETE", `/v1/groups/${encodeURIComponent(conv)}/members/${encodeURIComponent(uid)}`);
    if (r.ok) await this.changed(conv);
  },
  async add(e) {
    e.preventDefault();
    if (!this.conv) return;
    const f = e.target;
    const uids = f.elements.uids.value.split(/[\s,]+/).filter(Boolean);
    if (!uids.length) return;
    const conv = this.conv;
    const r = await call("POST", `/v1/groups/${encodeURIComponent(conv)}/members`, { uids });
    if (!r.ok) return;
    f.reset();
    await this.changed(conv);
  },
};
byTest("group-more").addEventListener("click", () => groups.load(false));
byTest("group-filter").addEventListener("submit", (e) => { e.preventDefault(); groups.load(true); });
byTest("group-add-form").addEventListener("submit", (e) => groups.add(e));
byTest("group-history").addEventListener("click", () => { if (groups.conv) audit.about(groups.conv); });

// ---- connections ----------------------------------------------------------------------------
const connections = {
  async load() {
    const uid = byTest("conn-uid").value.trim();
    const q = new URLSearchParams({ limit: "500" });
    if (uid) q.set("uid", uid);
    const r = await call("GET", `/v1/connections?${q}`);
    if (!r.ok) return;
    const d = r.data;
    byTest("conn-summary").textContent = `${d.total} connection(s)` + (d.total > d.items.length ? `, the first ${d.items.length} shown` : "")
      + (d.source === "presence" ? " · from the presence table (no broker in this process: cluster mode or an external broker)" : " · live, from the embedded broker");
    byTest("connections").replaceChildren(...d.items.map((c) => h("tr", { "data-testid": "connection", "data-client-id": c.client_id },
      cell(c.client_id), c.uid ? h("td", {}, h("button", { type: "button", class: "link", onclick: () => { show("users"); userDetail.open(c.uid); } }, c.uid)) : cell(c.account ? `account ${c.account}` : "—"),
      cell(c.device), cell(c.platform || "—"), cell(c.protocol), cell(c.transport), cell(c.remote),
      cell(ago(c.since), { title: when(c.since) }))));
    if (!d.items.length) byTest("connections").append(h("tr", {}, h("td", { colspan: 8, class: "sub", text: "No connections." })));
  },
};
byTest("conn-form").addEventListener("submit", (e) => { e.preventDefault(); connections.load(); });

// ---- audit ----------------------------------------------------------------------------------
// GET /v1/audit: {items: [{id, ts, actor, action, target, detail, source, status}], next}, newest
// first; `next` passed as `before` is the next, older, page. Filters: actor and target exactly,
// action as a prefix.
const USER_ACTIONS = /^(user|token|session|block|profile|bot)\./;
const audit = {
  next: null,
  query: null, // the filters of the rows shown
  async load(fresh) {
    if (fresh) {
      const f = byTest("audit-filter");
      const q = new URLSearchParams();
      for (const k of ["actor", "action", "target"]) {
        const v = f.elements[k].value.trim();
        if (v) q.set(k, v);
      }
      const limit = Number(f.elements.limit.value);
      q.set("limit", String(Number.isInteger(limit) && limit >= 1 && limit <= 1000 ? limit : 50));
      this.query = q;
      this.next = null;
    }
    const q = new URLSearchParams(this.query);
    if (!fresh) {
      if (this.next === null) return;
      q.set("before", String(this.next));
    }
    const r = await call("GET", `/v1/audit?${q}`);
    if (!r.ok) return;
    const rows = byTest("audit");
    if (fresh) rows.replaceChildren();
    for (const a of r.data.items) rows.append(this.row(a));
    if (!rows.children.length) rows.append(h("tr", {}, h("td", { colspan: 7, class: "sub", text: "No entries." })));
    this.next = r.data.next;
    byTest("audit-more").hidden = this.next === null;
    byTest("audit-end").hidden = this.next !== null || !r.data.items.length;
  },
  row(a) {
    const detail = a.detail && Object.keys(a.detail).length ? JSON.stringify(a.detail) : "";
    const refused = a.status !== null && a.status >= 400;
    let target = cell(a.target || "—");
    if (a.target && (a.action.startsWith("group") || USER_ACTIONS.test(a.action))) {
      const open = a.action.startsWith("group") ? () => { show("groups"); groups.open(a.target); }
                                                 : () => { show("users"); userDetail.open(a.target); };
      target = h("td", {}, h("button", { type: "button", class: "link", onclick: open }, a.target));
    }
    return h("tr", { "data-testid": "audit-item", "data-id": a.id, "data-actor": a.actor, "data-action": a.action,
                     "data-target": a.target, "data-status": a.status ?? "", class: refused ? "refused" : null },
      cell(when(a.ts), { title: new Date(a.ts).toISOString() }), cell(a.actor), cell(a.action), target,
      cell(a.status ?? "—"), cell(a.source), h("td", { class: "detail", text: detail, title: detail }));
  },
  // The entries about one uid or conversation.
  about(target) {
    const f = byTest("audit-filter");
    f.elements.actor.value = "";
    f.elements.action.value = "";
    f.elements.target.value = target;
    show("audit");
  },
};
byTest("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); audit.load(true); });
byTest("audit-clear").addEventListener("click", () => {
  const f = byTest("audit-filter");
  for (const k of ["actor", "action", "target"]) f.elements[k].value = "";
  audit.load(true);
});
byTest("audit-more").addEventListener("click", () => audit.load(false));
byTest("user-history").addEventListener("click", () => { if (userDetail.uid) audit.about(userDetail.uid); });

// ---- metrics --------------------------------------------------------------------------------
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const QUEUE_RE = /(backlog|depth|pending|queued)$/; // gauges charted as queue depths (any that appear)

// The q-quantile of a histogram's counts between two snapshots (null: nothing in between).
function quantile(prev, cur, q) {
  const n = cur.count - prev.count;
  if (!(n > 0) || cur.le.length !== prev.le.length) return null;
  const want = q * n;
  let below = 0;
  for (let i = 0; i < cur.le.length; i++) {
    const c = cur.counts[i] - prev.counts[i];
    if (c >= want) {
      const lo = i ? cur.le[i - 1] : 0;
      const inBucket = c - below;
      return inBucket > 0 ? lo + (cur.le[i] - lo) * (want - below) / inBucket : cur.le[i];
    }
    below = c;
  }
  return cur.le[cur.le.length - 1]; // beyond the last bound
}

const metrics = {
  running: false,
  prev: null,
  series: {}, // chart -> name -> [[ts, value|null]]
  latest: {},
  start() {
    this.running = true;
    this.prev = null;
    this.series = { msgs: {}, latency: {}, connections: {}, queues: {} };
    every("metrics", POLL_MS, () => this.poll(), () => session && this.running);
  },
  push(chart, name, ts, value) {
    const s = (this.series[chart][name] ||= []);
    s.push([ts, value]);
    while (s.length && s[0][0] < ts - WINDOW_MS) s.shift();
  },
  async poll() {
    const r = await call("GET", "/v1/stats");
    if (!r.ok) return;
    const cur = r.data;
    const m = cur.metrics;
    byTest("role").textContent = `process: ${cur.role}`;
    byTest("metrics-role").textContent = `role ${cur.role}` + (cur.role === "api"
      ? ": the API process handles no messages; each bridge has its own /metrics" : "");
    const prev = this.prev;
    this.prev = cur;
    const rates = {};
    if (prev) {
      const dt = (cur.ts - prev.ts) / 1000;
      if (dt > 0) {
        for (const [k, v] of Object.entries(m)) {
          if (k.endsWith("_total") && k in prev.metrics && v >= prev.metrics[k]) rates[k] = (v - prev.metrics[k]) / dt;
        }
        const ts = cur.ts;
        if ("bridge_sends_total" in rates) this.push("msgs", "sent", ts, rates.bridge_sends_total);
        if ("bridge_deliveries_total" in rates) this.push("msgs", "delivered", ts, rates.bridge_deliveries_total);
        const p50 = quantile(prev.send_ack, cur.send_ack, 0.5);
        const p99 = quantile(prev.send_ack, cur.send_ack, 0.99);
        this.push("latency", "p50", ts, p50 === null ? null : p50 * 1000);
        this.push("latency", "p99", ts, p99 === null ? null : p99 * 1000);
      }
    }
    if ("connections" in m) this.push("connections", "connections", cur.ts, m.connections);
    for (const [k, v] of Object.entries(m)) {
      if (!k.endsWith("_total") && QUEUE_RE.test(k)) this.push("queues", k, cur.ts, v);
    }
    this.table(m, rates);
    this.drawAll();
  },
  table(m, rates) {
    byTest("metrics-table").replaceChildren(...Object.keys(m).sort().map((k) => h("tr", { "data-metric": k },
      cell(k), cell(fmt(m[k])), cell(k in rates ? fmt(rates[k]) : ""))));
  },
  drawAll() {
    for (const chart of ["msgs", "latency", "connections", "queues"]) {
      const canvas = byTest(`chart-${chart}`);
      const series = this.series[chart] || {};
      const names = Object.keys(series);
      const first = names.length ? series[names[0]] : [];
      const last = first.length ? first[first.length - 1][1] : null;
      canvas.dataset.latest = last === null ? "" : String(Math.round(last * 1000) / 1000);
      const legend = canvas.nextElementSibling;
      legend.replaceChildren(...names.map((n, i) => {
        const s = series[n];
        const v = s.length ? s[s.length - 1][1] : null;
        return h("span", { class: "key", "data-series": n }, h("i", { class: `c${i % COLORS.length}` }),
                 `${n} ${v === null ? "—" : fmt(v)}`);
      }));
      if (!names.length) legend.append(h("span", { class: "sub", text: "no data in this process" }));
      if (tab === "metrics") draw(canvas, series);
    }
  },
};

function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (Math.abs(v) >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return String(Number(v.toFixed(Math.abs(v) >= 10 ? 1 : 2))); // 7.5, not 7.50
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// A line chart of `series` (name -> [[ts, value|null]]) over the last WINDOW_MS, by hand.
function draw(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, hgt = canvas.clientHeight;
  if (!w || !hgt) return;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(hgt * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, hgt);
  const left = 44, right = 8, top = 8, bottom = 18;
  const pw = w - left - right, ph = hgt - top - bottom;
  const now = Date.now();
  let max = 0;
  for (const s of Object.values(series)) for (const [, v] of s) if (v !== null && v > max) max = v;
  max = niceMax(max);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  g.strokeStyle = "#e5e7eb";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + pw, y + 0.5); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(fmt((max * i) / 4), left - 6, y);
  }
  g.textAlign = "center"; g.textBaseline = "top";
  for (const min of [5, 4, 3, 2, 1, 0]) {
    const x = left + pw - (pw * min * 60000) / WINDOW_MS;
    g.fillText(min ? `-${min} min` : "now", Math.min(Math.max(x, left + 16), left + pw - 12), top + ph + 4);
  }
  Object.values(series).forEach((s, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.lineWidth = 1.5;
    g.beginPath();
    let pen = false, last = null;
    for (const [ts, v] of s) {
      if (v === null) { pen = false; continue; }
      const x = left + pw - (pw * (now - ts)) / WINDOW_MS;
      const y = top + ph - (ph * v) / max;
      if (x < left) continue;
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
      last = [x, y];
    }
    g.stroke();
    if (last) { // the latest point, also when it has no neighbour to draw a line to
      g.fillStyle = COLORS[i % COLORS.length];
      g.beginPath(); g.arc(last[0], last[1], 2.5, 0, 2 * Math.PI); g.fill();
    }
  });
}
window.addEventListener("resize", () => { if (session && tab === "metrics") metrics.drawAll(); });

// ---- start ----------------------------------------------------------------------------------
try {
  session = JSON.parse(sessionStorage.getItem(KEY) || "null");
} catch {
  session = null;
}
if (session && session.secret && session.name) start(); else { session = null; showSignIn(""); }
