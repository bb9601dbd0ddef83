// The conversation list: one link per conversation, most recent activity first.

import { avatar, formatFull, formatListTime, h, reconcile, srOnly } from "./render.js";

// The preview line as parts: plain strings, and { bdi } for a name or text,
// which keep their own direction (a right-to-left name, or a direction
// control in a text, must not reorder the rest of the line).
function preview(store, conv) {
  const typers = store.typers(conv.id);
  if (typers.length) {
    const parts = conv.kind === "group" ? [{ bdi: store.userName(typers[0]) }, " is typing…"] : ["typing…"];
    return { parts, typing: true };
  }
  const message = conv.last_message;
  if (!message) return { parts: [conv.kind === "group" ? "New group" : "No messages yet"] };
  let prefix = [];
  if (message.sender_id === store.me.id) prefix = ["You: "];
  else if (conv.kind === "group") prefix = [{ bdi: store.userName(message.sender_id) }, ": "];
  if (message.deleted) return { parts: [...prefix, "Message deleted"], muted: true };
  // One line: the list shows the start of the text only.
  return { parts: [...prefix, { bdi: message.text.replace(/\s+/g, " ").slice(0, 140) }] };
}

function item(store, conv, activeId) {
  const title = store.title(conv);
  const unread = store.unread(conv);
  const partner = store.partner(conv);
  const status = partner ? store.status(partner.user_id) || "offline" : null;
  const line = preview(store, conv);
  const when = conv.last_message?.created_at || conv.last_activity_at;
  const active = conv.id === activeId;
  const version = JSON.stringify([title, unread, status, line, when, active, conv.kind]);
  return {
    key: String(conv.id),
    version,
    render: () =>
      h(
        "li",
        null,
        h(
          "a",
          {
            href: `#/c/${conv.id}`,
            class: `conv${unread ? " unread" : ""}${active ? " active" : ""}`,
            "aria-current": active ? "page" : null,
            dataset: { conversationId: conv.id },
          },
          avatar(title, partner ? partner.user_id : conv.id + 7, { status }),
          h(
            "span",
            { class: "conv-body" },
            h(
              "span",
              { class: "conv-top" },
              h("span", { class: "conv-name", dir: "auto" }, title),
              status ? srOnly(`, ${status}`) : null,
              when ? h("time", { datetime: when, title: formatFull(when) }, formatListTime(when)) : null,
            ),
            h(
              "span",
              { class: "conv-bottom" },
              h(
                "span",
                { class: `conv-preview${line.typing ? " is-typing" : ""}${line.muted ? " muted" : ""}` },
                ...line.parts.map((part) => (typeof part === "string" ? part : h("bdi", {}, part.bdi))),
              ),
              // aria-label on a plain span is not read out: the count goes
              // to screen readers as text, the round badge only to the eye.
              unread
                ? h("span", { class: "badge", "aria-hidden": "true" }, unread > 99 ? "99+" : String(unread))
                : null,
              unread ? srOnly(`, ${unread} unread`) : null,
            ),
          ),
        ),
      ),
  };
}

export function renderConversationList(store, container, { activeId, filter }) {
  const needle = (filter || "").trim().toLowerCase();
  const conversations = store
    .sorted()
    .filter((conv) => !needle || store.title(conv).toLowerCase().includes(needle));
  reconcile(
    container,
    conversations.map((conv) => item(store, conv, activeId)),
  );
  return conversations.length;
}
