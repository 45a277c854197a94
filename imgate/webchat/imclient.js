// imclient.js: imgate's public wire contract (docs/protocol.md) for a browser, over MQTT 5 on a
// WebSocket with MQTT.js. No DOM: a page (app.js here) or any other app imports it.
//
//   import { ImClient } from "./imclient.js";
//   const im = new ImClient({ url: "wss://chat.example.com/mqtt", prefix: "im", uid: "ann",
//                             device: "web", token: "imt_…" });
//   im.on("message", (m) => …);        // every delivered message (live, or repaired after a gap)
//   im.on("failed", ({ url, reason }) => …);  // never got in: the client has stopped
//   im.connect();
//   await im.send({ to: "ben", type: "text", text: "hi" });  // the ack: {cid, id, conv, seq, ts}
//   await im.rpc("history", { conv: "d:ann:ben", limit: 30 });
//
// What it does for its user:
// - connect: MQTT 5, client id `uid:device`, the token as the password; subscribes to the
//   user's inbox; reconnects by itself once it has been in. It stops for good (and says why) when
//   the first connection fails (refused, a TLS certificate the browser does not trust, the
//   sign-in refused, closed before it began), or when the server signs this device out.
// - send: every message gets a `cid` (unique per sender) and stays in an outbox until its ack;
//   after a reconnect it is sent again with the same `cid` (the server stores it once and acks it
//   again); `rate_limited`, `unavailable` and `internal` are retried with the same `cid` too.
// - gap repair: for the conversations it is told to follow (`follow(conv, seq)`), a message whose
//   `seq` skips some, and every reconnect, fetch what was missed with `history` and deliver it as
//   "message" events, in order.
// - rpc: JSON-RPC 2.0 with ids of its own and a timeout; errors reject with an ImError. A call
//   made offline, or whose connection is lost before its answer, rejects at once with an ImLost
//   (it is not repeated: not every call is safe to repeat); one cut short by the client's end,
//   with an ImClosed.
//
// Events (`on(type, fn)`): "state" (connecting | online | offline | stopped), "online"
// ({ first }), "failed" ({ url, reason }), "ended" ({ reason, code }), "message", "event",
// "presence" ({ uid, device, online }: online null when the device's presence was cleared),
// "notify", "error" (an error no call waits for, e.g. an ack without a cid).

const RPC_TIMEOUT_MS = 15000;
const ACK_TIMEOUT_MS = 15000;  // counted while connected only: a message waits out a disconnection
const RETRIED = new Set(["rate_limited", "unavailable", "internal"]);  // the server says: same cid again
const MAX_RETRIES = 5;
// CONNACK reason codes that mean the sign-in itself was refused (retrying is pointless).
const SIGN_IN_REFUSED = new Map([
  [0x85, "client id not valid"], [0x86, "bad user name or token"], [0x87, "not authorized"],
  [0x8a, "banned"], [0x97, "quota exceeded (too many devices)"],
]);
// DISCONNECT reason codes that end this device's session (reconnecting would fight over it).
const SIGNED_OUT = new Map([
  [0x87, "signed out by the server: not authorized any more (token revoked or expired, or the user disabled)"],
  [0x8e, "this device signed in elsewhere"], [0x98, "signed out by the server"],
]);

/** An error answer of the server (an RPC's `error`, or a send's ack). */
export class ImError extends Error {
  constructor(what, error) {
    const code = error?.data?.code || error?.code || "";
    const message = error?.message || "error";
    super(`${what}: ${message}${code && !String(message).includes(code) ? ` (${code})` : ""}`);
    this.code = code;
    this.error = error;
  }
}

/** A call that the connection's end cut short (the end itself is told by "failed" or "ended"). */
export class ImClosed extends Error {}

/** A call made offline, or whose connection was lost before its answer (it may have been done). */
export class ImLost extends Error {}

export class ImClient {
  /**
   * @param {object} o
   * @param {string} o.url the broker's WebSocket URL (config.json's `mqtt_url`)
   * @param {string} o.prefix the topic prefix (config.json's `topic_prefix`)
   * @param {string} o.uid
   * @param {string} o.device
   * @param {string} o.token
   * @param {object} [o.mqtt] MQTT.js (default: the global `mqtt` of vendor/mqtt.min.js)
   */
  constructor({ url, prefix, uid, device, token, mqtt = globalThis.mqtt, rpcTimeoutMs = RPC_TIMEOUT_MS,
    ackTimeoutMs = ACK_TIMEOUT_MS }) {
    Object.assign(this, { url, prefix, uid, device, rpcTimeoutMs, ackTimeoutMs });
    this._token = token;
    this._mqtt = mqtt;
    this._session = Math.random().toString(36).slice(2, 10);
    this._n = 0;
    this._handlers = new Map();
    this._calls = new Map();   // rpc id -> {resolve, reject, timer, what}
    this._outbox = new Map();  // cid -> {body, resolve, reject, timer, tries}
    this._seqs = new Map();    // followed conv -> highest seq delivered
    this._repairing = new Map();  // conv -> the repair under way (one at a time)
    this._client = null;
    this._everOnline = false;
    this._lastError = null;
    this._stopped = false;
    this.state = "offline";
  }

  // ---- events --------------------------------------------------------------------------------
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this._handlers.get(type).delete(fn);
  }

  _emit(type, value) {
    for (const fn of this._handlers.get(type) ?? []) {
      try { fn(value); } catch (err) { console.error(err); }
    }
  }

  _setState(state) {
    this.state = state;
    this._emit("state", state);
  }

  // ---- connection ----------------------------------------------------------------------------
  connect() {
    this._setState("connecting");
    const client = this._mqtt.connect(this.url, {
      protocolVersion: 5, clientId: `${this.uid}:${this.device}`, username: this.uid, password: this._token,
      clean: true, keepalive: 30, reconnectPeriod: 3000, connectTimeout: 10000,
      timerVariant: "native",  // MQTT.js's default keeps its timers in a blob: worker, which a strict CSP forbids
    });
    this._client = client;
    client.on("message", (topic, payload) => this._onPublish(topic, payload));
    client.on("connect", () => {
      client.subscribe(this.topic("in/#"), { qos: 1 }, (err) => {
        if (err) { this._emit("error", err); return; }
        const first = !this._everOnline;
        this._everOnline = true;
        this._setState("online");
        for (const [cid, o] of this._outbox) this._publishSend(cid, o);  // again, same cid
        this._emit("online", { first });
        if (!first) for (const conv of this._seqs.keys()) this._repair(conv);
      });
    });
    client.on("disconnect", (packet) => {
      const why = SIGNED_OUT.get(packet.reasonCode);
      const detail = packet.properties?.reasonString;
      if (why) this._end(why + (detail && detail !== why ? ` (${detail})` : ""), packet.reasonCode);
    });
    client.on("error", (err) => {
      this._lastError = err;
      if (!SIGN_IN_REFUSED.has(err.code)) return;
      const why = `sign-in refused: ${SIGN_IN_REFUSED.get(err.code)}`;
      if (this._everOnline) this._end(`signed out by the server (when reconnecting, ${why})`, err.code);  // e.g. revoked while offline
      else this._fail(why);
    });
    client.on("close", () => {
      for (const o of this._outbox.values()) clearTimeout(o.timer);  // waits for the next connection
      if (this._stopped) return;
      // An answer is not sent again on the next connection (and a call may not be safe to repeat).
      for (const c of this._calls.values()) { clearTimeout(c.timer); c.reject(new ImLost(`${c.what}: the connection was lost before the answer`)); }
      this._calls.clear();
      if (!this._everOnline) this._fail(this._lastError?.message || this._whyNotOpened());
      else this._setState("offline");
    });
    client.on("reconnect", () => this._setState("connecting"));
  }

  /** A WebSocket that never opened: browsers do not tell why (a refusal and a certificate they
   * do not trust look the same to a page), so this says what to check. */
  _whyNotOpened() {
    const refused = "the connection was refused or closed before the sign-in";
    if (!this.url.startsWith("wss://")) return `${refused} (is imgate's WebSocket listener running at this address?)`;
    const https = `https://${new URL(this.url).host}/`;
    return `${refused}: is imgate's WebSocket listener running there, and does this browser trust its ` +
      `certificate? (open ${https} once to see what the browser says)`;
  }

  /** Ends the connection (no reconnecting); pending calls fail. */
  close() {
    this._stop();
  }

  _stop() {
    if (this._stopped) return;
    this._stopped = true;
    this._client?.end(true);
    this._setState("stopped");
    const gone = new ImClosed("the connection was closed");
    for (const c of this._calls.values()) { clearTimeout(c.timer); c.reject(gone); }
    for (const o of this._outbox.values()) { clearTimeout(o.timer); o.reject(gone); }
    this._calls.clear();
    this._outbox.clear();
  }

  _fail(reason) {
    if (this._stopped) return;
    this._stop();
    this._emit("failed", { url: this.url, reason });
  }

  _end(reason, code) {
    if (this._stopped) return;
    this._stop();
    this._emit("ended", { reason, code });
  }

  // ---- wire ----------------------------------------------------------------------------------
  /** `{prefix}/{uid}/{rest}`. */
  topic(rest) { return `${this.prefix}/${this.uid}/${rest}`; }

  nextId() { return `${this.device}-${this._session}-${++this._n}`; }

  _publish(topic, body, qos = 1) {
    this._client.publish(topic, JSON.stringify(body), { qos });
  }

  /** A JSON-RPC call (§6): resolves with its result, rejects with an ImError or a timeout. */
  rpc(method, params, { timeoutMs = this.rpcTimeoutMs } = {}) {
    if (this._stopped) return Promise.reject(new ImClosed(`${method}: not connected`));
    if (this.state !== "online") return Promise.reject(new ImLost(`${method}: not connected (${this.state}): try again when online`));
    const id = this.nextId();
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this._calls.delete(id); reject(new Error(`${method}: no answer`)); }, timeoutMs);
      this._calls.set(id, { resolve, reject, timer, what: method });
    });
    this._publish(this.topic("out/rpc"), { jsonrpc: "2.0", id, method, ...(params ? { params } : {}) });
    return answer;
  }

  /** Sends a message (§3) with a fresh `cid`; resolves with its ack, rejects with its error. */
  send(body) {
    if (this._stopped) return Promise.reject(new ImClosed("send: not connected"));
    const cid = this.nextId();
    return new Promise((resolve, reject) => {
      const o = { body: { cid, ...body }, resolve, reject, timer: null, tries: 0 };
      this._outbox.set(cid, o);
      if (this.state === "online") this._publishSend(cid, o);  // else on the next connection
    });
  }

  _publishSend(cid, o) {
    clearTimeout(o.timer);
    o.timer = setTimeout(() => {
      this._outbox.delete(cid);
      o.reject(new Error("send: no answer"));
    }, this.ackTimeoutMs);
    this._publish(this.topic("out/msg"), o.body);
  }

  /** An event of this user's (typing, §4): QoS 0, nothing waits for it. */
  event(body) {
    if (this.state === "online") this._publish(this.topic("out/event"), body, 0);
  }

  /** Subscribes to presence topics (MQTT.js subscribes again after a reconnect). */
  watchPresence(uids) {
    if (!uids.length || this._stopped) return;
    this._client.subscribe(uids.map((u) => `presence/${u}/+`), { qos: 1 }, (err) => err && this._emit("error", err));
  }

  _onPublish(topic, payload) {
    let body = null;
    const text = new TextDecoder().decode(payload);
    if (text) {
      try { body = JSON.parse(text); } catch { return; }
    }
    if (topic.startsWith("presence/")) {
      const [, uid, device] = topic.split("/");
      this._emit("presence", { uid, device, online: typeof body?.online === "boolean" ? body.online : null });
      return;
    }
    if (!body || typeof body !== "object") return;
    const kind = topic.slice(this.topic("in/").length).split("/")[0];
    if (kind === "rpc") this._answer(body);
    else if (kind === "ack") this._ack(body);
    else if (kind === "msg") this._delivered(body);
    else if (kind === "event") {
      if (body.type === "member") this._delivered(body, true);
      else this._emit("event", body);
    } else if (kind === "notify") {
      if (body.type === "kicked" && body.device === this.device) this._end(`signed out: ${body.reason}`);
      else this._emit("notify", body);
    }
  }

  _answer(body) {
    const c = this._calls.get(body.id);
    if (!c) return;  // another tab's or device's answer
    this._calls.delete(body.id);
    clearTimeout(c.timer);
    if (body.error) c.reject(new ImError(c.what, body.error));
    else c.resolve(body.result);
  }

  _ack(body) {
    if (body.cid === null && body.error) { this._emit("error", new ImError("send", body.error)); return; }
    const o = this._outbox.get(body.cid);
    if (!o) return;
    clearTimeout(o.timer);
    const code = body.error?.code;
    if (code && RETRIED.has(code) && o.tries < MAX_RETRIES) {
      o.tries += 1;
      o.timer = setTimeout(() => { if (this.state === "online") this._publishSend(body.cid, o); },
        body.error.retry_after_ms ?? 1000);
      return;
    }
    this._outbox.delete(body.cid);
    if (body.error) o.reject(new ImError("send", body.error));
    else o.resolve(body);
  }

  // ---- conversation features: mentions, pins, read-by (docs/protocol.md §3, §4) -----------------
  // Mentions travel in a send's body (`mentions`: uids, and `@all` in a group); previews arrive
  // as "preview" events and in a message's `preview` field; pins as "pin" events.

  /** `group.info`: the group's name, owner, members ({uid, role}) and settings (`mention_all`, `pin`). */
  groupInfo(gid) { return this.rpc("group.info", { gid }); }

  /** `pin` / `unpin` a message for every member: resolves with {id, conv, seq, pinned}. */
  pin(id, conv) { return this.rpc("pin", { id, ...(conv ? { conv } : {}) }); }

  unpin(id, conv) { return this.rpc("unpin", { id, ...(conv ? { conv } : {}) }); }

  /** `pinned`: {conv, pins: [{id, seq, by, ts, message}], hidden}, newest pin first. */
  pinned(conv) { return this.rpc("pinned", { conv }); }

  /** `read_by` one message (its sender, or a group's owner and admins): one page of who has read
   * it and who has not, with both totals: {read: [{uid}], unread: [uid], read_count,
   * unread_count, next_cursor}. */
  readBy(id, { conv, cursor, limit } = {}) {
    return this.rpc("read_by", { id, ...(conv ? { conv } : {}), ...(cursor ? { cursor } : {}), ...(limit ? { limit } : {}) });
  }

  // ---- gap repair ----------------------------------------------------------------------------
  /** Follow `conv` from `seq` (the highest the caller has): gaps in it are repaired. */
  follow(conv, seq) {
    this._seqs.set(conv, Math.max(seq, this._seqs.get(conv) ?? 0));
  }

  unfollow(conv) { this._seqs.delete(conv); }

  /** A message (or a member event: `isEvent`) as delivered; repairs the gap before it, if any. */
  _delivered(m, isEvent = false) {
    const known = this._seqs.get(m.conv);
    if (known !== undefined && Number.isInteger(m.seq)) {
      if (m.seq > known + 1) this._repair(m.conv);
      else if (m.seq === known + 1) this._seqs.set(m.conv, m.seq);
    }
    this._emit(isEvent ? "event" : "message", m);
  }

  /** Fetches what `conv` has after the highest seq delivered, as "message" events. */
  _repair(conv) {
    if (this._repairing.has(conv)) return this._repairing.get(conv);
    const run = (async () => {
      for (;;) {
        const after = this._seqs.get(conv);
        if (after === undefined) return;
        const page = await this.rpc("history", { conv, after_seq: after, limit: 200 });
        if (!this._seqs.has(conv)) return;
        for (const m of page.messages) this._emit("message", { ...m, repaired: true });
        if (page.messages.length) this.follow(conv, page.messages.at(-1).seq);
        if (!page.has_more || !page.messages.length) return;
      }
    })().catch((err) => this._emit("error", err)).finally(() => this._repairing.delete(conv));
    this._repairing.set(conv, run);
    return run;
  }
}
