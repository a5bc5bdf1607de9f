// kibitz admin: actions without reloads, keyboard shortcuts, and the live moderation queue.
// The pages work without this file (plain forms); it only makes them faster to use.
// No inline code anywhere: the admin's Content-Security-Policy allows scripts only from here.
"use strict";

(() => {
  const list = document.querySelector("[data-mod-list]");
  if (!list) return;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  // Statuses and actions come from the server's markup (db.models.Status and
  // server.discussion.moderation.Action render it): no copy of them lives here.
  const status = list.dataset.status;
  const isQueue = "queue" in list.dataset;
  const announcer = document.querySelector("[data-announcer]");
  const empty = document.querySelector("[data-empty]");
  const template = document.querySelector("template[data-item-template]");
  const pendingCount = document.querySelector("[data-pending-count]");

  const items = () => [...list.querySelectorAll(".mod-item")];
  const itemById = (id) => list.querySelector(`.mod-item[data-id="${Number(id)}"]`);
  const say = (text) => { if (announcer) announcer.textContent = text; };

  function refreshCounts() {
    const n = items().length;
    if (empty) empty.hidden = n > 0;
    if (pendingCount && isQueue) pendingCount.textContent = String(n);
  }

  // -- the current item and keyboard shortcuts ------------------------------------------

  let current = null;
  function setCurrent(item, focus = true) {
    if (current) current.classList.remove("is-current");
    current = item || null;
    if (!current) return;
    current.classList.add("is-current");
    if (focus) {
      current.focus({ preventScroll: true });
      current.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    const all = items();
    if (!all.length) return;
    const at = all.indexOf(current);
    const next = at < 0 ? (step > 0 ? 0 : all.length - 1)
      : Math.min(all.length - 1, Math.max(0, at + step));
    setCurrent(all[next]);
  }

  function removeItem(id, why) {
    const item = itemById(id);
    if (!item) return;
    if (item === current) {
      const all = items();
      const at = all.indexOf(item);
      setCurrent(all[at + 1] || all[at - 1] || null, list.contains(document.activeElement));
    }
    item.remove();
    refreshCounts();
    if (why) say(why);
  }

  // -- actions through the JSON API, with the session's CSRF token -----------------------

  // ``action`` is what the page calls it (restore), ``apiAction`` the JSON API's name (approve).
  async function act(id, action, apiAction) {
    const item = itemById(id);
    if (item) item.classList.add("is-leaving");
    try {
      // The version on screen: if the comment was edited since, the server refuses (409).
      const version = item && item.dataset.version ? `?version=${Number(item.dataset.version)}` : "";
      const response = await fetch(`/api/comments/${Number(id)}/${encodeURIComponent(apiAction)}${version}`, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      });
      if (response.status === 401) { location.assign("/admin/login?next=" + encodeURIComponent(location.pathname)); return false; }
      if (response.status === 409) {
        if (item) item.classList.remove("is-leaving");
        say(`#${id} was edited after you saw it: read it again.`);
        if (status === "pending") await reload(); else location.reload();
        return false;
      }
      if (!response.ok) throw new Error(String(response.status));
      removeItem(id, `#${id}: ${action}`);
      return true;
    } catch (error) {
      if (item) item.classList.remove("is-leaving");
      say(`#${id}: ${action} failed (${error.message})`);
      return false;
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.matches("[data-actions]")) {
      const button = event.submitter;
      if (!button || !button.dataset.action) return;
      event.preventDefault();
      act(form.closest(".mod-item").dataset.id, button.value, button.dataset.action);
    } else if (form.id === "bulk") {
      const option = form.elements.action.selectedOptions[0];
      const action = option.value;
      const ids = [...document.querySelectorAll("input[data-select]:checked")].map((b) => b.value);
      if (!ids.length) { event.preventDefault(); say("Select at least one comment."); return; }
      event.preventDefault();
      (async () => { for (const id of ids) await act(id, action, option.dataset.action); })();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    // Typing in a field is typing, not a shortcut; a focused checkbox or button is not.
    const typing = 'input:not([type="checkbox"]):not([type="radio"]), textarea, select, [contenteditable]';
    if (target.closest && target.closest(typing)) return;
    const key = event.key;
    if (key === "j") { move(1); } else if (key === "k") { move(-1); } else if (current && key === "x") {
      const box = current.querySelector("[data-select]");
      box.checked = !box.checked;
    } else if (current && "asd".includes(key)) {
      const button = current.querySelector(`[data-actions] [data-key="${key}"]`);
      if (!button) return;
      act(current.dataset.id, button.value, button.dataset.action);
    } else if (current && key === "r") {
      const details = current.querySelector("[data-reply-form] details");
      if (!details) return;
      details.open = true;
      details.querySelector("textarea").focus();
    } else {
      return;
    }
    event.preventDefault();
  });

  list.addEventListener("click", (event) => {
    const item = event.target.closest(".mod-item");
    if (item && item !== current) setCurrent(item, false);
  });

  // -- the live queue ----------------------------------------------------------------------

  function fill(item, comment) {
    const id = String(comment.id);
    item.id = `mod-${id}`;
    item.dataset.id = id;
    item.dataset.version = String(comment.version || "");
    const set = (name, value) => {
      for (const el of item.querySelectorAll(`[data-field="${name}"]`)) el.textContent = value ?? "";
    };
    for (const name of ["id", "author", "email", "website", "address", "reason", "text"]) {
      set(name, comment[name]);
    }
    const created = item.querySelector('[data-field="created"]');
    created.textContent = comment.created || "";
    created.setAttribute("datetime", comment.created || "");
    const uri = item.querySelector('[data-field="uri"]');
    uri.textContent = comment.uri || "";
    uri.setAttribute("href", comment.uri || "#");
    // Sanitised by the server (the same HTML readers will get once it is approved).
    item.querySelector('[data-field="html"]').innerHTML = comment.html || "";
    item.querySelector('[data-field="id-input"]').value = id;
    for (const input of item.querySelectorAll('[data-field="version-input"], [data-field="bulk-version"]')) {
      input.name = `version-${id}`;
      input.value = String(comment.version || "");
    }
    const box = item.querySelector("[data-select]");
    box.value = id;
    box.id = `select-${id}`;
    box.parentElement.querySelector("label").htmlFor = box.id;
    const ban = item.querySelector("[data-ban-form]");
    if (ban) {
      ban.action = `/admin/comments/${id}/ban`;
      const reason = ban.querySelector("input[name=reason]");
      reason.id = `ban-reason-${id}`;
      ban.querySelector("label").htmlFor = reason.id;
    }
    const reply = item.querySelector("[data-reply-form]");
    if (reply) {
      reply.action = `/admin/comments/${id}/reply`;
      const area = reply.querySelector("textarea");
      area.id = `reply-${id}`;
      reply.querySelector("label").htmlFor = area.id;
    }
    return item;
  }

  function addItem(comment) {
    if (!template) return;
    const shown = itemById(comment.id);
    if (shown && shown.dataset.version === String(comment.version)) return;
    const item = fill(template.content.firstElementChild.cloneNode(true), comment);
    if (shown) {
      // Edited while held: the new text replaces the old one where it stands.
      if (shown === current) current = item;
      shown.replaceWith(item);
      if (current === item) item.classList.add("is-current");
      say(`#${comment.id} was edited by its author`);
      return;
    }
    // Oldest first: insert before the first item with a larger id.
    const after = items().find((el) => Number(el.dataset.id) > comment.id);
    list.insertBefore(item, after || null);
    refreshCounts();
  }

  async function reload() {
    const response = await fetch(`/api/moderation?status=${encodeURIComponent(status)}`, {
      credentials: "same-origin", headers: { "Accept": "application/json" },
    });
    if (!response.ok) return;
    const { comments } = await response.json();
    const wanted = new Set(comments.map((c) => String(c.id)));
    for (const item of items()) if (!wanted.has(item.dataset.id)) removeItem(item.dataset.id);
    for (const comment of comments) addItem(comment);
  }

  function connect(url, attempt = 0) {
    let socket;
    try { socket = new WebSocket(url); } catch { return; }
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      attempt = 0;
      document.documentElement.dataset.live = "open";
      // Anything held or moderated while we were not connected: the queue reloads.
      reload().catch(() => {});
    });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (message.type === "comment.pending" && message.comment) {
        addItem(message.comment);
        say(`New comment held from ${message.comment.author}`);
      } else if (message.type === "comment.moderated") {
        removeItem(message.id, message.by ? `#${message.id}: ${message.status} by ${message.by}` : "");
      }
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4003) {
        // Access revoked (disabled, logged out, token revoked): take the queue off the screen
        // and let the server decide what to show; it sends us to the login page.
        document.documentElement.dataset.live = "revoked";
        for (const item of items()) item.remove();
        location.reload();
        return;
      }
      document.documentElement.dataset.live = "closed";
      const next = opened ? 0 : attempt + 1;
      const delay = Math.min(30000, 1000 * 2 ** Math.min(next, 5)) * (0.5 + Math.random() / 2);
      setTimeout(() => connect(url, next), delay);
    });
  }

  refreshCounts();
  if (isQueue && list.dataset.live && "WebSocket" in window) connect(list.dataset.live);
})();
