// The web app: wires the store, the socket, the outbox and the views together.
// It speaks only the public protocol (docs/protocol.md) and REST API.

import { api } from "./api.js";
import { setupDirectDialog, setupGroupDialog, setupMembersDialog } from "./dialogs.js";
import { renderConversationList } from "./list.js";
import { Notifier } from "./notify.js";
import { CursorStore, Outbox, forgetUser } from "./outbox.js";
import { ChatConnection } from "./socket.js";
import { ChatStore } from "./store.js";
import { ThreadView } from "./thread.js";

const ACK_TIMEOUT_MS = 10000; // a send unanswered this long means the socket is dead
const DESKTOP = window.matchMedia("(min-width: 721px)");

const boot = JSON.parse(document.getElementById("chat-boot").textContent);
const me = boot.user;
const store = new ChatStore(me);
const cursor = new CursorStore(me.id);
const outbox = new Outbox(me.id);

const root = document.getElementById("chat");
const listEl = document.getElementById("conversation-list");
const listEmpty = document.getElementById("conversation-empty");
const filterEl = document.getElementById("conversation-filter");
const banner = document.getElementById("connection-banner");
const toastEl = document.getElementById("toast");

let loaded = false; // the conversation list came over REST at least once
let live = false; // the socket is in sync (after `ready`): events are news
let activeId = null;
let readies = 0; // `ready` frames handled since the page loaded
let needsReload = false; // a `ready.reset` whose reload has not succeeded yet
const pendingReads = new Map(); // conversation id -> seq, to send once connected

// --- feedback -------------------------------------------------------------------

let toastTimer = null;
function toast(text) {
  toastEl.textContent = text;
  toastEl.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    toastEl.hidden = true;
  }, 5000);
}

// --- rendering, batched: a replay of many events renders once -----------------------

let renderQueued = false;
function refresh() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    renderNow();
  }, 0);
}

function renderNow() {
  const shown = renderConversationList(store, listEl, { activeId, filter: filterEl.value });
  listEmpty.hidden = !loaded || shown > 0;
  listEmpty.textContent = filterEl.value.trim()
    ? "No conversation matches."
    : "No conversations yet. Start one with “New chat” or “New group”.";
  const conv = activeId !== null ? store.conversations.get(activeId) : null;
  if (conv) thread.render();
  membersDialog.refresh(activeId);
  let unread = 0;
  for (const c of store.conversations.values()) unread += store.unread(c);
  document.title = unread ? `(${unread}) Chat` : "Chat";
  // The banner counts the messages waiting to be sent.
  if (outbox.pending().length !== bannerPending) renderBanner();
}

store.addEventListener("change", refresh);

// --- the open conversation ------------------------------------------------------------

const thread = new ThreadView({
  store,
  outbox,
  root: document.getElementById("thread"),
  maxChars: boot.max_message_chars,
  actions: {
    send: sendMessage,
    retry(clientMsgId) {
      serverErrors.delete(clientMsgId);
      const entry = outbox.retry(clientMsgId);
      if (entry) trySend(entry);
      refresh();
    },
    discard(clientMsgId) {
      serverErrors.delete(clientMsgId);
      outbox.remove(clientMsgId);
      refresh();
      thread.focusComposer();
    },
    async edit(message, text) {
      store.applyMessage(await api.editMessage(message.id, text));
      refresh();
    },
    async remove(message) {
      store.applyMessage(await api.deleteMessage(message.id));
      refresh();
    },
    report: (message, draft) => api.reportMessage(message.id, draft),
    loadOlder,
    typing: (conversationId) => connection.send({ type: "typing", conversation_id: conversationId }),
    seen: markSeen,
    openMembers: (conv) => membersDialog.open(conv),
    toast,
  },
});

/** A stored message of ours settles its outbox entry, however it reached us
 * (ack, event, or a history page that raced the ack). */
function settle(messages) {
  for (const message of messages) {
    if (message.sender_id === me.id) outbox.remove(message.client_msg_id);
  }
}

async function loadHistory(conv) {
  if (conv.historyLoaded || conv.loadingHistory) return;
  conv.loadingHistory = true;
  store.beginHistory(conv);
  try {
    const page = await api.history(conv.id, { limit: 50 });
    store.addHistory(conv, page);
    settle(page.messages);
  } catch (error) {
    conv.messages = null; // try again when it is opened again or the socket is back
    toast(`Could not load messages: ${error.detail || error.message}`);
  } finally {
    conv.loadingHistory = false;
  }
  refresh();
}

async function loadOlder(conv) {
  const seqs = [...conv.messages.values()].map((m) => m.seq);
  const before = seqs.length ? Math.min(...seqs) : conv.last_seq + 1;
  conv.loadingOlder = true;
  thread.render();
  try {
    store.addHistory(conv, await api.history(conv.id, { before, limit: 50 }));
  } catch (error) {
    toast(`Could not load older messages: ${error.detail || error.message}`);
  } finally {
    conv.loadingOlder = false;
  }
  if (thread.conv === conv) thread.render({ prepended: true });
}

function markSeen(conv) {
  if (!conv.historyLoaded || store.unread(conv) === 0) return;
  const seq = conv.last_seq;
  conv.last_read_seq = seq; // shown at once; the `read` event confirms it
  if (!connection.send({ type: "read", conversation_id: conv.id, seq })) {
    pendingReads.set(conv.id, seq);
  }
  refresh();
}

async function openConversation(id) {
  activeId = id;
  if (id === null) {
    thread.close();
    root.classList.remove("has-thread");
    refresh();
    return;
  }
  let conv = store.conversations.get(id);
  if (!conv && loaded) {
    try {
      conv = store.upsert(await api.conversation(id));
    } catch {
      toast("That conversation is not available.");
      location.hash = "#/";
      return;
    }
  }
  if (!conv || activeId !== id) return; // still loading; route() runs again after
  root.classList.add("has-thread");
  thread.open(conv);
  if (DESKTOP.matches) thread.focusComposer();
  refresh();
  loadHistory(conv);
}

function route() {
  const match = location.hash.match(/^#\/c\/(\d+)$/);
  openConversation(match ? Number(match[1]) : null);
}
window.addEventListener("hashchange", route);

// --- sending: the outbox ---------------------------------------------------------------

// The server takes 20 frames/s per socket (burst 60) and drops the rest with
// `error {code: "throttled"}`: sends go out at most SEND_RATE a second, evenly
// spaced, so a long outbox flushed after a reconnect does not trip it.
const SEND_RATE = 15;
const THROTTLED_RETRY_MS = 1000;
const SERVER_ERROR_RETRIES_MS = [1000, 2000, 4000]; // then the entry shows "Not sent"
const sendQueue = []; // client_msg_ids waiting for their turn on this socket
const queued = new Set();
let nextSendAt = 0;
let pacer = null;
const serverErrors = new Map(); // client_msg_id -> server_error answers so far

function trySend(entry) {
  const id = entry.client_msg_id;
  if (outbox.inFlight.has(id) || queued.has(id)) return; // sent on this socket already, or soon
  sendQueue.push(id);
  queued.add(id);
  drainSends();
}

function drainSends() {
  clearTimeout(pacer);
  pacer = null;
  while (sendQueue.length) {
    const now = Date.now();
    if (now < nextSendAt) {
      pacer = setTimeout(drainSends, nextSendAt - now);
      return;
    }
    const id = sendQueue.shift();
    queued.delete(id);
    const entry = outbox.get(id);
    if (!entry || entry.status !== "pending" || outbox.inFlight.has(id)) continue;
    const sent = connection.send({
      type: "send",
      conversation_id: entry.conversation_id,
      client_msg_id: id,
      text: entry.text,
    });
    if (!sent) {
      clearSendQueue(); // not connected: the outbox is flushed again after `ready`
      return;
    }
    outbox.inFlight.set(id, now);
    nextSendAt = now + 1000 / SEND_RATE;
  }
}

function clearSendQueue() {
  sendQueue.length = 0;
  queued.clear();
  clearTimeout(pacer);
  pacer = null;
}

/** Send an outbox entry again after `delay` ms, if it still waits by then. */
function resendLater(clientMsgId, delay) {
  setTimeout(() => {
    const entry = outbox.get(clientMsgId);
    if (entry && entry.status === "pending") trySend(entry);
  }, delay);
}

function sendMessage(conversationId, text) {
  trySend(outbox.add(conversationId, text));
  refresh();
}

function flushOutbox() {
  for (const entry of outbox.pending()) trySend(entry);
}

/** An `error` frame about one of our sends. */
function sendFailed(frame) {
  const id = frame.client_msg_id;
  outbox.inFlight.delete(id);
  if (frame.code === "throttled" || frame.code === "overloaded") {
    // Not stored (this socket sent too fast, or the server is busy): it stays
    // pending and goes again in about a second, first in line; the other sends
    // wait too. Jitter spreads a busy server's clients apart.
    const pause = THROTTLED_RETRY_MS * (0.5 + Math.random());
    nextSendAt = Math.max(nextSendAt, Date.now() + pause);
    if (!queued.has(id)) {
      sendQueue.unshift(id);
      queued.add(id);
    }
    drainSends();
    return;
  }
  if (frame.code === "server_error") {
    // Sends are idempotent: retry an outage a few times before giving up.
    const failures = serverErrors.get(id) || 0;
    if (failures < SERVER_ERROR_RETRIES_MS.length) {
      serverErrors.set(id, failures + 1);
      resendLater(id, SERVER_ERROR_RETRIES_MS[failures]);
      return;
    }
  }
  serverErrors.delete(id);
  outbox.fail(id, frame.detail);
  refresh();
}

// A socket can die silently (sleeping laptop, a lost route): when a send stays
// unanswered, give the socket up; the reconnect resends the outbox.
setInterval(() => {
  const now = Date.now();
  for (const sentAt of outbox.inFlight.values()) {
    if (now - sentAt > ACK_TIMEOUT_MS) {
      outbox.inFlight.clear();
      connection.drop();
      return;
    }
  }
}, 2000);

// --- loading over REST ----------------------------------------------------------------

async function loadPresence(conversations) {
  const ids = [...new Set(conversations.map((c) => store.partner(c)?.user_id).filter(Boolean))];
  if (!ids.length) return;
  try {
    let changed = false;
    for (const entry of await api.presence(ids)) changed = store.setPresence(entry) || changed;
    if (changed) refresh();
  } catch {
    // Presence is a nicety: the dots fill in from live `presence` frames.
  }
}

async function loadAll() {
  const list = await api.conversations();
  store.replaceAll(list);
  loaded = true;
  refresh();
  loadPresence([...store.conversations.values()]);
  route();
}

const fetching = new Map();
function fetchConversation(id) {
  if (!fetching.has(id)) {
    const request = api
      .conversation(id)
      .then((payload) => {
        const conv = store.upsert(payload);
        loadPresence([conv]);
        return conv;
      })
      .catch(() => null)
      .finally(() => fetching.delete(id));
    fetching.set(id, request);
  }
  return fetching.get(id);
}

// --- frames from the server, one at a time, in order ----------------------------------------

const frames = [];
let pumping = false;
function enqueue(frame) {
  frames.push(frame);
  if (!pumping) pump();
}

async function pump() {
  pumping = true;
  while (frames.length) {
    const frame = frames.shift();
    try {
      await handleFrame(frame);
    } catch (error) {
      console.error("chat: could not handle", frame, error);
    }
  }
  pumping = false;
}

async function handleFrame(frame) {
  switch (frame.type) {
    case "ready":
      return onReady(frame);
    case "event":
      if (cursor.value !== null && frame.cursor <= cursor.value) return; // seen already
      await applyEvent(frame);
      cursor.set(frame.cursor);
      return;
    case "ack": {
      outbox.remove(frame.client_msg_id);
      serverErrors.delete(frame.client_msg_id);
      if (!store.applyMessage(frame.message)) await fetchConversation(frame.message.conversation_id);
      // An ack with a cursor is also our message.new event (docs/protocol.md).
      if (frame.cursor !== undefined && (cursor.value === null || frame.cursor > cursor.value)) {
        cursor.set(frame.cursor);
      }
      refresh();
      return;
    }
    case "error":
      if (frame.client_msg_id && outbox.get(frame.client_msg_id)) {
        sendFailed(frame);
      } else {
        console.warn("chat: server error", frame);
      }
      return;
    case "typing":
      store.startTyping(frame.conversation_id, frame.user_id, frame.expires_in);
      return;
    case "presence":
      if (store.setPresence(frame)) refresh();
      return;
    default:
      return;
  }
}

async function onReady(frame) {
  if (frame.reset) needsReload = true;
  if (!loaded || needsReload) {
    try {
      await loadAll();
    } catch (error) {
      // The cursor stays where it was, and needsReload stays set: the next
      // `ready` loads again (a stored new cursor would skip the reload).
      toast(`Could not load your conversations: ${error.detail || error.message}`);
      setTimeout(() => connection.drop(), 2000); // reconnect, and load again on ready
      return;
    }
    needsReload = false;
  } else if (readies > 0) {
    // Presence is not in the inbox: what changed while we were away is not replayed.
    loadPresence([...store.conversations.values()]);
  }
  cursor.set(frame.cursor); // after a reset this moves back to the server's head
  readies += 1;
  live = true;
  for (const [conversationId, seq] of pendingReads) {
    connection.send({ type: "read", conversation_id: conversationId, seq });
  }
  pendingReads.clear();
  flushOutbox();
  const conv = activeId !== null ? store.conversations.get(activeId) : null;
  if (conv && !conv.historyLoaded) loadHistory(conv);
  refresh();
}

async function applyEvent(frame) {
  switch (frame.kind) {
    case "message.new":
    case "message.edited":
    case "message.deleted": {
      const message = frame.message;
      if (!store.conversations.has(message.conversation_id)) {
        await fetchConversation(message.conversation_id);
      }
      const conv = store.applyMessage(message);
      if (!conv) return;
      // The ack may have been lost with a dropped socket; the event is as good.
      settle([message]);
      if (frame.kind === "message.new" && message.sender_id !== me.id && live) notify(conv, message);
      refresh();
      return;
    }
    case "read":
      store.applyRead(frame.conversation_id, frame.user_id, frame.seq);
      if (frame.user_id === me.id && pendingReads.get(frame.conversation_id) <= frame.seq) {
        pendingReads.delete(frame.conversation_id);
      }
      refresh();
      return;
    case "member.added": {
      const payload = frame.conversation;
      if (frame.user_ids.includes(me.id) || store.conversations.has(payload.id)) {
        const isNew = !store.conversations.has(payload.id);
        // Added just now: what was said before is not unread (as the server's
        // read marker for a new member says).
        const joined = isNew && frame.user_ids.includes(me.id);
        const conv = store.upsert(joined ? { ...payload, last_read_seq: payload.last_seq } : payload);
        if (isNew) loadPresence([conv]);
      }
      refresh();
      return;
    }
    case "member.removed": {
      const id = frame.conversation_id;
      const conv = store.conversations.get(id);
      if (!conv) return;
      if (frame.user_ids.includes(me.id)) {
        const title = store.title(conv);
        store.remove(id);
        outbox.dropConversation(id);
        if (activeId === id) {
          location.hash = "#/";
          toast(`You are no longer a member of “${title}”.`);
        }
      } else {
        store.removeMembers(id, frame.user_ids);
        // Roles may have moved (a leaving owner hands over): read them again.
        fetchConversation(id);
      }
      refresh();
      return;
    }
    case "conversation.updated":
      if (store.conversations.has(frame.conversation.id)) store.upsert(frame.conversation);
      refresh();
      return;
    default:
      return;
  }
}

// --- notifications ---------------------------------------------------------------------

const notifier = new Notifier(document.getElementById("notify-button"));

function notify(conv, message) {
  const sender = store.userName(message.sender_id);
  notifier.show({
    title: conv.kind === "group" ? store.title(conv) : sender,
    body: conv.kind === "group" ? `${sender}: ${message.text}` : message.text,
    tag: `conversation-${conv.id}`,
    onClick: () => {
      location.hash = `#/c/${conv.id}`;
    },
  });
}

// Another tab of this user changed the shared outbox: show its entries too.
// That tab sends them; this one resends them only after its next `ready`
// (a repeat of a client_msg_id is stored once).
window.addEventListener("storage", (event) => {
  if (event.key !== outbox.key) return;
  outbox.sync();
  refresh();
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") thread.maybeSeen();
});
window.addEventListener("focus", () => thread.maybeSeen());

// --- connection status -----------------------------------------------------------------

let countdown = null;
const startedAt = Date.now();
let bannerPending = 0; // the count of waiting messages the banner shows

function renderBanner() {
  const state = connection.state;
  clearInterval(countdown);
  countdown = null;
  const waitingCount = outbox.pending().length;
  bannerPending = waitingCount;
  const waiting = waitingCount
    ? ` ${waitingCount} message${waitingCount === 1 ? "" : "s"} will be sent when you are back.`
    : " Messages you write will be sent when you are back.";
  banner.className = `banner ${state}`;
  if (state === "ready" || state === "idle") {
    banner.hidden = true;
    return;
  }
  if (state === "signed_out") {
    banner.hidden = false;
    banner.replaceChildren(
      "You are signed out. ",
      Object.assign(document.createElement("a"), { href: "/login/?next=/", textContent: "Log in again" }),
    );
    return;
  }
  if (state === "connecting" || state === "syncing") {
    // No flash of "Connecting…" on a normal page load.
    banner.hidden = Date.now() - startedAt < 2000 && connection.attempt === 0;
    banner.replaceChildren(state === "syncing" ? "Catching up…" : "Connecting…");
    return;
  }
  // waiting for the next attempt
  const offline = navigator.onLine === false;
  const text = document.createElement("span");
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
    text.textContent =
      (offline ? "You are offline." : "Connection lost.") +
      waiting +
      (offline ? "" : ` Reconnecting in ${seconds} s.`);
  };
  tick();
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "small";
  retry.textContent = "Reconnect now";
  retry.addEventListener("click", () => connection.retryNow());
  banner.replaceChildren(text, " ", retry);
  banner.hidden = false;
  countdown = setInterval(tick, 1000);
}

// Signed out (here, in another tab, or by a deactivation): nothing of this
// user stays in the browser, the outbox's unsent text included.
function signOut() {
  forgetUser(me.id);
  location.assign("/login/?next=/");
}

document.querySelector("form[data-logout]")?.addEventListener("submit", () => forgetUser(me.id));

const connection = new ChatConnection({
  discover: () => api.chatServer(),
  cursor: () => cursor.value,
  onFrame: enqueue,
  onState(state) {
    root.dataset.connection = state;
    if (state !== "ready") {
      live = false;
      outbox.inFlight.clear(); // everything pending is resent after the next `ready`
      clearSendQueue();
    }
    renderBanner();
    if (state === "signed_out") signOut();
  },
});

// --- dialogs and controls -----------------------------------------------------------------

function openNew(conversation) {
  const conv = store.upsert(conversation);
  loadPresence([conv]);
  refresh();
  location.hash = `#/c/${conv.id}`;
}

const openDirect = setupDirectDialog({
  dialog: document.getElementById("direct-dialog"),
  me,
  onOpen: openNew,
});
const openGroup = setupGroupDialog({
  dialog: document.getElementById("group-dialog"),
  me,
  maxMembers: boot.max_group_members,
  onOpen: openNew,
});
const membersDialog = setupMembersDialog({
  dialog: document.getElementById("members-dialog"),
  store,
  maxMembers: boot.max_group_members,
  toast,
  onLeft(conv) {
    store.remove(conv.id);
    outbox.dropConversation(conv.id);
    location.hash = "#/";
    toast(`You left “${store.title(conv)}”.`);
    refresh();
  },
});
document.getElementById("new-direct").addEventListener("click", openDirect);
document.getElementById("new-group").addEventListener("click", openGroup);
filterEl.addEventListener("input", refresh);

// --- start -------------------------------------------------------------------------------

async function start() {
  renderBanner();
  if (cursor.value !== null) {
    // A browser that synced before: show the list now, then replay what it
    // missed since its cursor. A new browser asks for the head first (hello
    // null) and loads after `ready`, so nothing falls in between.
    try {
      await loadAll();
    } catch {
      // loaded stays false: `ready` loads again
    }
  }
  connection.start();
}

start();
