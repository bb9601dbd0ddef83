// The client's model of the user's conversations. Every change is idempotent
// and keyed by ids and sequence numbers, so applying an event twice (a REST
// snapshot and a replayed event, an ack and its message.new) changes nothing.

function laterIso(a, b) {
  if (!a) return b;
  if (!b) return a;
  return new Date(b) > new Date(a) ? b : a;
}

/** Is `incoming` a newer state of the same message than `current`? */
function supersedes(incoming, current) {
  if (!current) return true;
  if (current.deleted) return incoming.deleted;
  if (incoming.deleted) return true;
  if (!incoming.edited_at) return !current.edited_at;
  return !current.edited_at || new Date(incoming.edited_at) >= new Date(current.edited_at);
}

export class ChatStore extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    /** @type {Map<number, object>} */
    this.conversations = new Map();
    this.users = new Map([[me.id, { id: me.id, username: me.username, display_name: me.display_name }]]);
    this.presence = new Map(); // user id -> {status, last_active_at, version}
    this.typing = new Map(); // conversation id -> Map(user id -> expiry timer)
  }

  changed(what, detail = {}) {
    this.dispatchEvent(new CustomEvent("change", { detail: { what, ...detail } }));
  }

  // --- people -----------------------------------------------------------------

  rememberUser(user) {
    const id = user.user_id ?? user.id;
    this.users.set(id, { id, username: user.username, display_name: user.display_name });
  }

  userName(id) {
    if (id === this.me.id) return this.me.name;
    const user = this.users.get(id);
    if (!user) return `User ${id}`;
    return user.display_name || user.username;
  }

  // --- conversations ------------------------------------------------------------

  /** Merge a conversation from REST or an event. Viewer fields (last_read_seq)
   * come only from REST; events keep what we had. */
  upsert(payload) {
    const current = this.conversations.get(payload.id);
    for (const member of payload.members || []) this.rememberUser(member);
    const conv = current || {
      id: payload.id,
      kind: payload.kind,
      messages: null, // Map id -> message once history is wanted
      historyLoaded: false,
      hasOlder: true,
      loadingOlder: false,
      last_read_seq: 0,
      last_seq: 0,
      last_message: null,
      last_activity_at: payload.created_at,
    };
    conv.title = payload.title;
    conv.kind = payload.kind;
    conv.created_at = payload.created_at;
    if (payload.members) {
      // Read markers only move forward, whichever copy arrives last.
      const previous = new Map((conv.members || []).map((m) => [m.user_id, m.last_read_seq]));
      conv.members = payload.members.map((m) => ({
        ...m,
        last_read_seq: Math.max(m.last_read_seq || 0, previous.get(m.user_id) || 0),
      }));
    }
    conv.last_activity_at = laterIso(conv.last_activity_at, payload.last_activity_at);
    conv.last_seq = Math.max(conv.last_seq, payload.last_seq || 0);
    const last = payload.last_message;
    const had = conv.last_message;
    if (last && (!had || last.seq > had.seq || (last.id === had.id && supersedes(last, had)))) {
      conv.last_message = last;
    }
    if (typeof payload.last_read_seq === "number") {
      conv.last_read_seq = Math.max(conv.last_read_seq, payload.last_read_seq);
    }
    this.conversations.set(conv.id, conv);
    return conv;
  }

  replaceAll(list) {
    const keep = new Set(list.map((c) => c.id));
    for (const id of [...this.conversations.keys()]) {
      if (!keep.has(id)) this.conversations.delete(id);
    }
    for (const payload of list) {
      const conv = this.conversations.get(payload.id);
      if (conv) {
        // A reset: the stored history may be stale, reload it when opened.
        conv.messages = null;
        conv.historyLoaded = false;
        conv.hasOlder = true;
        conv.last_message = null;
        conv.last_seq = 0;
        conv.last_read_seq = 0;
        conv.members = [];
      }
      this.upsert(payload);
    }
    this.changed("all");
  }

  removeMembers(id, userIds) {
    const conv = this.conversations.get(id);
    if (!conv) return null;
    conv.members = (conv.members || []).filter((m) => !userIds.includes(m.user_id));
    for (const userId of userIds) this.stopTyping(id, userId, { quiet: true });
    return conv;
  }

  remove(id) {
    this.conversations.delete(id);
    this.typing.delete(id);
  }

  sorted() {
    return [...this.conversations.values()].sort(
      (a, b) => new Date(b.last_activity_at) - new Date(a.last_activity_at) || b.id - a.id,
    );
  }

  unread(conv) {
    return Math.max(0, conv.last_seq - conv.last_read_seq);
  }

  /** The other person of a direct conversation (a member object), or null. */
  partner(conv) {
    if (conv.kind !== "direct") return null;
    return (conv.members || []).find((m) => m.user_id !== this.me.id) || null;
  }

  title(conv) {
    if (conv.kind === "group") return conv.title || "Group";
    const other = this.partner(conv);
    return other ? other.display_name || other.username : "Direct chat";
  }

  myRole(conv) {
    return (conv.members || []).find((m) => m.user_id === this.me.id)?.role || null;
  }

  // --- messages -----------------------------------------------------------------

  /** Apply a message (new, edited or deleted). Returns the conversation or null. */
  applyMessage(message) {
    const conv = this.conversations.get(message.conversation_id);
    if (!conv) return null;
    if (conv.messages) {
      const current = conv.messages.get(message.id);
      if (supersedes(message, current)) conv.messages.set(message.id, message);
    }
    if (!conv.last_message || message.seq > conv.last_message.seq) {
      conv.last_message = message;
    } else if (message.id === conv.last_message.id && supersedes(message, conv.last_message)) {
      conv.last_message = message;
    }
    if (message.seq > conv.last_seq) conv.last_seq = message.seq;
    conv.last_activity_at = laterIso(conv.last_activity_at, message.created_at);
    if (message.sender_id === this.me.id) {
      // Sending moves one's own read marker (the server does the same).
      conv.last_read_seq = Math.max(conv.last_read_seq, message.seq);
    } else {
      // A reply at seq N means its sender has read up to N.
      const member = (conv.members || []).find((m) => m.user_id === message.sender_id);
      if (member) member.last_read_seq = Math.max(member.last_read_seq || 0, message.seq);
      this.stopTyping(conv.id, message.sender_id, { quiet: true });
    }
    return conv;
  }

  /** Start collecting a conversation's messages: from now on live events are
   * kept, so none falls between the history request and its answer. */
  beginHistory(conv) {
    if (!conv.messages) conv.messages = new Map();
  }

  /** Add a page of history (ascending seq): the newest page, or an older one. */
  addHistory(conv, page) {
    this.beginHistory(conv);
    for (const message of page.messages) {
      if (supersedes(message, conv.messages.get(message.id))) conv.messages.set(message.id, message);
      if (message.seq > conv.last_seq) conv.last_seq = message.seq;
    }
    conv.hasOlder = page.has_more;
    conv.historyLoaded = true;
  }

  sortedMessages(conv) {
    return conv.messages ? [...conv.messages.values()].sort((a, b) => a.seq - b.seq) : [];
  }

  applyRead(conversationId, userId, seq) {
    const conv = this.conversations.get(conversationId);
    if (!conv) return null;
    if (userId === this.me.id) {
      conv.last_read_seq = Math.max(conv.last_read_seq, seq);
    } else {
      const member = (conv.members || []).find((m) => m.user_id === userId);
      if (member) member.last_read_seq = Math.max(member.last_read_seq || 0, seq);
    }
    return conv;
  }

  /** In a direct chat: how far the other person has read. */
  partnerReadSeq(conv) {
    return this.partner(conv)?.last_read_seq || 0;
  }

  // --- typing -----------------------------------------------------------------

  startTyping(conversationId, userId, seconds) {
    if (userId === this.me.id || !this.conversations.has(conversationId)) return;
    let typers = this.typing.get(conversationId);
    if (!typers) this.typing.set(conversationId, (typers = new Map()));
    clearTimeout(typers.get(userId));
    typers.set(
      userId,
      setTimeout(() => this.stopTyping(conversationId, userId), Math.max(0.5, seconds) * 1000),
    );
    this.changed("typing", { conversationId });
  }

  stopTyping(conversationId, userId, { quiet = false } = {}) {
    const typers = this.typing.get(conversationId);
    if (!typers || !typers.has(userId)) return;
    clearTimeout(typers.get(userId));
    typers.delete(userId);
    if (!quiet) this.changed("typing", { conversationId });
  }

  typers(conversationId) {
    return [...(this.typing.get(conversationId)?.keys() || [])];
  }

  // --- presence ---------------------------------------------------------------

  /** Apply a `presence` frame or a `GET presence/` entry. Each carries the
   * version of the user's last change; frames from different chat servers (and
   * a REST answer that raced them) can arrive out of order, so only a version
   * above the highest one seen counts. Returns whether anything changed. */
  setPresence(frame) {
    const current = this.presence.get(frame.user_id);
    const version = Number.isInteger(frame.version) ? frame.version : null;
    if (current && version !== null && current.version !== null && version <= current.version) {
      return false;
    }
    this.presence.set(frame.user_id, {
      status: frame.status,
      last_active_at: frame.last_active_at,
      version: version ?? current?.version ?? null,
    });
    return true;
  }

  status(userId) {
    return this.presence.get(userId)?.status || null;
  }
}
