// The REST calls of docs/protocol.md, authenticated by Django's session cookie.
// DRF's SessionAuthentication wants the CSRF token on unsafe methods.

const BASE = "/api/v1/";

export class ApiError extends Error {
  constructor(status, code, detail, fields) {
    super(detail || code);
    this.status = status; // 0: the request never got an answer (offline, DNS, ...)
    this.code = code;
    this.detail = detail;
    this.fields = fields || null;
  }

  get signedOut() {
    return this.status === 401 || (this.status === 403 && this.code === "not_authenticated");
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  // CSRF_COOKIE_HTTPONLY would hide the cookie: the page carries the token too.
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

async function request(method, path, { body, query, withStatus = false } = {}) {
  let url = BASE + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += "?" + text;
  }
  const headers = { Accept: "application/json" };
  const options = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server.");
  }
  if (response.status === 204) return withStatus ? { status: 204, data: null } : null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      data?.code || `http_${response.status}`,
      data?.detail || response.statusText || "Request failed.",
      data?.fields,
    );
  }
  return withStatus ? { status: response.status, data } : data;
}

const PAGE = 200;

export const api = {
  chatServer: () => request("GET", "chat-server/"),

  /** Every conversation of the user, most recently active first. */
  async conversations() {
    const all = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await request("GET", "conversations/", { query: { limit: PAGE, offset } });
      all.push(...page);
      if (page.length < PAGE) return all;
    }
  },
  conversation: (id) => request("GET", `conversations/${id}/`),
  createDirect: (userId) =>
    request("POST", "conversations/", { body: { kind: "direct", user_id: userId } }),
  createGroup: (title, memberIds) =>
    request("POST", "conversations/", { body: { kind: "group", title, member_ids: memberIds } }),
  rename: (id, title) => request("PATCH", `conversations/${id}/`, { body: { title } }),
  addMembers: (id, userIds) =>
    request("POST", `conversations/${id}/members/`, { body: { user_ids: userIds } }),
  removeMember: (id, userId) => request("DELETE", `conversations/${id}/members/${userId}/`),
  setRole: (id, userId, role) =>
    request("PATCH", `conversations/${id}/members/${userId}/`, { body: { role } }),

  /** A page of history in ascending seq: the newest, or the one before `before`. */
  history: (id, { before, limit = 50 } = {}) =>
    request("GET", `conversations/${id}/messages/`, { query: { before, limit } }),
  editMessage: (id, text) => request("PATCH", `messages/${id}/`, { body: { text } }),
  deleteMessage: (id) => request("DELETE", `messages/${id}/`),
  /** {status, data}: 201 reported now, 200 reported before (the first report). */
  reportMessage: (id, { reason, note }) =>
    request("POST", `messages/${id}/report/`, { body: { reason, note }, withStatus: true }),
  markRead: (id, seq) => request("POST", `conversations/${id}/read/`, { body: { seq } }),

  /** One page of the user search; `cursor` comes from the previous page's `next`. */
  async searchUsers(search, { cursor, limit = 20 } = {}) {
    const page = await request("GET", "users/", { query: { search, cursor, limit } });
    let next = null;
    if (page.next) next = new URL(page.next, location.href).searchParams.get("cursor");
    return { users: page.results, next };
  },

  /** Presence of users who share a conversation with us, 200 per request. */
  async presence(userIds) {
    const out = [];
    for (let i = 0; i < userIds.length; i += 200) {
      const chunk = userIds.slice(i, i + 200);
      out.push(...(await request("GET", "presence/", { query: { user_ids: chunk.join(",") } })));
    }
    return out;
  },
};
