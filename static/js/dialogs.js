// Dialogs: start a direct chat, create a group, see and manage a group's members.
// Native <dialog>: focus moves in, Escape closes, focus returns to the opener.

import { api } from "./api.js";
import { avatar, h } from "./render.js";

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function userName(user) {
  return user.display_name || user.username;
}

function errorText(error) {
  if (error.code === "group_full") return error.detail;
  if (error.fields) return Object.values(error.fields).flat().join(" ");
  return error.detail || error.message || "Something went wrong.";
}

/**
 * Search users and pick many: results with checkboxes, "add all matches"
 * (every page of the search, up to the room left), and the picked people as
 * removable chips. Made for groups of up to 100.
 */
export class UserPicker {
  constructor({ root, exclude, capacity, idPrefix }) {
    this.exclude = exclude; // () => Set of user ids that cannot be picked
    this.capacity = capacity; // () => how many more can be picked in total
    this.selected = new Map(); // id -> user
    this.results = [];
    this.next = null;
    this.query = "";
    this.seq = 0;
    const resultsId = `${idPrefix}-results`;
    const statusId = `${idPrefix}-status`;
    this.input = h("input", {
      type: "search",
      id: `${idPrefix}-search`,
      class: "picker-search",
      placeholder: "Search by name or username",
      autocomplete: "off",
      "aria-controls": resultsId,
      "aria-describedby": statusId,
    });
    this.status = h("span", { id: statusId, class: "picker-status", "aria-live": "polite" });
    this.addAll = h("button", { type: "button", class: "secondary small", hidden: true }, "Add all matches");
    this.more = h("button", { type: "button", class: "link small", hidden: true }, "Show more");
    this.list = h("ul", { id: resultsId, class: "picker-results", "aria-label": "Search results" });
    this.chips = h("ul", { class: "chips", "aria-label": "Selected people" });
    this.count = h("p", { class: "picker-count", "aria-live": "polite" });
    this.message = h("p", { class: "picker-message", role: "status" });
    root.replaceChildren(
      h("label", { for: this.input.id, class: "field-label" }, "Add people"),
      this.input,
      h("div", { class: "picker-bar" }, this.status, this.addAll),
      this.list,
      this.more,
      this.message,
      this.count,
      this.chips,
    );
    this.input.addEventListener("input", debounce(() => this.search(), 200));
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault(); // never submit the dialog's form from the search box
        this.search();
      }
    });
    this.addAll.addEventListener("click", () => this.addAllMatches());
    this.more.addEventListener("click", () => this.loadMore());
    this.list.addEventListener("change", (event) => {
      const box = event.target.closest("input[type=checkbox]");
      if (!box) return;
      const user = this.results.find((u) => u.id === Number(box.value));
      if (!user) return;
      if (box.checked) {
        if (!this.pick(user)) box.checked = false;
      } else this.unpick(user.id);
    });
    this.chips.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-user-id]");
      if (!button) return;
      this.unpick(Number(button.dataset.userId));
      const chips = this.chips.querySelectorAll("button");
      (chips[0] || this.input).focus();
    });
    this.renderSelection();
  }

  reset() {
    this.selected.clear();
    this.results = [];
    this.next = null;
    this.input.value = "";
    this.message.textContent = "";
    this.status.textContent = "";
    this.renderResults();
    this.renderSelection();
  }

  room() {
    return this.capacity() - this.selected.size;
  }

  pick(user) {
    if (this.selected.has(user.id)) return true;
    if (this.room() <= 0) {
      this.message.textContent = "The group is full: a group has at most 100 members.";
      return false;
    }
    this.selected.set(user.id, user);
    this.renderSelection();
    return true;
  }

  unpick(id) {
    this.selected.delete(id);
    this.message.textContent = "";
    this.renderSelection();
    this.renderResults();
  }

  pickable(users) {
    const excluded = this.exclude();
    return users.filter((u) => !excluded.has(u.id));
  }

  async search() {
    const query = this.input.value.trim();
    const seq = ++this.seq;
    this.query = query;
    this.status.textContent = "Searching…";
    try {
      const page = await api.searchUsers(query, { limit: 20 });
      if (seq !== this.seq) return;
      this.results = this.pickable(page.users);
      this.next = page.next;
      this.renderResults();
    } catch (error) {
      if (seq === this.seq) this.status.textContent = errorText(error);
    }
  }

  async loadMore() {
    if (!this.next) return;
    const seq = this.seq;
    const page = await api.searchUsers(this.query, { cursor: this.next, limit: 20 });
    if (seq !== this.seq) return;
    this.results.push(...this.pickable(page.users));
    this.next = page.next;
    this.renderResults();
  }

  async addAllMatches() {
    const seq = this.seq;
    this.addAll.disabled = true;
    let added = 0;
    let full = false;
    try {
      // Every page of this search, 100 at a time, until the group is full.
      const users = this.results.slice();
      let cursor = this.next;
      const fresh = () => users.filter((u) => !this.selected.has(u.id)).length;
      while (cursor && fresh() < this.room()) {
        const page = await api.searchUsers(this.query, { cursor, limit: 100 });
        users.push(...this.pickable(page.users));
        cursor = page.next;
      }
      if (seq !== this.seq) return;
      for (const user of users) {
        if (this.selected.has(user.id)) continue;
        if (this.room() <= 0) {
          full = true;
          break;
        }
        this.selected.set(user.id, user);
        added += 1;
      }
      this.results = users;
      this.next = cursor;
      this.message.textContent = full
        ? `Added ${added}; the group is now full (at most 100 members).`
        : `Added ${added} ${added === 1 ? "person" : "people"}.`;
    } catch (error) {
      this.message.textContent = errorText(error);
    } finally {
      this.addAll.disabled = false;
      this.renderResults();
      this.renderSelection();
    }
  }

  renderResults() {
    const users = this.results;
    if (!this.query && users.length === 0) this.status.textContent = "";
    else if (users.length === 0) this.status.textContent = "Nobody found.";
    else this.status.textContent = `${users.length}${this.next ? "+" : ""} found`;
    this.addAll.hidden = users.length < 2;
    this.addAll.textContent = this.next ? "Add all matches" : `Add all ${users.length}`;
    this.more.hidden = !this.next;
    this.list.replaceChildren(
      ...users.map((user) =>
        h(
          "li",
          null,
          h(
            "label",
            { class: "person" },
            h("input", {
              type: "checkbox",
              value: user.id,
              checked: this.selected.has(user.id),
            }),
            avatar(userName(user), user.id, { size: "small" }),
            h("span", { class: "person-name" }, userName(user)),
            h("span", { class: "person-handle" }, `@${user.username}`),
          ),
        ),
      ),
    );
  }

  renderSelection() {
    const total = this.selected.size;
    this.count.textContent = total ? `${total} selected · room for ${this.room()} more` : "";
    this.chips.replaceChildren(
      ...[...this.selected.values()].map((user) =>
        h(
          "li",
          { class: "chip" },
          h("span", null, userName(user)),
          h(
            "button",
            { type: "button", "data-user-id": user.id, "aria-label": `Remove ${userName(user)}`, title: "Remove" },
            "×",
          ),
        ),
      ),
    );
    for (const box of this.list.querySelectorAll("input[type=checkbox]")) {
      box.checked = this.selected.has(Number(box.value));
    }
  }

  ids() {
    return [...this.selected.keys()];
  }
}

/** "New chat": find a person, open the direct conversation with them. */
export function setupDirectDialog({ dialog, me, onOpen }) {
  const input = dialog.querySelector("#direct-search");
  const list = dialog.querySelector("#direct-results");
  const status = dialog.querySelector("#direct-status");
  let seq = 0;
  const search = async () => {
    const mine = ++seq;
    status.textContent = "Searching…";
    try {
      const { users } = await api.searchUsers(input.value.trim(), { limit: 20 });
      if (mine !== seq) return;
      const others = users.filter((u) => u.id !== me.id);
      status.textContent = others.length ? `${others.length} found` : "Nobody found.";
      list.replaceChildren(
        ...others.map((user) =>
          h(
            "li",
            null,
            h(
              "button",
              { type: "button", class: "person", "data-user-id": user.id },
              avatar(userName(user), user.id, { size: "small" }),
              h("span", { class: "person-name" }, userName(user)),
              h("span", { class: "person-handle" }, `@${user.username}`),
            ),
          ),
        ),
      );
    } catch (error) {
      if (mine === seq) status.textContent = errorText(error);
    }
  };
  input.addEventListener("input", debounce(search, 200));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      list.querySelector("button")?.click();
    }
  });
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-user-id]");
    if (!button) return;
    button.disabled = true;
    try {
      const conversation = await api.createDirect(Number(button.dataset.userId));
      dialog.close();
      onOpen(conversation);
    } catch (error) {
      status.textContent = errorText(error);
      button.disabled = false;
    }
  });
  return () => {
    input.value = "";
    list.replaceChildren();
    status.textContent = "";
    dialog.showModal();
    input.focus();
    search();
  };
}

/** "New group": a title and up to 99 other people. */
export function setupGroupDialog({ dialog, me, maxMembers, onOpen }) {
  const form = dialog.querySelector("form");
  const title = dialog.querySelector("#group-title");
  const error = dialog.querySelector("#group-error");
  const submit = dialog.querySelector("#group-create");
  const picker = new UserPicker({
    root: dialog.querySelector("#group-picker"),
    exclude: () => new Set([me.id]),
    capacity: () => maxMembers - 1,
    idPrefix: "group",
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!title.value.trim()) {
      error.textContent = "Give the group a title.";
      title.focus();
      return;
    }
    submit.disabled = true;
    try {
      const conversation = await api.createGroup(title.value.trim(), picker.ids());
      dialog.close();
      onOpen(conversation);
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      submit.disabled = false;
    }
  });
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  return () => {
    form.reset();
    error.textContent = "";
    picker.reset();
    dialog.showModal();
    title.focus();
  };
}

/** A group's members: roles, add and remove (owner/admins), rename, leave. */
export function setupMembersDialog({ dialog, store, maxMembers, toast, onLeft }) {
  const heading = dialog.querySelector("#members-heading");
  const list = dialog.querySelector("#members-list");
  const renameForm = dialog.querySelector("#rename-form");
  const renameInput = dialog.querySelector("#rename-title");
  const addSection = dialog.querySelector("#members-add");
  const addButton = dialog.querySelector("#members-add-button");
  const leave = dialog.querySelector("#members-leave");
  const error = dialog.querySelector("#members-error");
  let conv = null;

  const managing = () => ["owner", "admin"].includes(store.myRole(conv));
  const picker = new UserPicker({
    root: dialog.querySelector("#members-picker"),
    exclude: () => new Set((conv?.members || []).map((m) => m.user_id)),
    capacity: () => maxMembers - (conv?.members || []).length,
    idPrefix: "members",
  });

  const render = () => {
    if (!conv) return;
    const count = conv.members.length;
    heading.textContent = `${store.title(conv)} · ${count} member${count === 1 ? "" : "s"}`;
    renameForm.hidden = !managing();
    addSection.hidden = !managing();
    const rank = { owner: 0, admin: 1, member: 2 };
    const members = [...conv.members].sort(
      (a, b) => rank[a.role] - rank[b.role] || userName(a).localeCompare(userName(b)),
    );
    list.replaceChildren(
      ...members.map((member) => {
        const me = member.user_id === store.me.id;
        const removable = managing() && !me && member.role !== "owner";
        // Only the owner hands out (and takes back) the admin role.
        const promotable = store.myRole(conv) === "owner" && !me;
        return h(
          "li",
          { class: "person", "data-user-id": member.user_id },
          avatar(userName(member), member.user_id, { size: "small" }),
          h("span", { class: "person-name" }, userName(member), me ? " (you)" : ""),
          h("span", { class: "person-handle" }, `@${member.username}`),
          member.role !== "member" ? h("span", { class: "role" }, member.role) : null,
          promotable
            ? h(
                "button",
                {
                  type: "button",
                  class: "link small",
                  "data-role": member.role === "admin" ? "member" : "admin",
                  "data-user-id": member.user_id,
                  "aria-label": `${member.role === "admin" ? "Remove admin role of" : "Make admin:"} ${userName(member)}`,
                },
                member.role === "admin" ? "Remove admin" : "Make admin",
              )
            : null,
          removable
            ? h(
                "button",
                {
                  type: "button",
                  class: "secondary small",
                  "data-remove": member.user_id,
                  "aria-label": `Remove ${userName(member)}`,
                },
                "Remove",
              )
            : null,
        );
      }),
    );
  };

  list.addEventListener("click", async (event) => {
    const roleButton = event.target.closest("button[data-role]");
    if (roleButton) {
      roleButton.disabled = true;
      error.textContent = "";
      try {
        const userId = Number(roleButton.dataset.userId);
        store.upsert(await api.setRole(conv.id, userId, roleButton.dataset.role));
        store.changed("conversation", { conversationId: conv.id });
        render();
      } catch (e) {
        error.textContent = errorText(e);
        roleButton.disabled = false;
      }
      return;
    }
    const button = event.target.closest("button[data-remove]");
    if (!button) return;
    button.disabled = true;
    error.textContent = "";
    const userId = Number(button.dataset.remove);
    try {
      await api.removeMember(conv.id, userId);
      store.removeMembers(conv.id, [userId]);
      store.changed("conversation", { conversationId: conv.id });
      render();
    } catch (e) {
      error.textContent = errorText(e);
      button.disabled = false;
    }
  });

  addButton.addEventListener("click", async () => {
    const ids = picker.ids();
    if (!ids.length) {
      error.textContent = "Pick someone to add first.";
      return;
    }
    addButton.disabled = true;
    error.textContent = "";
    try {
      store.upsert(await api.addMembers(conv.id, ids));
      store.changed("conversation", { conversationId: conv.id });
      picker.reset();
      render();
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      addButton.disabled = false;
    }
  });

  renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      store.upsert(await api.rename(conv.id, renameInput.value.trim()));
      store.changed("conversation", { conversationId: conv.id });
      render();
      toast("Group renamed.");
    } catch (e) {
      error.textContent = errorText(e);
    }
  });

  leave.addEventListener("click", async () => {
    if (leave.dataset.confirm !== "yes") {
      leave.dataset.confirm = "yes";
      leave.textContent = "Really leave? Click again";
      return;
    }
    leave.disabled = true;
    try {
      await api.removeMember(conv.id, store.me.id);
      const left = conv;
      dialog.close();
      onLeft(left);
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      leave.disabled = false;
    }
  });

  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    conv = null;
  });

  return {
    open(conversation) {
      conv = conversation;
      error.textContent = "";
      renameInput.value = conv.title || "";
      leave.dataset.confirm = "";
      leave.textContent = "Leave group";
      picker.reset();
      render();
      dialog.showModal();
    },
    refresh(conversationId) {
      if (conv && conv.id === conversationId) render();
    },
  };
}
