// Comments this browser wrote. Their edit tokens live in localStorage (the widget) or in the
// cookie the form path sets (kibitz's own page), and expire with the edit window; inside it
// the comment gets Edit and Delete buttons that call the API with the token.
import { h } from "./render.js";
import { STATUS } from "./statuses.js";

const KEY = "kibitz:own";

function cookieToken(id) {
  const match = document.cookie.match(new RegExp("(?:^|; )kibitz_edit_" + Number(id) + "=([^;]*)"));
  return match ? decodeURIComponent(match[1]) : null;
}

export class Own {
  constructor({ api, t, editWindow, view, scope }) {
    Object.assign(this, { api, t, view, key: KEY + ":" + scope, window: editWindow * 1000 });
    let stored = {};
    try { stored = JSON.parse(localStorage.getItem(this.key)) || {}; } catch { stored = {}; }
    this.entries = Object.fromEntries(Object.entries(stored).filter(([, e]) => e.until > Date.now()));
    this.save();
  }

  save() {
    try { localStorage.setItem(this.key, JSON.stringify(this.entries)); } catch { /* private mode */ }
  }

  remember(comment, token, text) {
    this.entries[comment.id] = { token, text, until: Date.parse(comment.created) + this.window };
    this.save();
  }

  entry(c) {
    const until = Date.parse(c.created) + this.window;
    if (until <= Date.now()) return null;
    if (this.entries[c.id]) return this.entries[c.id];
    const token = cookieToken(c.id);
    return token ? (this.entries[c.id] = { token, text: null, until }) : null;
  }

  // Called by the view for every comment it builds.
  decorate(li, c) {
    const entry = c.status === STATUS.APPROVED && this.entry(c);
    const actions = entry && li.querySelector(".comment__actions");
    if (!actions) return;
    const t = this.t;
    const edit = h("button", { type: "button", class: "comment__edit-button" }, t("Edit"));
    const remove = h("button", { type: "button", class: "comment__delete-button" }, t("Delete"));
    edit.addEventListener("click", () => this.edit(c.id, entry));
    remove.addEventListener("click", () => this.remove(c.id, entry, remove));
    actions.append(edit, remove);
    setTimeout(() => { edit.remove(); remove.remove(); }, Math.min(entry.until - Date.now(), 2 ** 31 - 1));
  }

  edit(id, entry) {
    const t = this.t;
    const li = this.view.get(id);
    const card = li && li.querySelector(":scope > .comment__card");
    if (!card || card.querySelector(".comment__edit")) return;
    const body = card.querySelector(".comment__body");
    const field = "kibitz-edit-" + id;
    const area = h("textarea", { id: field, name: "text", rows: "6", maxlength: "10000", required: true });
    area.value = entry.text ?? body.innerText.trim();
    const error = h("span", { class: "field__error", id: field + "-error", hidden: true });
    const cancel = h("button", { type: "button", class: "button--secondary" }, t("Cancel"));
    const form = h("form", { class: "comment__edit comment-form", novalidate: true },
      h("p", { class: "field field--text" }, h("label", { for: field }, t("Edit your comment")), area, error),
      h("p", { class: "form__submit" }, h("button", { type: "submit" }, t("Save")), " ", cancel));
    const show = (editing) => {
      const current = form.parentElement;
      for (const el of current.querySelectorAll(":scope > .comment__body, :scope > .comment__actions")) el.hidden = editing;
    };
    body.after(form);
    show(true);
    area.focus();
    const close = () => {
      show(false);
      const card = form.parentElement;
      form.remove();
      const button = card.querySelector(".comment__edit-button");
      if (button) button.focus();
    };
    cancel.addEventListener("click", close);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const { comment } = await this.api.edit(id, area.value, entry.token);
        entry.text = area.value;
        this.save();
        close();
        this.view.update(comment);
        const button = this.view.get(id).querySelector(".comment__edit-button");
        if (button) button.focus();
      } catch (err) {
        error.textContent = t(err.fields.text || (err.status ? err.message : "The comment could not be sent. Check your connection; everything you typed is still here."));
        error.hidden = false;
        area.setAttribute("aria-invalid", "true");
        area.setAttribute("aria-describedby", error.id);
        area.focus();
      }
    });
  }

  // Two presses: the first asks, the second deletes. No modal dialog, nothing blocks.
  async remove(id, entry, button) {
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = this.t("Really delete?");
      setTimeout(() => { delete button.dataset.armed; button.textContent = this.t("Delete"); }, 5000);
      return;
    }
    try {
      await this.api.remove(id, entry.token);
    } catch (err) {
      button.textContent = this.t(err.status ? err.message : "Delete");
      return;
    }
    delete this.entries[id];
    this.save();
    const li = this.view.get(id);
    if (li && li.querySelector(":scope > ol.comment-list--children > li")) {
      this.view.update({ id, parent: Number(li.dataset.parent) || null, created: li.dataset.created,
        status: STATUS.DELETED, author: "", html: "", website: null, edited: null, staff: false });
    } else {
      this.view.remove(id);
    }
  }
}
