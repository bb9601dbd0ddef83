// DOM helpers. User data only ever becomes text nodes or attribute values set
// through the DOM API: nothing here parses HTML.

/** Create an element: h("a", {href, class: "x", onclick: fn}, "text", child). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child)); // strings become text nodes
  }
}

/** Text for screen readers only. */
export function srOnly(text) {
  return h("span", { class: "visually-hidden" }, text);
}

// http(s) URLs, up to whitespace or characters that cannot be in one unescaped.
const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = new Set([".", ",", ";", ":", "!", "?", "'", '"', ")", "]", "}", ">"]);
// Longer "URLs" stay text: no real link is this long, and it bounds the work.
const MAX_LINK_CHARS = 2048;

/** A web link's href, or null for anything but http/https. */
export function safeHref(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** The URL without trailing punctuation: "see (https://x.org/a)." links
 * "https://x.org/a", while "https://x.org/a_(b)" keeps its ")" because the URL
 * opened a "(". One pass to count, one backward scan: linear in the length. */
export function trimUrl(url) {
  let balance = 0; // "(" minus ")" in url[0, end)
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 40) balance += 1;
    else if (c === 41) balance -= 1;
  }
  let end = url.length;
  while (end > 0 && TRAILING.has(url[end - 1])) {
    if (url[end - 1] === ")") {
      if (balance >= 0) break; // it closes a "(" of the URL
      balance += 1;
    }
    end -= 1;
  }
  return url.slice(0, end);
}

/** Message text as nodes: plain text, with http(s) URLs as links. Line breaks
 * stay in the text; CSS (white-space: pre-wrap) shows them. */
export function richText(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    if (match[0].length > MAX_LINK_CHARS) continue;
    const url = trimUrl(match[0]);
    const href = safeHref(url);
    if (!href) continue;
    fragment.append(text.slice(last, match.index));
    fragment.append(
      h("a", { href, target: "_blank", rel: "noopener noreferrer" }, url),
    );
    last = match.index + url.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

// --- time ---------------------------------------------------------------------

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const weekdayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const shortDateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const longDateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  day: "numeric",
  month: "long",
  year: "numeric",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

function daysAgo(date, now = new Date()) {
  return Math.round((startOfDay(now) - startOfDay(date)) / 86400000);
}

export function formatTime(iso) {
  return timeFormat.format(new Date(iso));
}

export function formatFull(iso) {
  return fullFormat.format(new Date(iso));
}

/** The time shown in the conversation list: today's time, a weekday, or a date. */
export function formatListTime(iso) {
  const date = new Date(iso);
  const days = daysAgo(date);
  if (days <= 0) return timeFormat.format(date);
  if (days === 1) return "Yesterday";
  if (days < 7) return weekdayFormat.format(date);
  return shortDateFormat.format(date);
}

/** A local calendar day, to tell where day separators go. */
export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

export function dayLabel(iso) {
  const date = new Date(iso);
  const days = daysAgo(date);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return longDateFormat.format(date);
}

export function lastSeen(iso) {
  if (!iso) return "offline";
  const seconds = (Date.now() - new Date(iso)) / 1000;
  if (seconds < 60) return "last seen just now";
  if (seconds < 3600) return `last seen ${Math.floor(seconds / 60)} min ago`;
  if (daysAgo(new Date(iso)) === 0) return `last seen today at ${formatTime(iso)}`;
  if (daysAgo(new Date(iso)) === 1) return `last seen yesterday at ${formatTime(iso)}`;
  return `last seen ${shortDateFormat.format(new Date(iso))}`;
}

// --- avatars ------------------------------------------------------------------

export function initials(name) {
  // Letters and digits only: "Dave <b>Bold</b>" is "DB", not "D<".
  const words = String(name || "").split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  if (!words.length) return "?";
  // By code point: a letter outside the BMP is two UTF-16 units.
  const first = [...words[0]];
  const letters = words.length > 1 ? first[0] + [...words[words.length - 1]][0] : first.slice(0, 2).join("");
  return letters.toUpperCase();
}

export function avatar(name, seed, { size = "", status = null } = {}) {
  const hue = (Number(seed) * 47) % 360;
  return h(
    "span",
    {
      class: `avatar ${size}`.trim(),
      "aria-hidden": "true",
      style: `--avatar-hue: ${hue}`,
    },
    initials(name),
    status ? h("span", { class: `presence-dot ${status}` }) : null,
  );
}

// --- keyed lists --------------------------------------------------------------

/**
 * Make `container`'s children match `items` ({key, version, render}) in order,
 * reusing the node of each key whose version did not change. Reused nodes keep
 * focus and scroll, and a live region announces only the nodes really added.
 */
export function reconcile(container, items) {
  const existing = new Map();
  for (const child of container.children) existing.set(child.dataset.key, child);
  let cursor = container.firstElementChild;
  for (const item of items) {
    let node = existing.get(item.key);
    if (node && node.dataset.version !== item.version) {
      if (node === cursor) cursor = cursor.nextElementSibling;
      const hadFocus = node.contains(document.activeElement);
      node.remove();
      node = null;
      if (hadFocus) item.refocus = true;
    }
    if (!node) {
      node = item.render();
      node.dataset.key = item.key;
      node.dataset.version = item.version;
    }
    existing.delete(item.key);
    if (node === cursor) cursor = cursor.nextElementSibling;
    else container.insertBefore(node, cursor);
    if (item.refocus) node.querySelector("[data-refocus]")?.focus();
  }
  for (const stale of existing.values()) stale.remove();
}
