// The open conversation: header, history with day separators, own messages'
// states, typing line, and the composer.

import {
  avatar,
  dayKey,
  dayLabel,
  formatFull,
  formatTime,
  h,
  lastSeen,
  reconcile,
  richText,
  srOnly,
} from "./render.js";

const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 120;
const LAST_SEEN_REFRESH_MS = 30_000;
const TYPING_EVERY_MS = 2000;
const NOTE_MAX_CHARS = 500; // a report's note (messaging.reports.NOTE_MAX_CHARS) // the server drops typing frames sent more often
// Something to show: the server refuses text of only spaces, zero-width and
// other format or control characters (`empty_text`), so the composer does too.
// (Also the characters chatproject/text.py counts as blank: Hangul fillers,
// variation selectors, the braille blank.)
const VISIBLE =
  /[^\p{Z}\p{Cc}\p{Cf}\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0\u{e0100}-\u{e01ef}]/u;

export class ThreadView {
  constructor({ store, outbox, root, maxChars, actions }) {
    this.store = store;
    this.outbox = outbox;
    this.root = root;
    this.maxChars = maxChars;
    this.actions = actions;
    this.conv = null;
    this.editing = null; // message id being edited
    this.focusEditor = false;
    this.editDraft = null;
    this.confirming = null; // message id whose deletion awaits confirmation
    this.reporting = null; // message id whose report form is open
    this.reportDraft = { reason: "", note: "" };
    this.reportSending = null; // message id whose report is on its way
    this.reported = new Set(); // reported from this page (the server keeps one report each)
    this.drafts = new Map();
    this.lastTypingSent = 0;
    this.stickToBottom = true;

    const $ = (selector) => root.querySelector(selector);
    this.el = {
      empty: $("#thread-empty"),
      main: $("#thread-main"),
      avatar: $("#thread-avatar"),
      title: $("#thread-title"),
      subtitle: $("#thread-subtitle"),
      members: $("#members-button"),
      scroller: $("#message-scroller"),
      older: $("#load-older"),
      list: $("#message-list"),
      typing: $("#typing"),
      form: $("#composer"),
      text: $("#composer-text"),
      error: $("#composer-error"),
      send: $("#composer-send"),
    };
    this.bind();
    // "last seen 3 min ago" ages while the conversation stays open.
    setInterval(() => {
      if (this.conv) this.renderHeader();
    }, LAST_SEEN_REFRESH_MS);
  }

  bind() {
    const { el } = this;
    el.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    el.text.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter breaks the line; never while an IME composes.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.submit();
      }
    });
    el.text.addEventListener("input", () => {
      this.autosize();
      el.error.textContent = "";
      if (this.conv) this.drafts.set(this.conv.id, el.text.value);
      const now = Date.now();
      if (el.text.value.trim() && now - this.lastTypingSent >= TYPING_EVERY_MS && this.conv) {
        if (this.actions.typing(this.conv.id)) this.lastTypingSent = now;
      }
    });
    el.scroller.addEventListener("scroll", () => {
      this.stickToBottom = this.nearBottom();
      if (el.scroller.scrollTop < NEAR_TOP_PX) this.loadOlder();
      if (this.stickToBottom) this.maybeSeen();
    });
    el.older.addEventListener("click", () => this.loadOlder());
    el.members.addEventListener("click", () => this.conv && this.actions.openMembers(this.conv));
    el.list.addEventListener("click", (event) => this.onListClick(event));
    el.list.addEventListener("keydown", (event) => this.onListKey(event));
    el.list.addEventListener("input", (event) => {
      if (event.target.matches(".edit-text")) this.editDraft = event.target.value;
      if (event.target.matches(".report-note")) this.reportDraft.note = event.target.value;
    });
    el.list.addEventListener("change", (event) => {
      if (event.target.matches(".report-reason")) this.reportDraft.reason = event.target.value;
    });
  }

  nearBottom() {
    const s = this.el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.el.scroller.scrollTop = this.el.scroller.scrollHeight;
    this.stickToBottom = true;
  }

  autosize() {
    const t = this.el.text;
    t.style.height = "auto";
    t.style.height = `${Math.min(t.scrollHeight + 2, 200)}px`;
  }

  // --- opening ------------------------------------------------------------------

  open(conv) {
    const switching = !this.conv || this.conv.id !== conv.id;
    this.conv = conv;
    this.el.empty.hidden = true;
    this.el.main.hidden = false;
    if (switching) {
      this.editing = this.confirming = this.editDraft = this.reporting = null;
      this.el.list.replaceChildren();
      this.el.text.value = this.drafts.get(conv.id) || "";
      this.el.error.textContent = "";
      this.autosize();
      this.stickToBottom = true;
      this.lastTypingSent = 0;
    }
    this.render();
    if (switching) this.scrollToBottom();
  }

  close() {
    this.conv = null;
    this.el.main.hidden = true;
    this.el.empty.hidden = false;
    this.el.list.replaceChildren();
  }

  focusComposer() {
    this.el.text.focus();
  }

  // --- rendering ----------------------------------------------------------------

  render({ prepended = false } = {}) {
    const conv = this.conv;
    if (!conv) return;
    this.renderHeader();
    const s = this.el.scroller;
    const wasAtBottom = this.stickToBottom;
    const before = { height: s.scrollHeight, top: s.scrollTop };
    if (prepended) this.el.list.setAttribute("aria-busy", "true");
    this.dropReportOfDeleted();
    const reportFocus = this.reportFocus();
    reconcile(this.el.list, this.items());
    if (reportFocus) this.restoreReportFocus(reportFocus);
    this.el.list.removeAttribute("aria-busy");
    const loading = !conv.historyLoaded;
    this.el.older.hidden = loading || !conv.hasOlder;
    this.el.older.disabled = conv.loadingOlder;
    this.el.older.textContent = conv.loadingOlder ? "Loading…" : "Load older messages";
    this.el.scroller.classList.toggle("loading", loading);
    if (prepended) {
      s.scrollTop = before.top + (s.scrollHeight - before.height);
    } else if (wasAtBottom) {
      this.scrollToBottom();
    }
    this.renderTyping();
    if (this.focusEditor) {
      // Once, when editing starts: later renders must not steal the focus back.
      this.focusEditor = false;
      const box = this.el.list.querySelector(".edit-text");
      if (box) {
        box.focus();
        box.setSelectionRange(box.value.length, box.value.length);
      }
    }
    this.maybeSeen();
  }

  /** The open report form's message was deleted meanwhile: close it and say so. */
  dropReportOfDeleted() {
    if (this.reporting === null) return;
    // Only a deletion closes it: a message missing for a moment (a reload
    // of the history) comes back with its form.
    const message = this.conv.messages?.get(this.reporting);
    if (!message?.deleted) return;
    const hadFocus = this.el.list.querySelector(".msg-report")?.contains(document.activeElement);
    this.reporting = null;
    this.actions.toast("That message was deleted; there is nothing left to report.");
    if (hadFocus) queueMicrotask(() => this.focusComposer());
  }

  /** Which field of the report form has the focus (and the note's caret): a
   * re-render of its message (an edit, a name change) must give them back. */
  reportFocus() {
    const active = document.activeElement;
    if (!active?.closest?.(".msg-report")) return null;
    const field = ["report-reason", "report-note", "report-send", "report-cancel"].find((name) =>
      active.classList.contains(name),
    );
    if (!field) return null;
    return { field, start: active.selectionStart ?? null, end: active.selectionEnd ?? null };
  }

  restoreReportFocus({ field, start, end }) {
    const el = this.el.list.querySelector(`.msg-report .${field}`);
    if (!el || el === document.activeElement) return;
    el.focus();
    if (start !== null && el.setSelectionRange) el.setSelectionRange(start, end);
  }

  renderHeader() {
    const { store, conv, el } = this;
    const title = store.title(conv);
    const partner = store.partner(conv);
    el.title.textContent = title;
    el.avatar.replaceChildren(
      avatar(title, partner ? partner.user_id : conv.id + 7, {
        size: "small",
        status: partner ? store.status(partner.user_id) || "offline" : null,
      }),
    );
    if (partner) {
      const presence = store.presence.get(partner.user_id);
      el.subtitle.textContent =
        presence?.status === "online" ? "online" : lastSeen(presence?.last_active_at);
      el.members.hidden = true;
    } else {
      const count = (conv.members || []).length;
      el.subtitle.textContent = `${count} member${count === 1 ? "" : "s"}`;
      el.members.hidden = false;
    }
  }

  renderTyping() {
    const { store, conv } = this;
    const names = store.typers(conv.id).map((id) => store.userName(id));
    // Each name keeps its own direction (bdi): two right-to-left names must
    // not swap places around "and".
    const bdi = (name) => h("bdi", {}, name);
    let parts = [];
    if (names.length === 1) parts = [bdi(names[0]), " is typing…"];
    else if (names.length === 2) parts = [bdi(names[0]), " and ", bdi(names[1]), " are typing…"];
    else if (names.length > 2) parts = [`${names.length} people are typing…`];
    const text = parts.map((part) => (typeof part === "string" ? part : part.textContent)).join("");
    if (this.el.typing.textContent !== text) this.el.typing.replaceChildren(...parts);
  }

  items() {
    const { store, conv } = this;
    if (!conv.historyLoaded) return [];
    const items = [];
    const partnerRead = conv.kind === "direct" ? store.partnerReadSeq(conv) : 0;
    let previousDay = null;
    let previousSender = null;
    const addDay = (iso) => {
      const day = dayKey(iso);
      if (day === previousDay) return false;
      previousDay = day;
      const label = dayLabel(iso);
      items.push({
        key: `day:${day}`,
        version: label,
        render: () => h("li", { class: "day", role: "separator" }, h("span", null, label)),
      });
      return true;
    };
    for (const message of store.sortedMessages(conv)) {
      const newDay = addDay(message.created_at);
      const own = message.sender_id === store.me.id;
      const showSender = conv.kind === "group" && !own && (newDay || previousSender !== message.sender_id);
      const continued = !newDay && previousSender === message.sender_id;
      previousSender = message.sender_id;
      let status = null;
      if (own) status = conv.kind === "direct" && message.seq <= partnerRead ? "seen" : "sent";
      const editing = this.editing === message.id;
      const confirming = this.confirming === message.id;
      const reporting = this.reporting === message.id;
      const reported = this.reported.has(message.id);
      const state = { own, status, showSender, continued, editing, confirming, reporting, reported };
      items.push({
        key: `m:${message.id}`,
        version: JSON.stringify([
          message.text,
          message.edited_at,
          message.deleted,
          state,
          showSender ? store.userName(message.sender_id) : "",
        ]),
        render: () => this.renderMessage(message, state),
      });
    }
    const stored = new Set(
      [...conv.messages.values()].filter((m) => m.sender_id === store.me.id).map((m) => m.client_msg_id),
    );
    for (const entry of this.outbox.forConversation(conv.id)) {
      if (stored.has(entry.client_msg_id)) continue; // its ack is on the way
      addDay(entry.created_at);
      items.push({
        key: `p:${entry.client_msg_id}`,
        version: JSON.stringify([entry.status, entry.error]),
        render: () => this.renderPending(entry),
      });
    }
    return items;
  }

  renderMessage(message, { own, status, showSender, continued, editing, confirming, reporting, reported }) {
    const store = this.store;
    const sender = own ? "You" : store.userName(message.sender_id);
    const classes = ["msg", own ? "own" : "other"];
    if (continued) classes.push("continued");
    if (message.deleted) classes.push("deleted");
    const li = h("li", {
      class: classes.join(" "),
      "data-message-id": message.id,
      "data-seq": message.seq,
      "data-status": status,
    });
    if (showSender) li.append(h("div", { class: "msg-sender", dir: "auto", "aria-hidden": "true" }, sender));
    const bubble = h("div", { class: "bubble" }, srOnly(`${sender}: `));
    if (message.deleted) {
      bubble.append(h("p", { class: "msg-text tombstone" }, "This message was deleted"));
    } else if (editing) {
      bubble.append(this.renderEditor(message));
    } else {
      bubble.append(h("p", { class: "msg-text" }, richText(message.text)));
    }
    const meta = h(
      "div",
      { class: "msg-meta" },
      message.edited_at && !message.deleted ? h("span", { class: "edited" }, "edited") : null,
      h("time", { datetime: message.created_at, title: formatFull(message.created_at) }, formatTime(message.created_at)),
      status
        ? h(
            "span",
            { class: `msg-status ${status}`, title: status === "seen" ? "Seen" : "Sent" },
            status === "seen" ? "Seen" : "Sent",
          )
        : null,
    );
    bubble.append(meta);
    const row = h("div", { class: "msg-row" }, bubble);
    li.append(row);
    if (own && !message.deleted && !editing) {
      if (confirming) {
        li.append(
          h(
            "div",
            { class: "msg-confirm", role: "group", "aria-label": "Delete this message?" },
            h("span", null, "Delete this message?"),
            h("button", { type: "button", class: "danger small", "data-action": "delete-yes", "data-refocus": "" }, "Delete"),
            h("button", { type: "button", class: "secondary small", "data-action": "delete-no" }, "Cancel"),
          ),
        );
      } else {
        row.append(
          h(
            "div",
            { class: "msg-actions" },
            h("button", { type: "button", class: "icon", "data-action": "edit", "aria-label": "Edit message", title: "Edit" }, "Edit"),
            h("button", { type: "button", class: "icon", "data-action": "delete", "aria-label": "Delete message", title: "Delete", "data-refocus": "" }, "Delete"),
          ),
        );
      }
    }
    if (!own && !message.deleted) {
      if (reporting) {
        li.append(this.renderReportForm(message));
      } else if (!reported) {
        row.append(
          h(
            "div",
            { class: "msg-actions" },
            h("button", { type: "button", class: "icon", "data-action": "report", "aria-label": "Report message", title: "Report to the moderators", "data-refocus": "" }, "Report"),
          ),
        );
      }
    }
    return li;
  }

  renderReportForm(message) {
    const draft = this.reportDraft;
    const reasons = [
      ["spam", "Spam"],
      ["abuse", "Harassment or abuse"],
      ["other", "Something else"],
    ];
    const form = h(
      "div",
      { class: "msg-report", role: "group", "aria-label": "Report this message", "data-message-id": message.id },
      h("label", { for: `report-reason-${message.id}` }, "Report to the moderators, reason:"),
      h(
        "select",
        { id: `report-reason-${message.id}`, class: "report-reason", required: true, "data-refocus": "" },
        // No reason is chosen for the reporter: they pick one.
        h("option", { value: "", disabled: true, selected: draft.reason === "" }, "Choose…"),
        ...reasons.map(([value, label]) => h("option", { value }, label)),
      ),
      h("input", {
        type: "text",
        class: "report-note",
        placeholder: "Anything they should know (optional)",
        "aria-label": "Note for the moderators",
        value: draft.note,
      }),
      h(
        "button",
        // Still disabled when the form is redrawn while the report is on its way.
        { type: "button", class: "danger small report-send", "data-action": "report-send", disabled: this.reportSending === message.id },
        "Report",
      ),
      h("button", { type: "button", class: "secondary small report-cancel", "data-action": "report-cancel" }, "Cancel"),
    );
    form.querySelector(".report-reason").value = draft.reason;
    return form;
  }

  renderEditor(message) {
    return h(
      "form",
      { class: "edit-form", "data-message-id": message.id },
      h("label", { class: "visually-hidden", for: `edit-${message.id}` }, "Edit message"),
      // The draft survives a re-render (say, a read receipt arriving meanwhile).
      h(
        "textarea",
        { id: `edit-${message.id}`, class: "edit-text", rows: "2", "data-refocus": "" },
        this.editDraft ?? message.text,
      ),
      h(
        "div",
        { class: "edit-buttons" },
        h("button", { type: "button", class: "secondary small", "data-action": "edit-cancel" }, "Cancel"),
        h("button", { type: "button", class: "small", "data-action": "edit-save" }, "Save"),
      ),
    );
  }

  renderPending(entry) {
    const failed = entry.status === "failed";
    return h(
      "li",
      { class: `msg own ${failed ? "failed" : "pending"}`, "data-client-msg-id": entry.client_msg_id, "data-status": failed ? "failed" : "pending" },
      h(
        "div",
        { class: "bubble" },
        srOnly("You: "),
        h("p", { class: "msg-text" }, richText(entry.text)),
        h(
          "div",
          { class: "msg-meta" },
          h("time", { datetime: entry.created_at }, formatTime(entry.created_at)),
          h("span", { class: `msg-status ${failed ? "failed" : "pending"}` }, failed ? "Not sent" : "Sending…"),
        ),
      ),
      failed
        ? h(
            "div",
            { class: "msg-failed", role: "alert" },
            h("span", null, entry.error || "The message was not sent."),
            h("button", { type: "button", class: "small", "data-action": "retry", "data-refocus": "" }, "Retry"),
            h("button", { type: "button", class: "secondary small", "data-action": "discard" }, "Discard"),
          )
        : null,
    );
  }

  // --- interactions ---------------------------------------------------------------

  messageOf(target) {
    const li = target.closest("li.msg");
    if (!li || !this.conv?.messages) return { li };
    return { li, message: this.conv.messages.get(Number(li.dataset.messageId)) };
  }

  async onListClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) {
      // Touch screens have no hover: a tap on a message shows its actions.
      const li = event.target.closest("li.msg:not(.deleted)");
      if (li && !event.target.closest("a, textarea, .msg-report")) li.classList.toggle("show-actions");
      return;
    }
    const { li, message } = this.messageOf(button);
    const action = button.dataset.action;
    if (action === "retry") return this.actions.retry(li.dataset.clientMsgId);
    if (action === "discard") return this.actions.discard(li.dataset.clientMsgId);
    if (!message) return;
    if (action === "edit") {
      this.editing = message.id;
      this.editDraft = message.text;
      this.focusEditor = true;
      this.confirming = null;
      this.render();
    } else if (action === "edit-cancel") {
      this.stopEditing(message);
    } else if (action === "edit-save") {
      await this.saveEdit(message, li.querySelector(".edit-text"));
    } else if (action === "delete") {
      this.confirming = message.id;
      this.render();
    } else if (action === "delete-no") {
      this.confirming = null;
      this.render();
      this.el.list.querySelector(`li[data-message-id="${message.id}"] [data-action="delete"]`)?.focus();
    } else if (action === "report") {
      this.reporting = message.id;
      this.reportDraft = { reason: "", note: "" };
      this.render();
      this.el.list.querySelector(".report-reason")?.focus();
    } else if (action === "report-cancel") {
      this.stopReporting(message);
    } else if (action === "report-send") {
      if (this.reportSending !== null) return;
      if (!this.reportDraft.reason) {
        this.actions.toast("Choose a reason first.");
        li.querySelector(".report-reason")?.focus();
        return;
      }
      if ([...this.reportDraft.note.trim()].length > NOTE_MAX_CHARS) {
        // Counted in characters, as the server counts (not UTF-16 units).
        this.actions.toast(`The note is too long: at most ${NOTE_MAX_CHARS} characters.`);
        li.querySelector(".report-note")?.focus();
        return;
      }
      this.reportSending = message.id;
      button.disabled = true;
      try {
        const { status } = await this.actions.report(message, this.reportDraft);
        this.reported.add(message.id);
        this.reporting = null;
        this.actions.toast(
          status === 201 ? "Reported. The moderators will look at it." : "You had reported this message already.",
        );
        this.render();
        this.focusComposer();
      } catch (error) {
        this.el.list.querySelector(".msg-report .report-send")?.removeAttribute("disabled");
        this.actions.toast(
          error.code === "throttled"
            ? "You have sent many reports lately; try again later."
            : `Could not report: ${error.detail || error.message}`,
        );
      } finally {
        this.reportSending = null;
      }
    } else if (action === "delete-yes") {
      this.confirming = null;
      button.disabled = true;
      try {
        await this.actions.remove(message);
      } catch (error) {
        this.actions.toast(`Could not delete: ${error.detail || error.message}`);
      }
      this.render();
      this.focusComposer();
    }
  }

  stopReporting(message) {
    this.reporting = null;
    this.render();
    this.el.list.querySelector(`li[data-message-id="${message.id}"] [data-action="report"]`)?.focus();
  }

  onListKey(event) {
    if (event.key === "Escape" && event.target.closest(".msg-report")) {
      const { message } = this.messageOf(event.target);
      if (!message) return;
      event.preventDefault();
      event.stopPropagation();
      this.stopReporting(message);
      return;
    }
    if (event.key === "Enter" && event.target.matches(".report-note") && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      event.target.closest(".msg-report").querySelector('[data-action="report-send"]').click();
      return;
    }
    const box = event.target.closest(".edit-text");
    if (!box) return;
    const { message } = this.messageOf(box);
    if (!message) return;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.stopEditing(message);
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      this.saveEdit(message, box);
    }
  }

  stopEditing(message) {
    this.editing = null;
    this.editDraft = null;
    this.render();
    this.el.list.querySelector(`li[data-message-id="${message.id}"] [data-action="edit"]`)?.focus();
  }

  async saveEdit(message, box) {
    const text = box.value.trim();
    if (!VISIBLE.test(text)) {
      this.actions.toast("A message cannot be empty; delete it instead.");
      return;
    }
    if (text === message.text.trim()) return this.stopEditing(message);
    box.disabled = true;
    try {
      await this.actions.edit(message, text);
      this.stopEditing(message);
    } catch (error) {
      box.disabled = false;
      this.actions.toast(`Could not save: ${error.detail || error.message}`);
    }
  }

  submit() {
    const conv = this.conv;
    if (!conv) return;
    const text = this.el.text.value;
    if (!VISIBLE.test(text)) return;
    // The server counts code points (an emoji is one), not UTF-16 units.
    if ([...text.trim()].length > this.maxChars) {
      this.el.error.textContent = `A message can have at most ${this.maxChars.toLocaleString()} characters.`;
      return;
    }
    this.el.text.value = "";
    this.drafts.delete(conv.id);
    this.autosize();
    this.lastTypingSent = 0;
    this.stickToBottom = true;
    this.actions.send(conv.id, text);
  }

  async loadOlder() {
    const conv = this.conv;
    if (!conv || !conv.historyLoaded || !conv.hasOlder || conv.loadingOlder) return;
    await this.actions.loadOlder(conv);
  }

  maybeSeen() {
    // Read only what is in front of the person: a visible tab in a focused window.
    if (!this.conv || document.visibilityState !== "visible" || !document.hasFocus()) return;
    if (this.nearBottom() || this.el.scroller.scrollHeight <= this.el.scroller.clientHeight) {
      this.actions.seen(this.conv);
    }
  }
}
