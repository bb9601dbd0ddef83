// What this browser keeps across reloads, per user: the inbox cursor and the
// outbox of messages not yet acknowledged (docs/protocol.md, rule 1).

function load(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

let forgotten = false; // signed out: nothing of this user is written again

function save(key, value) {
  if (forgotten) return;
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the app still works, it just forgets on reload.
  }
}

/** Sign-out: remove what this browser keeps for the user (chat:u<id>:*: the
 * cursor, and the outbox with the text of unsent messages), and keep this page
 * from writing it again. */
export function forgetUser(userId) {
  forgotten = true;
  const prefix = `chat:u${userId}:`;
  try {
    const keys = [];
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (key && key.startsWith(prefix)) keys.push(key);
    }
    for (const key of keys) localStorage.removeItem(key);
  } catch {
    // Storage disabled: there is nothing to remove.
  }
}

/** The highest inbox cursor processed; null for a browser that never synced. */
export class CursorStore {
  constructor(userId) {
    this.key = `chat:u${userId}:cursor`;
    const stored = load(this.key, null);
    this.value = Number.isInteger(stored) && stored >= 0 ? stored : null;
  }

  set(cursor) {
    this.value = cursor;
    save(this.key, cursor);
  }
}

export function newClientMsgId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN name is not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Messages typed but not acknowledged. Each keeps its client_msg_id for good,
 * so resending after a reconnect (or a reload) can never store it twice.
 * status: "pending" (to send / sent, no ack yet) or "failed" (the server said no).
 */
export class Outbox {
  constructor(userId) {
    this.key = `chat:u${userId}:outbox`;
    this.sync();
    // Sent over this page's socket and when (for the ack watchdog); not persisted.
    this.inFlight = new Map();
  }

  /** Read the stored outbox again. Other tabs of the same user share it: each
   * change starts from the stored copy, so no tab overwrites another's entry
   * (a message sent by two tabs is stored once: same client_msg_id). */
  sync() {
    const stored = load(this.key, []);
    this.entries = Array.isArray(stored) ? stored.filter((e) => e && e.client_msg_id) : [];
  }

  persist() {
    save(this.key, this.entries);
  }

  add(conversationId, text) {
    this.sync();
    const entry = {
      client_msg_id: newClientMsgId(),
      conversation_id: conversationId,
      text,
      created_at: new Date().toISOString(),
      status: "pending",
      error: null,
    };
    this.entries.push(entry);
    this.persist();
    return entry;
  }

  get(clientMsgId) {
    return this.entries.find((e) => e.client_msg_id === clientMsgId) || null;
  }

  remove(clientMsgId) {
    this.inFlight.delete(clientMsgId);
    this.sync();
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.client_msg_id !== clientMsgId);
    if (this.entries.length !== before) this.persist();
    return this.entries.length !== before;
  }

  fail(clientMsgId, error) {
    this.sync();
    const entry = this.get(clientMsgId);
    if (!entry) return;
    this.inFlight.delete(clientMsgId);
    entry.status = "failed";
    entry.error = error;
    this.persist();
  }

  retry(clientMsgId) {
    this.sync();
    const entry = this.get(clientMsgId);
    if (!entry) return null;
    entry.status = "pending";
    entry.error = null;
    this.persist();
    return entry;
  }

  pending() {
    return this.entries.filter((e) => e.status === "pending");
  }

  forConversation(conversationId) {
    return this.entries.filter((e) => e.conversation_id === conversationId);
  }

  dropConversation(conversationId) {
    this.sync();
    this.entries = this.entries.filter((e) => e.conversation_id !== conversationId);
    this.persist();
  }
}
