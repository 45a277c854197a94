// imgate web chat: the page's DOM code. The wire contract (docs/protocol.md: connect, send with
// `cid`, gap repair, RPC) is imclient.js's, which has no DOM and can be lifted into another app.
// User content (names, statuses, messages) is only ever rendered with textContent; avatars are
// shown only from imgate's own attachment store (never an arbitrary URL: it would tell that site
// who looks at the profile, and when).

import { ImClient, ImClosed, ImLost } from "./imclient.js";

const REACTIONS = ["👍", "❤️", "😂"];
const PAGE = 30;               // history page
const THUMB_SIDE = 320;        // longest side of a thumbnail, px
const AVATAR_SIDE = 256;       // an avatar is sent as a JPEG this large at most
const TYPING_EVERY_MS = 2000;  // at most one typing event per this (the server allows 2/s)
const TYPING_SHOWN_MS = 4000;  // how long "x is typing" stays after the last event
const KEY_RE = /^[0-9A-HJKMNP-TV-Z]{26}[0-9a-f]{16}$/;  // an attachment key (protocol.md §3)

const $ = (sel, root = document) => root.querySelector(sel);
const tid = (id) => $(`[data-testid="${id}"]`);

/** An element: attrs (class, testid, on*, others as attributes) and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "testid") e.dataset.testid = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

// ---------------------------------------------------------------------------------------------
// State

const S = {
  cfg: null, im: null, me: "", device: "",
  convs: new Map(),     // conv -> conversations item (+ draft: true for a 1:1 not started yet)
  current: null,        // open conv id
  msgs: new Map(),      // id -> message of the open conversation
  hasMore: false, loadingOlder: false,
  profiles: new Map(),  // uid -> profile (name: the server's display name, else "")
  bots: new Set(),      // uids seen to be bots (a message or a profile said "bot": true)
  wanted: new Set(), wantTimer: null,  // uids whose profiles are to be fetched (batched)
  presence: new Map(),  // uid -> Map(device -> online)
  watched: new Set(),   // uids whose presence topics we subscribed
  blocked: new Set(),
  peerRead: new Map(),  // conv -> highest seq another member has read (conversations' peer_read_seq, read events)
  replyTo: null, editing: null,
  urls: new Map(),      // attachment key -> {url, exp}
  urlQueue: new Map(),  // key -> [resolve...], flushed in batches of 50
  typingAt: 0, typingTimers: new Map(),
  thread: null,         // the open thread: {conv, root, rootMsg, replies: Map(id -> reply)}
};

const rpc = (method, params) => S.im.rpc(method, params);

// ---------------------------------------------------------------------------------------------
// Errors: every server error is shown, never swallowed (a connection's end is said once, by
// connect()'s handlers, not again by each call it cut short).

function showError(err) {
  if (err instanceof ImClosed) return;  // the connection's end is said once, by its own handler
  const box = tid("error");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
  console.error(err);
}
tid("error").addEventListener("click", () => { tid("error").hidden = true; });

/** Runs an async action, showing its error. */
const guard = (fn) => (...args) => Promise.resolve().then(() => fn(...args)).catch(showError);
/** The same for what the page does by itself and does again after a reconnect (resync): a
 * connection lost under it is not an error to show. */
const quietly = (fn) => (...args) => Promise.resolve().then(() => fn(...args))
  .catch((err) => { if (!(err instanceof ImLost)) showError(err); });

// ---------------------------------------------------------------------------------------------
// Sign-in, and the connection's end

async function start() {
  const res = await fetch("config.json");
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  S.cfg = await res.json();
  if (!S.cfg.mqtt_url) throw new Error("the server has no MQTT over WebSocket listener for this page (config.json: mqtt_url is null)");
  const saved = JSON.parse(sessionStorage.getItem("imgate.login") || "null");
  if (saved) connect(saved);
  else showLogin();
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const login = { uid: f.get("uid").trim(), device: f.get("device").trim() || "web", token: f.get("token").trim() };
  tid("error").hidden = true;
  connect(login);
});

tid("logout").addEventListener("click", () => {
  sessionStorage.removeItem("imgate.login");
  S.im?.close();
  location.reload();
});

/** The sign-in form, filled in with the login that just failed (if any). */
function showLogin(login) {
  $("#chat").hidden = true;
  const form = $("#login");
  if (login) for (const k of ["uid", "device", "token"]) form.elements[k].value = login[k];
  form.hidden = false;
}

/** Forgets what a previous sign-in of this tab had shown. */
function reset() {
  for (const k of ["convs", "msgs", "profiles", "presence", "peerRead", "urls"]) S[k].clear();
  S.watched.clear();
  S.wanted.clear();
  S.blocked = new Set();
  S.current = null;
  tid("conv-list").replaceChildren();
  tid("messages").replaceChildren();
  $("#composer").hidden = true;
  showView("list");
}

function connect(login) {
  const { uid, device, token } = login;
  reset();
  S.me = uid;
  S.device = device;
  tid("login").hidden = true;
  tid("me").textContent = `${uid} · ${device}`;
  tid("connecting").hidden = false;
  tid("connecting-url").textContent = S.cfg.mqtt_url;
  const im = new ImClient({ url: S.cfg.mqtt_url, prefix: S.cfg.topic_prefix, uid, device, token });
  S.im = im;
  im.on("state", (state) => setConn(state === "connecting" ? "connecting…" : state === "stopped" ? "offline" : state));
  im.on("online", ({ first }) => {
    tid("connecting").hidden = true;
    if (first) {
      sessionStorage.setItem("imgate.login", JSON.stringify(login));  // kept once it has worked
      $("#chat").hidden = false;
      guard(loadAll)();
    } else quietly(resync)();  // lost under a new disconnection: done again on the next reconnect
  });
  // Never got in (refused, TLS not trusted, sign-in refused, closed by the server): say so with
  // the URL, and ask again; a reload does not try it again by itself.
  im.on("failed", ({ url, reason }) => {
    tid("connecting").hidden = true;
    sessionStorage.removeItem("imgate.login");
    showLogin(login);
    showError(`Could not connect to ${url}: ${reason}`);
  });
  // Signed out by the server (token revoked, user disabled, the device signed in elsewhere).
  im.on("ended", ({ reason }) => {
    sessionStorage.removeItem("imgate.login");
    showLogin({ uid, device, token: "" });
    showError(`Disconnected from ${S.cfg.mqtt_url}: ${reason}`);
  });
  im.on("message", onMessage);
  im.on("event", onEvent);
  watchFeatures(im);
  im.on("presence", onPresence);
  im.on("error", showError);
  im.connect();
}

function setConn(text) {
  const c = tid("connection");
  c.textContent = text;
  c.dataset.state = text;
}

async function loadAll() {
  await loadProfiles([S.me]);
  renderMe();
  const [blocks] = await Promise.all([rpc("block.list"), loadConversations()]);
  S.blocked = new Set(blocks.blocked);
  renderHead();
  await loadScheduled();
}

/** After a reconnect: refresh the list (the open conversation's gap is imclient's to repair). */
async function resync() {
  S.profiles.clear();  // profile events missed while offline
  await loadProfiles([S.me, ...S.watched]);
  renderMe();
  await loadConversations();
  markRead();
  await loadScheduled();
}

// ---------------------------------------------------------------------------------------------
// Names and avatars: the profile's name (the server falls back to the account name), else the uid.

const peerOf = (conv) => conv.startsWith("d:") ? (conv.split(":").slice(1).find((u) => u !== S.me) ?? S.me) : null;
const directConv = (uid) => `d:${[S.me, uid].sort().join(":")}`;

function nameOf(uid) {
  const p = S.profiles.get(uid);
  if (!p) wantProfile(uid);
  return p?.name || uid;
}

// Bots (docs/bots.md): their messages and profiles say "bot": true; the page shows a BOT badge
// next to their names in messages and the conversation list. A uid's kind never changes.
const isBot = (uid) => S.bots.has(uid) || Boolean(S.profiles.get(uid)?.bot);
const botBadge = (uid) => uid && isBot(uid)
  ? el("span", { class: "bot-badge", testid: "bot-badge", title: "a bot" }, "BOT") : null;

function noteBot(uid) {
  if (S.bots.has(uid)) return;
  S.bots.add(uid);
  renderConvs();
}

/** A user's name, kept up to date by refreshNames(). */
const nameEl = (uid, attrs = {}) => el("span", { ...attrs, "data-name-of": uid }, nameOf(uid));

/** A user's avatar: their uploaded picture, else their initial. */
function avatarEl(uid, testid = "avatar") {
  const box = el("span", { class: "avatar", testid, "data-avatar-of": uid, "aria-hidden": "true" });
  fillAvatar(box, uid);
  return box;
}

function fillAvatar(box, uid) {
  const p = S.profiles.get(uid);
  const key = p?.avatar && KEY_RE.test(p.avatar) ? p.avatar : "";  // an https:// avatar is not fetched
  if (key && box.dataset.key === key && box.querySelector("img")) return;  // that picture is shown already
  box.dataset.key = key;
  const face = (content) => box.replaceChildren(content, ...box.querySelectorAll(".dot"));  // a presence dot stays
  face([...nameOf(uid)][0]?.toUpperCase() ?? "?");
  if (key) {
    urlFor(key).then((url) => {
      if (box.dataset.key === key) face(el("img", { src: url, alt: "" }));
    }, () => {});  // no picture: the initial stays
  }
}

function refreshNames() {
  for (const e of document.querySelectorAll("[data-name-of]")) e.textContent = nameOf(e.dataset.nameOf);
  for (const e of document.querySelectorAll("[data-avatar-of]")) fillAvatar(e, e.dataset.avatarOf);
  renderMe();
}

/** Fetches the profiles of uids not seen yet, in one batch per turn of the event loop. */
function wantProfile(uid) {
  if (S.wanted.has(uid) || !S.im) return;
  S.wanted.add(uid);  // asked for or being fetched: not asked for again meanwhile
  if (S.wantTimer) return;
  S.wantTimer = setTimeout(quietly(async () => {
    S.wantTimer = null;
    const uids = [...S.wanted].filter((u) => !S.profiles.has(u));
    try {
      await loadProfiles(uids);
    } finally {
      uids.forEach((u) => S.wanted.delete(u));  // fetched, or to be asked for again
    }
    refreshNames();
    renderConvs();
    renderHead();
  }), 0);
}

async function loadProfiles(uids) {
  const missing = [...new Set(uids)].filter((u) => !S.profiles.has(u));
  for (let i = 0; i < missing.length; i += 200) {
    const batch = missing.slice(i, i + 200);
    const { profiles } = await rpc("profile.get", { uids: batch });
    for (const uid of batch) {
      S.profiles.set(uid, profiles[uid] ?? { uid, name: "", avatar: "", status: "", missing: true });
      if (profiles[uid]?.bot) noteBot(uid);
    }
  }
}

function renderMe() {
  const p = S.profiles.get(S.me);
  tid("me-name").textContent = p?.name || S.me;
  tid("me-status").textContent = p?.status || "";
  fillAvatar(tid("me-avatar"), S.me);
}

// ---------------------------------------------------------------------------------------------
// Profile editing: name, status, avatar

tid("profile-open").addEventListener("click", () => {
  const form = $("#profile");
  const p = S.profiles.get(S.me) ?? {};
  form.elements.name.value = p.name || "";
  form.elements.status.value = p.status || "";
  form.elements.avatar.value = "";
  tid("profile-avatar-remove").hidden = !p.avatar;
  form.hidden = !form.hidden;
});
tid("profile-cancel").addEventListener("click", () => { $("#profile").hidden = true; });

tid("profile-avatar-remove").addEventListener("click", guard(async () => {
  S.profiles.set(S.me, await rpc("profile.set", { avatar: "" }));
  tid("profile-avatar-remove").hidden = true;
  refreshNames();
}));

$("#profile").addEventListener("submit", guard(async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const old = S.profiles.get(S.me) ?? {};
  const params = {};
  const name = f.name.value.trim(), status = f.status.value.trim();
  if (name !== (old.name || "")) params.name = name;
  if (status !== (old.status || "")) params.status = status;
  const file = f.avatar.files[0];
  if (file) {
    const bitmap = await createImageBitmap(file).catch(() => { throw new Error(`${file.name} is not an image`); });
    const small = await scaled(bitmap, AVATAR_SIDE);
    bitmap.close();
    params.avatar = (await upload(small.blob, "image/jpeg", "avatar.jpg")).key;
  }
  if (Object.keys(params).length) S.profiles.set(S.me, await rpc("profile.set", params));
  e.target.hidden = true;
  refreshNames();
  renderConvs();
  renderHead();
}));

// ---------------------------------------------------------------------------------------------
// Conversations

function convTitle(c) {
  if (c.conv.startsWith("g:")) return c.name || "group";
  const peer = c.peer || peerOf(c.conv);
  return peer === S.me ? `${nameOf(peer)} (notes)` : nameOf(peer);
}

async function loadConversations() {
  const drafts = [...S.convs.values()].filter((c) => c.draft);
  const items = [];
  let cursor = null;
  do {
    const page = await rpc("conversations", { limit: 200, ...(cursor ? { cursor } : {}) });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  S.convs = new Map(items.map((c) => [c.conv, c]));
  for (const c of items) {  // how far the other one has read, so "seen" survives a reload
    if (c.peer_read_seq != null) S.peerRead.set(c.conv, Math.max(S.peerRead.get(c.conv) ?? 0, c.peer_read_seq));
  }
  for (const d of drafts) if (!S.convs.has(d.conv)) S.convs.set(d.conv, d);
  const peers = [...new Set(items.map((c) => c.peer).filter(Boolean))];
  await Promise.all([loadProfiles(peers.concat(S.me)), watchPresence(peers.filter((u) => u !== S.me))]);
  renderConvs();
}

function convActivity(c) { return c.last?.ts ?? (c.draft ? Date.now() : 0); }

function renderConvs() {
  const list = tid("conv-list");
  const items = [...S.convs.values()].sort((a, b) => convActivity(b) - convActivity(a));
  for (const c of items) if (c.last?.bot) S.bots.add(c.last.from);
  list.replaceChildren(...items.map((c) => {
    const peer = c.peer || peerOf(c.conv);
    const face = peer ? avatarEl(peer) : el("span", { class: "avatar group", testid: "avatar", "aria-hidden": "true" }, "#");
    if (peer && peer !== S.me) face.append(el("span", { class: "dot", testid: "presence", "data-online": String(isOnline(peer)) }));
    return el("li", {
      testid: "conv-item", "data-conv": c.conv, class: c.conv === S.current ? "active" : "",
      onclick: guard(() => openConv(c.conv)),
    },
    face,
    el("span", { class: "title", testid: "conv-title" }, convTitle(c), peer && peer !== S.me ? botBadge(peer) : null),
    c.unread_mentions > 0 ? el("span", { class: "badge mention", testid: "mention-badge", title: "mentions you" }, `@${c.unread_mentions}`) : null,
    c.unread_threads > 0 ? el("span", { class: "badge threads", testid: "thread-badge",
      title: "threads you follow have unread replies" }, `🧵${c.unread_threads}`) : null,
    c.unread > 0 ? el("span", { class: "badge", testid: "unread" }, String(c.unread)) : null,
    el("span", { class: "preview", testid: "conv-preview" }, c.last ? preview(c.last) : ""));
  }));
}

function preview(m) {
  const who = m.from === S.me ? "you: " : "";
  if (m.type === "text") return who + m.text;
  if (m.type === "recalled") return "message recalled";
  if (m.type === "member") return memberText(m);
  if (m.type === "merged") return `${who}[chat history]`;
  if (m.type === "ttl" || m.type === "expired") return disappearingText(m);
  return `${who}[${m.type}]${m.text ? ` ${m.text}` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Presence (§5): the presence RPC for the state now, then the retained presence topics.

const isOnline = (uid) => [...(S.presence.get(uid)?.values() ?? [])].some(Boolean);

async function watchPresence(uids) {
  const fresh = uids.filter((u) => !S.watched.has(u));
  if (!fresh.length) return;
  fresh.forEach((u) => S.watched.add(u));
  S.im.watchPresence(fresh);
  for (let i = 0; i < fresh.length; i += 200) {
    const { presence } = await rpc("presence", { uids: fresh.slice(i, i + 200) });
    for (const [uid, p] of Object.entries(presence)) {
      const devices = S.presence.get(uid) ?? new Map();
      for (const d of p.devices) if (!devices.has(d.device)) devices.set(d.device, d.online);
      S.presence.set(uid, devices);
    }
  }
  renderConvs();
  renderHead();
}

function onPresence({ uid, device, online }) {
  const devices = S.presence.get(uid) ?? new Map();
  if (online === null) devices.delete(device);
  else devices.set(device, online);
  S.presence.set(uid, devices);
  renderConvs();
  renderHead();
}

// ---------------------------------------------------------------------------------------------
// The open conversation (on a narrow screen, the list and the conversation are two screens)

function showView(view) {
  $("#chat").dataset.view = view;
}

/** Back to the list (a narrow screen): the conversation is closed, so nothing is read unseen. */
tid("back").addEventListener("click", () => {
  if (S.current) S.im.unfollow(S.current);
  S.current = null;
  S.msgs.clear();
  tid("messages").replaceChildren();
  $("#composer").hidden = true;
  tid("chat-title").textContent = "Pick a conversation";
  for (const id of ["chat-sub", "typing"]) tid(id).textContent = "";
  for (const id of ["chat-avatar", "chat-presence", "block-toggle", "threads-open", "ttl-select", "ttl-label"]) tid(id).hidden = true;
  renderScheduled();
  showView("list");
  renderConvs();
});

async function openConv(conv) {
  if (S.current) S.im.unfollow(S.current);
  if (S.thread && S.thread.conv !== conv) closeThread();
  S.current = conv;
  S.msgs.clear();
  S.hasMore = false;
  setComposerMode(null);
  clearSelection();
  showView("conv");
  tid("messages").replaceChildren();
  tid("typing").textContent = "";
  $("#composer").hidden = false;
  renderConvs();
  renderHead();
  openedConv(conv);
  renderScheduled();
  const c = S.convs.get(conv);
  if (c?.draft) return;
  const page = await rpc("history", { conv, limit: PAGE });
  if (S.current !== conv) return;
  S.hasMore = page.has_more;
  page.messages.forEach(putMessage);
  S.im.follow(conv, Math.max(0, ...page.messages.map((m) => m.seq)));  // gaps from here on are repaired
  scrollToEnd();
  markRead();
  await fillUp();
}

/** Loads older pages while the list does not fill its box (no scroll bar: no scroll event). */
async function fillUp() {
  while (S.hasMore && list().scrollHeight <= list().clientHeight && !S.loadingOlder) await loadOlder();
}

function renderHead() {
  const conv = S.current;
  const title = tid("chat-title"), sub = tid("chat-sub"), dot = tid("chat-presence"), block = tid("block-toggle");
  const face = tid("chat-avatar");
  if (!conv) return;
  const c = S.convs.get(conv);
  title.textContent = c ? convTitle(c) : conv;
  const peer = peerOf(conv);
  const direct = peer && peer !== S.me;
  dot.hidden = !direct;
  block.hidden = !direct;
  face.hidden = !peer;
  if (peer) { face.dataset.avatarOf = peer; fillAvatar(face, peer); }
  renderTtl(c);
  renderThreadsButton(c);
  if (direct) {
    const online = isOnline(peer);
    dot.dataset.online = String(online);
    const status = S.profiles.get(peer)?.status;
    sub.textContent = `${peer} · ${online ? "online" : "offline"}${status ? ` · ${status}` : ""}`;
    block.textContent = S.blocked.has(peer) ? "Unblock" : "Block";
  } else sub.textContent = conv.startsWith("g:") ? "group" : "notes to self";
}

tid("block-toggle").addEventListener("click", guard(async () => {
  const peer = peerOf(S.current);
  const r = await rpc(S.blocked.has(peer) ? "block.remove" : "block.add", { uid: peer });
  if (r.blocked) S.blocked.add(r.uid); else S.blocked.delete(r.uid);
  renderHead();
}));

const list = () => tid("messages");
const nearEnd = () => list().scrollHeight - list().scrollTop - list().clientHeight < 60;
const scrollToEnd = () => { list().scrollTop = list().scrollHeight; };

list().addEventListener("scroll", () => {
  if (list().scrollTop < 40 && S.hasMore && !S.loadingOlder) guard(loadOlder)();
});

async function loadOlder() {
  const conv = S.current;
  const oldest = Math.min(...[...S.msgs.values()].map((m) => m.seq));
  S.loadingOlder = true;
  try {
    const page = await rpc("history", { conv, before_seq: oldest, limit: PAGE });
    if (S.current !== conv) return;
    const before = list().scrollHeight;
    S.hasMore = page.has_more;
    page.messages.forEach(putMessage);
    list().scrollTop += list().scrollHeight - before;  // keep what was on screen in place
  } finally {
    S.loadingOlder = false;
  }
}

/** Adds or replaces a message of the open conversation, in seq order. */
function putMessage(m) {
  if (m.type === "expired") { dropMessages([m.id]); return; }  // gone for everyone (disappearing messages)
  S.msgs.set(m.id, m);
  if (m.bot) noteBot(m.from);
  const li = renderMessage(m);
  const old = list().querySelector(`[data-id="${CSS.escape(m.id)}"]`);
  if (old) { old.replaceWith(li); return; }
  const after = [...list().children].find((x) => Number(x.dataset.seq) > m.seq);
  list().insertBefore(li, after ?? null);
  updateSeen();
}

function updateMessage(id, change) {
  const m = S.msgs.get(id);
  if (!m) return;
  change(m);
  putMessage(m);
}

function fmtTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderMessage(m) {
  const mine = m.from === S.me;
  if (m.type === "member") {
    return el("li", { class: "msg system", testid: "message", "data-id": m.id, "data-seq": m.seq }, memberText(m));
  }
  if (m.type === "ttl") return renderTtlChange(m);
  const li = el("li", {
    class: `msg${mine ? " mine" : ""}`, testid: "message", "data-id": m.id, "data-seq": m.seq,
    "data-from": m.from, "data-mine": String(mine), tabindex: -1,  // a tap focuses it: its actions show
    "data-selected": String(FWD.selected.has(m.id)),
  });
  li.append(el("div", { class: "meta" }, mine ? null : avatarEl(m.from, "msg-avatar"),
    nameEl(m.from, { class: "from", testid: "msg-from" }), botBadge(m.from), el("time", {}, fmtTime(m.ts))));
  if (m.reply) {
    const q = m.reply;
    const what = q.type === "recalled" ? "message recalled" : q.type === "expired" ? "message disappeared"
      : q.excerpt || `[${q.type}]`;
    li.append(el("div", { class: "quote", testid: "msg-quote" },
      nameEl(q.from, { class: "from" }), " ", el("span", { testid: "msg-quote-text" }, what)));
  }
  if (m.forwarded && m.type !== "recalled") li.append(forwardedLine(m.forwarded));
  if (m.type === "recalled") li.append(el("div", { class: "recalled", testid: "msg-text" }, "message recalled"));
  else {
    if (m.type === "merged") li.append(renderMerged(m));
    if (m.attachment) li.append(renderAttachment(m));
    if (typeof m.text === "string") li.append(el("div", { class: "text", testid: "msg-text" }, m.text));
    else if (m.type === "custom") li.append(el("div", { class: "text custom" }, "[custom message]"));
  }
  if (m.type !== "recalled") li.append(renderReactions(m));
  li.append(threadLink(m));
  const foot = el("div", { class: "foot" });
  if (m.type !== "recalled") foot.append(renderActions(m));
  if (m.edited_at) foot.append(el("span", { class: "edited", testid: "msg-edited" }, "edited"));
  if (mine) foot.append(el("span", { class: "status", testid: "msg-status" }));
  if (m.expires_at) foot.append(expiresMark(m));
  li.append(foot);
  decorateMessage(li, m);
  return li;
}

function memberText(m) {
  const d = m.data || {};
  const who = (uids) => (uids || []).filter((u) => u !== m.from).map(nameOf).join(", ");
  const by = nameOf(m.from);
  let text = `${by} changed the group`;
  if (d.event === "created") text = `${by} created the group${who(d.added) ? ` with ${who(d.added)}` : ""}`;
  else if (d.event === "added") text = `${by} added ${who(d.added)}`;
  else if (d.event === "removed") text = `${by} removed ${who(d.removed)}`;
  else if (d.event === "left") text = `${by} left`;
  return d.owner ? `${text} · ${nameOf(d.owner)} is the owner now` : text;
}

function renderReactions(m) {
  const row = el("div", { class: "reactions", testid: "reactions" });
  const mine = new Set(m.my_reactions || []);
  for (const [emoji, count] of Object.entries(m.reactions || {})) {
    if (count <= 0) continue;
    row.append(el("button", {
      type: "button", class: `chip${mine.has(emoji) ? " own" : ""}`, testid: "reaction", "data-emoji": emoji,
      "data-mine": String(mine.has(emoji)), onclick: guard(() => toggleReaction(m, emoji)),
    }, `${emoji} ${count}`));
  }
  return row;
}

/** The message's actions: in its own footer (shown on hover or focus, always on touch screens). */
function renderActions(m) {
  const mine = m.from === S.me;
  const bar = el("span", { class: "actions", testid: "msg-actions" });
  bar.append(el("button", { type: "button", testid: "reply-btn", onclick: () => setComposerMode({ reply: m }) }, "Reply"));
  bar.append(el("button", { type: "button", testid: "thread-btn", onclick: guard(() => openThread(m.thread ?? m.id)) }, "Thread"));
  for (const emoji of REACTIONS) {
    bar.append(el("button", { type: "button", testid: "react-btn", "data-emoji": emoji,
      onclick: guard(() => toggleReaction(m, emoji)) }, emoji));
  }
  bar.append(...forwardActions(m));
  if (mine && m.type === "text" && !m.forwarded) {
    bar.append(el("button", { type: "button", testid: "edit-btn", onclick: () => setComposerMode({ edit: m }) }, "Edit"));
  }
  if (mine) bar.append(el("button", { type: "button", testid: "recall-btn", onclick: guard(() => rpc("recall", { id: m.id })) }, "Recall"));
  return bar;
}

async function toggleReaction(m, emoji) {
  const own = (S.msgs.get(m.id)?.my_reactions || []).includes(emoji);
  await rpc(own ? "reaction.remove" : "reaction.add", { id: m.id, emoji });
  // the reaction event updates the counts, for this device and the others alike
}

/** "seen" on the newest own message that another member has read. */
function updateSeen() {
  const read = S.peerRead.get(S.current) ?? 0;
  let newest = null;
  for (const li of list().querySelectorAll(".msg.mine")) {
    li.querySelector(".status").textContent = "";
    if (Number(li.dataset.seq) <= read) newest = li;
  }
  if (newest) newest.querySelector(".status").textContent = "seen";
}

function markRead() {
  const c = S.convs.get(S.current);
  if (!c || c.draft || document.visibilityState !== "visible" || S.im?.state !== "online") return;
  const seq = Math.max(c.last_seq || 0, ...[...S.msgs.values()].map((m) => m.seq));
  if (seq <= (c.read_seq || 0)) return;
  c.read_seq = seq;
  quietly(async () => {
    const r = await rpc("read", { conv: c.conv, seq });
    const cur = S.convs.get(r.conv);
    if (cur) { cur.read_seq = Math.max(cur.read_seq || 0, r.read_seq); cur.unread = r.unread; renderConvs(); }
  })();
}
document.addEventListener("visibilitychange", markRead);

// ---------------------------------------------------------------------------------------------
// Attachments

function renderAttachment(m) {
  const a = m.attachment;
  const box = el("div", { class: "attachment" });
  if (!a.key) {  // an external URL: nothing the server checked, shown as a link only
    const safe = typeof a.url === "string" && a.url.startsWith("https://");
    box.append(el("a", { testid: "msg-file", href: safe ? a.url : null, target: "_blank", rel: "noopener noreferrer" },
      a.name || a.url || m.type));
  } else if (m.type === "image" || (a.mime || "").startsWith("image/")) {
    const shown = a.thumbnail || a;
    const img = el("img", { testid: "msg-image", alt: a.name || "image",
      width: shown.width, height: shown.height, class: "thumb" });
    img.addEventListener("click", guard(async () => openLightbox(await urlFor(a.key))));
    urlFor(shown.key).then((u) => { img.src = u; }, showError);
    box.append(img);
  } else {
    const link = el("a", { testid: "msg-file", target: "_blank", rel: "noopener" }, `${a.name || m.type} (${fmtSize(a.size)})`);
    urlFor(a.key).then((u) => { link.href = u; }, showError);
    box.append(link);
  }
  return box;
}

const fmtSize = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB` : `${(n / 1048576).toFixed(1)} MB`;

function openLightbox(url) {
  const img = tid("lightbox-image");
  img.src = url;
  tid("lightbox").hidden = false;
}
tid("lightbox").addEventListener("click", () => { tid("lightbox").hidden = true; tid("lightbox-image").removeAttribute("src"); });

/** A signed URL for an attachment key (file.url, batched up to 50 keys, cached until it expires). */
function urlFor(key) {
  const hit = S.urls.get(key);
  if (hit && hit.exp > Date.now() + 30000) return Promise.resolve(hit.url);
  return new Promise((resolve, reject) => {
    const waiting = S.urlQueue.get(key) ?? [];
    waiting.push({ resolve, reject });
    S.urlQueue.set(key, waiting);
    if (S.urlQueue.size === 1 && waiting.length === 1) setTimeout(flushUrls, 0);
  });
}

async function flushUrls() {
  const queue = S.urlQueue;
  S.urlQueue = new Map();
  const keys = [...queue.keys()];
  for (let i = 0; i < keys.length; i += 50) {
    const batch = keys.slice(i, i + 50);
    try {
      const { urls, expires_at: exp } = await rpc("file.url", { keys: batch });
      for (const k of batch) {
        const url = urls[k];
        if (typeof url === "string" && /^https?:\/\//.test(url)) {
          S.urls.set(k, { url, exp });
          queue.get(k).forEach((w) => w.resolve(url));
        } else queue.get(k).forEach((w) => w.reject(new Error("attachment not available")));
      }
    } catch (err) {
      batch.forEach((k) => queue.get(k).forEach((w) => w.reject(err)));
    }
  }
}

async function sha256Hex(blob) {
  if (!crypto.subtle) throw new Error("uploads need a secure page: https, or http on localhost");
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** file.upload, then PUT the bytes where it says; returns the attachment fields. */
async function upload(blob, mime, name) {
  const sha256 = await sha256Hex(blob);
  const r = await rpc("file.upload", { mime, size: blob.size, sha256, ...(name ? { name: name.slice(0, 255) } : {}) });
  const res = await fetch(r.url, { method: r.method || "PUT", headers: r.headers || {}, body: blob });
  if (!res.ok) throw new Error(`upload of ${name || "thumbnail"}: HTTP ${res.status}`);
  return { key: r.key, mime, size: blob.size, sha256 };
}

/** The image as a JPEG whose longest side is `side` px at most. */
async function scaled(bitmap, side) {
  const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  const canvas = el("canvas", { width: Math.max(1, Math.round(bitmap.width * scale)),
    height: Math.max(1, Math.round(bitmap.height * scale)) });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";  // JPEG has no alpha
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((res) => canvas.toBlob(res, "image/jpeg", 0.8));
  if (!blob) throw new Error("could not make a thumbnail");
  return { blob, width: canvas.width, height: canvas.height };
}

async function sendFile(file) {
  const max = S.cfg.max_attachment_bytes;
  if (max && file.size > max) throw new Error(`${file.name} is larger than ${fmtSize(max)}`);
  const mime = file.type || "application/octet-stream";
  const attachment = { ...(await upload(file, mime, file.name)), name: file.name.slice(0, 255) };
  let type = "file";
  if (mime.startsWith("image/")) {
    type = "image";
    const bitmap = await createImageBitmap(file);
    attachment.width = bitmap.width;
    attachment.height = bitmap.height;
    const t = await scaled(bitmap, THUMB_SIDE);
    bitmap.close();
    attachment.thumbnail = { ...(await upload(t.blob, "image/jpeg")), width: t.width, height: t.height };
  } else if (mime.startsWith("audio/")) type = "audio";
  else if (mime.startsWith("video/")) type = "video";
  const text = $("#composer").elements.text.value.trim();
  const later = laterAt();
  await S.im.send({ ...target(), type, attachment, ...(text ? { text } : {}),
    ...(S.replyTo ? { reply_to: S.replyTo.id } : {}), ...later });
  if (later.at) setLater(false);
  if (text) $("#composer").elements.text.value = "";
  setComposerMode(null);
}

tid("composer-file").addEventListener("change", guard(async (e) => {
  const file = e.target.files[0];
  e.target.value = "";
  if (file) await sendFile(file);
}));

// ---------------------------------------------------------------------------------------------
// Composer: send, reply, edit, typing

function target() {
  const conv = S.current;
  return conv.startsWith("g:") ? { group: conv.slice(2) } : { to: peerOf(conv) };
}

function setComposerMode(mode) {
  S.replyTo = mode?.reply ?? null;
  S.editing = mode?.edit ?? null;
  const bar = tid("composer-bar"), input = $("#composer").elements.text;
  bar.hidden = !mode;
  if (S.replyTo) tid("composer-bar-text").textContent = `Replying to ${nameOf(S.replyTo.from)}: ${S.replyTo.text ?? `[${S.replyTo.type}]`}`;
  if (S.editing) {
    tid("composer-bar-text").textContent = "Editing your message";
    input.value = S.editing.text;
  }
  if (mode) input.focus();
}
tid("composer-bar-cancel").addEventListener("click", () => {
  if (S.editing) $("#composer").elements.text.value = "";
  setComposerMode(null);
});

$("#composer").addEventListener("submit", guard(async (e) => {
  e.preventDefault();
  const input = e.target.elements.text;
  const text = input.value.trim();
  if (!text || !S.current) return;
  if (S.cfg.max_text && text.length > S.cfg.max_text) throw new Error(`a message has at most ${S.cfg.max_text} characters`);
  if (S.editing) {
    await rpc("edit", { id: S.editing.id, text });
  } else {
    const later = laterAt();
    noteDroppedMentions(await S.im.send({ ...target(), type: "text", text,
      ...(S.replyTo ? { reply_to: S.replyTo.id } : {}), ...mentionsFor(text), ...later }));
    if (later.at) setLater(false);
  }
  input.value = "";
  setComposerMode(null);
}));

$("#composer").elements.text.addEventListener("input", () => {
  const c = S.convs.get(S.current);
  if (!c || c.draft || S.editing || Date.now() - S.typingAt < TYPING_EVERY_MS) return;
  S.typingAt = Date.now();
  S.im.event({ type: "typing", conv: c.conv });
});

function showTyping(conv, from, on) {
  const key = `${conv} ${from}`;
  clearTimeout(S.typingTimers.get(key));
  if (on) S.typingTimers.set(key, setTimeout(() => showTyping(conv, from, false), TYPING_SHOWN_MS));
  else S.typingTimers.delete(key);
  const who = [...S.typingTimers.keys()].filter((k) => k.startsWith(`${S.current} `)).map((k) => nameOf(k.split(" ")[1]));
  tid("typing").textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
}

// ---------------------------------------------------------------------------------------------
// Incoming messages and events

function onMessage(m) {
  let c = S.convs.get(m.conv);
  if (!c || c.draft) {  // a new conversation: the list tells its name and counters
    guard(async () => { await loadConversations(); if (m.conv === S.current) { renderHead(); markRead(); } })();
  }
  c = S.convs.get(m.conv);
  if (c) {
    if (m.seq >= (c.last?.seq ?? 0)) c.last = m;  // a repaired gap brings older messages after newer ones
    if (m.seq > (c.last_seq || 0)) {
      c.last_seq = m.seq;
      if (m.from === S.me) c.read_seq = Math.max(c.read_seq || 0, m.seq);
      c.unread = Math.max(0, c.last_seq - (c.read_seq || 0));
    }
    renderConvs();
  }
  if (!m.repaired) showTyping(m.conv, m.from, false);  // a message ends its sender's typing
  if (m.thread) onThreadReply(m);
  if (m.conv !== S.current) return;
  const stick = m.from === S.me || nearEnd();
  putMessage(m);
  if (stick) scrollToEnd();
  markRead();
}

function onEvent(ev) {
  const here = ev.conv === S.current;
  switch (ev.type) {
    case "typing":
      if (ev.from !== S.me) showTyping(ev.conv, ev.from, true);
      break;
    case "read": {
      if (ev.from === S.me) {
        const c = S.convs.get(ev.conv);
        if (c && ev.seq > (c.read_seq || 0)) {
          c.read_seq = ev.seq;
          c.unread = Math.max(0, (c.last_seq || 0) - ev.seq);
          renderConvs();
        }
      } else {
        S.peerRead.set(ev.conv, Math.max(S.peerRead.get(ev.conv) ?? 0, ev.seq));
        if (here) updateSeen();
      }
      break;
    }
    case "edit": {
      const c = S.convs.get(ev.conv);
      if (c?.last?.id === ev.id) { c.last = { ...c.last, text: ev.text }; renderConvs(); }
      if (!here) break;
      updateMessage(ev.id, (m) => { m.text = ev.text; m.edited_at = ev.edited_at; });
      for (const m of S.msgs.values()) {
        if (m.reply?.id === ev.id) updateMessage(m.id, (r) => { r.reply = { ...r.reply, excerpt: [...ev.text].slice(0, 100).join("") }; });
      }
      break;
    }
    case "recall": {
      const c = S.convs.get(ev.conv);
      if (c?.last?.id === ev.id) { c.last = { ...c.last, type: "recalled" }; renderConvs(); }
      if (!here) break;
      updateMessage(ev.id, (m) => {
        m.type = "recalled"; m.recalled_by = ev.by;
        delete m.text; delete m.data; delete m.attachment; delete m.reactions; delete m.my_reactions;
        delete m.merged; delete m.forwarded;
      });
      for (const m of S.msgs.values()) {
        if (m.reply?.id === ev.id) updateMessage(m.id, (r) => { r.reply = { ...r.reply, type: "recalled", excerpt: "" }; });
      }
      break;
    }
    case "reaction":
      if (!here) break;
      updateMessage(ev.id, (m) => {
        m.reactions = { ...(m.reactions || {}), [ev.emoji]: ev.count };
        if (ev.count <= 0) delete m.reactions[ev.emoji];
        if (ev.from === S.me) {
          const mine = new Set(m.my_reactions || []);
          if (ev.op === "add") mine.add(ev.emoji); else mine.delete(ev.emoji);
          m.my_reactions = [...mine];
        }
      });
      break;
    case "ttl":
    case "expired":
      onDisappearing(ev, here);
      break;
    case "member":
      guard(loadConversations)();
      if (here) {
        const { type: _t, event, added, removed, owner, name, ...rest } = ev;
        putMessage({ ...rest, type: "member", data: { event, added, removed, owner, name } });
      }
      break;
    case "scheduled":
      onScheduled(ev);
      break;
    case "profile": {
      const { type: _t, ...profile } = ev;
      S.profiles.set(ev.uid, profile);
      refreshNames();
      renderConvs();
      renderHead();
      break;
    }
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Mentions, pins, link previews, read-by (issue 28; docs/protocol.md §3, §4, §6). The wire calls
// are imclient.js's; this section is hooked in by connect() (watchFeatures), openConv()
// (openedConv), renderMessage() (decorateMessage), renderConvs() (the mention badge) and the
// composer's send (mentionsFor).

const MENTION_SHOWN = 8;    // names the autocomplete lists at most
const MAX_MENTIONS = 100;   // the server's cap on one message's mentions
const PIN_JUMP_PAGES = 20;  // older history pages loaded at most to reach a pinned message
const READ_BY_PAGE = 50;    // members shown by the read-by panel (its totals count them all)

const F = {
  groups: new Map(),       // group conv -> group.info (members with roles, settings)
  pins: [], pinsOpen: false, pinsAsked: 0,  // the open conversation's pins, newest first
  pinsBusy: false, pinsDirty: false,        // a `pinned` call under way; another one wanted after it
  picks: { conv: null, names: new Map() },  // "@label" -> uid, picked in the composer
  complete: null,          // the open autocomplete: {start, end, items, at}
  mentionSeqs: new Map(),  // conv -> seqs of unread messages that mention me, seen live
};

/** From connect(): the features' handlers for this client (the state of a previous sign-in goes). */
function watchFeatures(im) {
  F.groups.clear();
  F.mentionSeqs.clear();
  F.pins = [];
  F.picks = { conv: null, names: new Map() };
  im.on("message", onFeatureMessage);
  im.on("event", onFeatureEvent);
  im.on("message", onThreadsMessage);
  im.on("event", onThreadsEvent);
}

const gidOf = (conv) => conv?.startsWith("g:") ? conv.slice(2) : null;

/** A group's info (members, roles, settings), fetched once per opening (and after a change). */
async function groupInfo(conv, fresh = false) {
  const gid = gidOf(conv);
  if (!gid) return null;
  if (!fresh && F.groups.has(conv)) return F.groups.get(conv);
  const info = await S.im.groupInfo(gid);
  F.groups.set(conv, info);
  await loadProfiles(info.members.slice(0, 200).map((x) => x.uid));  // one call; a big group's others as shown
  return info;
}

const myRole = (conv) => F.groups.get(conv)?.members.find((x) => x.uid === S.me)?.role ?? null;
const isAdmin = (conv) => ["owner", "admin"].includes(myRole(conv));
/** Pinning: anyone in a 1:1; in a group per its `pin` setting (the server decides anyway). */
const canPin = (conv) => !gidOf(conv) || F.groups.get(conv)?.pin !== "admins" || isAdmin(conv);
/** Read-by: a group's message, for its sender and the group's owner and admins. */
const canReadBy = (m) => Boolean(gidOf(S.current)) && (m.from === S.me || isAdmin(S.current));

function rerenderMessages(ids = null) {
  for (const m of [...S.msgs.values()]) if (!ids || ids.has(m.id)) putMessage(m);
}

/** From openConv(): the conversation's pins and (a group's) members. */
function openedConv(conv) {
  F.pins = [];
  F.pinsOpen = false;
  renderPins();
  closeMentions();
  closeReadBy();
  openedConvThreads(conv);
  if (S.convs.get(conv)?.draft) return;
  quietly(async () => {
    await Promise.all([refreshPins(conv), groupInfo(conv, true)]);
    if (S.current !== conv || !gidOf(conv)) return;
    renderHead();  // the ttl menu depends on my role
    rerenderMessages();  // their actions depend on my role
    if (document.activeElement === composerInput()) updateMentions();  // `@` typed before the members came
  })();
}

tid("back").addEventListener("click", () => {
  F.pins = [];
  renderPins();
  closeMentions();
  closeReadBy();
});

/** From renderMessage(): the mention highlight, the preview card, the pin and read-by actions. */
function decorateMessage(li, m) {
  if (m.type === "member") return;
  if (m.mentioned && m.from !== S.me) {
    li.classList.add("mentioned");
    li.dataset.mentioned = "true";
  }
  if (m.type === "recalled") return;
  if (m.preview) li.insertBefore(previewCard(m.preview), li.querySelector(".reactions") ?? li.querySelector(".foot"));
  const bar = li.querySelector(".actions");
  if (!bar) return;
  const pinned = isPinned(m.id);
  if (pinned) li.dataset.pinned = "true";
  if (canPin(S.current)) {
    bar.append(el("button", { type: "button", testid: "pin-btn", "data-pinned": String(pinned),
      onclick: guard(() => setPinned(m.id, !pinned)) }, pinned ? "Unpin" : "Pin"));
  }
  if (canReadBy(m)) bar.append(el("button", { type: "button", testid: "read-by-btn", onclick: guard(() => showReadBy(m)) }, "Read by"));
}

function onFeatureMessage(m) {
  const c = S.convs.get(m.conv);
  if (!c || c.draft || !m.mentioned || m.from === S.me || m.seq <= (c.read_seq || 0)) return;
  const seqs = F.mentionSeqs.get(m.conv) ?? new Set();
  if (seqs.has(m.seq)) return;
  seqs.add(m.seq);
  F.mentionSeqs.set(m.conv, seqs);
  c.unread_mentions = (c.unread_mentions || 0) + 1;
  renderConvs();
}

/** My read marker moved (this device or another): the mentions up to it are read. */
function readMentions(conv, seq) {
  const c = S.convs.get(conv);
  if (!c || !c.unread_mentions) return;
  const seqs = F.mentionSeqs.get(conv) ?? new Set();
  if (seq >= (c.last_seq || 0)) {
    c.unread_mentions = 0;
    seqs.clear();
  } else {
    const read = [...seqs].filter((s) => s <= seq);
    read.forEach((s) => seqs.delete(s));
    c.unread_mentions = Math.max(0, c.unread_mentions - read.length);
  }
  renderConvs();
}

function onFeatureEvent(ev) {
  const here = ev.conv === S.current;
  switch (ev.type) {
    case "read":
      if (ev.from === S.me) readMentions(ev.conv, ev.seq);
      break;
    case "pin":
      if (here) pinEvent(ev);
      break;
    case "recall":  // a recall unpins (its own event says so: no pin event follows)
      if (here && isPinned(ev.id)) {
        F.pins = F.pins.filter((p) => p.id !== ev.id);
        renderPins();
      }
      break;
    case "edit":  // an edit drops the stored preview (a new link's preview follows the edit)
      if (!here) break;
      updateMessage(ev.id, (m) => { delete m.preview; });
      for (const p of F.pins) if (p.id === ev.id && p.message) p.message = { ...p.message, text: ev.text };
      renderPins();
      break;
    case "preview": {
      const preview = { url: ev.url, title: ev.title, description: ev.description, image: ev.image };
      const c = S.convs.get(ev.conv);
      if (c?.last?.id === ev.id) c.last = { ...c.last, preview };
      if (!here) break;
      const stick = nearEnd();  // the card makes its message taller: the end stays in view
      updateMessage(ev.id, (m) => { m.preview = preview; });
      if (stick) scrollToEnd();
      break;
    }
    case "member":
      F.groups.delete(ev.conv);
      if (here && !(ev.removed || []).includes(S.me) && !(ev.event === "left" && ev.from === S.me)) {
        quietly(async () => {
          await groupInfo(ev.conv, true);
          if (S.current === ev.conv) { renderHead(); rerenderMessages(); }
        })();
      }
      break;
    case "group": {  // a setting changed (mention_all, pin)
      const info = F.groups.get(ev.conv);
      if (info) Object.assign(info, { mention_all: ev.mention_all, pin: ev.pin });
      if (here) rerenderMessages();
      break;
    }
    default:
      break;
  }
}

// --- Mentions: `@` in the composer lists the conversation's members; a pick is sent as a mention

/** Who can be mentioned here: the peer of a 1:1; a group's other members, and `@all` when the
 * group's `mention_all` lets me. */
function mentionCandidates(conv) {
  const peer = peerOf(conv);
  if (peer) return peer === S.me ? [] : [{ uid: peer, label: nameOf(peer) }];
  const info = F.groups.get(conv);
  if (!info) return [];
  const out = info.members.filter((x) => x.uid !== S.me).map((x) => ({ uid: x.uid, label: nameOf(x.uid) }));
  if (info.mention_all === "members" || isAdmin(conv)) out.unshift({ uid: "@all", label: "all", all: true });
  return out;
}

const composerInput = () => $("#composer").elements.text;

function updateMentions() {
  const input = composerInput();
  const upto = input.value.slice(0, input.selectionStart ?? input.value.length);
  const hit = /(^|\s)@([^\s@]{0,32})$/u.exec(upto);
  if (!hit || !S.current) { closeMentions(); return; }
  const q = hit[2].toLowerCase();
  const matches = (c) => c.uid.toLowerCase().startsWith(q) ||
    c.label.toLowerCase().split(/\s+/).some((word) => word.startsWith(q));
  const items = mentionCandidates(S.current).filter(matches).slice(0, MENTION_SHOWN);
  if (!items.length) { closeMentions(); return; }
  F.complete = { start: upto.length - hit[2].length - 1, end: upto.length, items,
    at: Math.min(F.complete?.at ?? 0, items.length - 1) };
  renderMentions();
}

function renderMentions() {
  const { items, at } = F.complete;
  tid("mention-list").replaceChildren(...items.map((c, i) => el("li", {
    testid: "mention-option", role: "option", "data-uid": c.uid, "aria-selected": String(i === at),
    class: i === at ? "active" : null,
    onmousedown: (e) => { e.preventDefault(); pickMention(i); },  // the composer keeps the focus
  },
  c.all ? el("span", { class: "avatar group", "aria-hidden": "true" }, "@") : avatarEl(c.uid, "mention-avatar"),
  el("span", { testid: "mention-name" }, c.all ? "@all" : c.label),
  el("span", { class: "sub" }, c.all ? "everyone in the group" : c.uid))));
  tid("mention-list").hidden = false;
}

function closeMentions() {
  F.complete = null;
  tid("mention-list").hidden = true;
  tid("mention-list").replaceChildren();
}

function pickMention(i) {
  const c = F.complete?.items[i];
  if (!c) return;
  const input = composerInput();
  const text = `@${c.label} `;
  input.value = input.value.slice(0, F.complete.start) + text + input.value.slice(F.complete.end);
  const caret = F.complete.start + text.length;
  if (F.picks.conv !== S.current) F.picks = { conv: S.current, names: new Map() };
  F.picks.names.set(`@${c.label}`, c.uid);
  closeMentions();
  input.focus();
  input.setSelectionRange(caret, caret);
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A send's `mentions`: the picks of this conversation whose `@name` is still in the text. */
function mentionsFor(text) {
  if (F.picks.conv !== S.current) return {};
  const uids = [...F.picks.names]
    .filter(([label]) => new RegExp(`${escapeRe(label)}(?![\\p{L}\\p{N}_])`, "u").test(text))
    .map(([, uid]) => uid);
  const mentions = [...new Set(uids)].slice(0, MAX_MENTIONS);
  return mentions.length ? { mentions } : {};
}

composerInput().addEventListener("input", updateMentions);
composerInput().addEventListener("click", updateMentions);
composerInput().addEventListener("blur", closeMentions);
composerInput().addEventListener("keydown", (e) => {
  if (!F.complete) return;
  const n = F.complete.items.length;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    F.complete.at = (F.complete.at + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
    renderMentions();
  } else if (e.key === "Enter" || e.key === "Tab") pickMention(F.complete.at);  // not a send
  else if (e.key === "Escape") closeMentions();
  else return;
  e.preventDefault();
});

// --- Pins: the bar at the top of the conversation

const isPinned = (id) => F.pins.some((p) => p.id === id);

function excerpt(m) {
  if (!m) return "a message";
  if (typeof m.text === "string" && m.text) return [...m.text].slice(0, 120).join("");
  return `[${m.type}]`;
}

async function refreshPins(conv = S.current) {
  if (!conv || S.convs.get(conv)?.draft) return;
  const asked = ++F.pinsAsked;  // the latest answer wins
  const r = await S.im.pinned(conv);
  if (S.current !== conv || asked !== F.pinsAsked) return;
  const changed = new Set([...F.pins, ...r.pins].map((p) => p.id));
  F.pins = r.pins;
  renderPins();
  rerenderMessages(changed);
}

/** A pin event of the open conversation: applied as it is when its message is loaded, else the
 * list is asked again (one call at a time, however many events come meanwhile). */
function pinEvent(ev) {
  if (ev.op === "remove" || (ev.op === "add" && S.msgs.has(ev.id))) {
    F.pins = F.pins.filter((p) => p.id !== ev.id);
    if (ev.op === "add") {
      F.pins.push({ id: ev.id, seq: ev.seq, by: ev.by, ts: ev.ts, message: S.msgs.get(ev.id) });
      F.pins.sort((a, b) => b.ts - a.ts);
    }
    renderPins();
    rerenderMessages(new Set([ev.id]));
    return;
  }
  if (F.pinsBusy) { F.pinsDirty = true; return; }
  F.pinsBusy = true;
  const conv = ev.conv;
  quietly(async () => {
    try {
      do {
        F.pinsDirty = false;
        await refreshPins(conv);
      } while (F.pinsDirty && S.current === conv);
    } finally {
      F.pinsBusy = false;
    }
  })();
}

async function setPinned(id, on) {
  const conv = S.current;
  await (on ? S.im.pin(id, conv) : S.im.unpin(id, conv));
  await refreshPins(conv);  // a repeat tells nobody: the list is asked again
}

function renderPins() {
  const pins = F.pins;
  tid("pin-bar").hidden = !pins.length;
  const shown = F.pinsOpen ? pins : pins.slice(0, 1);
  tid("pin-list").replaceChildren(...shown.map((p) => el("li", { testid: "pin", "data-id": p.id, "data-seq": p.seq },
    el("button", { type: "button", class: "pin-go", testid: "pin-go", title: "Go to the message",
      onclick: guard(() => jumpTo(p.id, p.seq)) },
    "📌 ", nameEl(p.message?.from ?? p.by, { class: "from" }), ": ", el("span", { testid: "pin-text" }, excerpt(p.message))),
    canPin(S.current) ? el("button", { type: "button", class: "link", testid: "pin-unpin",
      onclick: guard(() => setPinned(p.id, false)) }, "Unpin") : null)));
  const more = tid("pin-more");
  more.hidden = pins.length < 2;
  more.textContent = F.pinsOpen ? "Show less" : `${pins.length} pinned`;
  more.setAttribute("aria-expanded", String(F.pinsOpen));
}
tid("pin-more").addEventListener("click", () => { F.pinsOpen = !F.pinsOpen; renderPins(); });

/** Scrolls to a message of the open conversation, loading older pages to reach it (a few). */
async function jumpTo(id, seq) {
  const conv = S.current;
  const oldest = () => Math.min(...[...S.msgs.values()].map((m) => m.seq));
  for (let n = 0; n < PIN_JUMP_PAGES && !S.msgs.has(id) && S.hasMore && oldest() > seq; n++) {
    await loadOlder();
    if (S.current !== conv) return;
  }
  const li = list().querySelector(`[data-id="${CSS.escape(id)}"]`);
  if (!li) throw new Error("the pinned message is not loaded: scroll up to it");
  li.scrollIntoView({ block: "center" });
  li.classList.remove("flash");
  void li.offsetWidth;  // the animation starts again
  li.classList.add("flash");
}

// --- Link previews: a card under the message. Its image is not shown: the page's CSP allows
// images from this origin and the attachment store only, and loading it would tell the image's
// host who reads the message, and when (docs/protocol.md, "Link previews").

function previewCard(p) {
  const safe = typeof p.url === "string" && p.url.startsWith("https://");
  let host = "";
  try { host = new URL(p.url).host; } catch { /* shown without its host */ }
  return el("a", { class: "link-card", testid: "link-preview", href: safe ? p.url : null, target: "_blank",
    rel: "noopener noreferrer" },
  host ? el("span", { class: "card-host", testid: "link-preview-host" }, host) : null,
  p.title ? el("strong", { class: "card-title", testid: "link-preview-title" }, p.title) : null,
  p.description ? el("span", { class: "card-desc", testid: "link-preview-description" }, p.description) : null);
}

// --- Read-by: who has read one of my messages in a group (the first page, and the totals)

async function showReadBy(m) {
  const conv = S.current;
  const r = await S.im.readBy(m.id, { conv, limit: READ_BY_PAGE });
  if (S.current !== conv) return;
  const total = r.read_count + r.unread_count;
  const person = (uid, testid) => el("li", { testid, "data-uid": uid }, avatarEl(uid, "read-by-avatar"), nameEl(uid, { testid: "read-by-name" }));
  tid("read-by-title").textContent = `Read by ${r.read_count} of ${total}`;
  tid("read-by-read-count").textContent = `Read (${r.read_count})`;
  tid("read-by-unread-count").textContent = `Not yet (${r.unread_count})`;
  tid("read-by-read").replaceChildren(...r.read.map((x) => person(x.uid, "read-by-reader")));
  tid("read-by-unread").replaceChildren(...r.unread.map((uid) => person(uid, "read-by-waiting")));
  const rest = total - r.read.length - r.unread.length;
  tid("read-by-more").hidden = rest <= 0;
  tid("read-by-more").textContent = `and ${rest} more`;
  tid("read-by").dataset.id = m.id;
  tid("read-by").hidden = false;
}

function closeReadBy() {
  tid("read-by").hidden = true;
  delete tid("read-by").dataset.id;
}
tid("read-by-close").addEventListener("click", closeReadBy);

// Threads: a root's reply count opens its thread in a pane (its replies, and a composer that
// replies in it); a thread reply shows which thread it is in (protocol.md §3, Threads).

/** Under a message: "N replies" on a thread's root, "in thread" on a reply; both open the thread. */
function threadLink(m) {
  const box = el("div", { class: "thread-link" });
  if (m.replies > 0) {
    box.append(el("button", { type: "button", class: "link", testid: "msg-replies",
      onclick: guard(() => openThread(m.id)) }, `${m.replies} ${m.replies === 1 ? "reply" : "replies"}`));
  } else if (m.thread) {
    box.append(el("button", { type: "button", class: "link", testid: "msg-in-thread",
      onclick: guard(() => openThread(m.thread)) }, "in thread"));
  }
  return box;
}

async function openThread(root) {
  const conv = S.current;
  S.thread = { conv, root, replies: new Map() };
  setThreadMode("thread");
  tid("thread-pane").hidden = false;
  $("#chat").dataset.thread = "open";
  tid("thread-replies").replaceChildren();
  const page = await rpc("history", { conv, thread: root, limit: 200 });
  if (S.thread?.root !== root) return;
  S.thread.rootMsg = page.root;
  tid("thread-root").replaceChildren(renderMessage(page.root));
  page.messages.forEach(putThreadReply);
  $("#thread-composer").elements.text.focus();
  markThreadRead();
}

function closeThread() {
  S.thread = null;
  TH.listConv = null;
  tid("thread-pane").hidden = true;
  delete $("#chat").dataset.thread;
}
tid("thread-close").addEventListener("click", closeThread);

/** Adds or replaces a reply in the open thread, in tseq order, and shows the count. */
function putThreadReply(m) {
  const t = S.thread;
  t.replies.set(m.id, m);
  const li = renderMessage(m);
  li.dataset.tseq = m.tseq;
  const box = tid("thread-replies");
  const old = box.querySelector(`[data-id="${CSS.escape(m.id)}"]`);
  if (old) old.replaceWith(li);
  else box.insertBefore(li, [...box.children].find((x) => Number(x.dataset.tseq) > m.tseq) ?? null);
  const n = Math.max(t.rootMsg?.replies ?? 0, ...[...t.replies.values()].map((r) => r.tseq));
  tid("thread-count").textContent = `${n} ${n === 1 ? "reply" : "replies"}`;
}

/** A thread reply came: its root's count in the conversation, and the pane if it is open. */
function onThreadReply(m) {
  if (m.conv === S.current) {
    const root = S.msgs.get(m.thread);
    if (root && (root.replies ?? 0) < m.tseq) updateMessage(root.id, (r) => { r.replies = m.tseq; });
  }
  if (S.thread?.conv === m.conv && S.thread.root === m.thread) {
    putThreadReply(m);
    markThreadRead();
  }
}

function markThreadRead() {
  const t = S.thread;
  const last = Math.max(0, ...[...(t?.replies.values() ?? [])].map((r) => r.tseq));
  if (!t || !last || document.hidden) return;
  quietly(() => rpc("thread.read", { conv: t.conv, thread: t.root, tseq: last }))();
}

$("#thread-composer").addEventListener("submit", guard(async (e) => {
  e.preventDefault();
  const input = e.target.elements.text;
  const text = input.value.trim();
  const t = S.thread;
  if (!text || !t || t.conv !== S.current) return;
  await S.im.send({ ...target(), type: "text", text, thread: t.root });
  input.value = "";
}));

// Scheduled sends (docs/protocol.md, "Scheduled send"): the clock button sets a time, and Send
// sends with `at`; the open conversation's pending ones are listed above the composer with a
// Cancel each. The list is the server's (schedule.list), kept by the `scheduled` events, which
// every device of the user gets.

const SCHEDULED = new Map();  // schedule id -> schedule (as schedule.list shows it)

async function loadScheduled() {
  SCHEDULED.clear();
  let cursor = null;
  do {
    const page = await rpc("schedule.list", { limit: 100, ...(cursor ? { cursor } : {}) });
    for (const s of page.scheduled) SCHEDULED.set(s.id, s);
    cursor = page.next_cursor;
  } while (cursor);
  renderScheduled();
}

/** `{at}` when a time is set in the composer (it must be in the future), else `{}`. */
function laterAt() {
  if (tid("later-bar").hidden) return {};
  const value = tid("composer-at").value;
  if (!value) throw new Error("pick the time to send it at (or send it now)");
  const at = new Date(value).getTime();
  if (!(at > Date.now())) throw new Error("pick a time in the future to send it at");
  return { at };
}

function setLater(on) {
  tid("later-bar").hidden = !on;
  if (!on) tid("composer-at").value = "";
  else {
    const inAnHour = new Date(Date.now() + 3_600_000);
    inAnHour.setSeconds(0, 0);
    const local = new Date(inAnHour.getTime() - inAnHour.getTimezoneOffset() * 60_000);
    tid("composer-at").value = local.toISOString().slice(0, 19);
    tid("composer-at").focus();
  }
}
tid("composer-later").addEventListener("click", () => setLater(tid("later-bar").hidden));
tid("later-cancel").addEventListener("click", () => setLater(false));

function renderScheduled() {
  tid("composer-later").hidden = !S.current;  // in the conversation's header
  if (!S.current) setLater(false);
  const box = tid("scheduled-list");
  const mine = [...SCHEDULED.values()].filter((s) => s.conv === S.current).sort((a, b) => a.at - b.at);
  box.hidden = mine.length === 0;
  box.replaceChildren(...mine.map((s) => el("li", { testid: "scheduled-item", "data-id": s.id },
    el("time", { testid: "scheduled-at", datetime: new Date(s.at).toISOString() }, `⏰ ${new Date(s.at).toLocaleString()}`),
    el("span", { testid: "scheduled-text" }, s.text ?? `[${s.type}]`),
    el("button", { type: "button", class: "link", testid: "scheduled-cancel",
      onclick: guard(() => rpc("schedule.cancel", { id: s.id })) }, "Cancel"))));
}

function onScheduled(ev) {
  if (ev.op === "add") SCHEDULED.set(ev.id, ev.scheduled);
  else SCHEDULED.delete(ev.id);  // cancelled, sent (the message comes as any), or failed
  if (ev.op === "failed") {
    showError(`A scheduled message (${new Date(ev.at).toLocaleString()}) was not sent: ${ev.error.message} (${ev.error.code})`);
  }
  renderScheduled();
}

// Disappearing messages: a conversation's ttl (either member of a 1:1, a group's owner and
// admins), its changes shown as lines of the conversation, expiring messages marked, expired ones
// removed when the server says so (docs/protocol.md, "Disappearing messages").

const TTL_CHOICES = [3600, 86400, 604800, 2592000, 7776000];  // 1 hour … 90 days

function fmtTtl(s) {
  if (!s) return "off";
  for (const [unit, n] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (s >= n && s % n === 0) return `${s / n} ${unit}${s === n ? "" : "s"}`;
  }
  return `${s} second${s === 1 ? "" : "s"}`;
}

/** The choices the server allows (config.json's min_ttl_s and max_ttl_s), and the current one. */
function ttlChoices(current) {
  const min = S.cfg.min_ttl_s ?? 3600, max = S.cfg.max_ttl_s ?? 7776000;
  const set = new Set([min, ...TTL_CHOICES.filter((s) => s >= min && s <= max)]);
  if (current) set.add(current);
  return [0, ...[...set].sort((a, b) => a - b)];
}

function renderTtl(c) {
  const select = tid("ttl-select");
  select.hidden = !c || c.draft || !canSetTtl(c.conv);
  renderTtlLabel(c);
  if (select.hidden) return;
  const current = c.ttl || 0;
  select.replaceChildren(...ttlChoices(current).map((s) => el("option", { value: s, selected: s === current },
    s ? `⏱ ${fmtTtl(s)}` : "⏱ off")));
  select.value = String(current);
}

tid("ttl-select").addEventListener("change", guard(async (e) => {
  const c = S.convs.get(S.current);
  const ttl = Number(e.target.value);
  try {
    const r = await rpc("conversation.ttl", { conv: c.conv, ttl });
    c.ttl = r.ttl;
  } finally {
    renderTtl(S.convs.get(S.current));  // refused (a plain member of a group): back to what it is
  }
}));

/** A ttl change's line (and the list's preview of it, or of an expired message). */
function disappearingText(m) {
  if (m.type === "expired") return "message disappeared";
  const ttl = m.data?.ttl;
  return ttl ? `${nameOf(m.from)} set messages to disappear after ${fmtTtl(ttl)}`
    : `${nameOf(m.from)} turned disappearing messages off`;
}

function renderTtlChange(m) {
  return el("li", { class: "msg system", testid: "message", "data-id": m.id, "data-seq": m.seq,
    "data-ttl": m.data?.ttl ?? 0 }, el("span", { testid: "ttl-change" }, disappearingText(m)));
}

function expiresMark(m) {
  const at = new Date(m.expires_at);
  return el("span", { class: "expires", testid: "msg-expires", title: `disappears ${at.toLocaleString()}` },
    `⏱ ${fmtTime(m.expires_at)}`);
}

/** Removes messages of the open conversation (expired: nothing of them is kept). */
function dropMessages(ids) {
  for (const id of ids) {
    S.msgs.delete(id);
    list().querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
  }
}

function onDisappearing(ev, here) {
  const c = S.convs.get(ev.conv);
  if (ev.type === "ttl") {
    if (c) c.ttl = ev.ttl;
    if (here) {
      putMessage({ id: ev.id, conv: ev.conv, seq: ev.seq, from: ev.from, ts: ev.ts, type: "ttl", data: { ttl: ev.ttl } });
      renderHead();
    }
    return;
  }
  if (c?.last && ev.ids.includes(c.last.id)) {
    c.last = { ...c.last, type: "expired" };
    delete c.last.text; delete c.last.attachment; delete c.last.data;
    renderConvs();
  }
  if (!here) return;
  dropMessages(ev.ids);
  for (const m of S.msgs.values()) {
    if (m.reply && ev.ids.includes(m.reply.id)) updateMessage(m.id, (r) => { r.reply = { ...r.reply, type: "expired", excerpt: "" }; });
  }
}

// ---------------------------------------------------------------------------------------------
// Side bar: search, new 1:1, new group

$("#search").addEventListener("submit", guard(async (e) => {
  e.preventDefault();
  const q = e.target.elements.q.value.trim();
  const box = tid("search-results");
  const { messages } = await rpc("search", { q });
  box.hidden = false;
  box.replaceChildren(...(messages.length ? messages.map((m) => {
    const c = S.convs.get(m.conv);
    return el("li", { testid: "search-result", "data-conv": m.conv, "data-id": m.id,
      onclick: guard(() => openConv(m.conv)) },
    el("span", { class: "from" }, `${c ? convTitle(c) : m.conv}${m.conv.startsWith("g:") ? ` · ${nameOf(m.from)}` : ""}`),
    el("span", { testid: "search-result-text" }, m.text));
  }) : [el("li", { class: "empty" }, "No messages found")]));
}));
$("#search").elements.q.addEventListener("search", (e) => { if (!e.target.value) tid("search-results").hidden = true; });

$("#new-chat").addEventListener("submit", guard(async (e) => {
  e.preventDefault();
  const uid = e.target.elements.uid.value.trim();
  S.profiles.delete(uid);
  await loadProfiles([uid]);
  if (S.profiles.get(uid)?.missing) throw new Error(`no such user: ${uid}`);
  const conv = directConv(uid);
  if (!S.convs.has(conv)) S.convs.set(conv, { conv, kind: "direct", peer: uid, last: null, unread: 0, draft: true });
  e.target.reset();
  await watchPresence(uid === S.me ? [] : [uid]);
  await openConv(conv);
}));

$("#new-group").addEventListener("submit", guard(async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const members = f.members.value.split(/[\s,]+/).filter(Boolean);
  const r = await rpc("group.create", { name: f.name.value.trim(), members });
  e.target.reset();
  e.target.closest("details").open = false;
  await loadConversations();
  await openConv(r.conv);
}));

// ---------------------------------------------------------------------------------------------
// Forwarding (protocol.md §3, "Forwarding"): one message with its Forward action, or several of
// the open conversation selected and forwarded as one merged message (a chat history card); the
// target is picked from the conversation list. The copy is the server's: nothing is re-uploaded.

const MAX_MERGE = 10;  // messages one merged message holds
const FWD = { selected: new Map() };  // id -> message of the open conversation, in selection order

function forwardActions(m) {
  if (m.type === "recalled" || m.type === "member") return [];
  const picked = FWD.selected.has(m.id);
  return [
    el("button", { type: "button", testid: "forward-btn", onclick: () => openForwardPicker([m.id], false) }, "Forward"),
    el("button", { type: "button", testid: "select-btn", onclick: () => toggleSelected(m) }, picked ? "Unselect" : "Select"),
  ];
}

function toggleSelected(m) {
  if (FWD.selected.has(m.id)) FWD.selected.delete(m.id);
  else if (FWD.selected.size >= MAX_MERGE) {
    showError(`at most ${MAX_MERGE} messages are forwarded together`);
    return;
  } else FWD.selected.set(m.id, m);
  putMessage(m);
  renderSelectBar();
}

function clearSelection() {
  const was = [...FWD.selected.values()];
  FWD.selected.clear();
  was.filter((m) => S.msgs.has(m.id)).forEach(putMessage);
  renderSelectBar();
}

/** "N selected · Forward merged · Cancel", above the composer while something is selected. */
function renderSelectBar() {
  let bar = tid("select-bar");
  if (!bar) {
    bar = el("div", { class: "select-bar", testid: "select-bar", hidden: true },
      el("span", { testid: "select-count" }),
      el("button", { type: "button", testid: "forward-merged",
        onclick: () => openForwardPicker([...FWD.selected.values()].sort((a, b) => a.seq - b.seq).map((x) => x.id), true) },
      "Forward merged"),
      el("button", { type: "button", class: "link", testid: "select-cancel", onclick: clearSelection }, "Cancel"));
    tid("composer-bar").before(bar);
  }
  bar.hidden = FWD.selected.size === 0;
  tid("select-count").textContent = `${FWD.selected.size} selected`;
}

/** The conversations to forward to: a dialog listing them; a click sends the forward there. */
function openForwardPicker(ids, merge) {
  closeForwardPicker();
  const targets = [...S.convs.values()].filter((c) => !c.draft).sort((a, b) => convActivity(b) - convActivity(a));
  const send = (c) => guard(async () => {
    const to = c.conv.startsWith("g:") ? { group: c.conv.slice(2) } : { to: c.peer || peerOf(c.conv) };
    await S.im.send({ ...to, forward: ids, ...(merge ? { merge: true } : {}) });
    closeForwardPicker();
    if (merge) clearSelection();
  });
  const box = el("div", { class: "picker", testid: "forward-picker", role: "dialog", "aria-label": "Forward to" },
    el("div", { class: "picker-card" },
      el("strong", {}, merge ? `Forward ${ids.length} messages as one` : "Forward to"),
      el("ul", {}, ...targets.map((c) => el("li", {},
        el("button", { type: "button", testid: "forward-target", "data-conv": c.conv, onclick: send(c) }, convTitle(c))))),
      el("button", { type: "button", class: "link", testid: "forward-cancel", onclick: closeForwardPicker }, "Cancel")));
  document.body.append(box);
}

function closeForwardPicker() {
  tid("forward-picker")?.remove();
}

/** "Forwarded from X": the original's sender (and its time); never where it was. */
function forwardedLine(f) {
  const where = f.kind === "group" ? "from a group" : f.kind === "direct" ? "from a 1:1 chat" : "";
  const when = f.ts ? new Date(f.ts).toLocaleString() : "";
  return el("div", { class: "forwarded", testid: "msg-forwarded", "data-kind": f.kind,
    title: [where, when].filter(Boolean).join(", ") || null },
  "Forwarded from ", nameEl(f.from, { testid: "msg-forwarded-from" }));
}

/** A merged message: a card listing its messages, each with its sender and its content. */
function renderMerged(m) {
  const items = m.merged?.messages ?? [];
  return el("div", { class: "merged", testid: "msg-merged" },
    el("div", { class: "merged-title" }, `Chat history · ${items.length} message${items.length === 1 ? "" : "s"}`),
    el("ul", {}, ...items.map((item) => el("li", { testid: "merged-item" },
      item.forwarded ? forwardedLine(item.forwarded) : null,
      nameEl(item.from, { class: "from", testid: "merged-from" }), " ",
      item.attachment ? renderAttachment(item) : null,
      typeof item.text === "string" ? el("span", { testid: "merged-text" }, item.text)
        : item.attachment ? null : el("span", { class: "custom" }, `[${item.type}]`)))));
}

// ---------------------------------------------------------------------------------------------
// Threads of a conversation (protocol.md §3, "Threads"): the header's 🧵 opens the thread pane
// as a list of the conversation's threads (the `threads` RPC: root, reply count, last reply, my
// unread replies), a click opens one, and the pane's ‹ goes back to the list. The conversation
// list shows each conversation's `unread_threads` (from `conversations`), asked again when a
// thread reply comes or a thread is read (at most one call at a time, and not more than one a
// second: the count is the server's, from markers the page cannot see).

const THREADS_PAGE = 20;          // threads per page of the list
const THREAD_COUNTS_EVERY_MS = 1000;
const TH = {
  listConv: null,                 // the conversation whose threads the pane lists (list mode)
  items: new Map(), cursor: null, asked: 0,
  countsBusy: false, countsDirty: false, countsFull: false,
};

/** The thread pane shows one thread ("thread") or the conversation's threads ("list"). */
function setThreadMode(mode) {
  const list = mode === "list";
  tid("thread-pane").dataset.mode = mode;
  tid("thread-title").textContent = list ? "Threads" : "Thread";
  tid("thread-root").hidden = list;
  tid("thread-replies").hidden = list;
  $("#thread-composer").hidden = list;
  tid("thread-list").hidden = !list;
  tid("threads-back").hidden = list;
  if (list) tid("thread-count").textContent = "";
  else TH.listConv = null;
}

/** From renderHead(): 🧵 with the open conversation's unread threads. */
function renderThreadsButton(c) {
  const button = tid("threads-open");
  button.hidden = !c || c.draft || c.conv !== S.current;
  const n = c?.unread_threads || 0;
  tid("threads-open-count").textContent = n > 0 ? ` ${n}` : "";
  button.dataset.unread = String(n);
  button.title = n > 0 ? `Threads (${n} with unread replies)` : "Threads";
}

/** From openConv() (through openedConv): a thread list of another conversation closes. */
function openedConvThreads(conv) {
  hideNotice();
  if (TH.listConv && TH.listConv !== conv) closeThread();
}

async function openThreadList(conv = S.current) {
  if (!conv || S.convs.get(conv)?.draft) return;
  S.thread = null;
  setThreadMode("list");
  TH.listConv = conv;
  TH.items = new Map();
  TH.cursor = null;
  tid("thread-items").replaceChildren();
  tid("thread-list-more").hidden = true;
  tid("thread-pane").hidden = false;
  $("#chat").dataset.thread = "open";
  await loadThreadItems(conv, false);
}
tid("threads-open").addEventListener("click", guard(() => openThreadList()));
tid("threads-back").addEventListener("click", guard(() => openThreadList(S.thread?.conv ?? S.current)));
tid("thread-list-more").addEventListener("click", guard(() => loadThreadItems(TH.listConv, true)));

/** A page of the list: the first one again (merged into what is shown), or the next one. */
async function loadThreadItems(conv, more) {
  if (!conv) return;
  const asked = ++TH.asked;
  const r = await rpc("threads", { conv, limit: THREADS_PAGE, ...(more && TH.cursor ? { cursor: TH.cursor } : {}) });
  if (TH.listConv !== conv || asked !== TH.asked) return;
  for (const item of r.items) TH.items.set(item.thread, item);
  if (more || TH.items.size <= r.items.length) TH.cursor = r.next_cursor;
  renderThreadItems();
}

const threadActivity = (item) => item.last?.ts ?? item.root?.ts ?? 0;

function renderThreadItems() {
  const items = [...TH.items.values()].sort((a, b) => threadActivity(b) - threadActivity(a));
  tid("thread-items").replaceChildren(...(items.length ? items.map(threadItem)
    : [el("li", { class: "sub empty", testid: "thread-none" }, "No threads in this conversation yet")]));
  tid("thread-list-more").hidden = !TH.cursor;
}

function threadItem(item) {
  const n = item.replies || 0;
  return el("li", { testid: "thread-item", "data-thread": item.thread, "data-unread": item.unread || 0 },
    el("button", { type: "button", class: "thread-go", testid: "thread-item-open", onclick: guard(() => openThread(item.thread)) },
      el("span", { class: "thread-item-root" },
        nameEl(item.root?.from, { class: "from" }), ": ", el("span", { testid: "thread-item-text" }, excerpt(item.root))),
      el("span", { class: "sub" }, el("span", { testid: "thread-item-replies" }, `${n} ${n === 1 ? "reply" : "replies"}`),
        item.last ? el("span", { class: "thread-item-last" }, " · last: ", nameEl(item.last.from), ": ", excerpt(item.last)) : null)),
    item.unread > 0 ? el("span", { class: "badge", testid: "thread-item-unread", title: "unread replies" }, String(item.unread)) : null);
}

/** `conversations`' unread_threads again: the first page (the conversation a reply just came
 * to is on it), or every page (`full`: a thread read may be of any conversation). */
function refreshThreadCounts(full) {
  TH.countsFull ||= full;
  if (TH.countsBusy) { TH.countsDirty = true; return; }
  TH.countsBusy = true;
  quietly(async () => {
    try {
      do {
        TH.countsDirty = false;
        const all = TH.countsFull;
        TH.countsFull = false;
        let cursor = null;
        do {
          const page = await rpc("conversations", { limit: all ? 200 : 50, ...(cursor ? { cursor } : {}) });
          for (const item of page.items) {
            const c = S.convs.get(item.conv);
            if (c) c.unread_threads = item.unread_threads || 0;
          }
          cursor = all ? page.next_cursor : null;
        } while (cursor);
        renderConvs();
        renderThreadsButton(S.convs.get(S.current));
        if (TH.countsDirty) await new Promise((resolve) => setTimeout(resolve, THREAD_COUNTS_EVERY_MS));
      } while (TH.countsDirty);
    } finally {
      TH.countsBusy = false;
    }
  })();
}

function onThreadsMessage(m) {
  if (!m.thread) return;
  refreshThreadCounts(false);
  if (TH.listConv === m.conv) quietly(() => loadThreadItems(m.conv, false))();
}

function onThreadsEvent(ev) {
  if (ev.type === "thread_read") {
    const item = TH.listConv === ev.conv ? TH.items.get(ev.thread) : null;
    if (item) { Object.assign(item, { read_tseq: ev.read_tseq, unread: ev.unread }); renderThreadItems(); }
    refreshThreadCounts(true);
  } else if ((ev.type === "recall" || ev.type === "edit" || ev.type === "expired") && TH.listConv === ev.conv) {
    quietly(() => loadThreadItems(ev.conv, false))();
  }
  if (["edit", "recall", "reaction", "pin", "preview"].includes(ev.type)) refreshPaneMessage(ev.id);
  if (ev.type === "expired") dropPaneMessages(ev.conv, ev.ids);
}

/** The open thread's copy of a message the conversation's handlers just changed (an edit, a
 * recall, a reaction, a pin, a preview): the pane shows it as the conversation does. */
function refreshPaneMessage(id) {
  const t = S.thread, m = S.msgs.get(id);
  if (!t || !m || t.conv !== S.current) return;
  if (t.root === id) {
    t.rootMsg = { ...m };
    tid("thread-root").replaceChildren(renderMessage(m));
  } else if (t.replies.has(id)) putThreadReply(m);
}

function dropPaneMessages(conv, ids) {
  const t = S.thread;
  if (!t || t.conv !== conv) return;
  for (const id of ids) {
    if (!t.replies.delete(id)) continue;
    tid("thread-replies").querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// A note above the composer about the last send: the mentions the server dropped (a uid that
// is not a member of the conversation now: a stale pick, someone who left; protocol.md §3).

function showNotice(text) {
  tid("notice-text").textContent = text;
  tid("notice").hidden = false;
}

function hideNotice() {
  tid("notice").hidden = true;
  tid("notice-text").textContent = "";
}
tid("notice-close").addEventListener("click", hideNotice);

/** From the composer's send, with its ack: says which mentions were dropped, if any. */
function noteDroppedMentions(ack) {
  const dropped = Array.isArray(ack?.mentions_dropped) ? ack.mentions_dropped : [];
  if (!dropped.length) { hideNotice(); return; }
  const names = dropped.map((u) => u === "@all" ? "@all" : `@${nameOf(u)}`).join(", ");
  showNotice(`Not mentioned: ${names} (not ${dropped.length === 1 ? "a member" : "members"} of this conversation)`);
}

// ---------------------------------------------------------------------------------------------
// The ttl menu (disappearing messages) is offered to who may change it: either member of a 1:1,
// a group's owner and admins. A plain member of a group sees the setting, not the menu.

const canSetTtl = (conv) => !gidOf(conv) || isAdmin(conv);

function renderTtlLabel(c) {
  const label = tid("ttl-label");
  const shown = Boolean(c && !c.draft && c.ttl && tid("ttl-select").hidden);
  label.hidden = !shown;
  label.textContent = shown ? `⏱ ${fmtTtl(c.ttl)}` : "";
  label.title = shown ? `Messages disappear after ${fmtTtl(c.ttl)} (set by the group's owner or admins)` : "";
}

// ---------------------------------------------------------------------------------------------
// The newest message stays in view while the list is at its end when something above or below
// it takes room from it (the pin bar, a note, the scheduled list, the reply bar), as when a
// message comes (a preview card that comes after its message does the same: onFeatureEvent).
// Scrolled up, the list stays where the reader put it.

let listAtEnd = true;
list().addEventListener("scroll", () => { listAtEnd = nearEnd(); });
new ResizeObserver(() => { if (listAtEnd && S.current) scrollToEnd(); }).observe(list());

showView("list");
start().catch(showError);
