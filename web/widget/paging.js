// Big threads in the browser, shared by kibitz's own post page and the widget: "load more"
// (the next keyset page appended in place), the order control (its choice kept in
// localStorage), vote buttons, the closed notice, and the polite "N new comments" button for
// live top-level comments whose place is not loaded yet. Everything is a real button or a
// labelled select, so it works by keyboard; changes are announced through the polite region.
import { h } from "./render.js";
import { STATUS } from "./statuses.js";

export const SORTS = ["oldest", "newest", "best"];
export const PAGE = 50; // the widget's first page, asked for before /api/config answers
const SORT_KEY = "kibitz:sort";

export function storedSort() {
  try {
    const sort = localStorage.getItem(SORT_KEY);
    return SORTS.includes(sort) ? sort : null;
  } catch { return null; }
}

function keepSort(sort) {
  try { localStorage.setItem(SORT_KEY, sort); } catch { /* storage off: the order still changes */ }
}

// The order control as the post page renders it (web/templates/post.html).
export function buildOrder(t, sort) {
  const select = h("select", { id: "kibitz-sort", name: "sort", "data-order": true },
    [["oldest", t("Oldest first")], ["newest", t("Newest first")], ["best", t("Best first")]]
      .map(([value, label]) => h("option", { value, selected: value === sort }, label)));
  return h("div", { class: "comments__order", "data-order-form": true },
    h("label", { for: "kibitz-sort" }, t("Order")), select,
    h("button", { type: "button", "data-order-submit": true }, t("Show")));
}

export class Pager {
  // { api, uri, view, t, announcer, limit, next, closedNotice, form, newNotice, more }
  constructor(o) {
    Object.assign(this, o);
    this.held = [];
    this.loading = false;
    this.moreButton = h("button", { type: "button", class: "comments__load", "data-load-more": true },
      this.t("Load more comments"));
    this.moreButton.onclick = () => this.loadMore();
    this.more.replaceChildren(this.moreButton);
    this.newButton = this.newNotice.querySelector("button");
    this.newButton.onclick = () => this.showHeld();
    this.setNext(this.next);
  }

  setNext(token) {
    this.next = token || null;
    this.more.hidden = !this.next;
  }

  say(text) {
    if (this.announcer) this.announcer.textContent = text;
  }

  async loadMore() {
    if (!this.next || this.loading) return;
    this.loading = true;
    try {
      const page = await this.api.page(this.uri, { sort: this.view.sort, limit: this.limit, after: this.next });
      const added = this.view.appendPage(page.comments);
      this.setNext(page.next);
      const roots = added.filter((li) => !li.dataset.parent).length;
      this.say(this.t.n("%(count)s more comment loaded", "%(count)s more comments loaded", roots));
      // The button is gone on the last page: focus moves to the first comment just loaded.
      if (!this.next && added.length) added[0].querySelector(".comment__permalink")?.focus();
    } catch {
      this.say(this.t("The comments could not be loaded."));
    } finally {
      this.loading = false;
    }
  }

  // The first page in another order; returns the new cursor (for a live reset too).
  async reorder(sort) {
    const page = await this.api.page(this.uri, { sort, limit: this.limit });
    this.view.sort = sort;
    this.view.total = page.count;
    this.view.render(page.comments);
    this.setNext(page.next);
    this.held = [];
    this.updateHeld();
    this.setClosed(page.closed);
    return page.cursor;
  }

  // The page's order form (submit), or the widget's control (a button: no second form).
  attachOrder(form) {
    if (!form) return;
    const go = async (event) => {
      event.preventDefault();
      const select = form.querySelector("select");
      keepSort(select.value);
      try {
        await this.reorder(select.value);
        this.say(select.selectedOptions[0].textContent); // "Newest first"
      } catch {
        this.say(this.t("The comments could not be loaded."));
      }
    };
    form.addEventListener("submit", go);
    if (form.tagName === "DIV") form.querySelector("button").onclick = go;
  }

  // A live top-level comment: true when it goes among the loaded ones now.
  admit(c) {
    if (c.parent) return Boolean(this.view.get(c.parent));
    if (!this.next || this.view.fitsLoaded(c)) return true;
    if (!this.held.some((other) => other.id === c.id)) this.held.push(c);
    this.updateHeld();
    return false;
  }

  updateHeld() {
    const n = this.held.length;
    this.newNotice.hidden = n === 0;
    if (n) {
      const text = this.t.n("%(count)s new comment", "%(count)s new comments", n);
      this.newButton.textContent = text;
      this.say(text);
    }
  }

  showHeld() {
    const held = this.held;
    this.held = [];
    for (const c of held) this.view.place(c)?.classList.add("comment--new");
    this.updateHeld();
    if (held[0]) this.view.get(held[0].id).querySelector(".comment__permalink")?.focus();
  }

  setClosed(closed) {
    if (this.closedNotice) this.closedNotice.hidden = !closed;
    if (this.form) this.form.hidden = Boolean(closed);
  }
}

// Vote buttons under each comment: a real toggle button per direction (aria-pressed), the
// count in its text. A reader the host site signed in votes as that user (`sso()` gives the
// token); anyone else gets an anonymous voter id, asked for once and kept in localStorage.
export class Votes {
  constructor({ api, t, mode, scope, announcer, sso = () => "" }) {
    Object.assign(this, { api, t, mode, announcer, sso, key: "kibitz:votes:" + scope, voterKey: "kibitz:voter:" + scope });
    try { this.mine = JSON.parse(localStorage.getItem(this.key)) || {}; } catch { this.mine = {}; }
  }

  save() {
    try { localStorage.setItem(this.key, JSON.stringify(this.mine)); } catch { /* private mode */ }
  }

  button(id, value, n) {
    const label = value === 1
      ? this.t.n("%(count)s like", "%(count)s likes", n)
      : this.t.n("%(count)s dislike", "%(count)s dislikes", n);
    return h("button", { type: "button", class: "comment__vote", "data-vote": value,
      "aria-pressed": this.mine[id] === value ? "true" : "false" },
    h("span", { "aria-hidden": "true" }, value === 1 ? "▲ " : "▼ "), label);
  }

  // Called by the view for every comment it builds, and for server-rendered ones.
  decorate(li, c) {
    if (this.mode === "off" || c.status === STATUS.DELETED) return;
    const footer = li.querySelector(":scope > .comment__card > .comment__actions");
    if (!footer) return;
    const old = footer.querySelector(":scope > .comment__votes");
    const group = h("span", { class: "comment__votes" },
      this.button(c.id, 1, c.up || 0), this.mode === "updown" && this.button(c.id, -1, c.down || 0));
    if (old) old.replaceWith(group);
    else footer.prepend(group);
  }

  // New counts on the same buttons, so a reader's focus stays where it was.
  show(li, up, down) {
    for (const b of li.querySelectorAll(":scope > .comment__card > .comment__actions .comment__vote")) {
      const fresh = this.button(li.dataset.id, Number(b.dataset.vote), b.dataset.vote === "1" ? up : down);
      b.replaceChildren(...fresh.childNodes);
      b.setAttribute("aria-pressed", fresh.getAttribute("aria-pressed"));
    }
  }

  async voter(fresh) {
    let id = null;
    try { id = fresh ? null : localStorage.getItem(this.voterKey); } catch { id = null; }
    if (id) return id;
    id = (await this.api.voter()).voter;
    try { localStorage.setItem(this.voterKey, id); } catch { /* kept for this page only */ }
    return id;
  }

  async cast(view, id, value) {
    const next = this.mine[id] === value ? 0 : value;
    let tally;
    try {
      const token = this.sso();
      if (token) tally = await this.api.vote(id, next, { sso: token });
      else try {
        tally = await this.api.vote(id, next, { voter: await this.voter(false) });
      } catch (err) {
        if (err.status !== 401) throw err;
        tally = await this.api.vote(id, next, { voter: await this.voter(true) }); // a stale or foreign id
      }
    } catch (err) {
      if (this.announcer) this.announcer.textContent = this.t(err.status ? err.message : "The vote could not be sent.");
      return;
    }
    if (tally.mine) this.mine[id] = tally.mine;
    else delete this.mine[id];
    this.save();
    view.setVotes(id, tally.up, tally.down);
  }

  attach(list, view) {
    if (this.mode === "off") return;
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button.comment__vote");
      if (button) this.cast(view, Number(button.closest("li").dataset.id), Number(button.dataset.vote));
    });
  }
}
