// A thread as DOM, in the markup of web/templates/_comment.html, so kibitz's own pages and
// the widget share classes, styles and behaviour. The view adopts whatever list it is given
// (server-rendered on a post page, empty in the widget) and keeps it in thread order: roots
// and replies sorted by (created, id), replies under their parent, never deeper than
// max_depth (deeper replies attach at the deepest level, as server/discussion/tree.py does).
import { STATUS } from "./statuses.js";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

// The avatar beside a comment, as server/templates.py makes it: the first letter or digit of
// the name, on one of eight colours chosen by the CRC-32 of the lower-cased name.
export function initial(name) {
  const letter = [...name].find((ch) => /[\p{L}\p{N}]/u.test(ch));
  return letter ? letter.toUpperCase() : "?";
}

export function avatarColour(name) {
  let crc = -1;
  for (const byte of new TextEncoder().encode(name.trim().toLowerCase())) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ((crc ^ -1) >>> 0) % 8;
}

const order = (el) => [el.dataset.created || "", Number(el.dataset.id)];
function before(a, b) {
  const [ca, ia] = order(a);
  const [cb, ib] = order(b);
  return ca < cb || (ca === cb && ia < ib);
}

// Top-level comments follow the reader's order, pinned first (server/discussion/paging.py):
// a key of comparable parts, from an element (dataset) or a comment (JSON).
export function rootKey(sort, { pinned, score, created, id }) {
  const pin = pinned ? 0 : 1;
  if (sort === "newest") return [pin, -Date.parse(created), -id];
  if (sort === "best") return [pin, -score, created, id];
  return [pin, created, id];
}
function keyBefore(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return true;
    if (a[i] > b[i]) return false;
  }
  return false;
}
const fromElement = (el) => ({ pinned: el.dataset.pinned === "1", score: Number(el.dataset.score) || 0,
  created: el.dataset.created || "", id: Number(el.dataset.id) });
export const fromComment = (c) => ({ pinned: Boolean(c.pinned) && c.status !== STATUS.DELETED,
  score: c.status === STATUS.DELETED ? 0 : (c.up || 0) - (c.down || 0), created: c.created, id: c.id });

export class ThreadView {
  // options: { t, maxDepth, followAuthorLinks, decorate(li, comment) }
  constructor(list, options) {
    this.list = list;
    this.o = options;
    this.sort = options.sort || "oldest";
    this.onChange = () => {};
    // With pages only some comments are loaded: the heading counts the thread's total from
    // the server, plus what arrived or went since.
    this.total = null;
    this.added = 0;
  }

  get shown() {
    return this.total === null ? this.count : this.total + this.added;
  }

  rootBefore(a, b) {
    return keyBefore(rootKey(this.sort, fromElement(a)), rootKey(this.sort, fromElement(b)));
  }

  // Whether a new top-level comment would land among the loaded ones (not after the last).
  fitsLoaded(c) {
    const roots = this.list.querySelectorAll(":scope > li.comment");
    const last = roots[roots.length - 1];
    return !last || keyBefore(rootKey(this.sort, fromComment(c)), rootKey(this.sort, fromElement(last)));
  }

  get(id) {
    return this.list.querySelector(`li.comment[data-id="${Number(id)}"]`);
  }

  get count() {
    return this.list.querySelectorAll("li.comment:not(.comment--deleted)").length;
  }

  depth(li) {
    let depth = 0;
    for (let el = li; el && el !== this.list; el = el.parentElement) {
      if (el.matches("li.comment")) depth += 1;
    }
    return depth;
  }

  card(c) {
    const t = this.o.t;
    if (c.status === STATUS.DELETED) {
      return h("article", { class: "comment__card" },
        h("p", { class: "comment__deleted" }, t("This comment was deleted.")));
    }
    const author = c.website
      ? h("a", { href: c.website, rel: this.o.followAuthorLinks ? "ugc" : "nofollow ugc" }, c.author)
      : c.author;
    const body = h("div", { class: "comment__body" });
    body.innerHTML = c.html; // sanitised by the server (nh3), the same html the page renders
    return h("article", { class: "comment__card" },
      h("header", { class: "comment__meta" },
        h("span", { class: "avatar avatar--" + avatarColour(c.author), "aria-hidden": "true" }, initial(c.author)),
        h("span", { class: "comment__who" },
          h("cite", { class: "comment__author" }, author),
          c.staff && h("span", { class: "comment__badge" }, t("Author")),
          c.pinned && h("span", { class: "comment__badge comment__badge--pinned", "data-pinned": true }, t("Pinned")),
          !c.staff && c.verified && h("span", { class: "comment__badge comment__badge--verified", title: t("Signed in on the site") }, t("verified")),
          h("span", { class: "comment__when" },
            h("span", { class: "visually-hidden" }, t("said on") + " "),
            h("a", { class: "comment__permalink", href: "#comment-" + c.id, title: t.dateTime(c.created) },
              h("time", { datetime: c.created }, t.date(c.created))),
            c.edited && [" ", h("span", { class: "comment__edited" }, "(" + t("edited") + ")")]))),
      body,
      h("footer", { class: "comment__actions" },
        h("a", { class: "comment__reply", href: "?replytocom=" + c.id + "#respond", "data-reply": c.id,
          rel: "nofollow", "aria-label": t("Reply to %(author)s", { author: c.author }) }, t("Reply"))));
  }

  // "in reply to X" for a reply the depth limit shows beside its parent instead of under it.
  answers(li) {
    const card = li.querySelector(":scope > .comment__card");
    const old = card.querySelector(":scope > .comment__answers");
    if (old) old.remove();
    const parentId = li.dataset.parent;
    const shownUnder = li.parentElement.closest("li.comment");
    if (!parentId || (shownUnder && shownUnder.dataset.id === parentId)) return;
    const parent = this.get(parentId);
    const author = parent && !parent.classList.contains("comment--deleted") && parent.querySelector(".comment__author");
    const meta = card.querySelector(":scope > .comment__meta");
    if (!author || !meta) return;
    meta.after(h("p", { class: "comment__answers" }, h("a", { href: "#comment-" + parentId },
      this.o.t("in reply to %(author)s", { author: author.textContent.trim() }))));
  }

  build(c) {
    const key = fromComment(c);
    const li = h("li", {
      class: "comment" + (c.status === STATUS.DELETED ? " comment--deleted" : c.staff ? " comment--staff" : "")
        + (key.pinned ? " comment--pinned" : ""),
      id: "comment-" + c.id, "data-id": c.id, "data-parent": c.parent || "", "data-created": c.created,
      "data-pinned": key.pinned ? "1" : "0", "data-score": key.score,
    }, this.card(c));
    if (this.o.decorate) this.o.decorate(li, c);
    return li;
  }

  // Where a reply goes: under its parent, or beside it once the parent is at max depth.
  container(parentId) {
    let parent = parentId ? this.get(parentId) : null;
    while (parent && this.depth(parent) >= this.o.maxDepth) {
      parent = parent.parentElement.closest("li.comment");
    }
    if (!parent || !this.list.contains(parent)) return this.list;
    let children = parent.querySelector(":scope > ol.comment-list--children");
    if (!children) {
      children = h("ol", { class: "comment-list comment-list--children" });
      parent.append(children);
    }
    return children;
  }

  insert(into, li) {
    const first = into === this.list || into.nodeType === 11 ? (a, b) => this.rootBefore(a, b) : before;
    const last = into.lastElementChild;
    if (!last || !first(li, last)) { // the usual case: after the last one shown
      into.append(li);
      return;
    }
    into.insertBefore(li, [...into.children].find((other) => first(li, other)));
  }

  // The next page of a paged thread: its top-level comments with their replies, appended in
  // order. A comment already shown (it arrived live meanwhile) is refreshed, never doubled.
  appendPage(comments) {
    const added = [];
    for (const c of comments) {
      if (this.get(c.id)) { this.update(c); continue; }
      const li = this.build(c);
      this.insert(c.parent && this.get(c.parent) ? this.container(c.parent) : this.list, li);
      added.push(li);
    }
    for (const li of added) if (li.dataset.parent) this.answers(li);
    this.renumber();
    this.onChange();
    return added;
  }

  // Vote counts changed (live, or the reader's own vote): keep the order key and the buttons.
  setVotes(id, up, down) {
    const li = this.get(id);
    if (!li) return;
    li.dataset.score = String(up - down);
    if (this.o.onVotes) this.o.onVotes(li, up, down);
  }

  // Render a whole thread at once (widget load, or after a reset): one fragment, one reflow.
  // A parent is placed before its replies even when dates disagree (imports), and a reply
  // chain that loops is broken at the top level, as server/discussion/tree.py does.
  render(comments) {
    const sorted = [...comments].sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id - b.id));
    const byId = new Map(sorted.map((c) => [c.id, c]));
    const made = new Map();
    const depth = new Map();
    const fragment = document.createDocumentFragment();
    const attach = (c) => {
      if (made.has(c.id)) return made.get(c.id);
      const li = this.build(c);
      made.set(c.id, li);
      let parent = byId.has(c.parent) ? attach(byId.get(c.parent)) : null;
      while (parent && depth.get(parent) >= this.o.maxDepth) parent = parent.parentElement?.closest("li.comment");
      if (parent && depth.has(parent)) {
        let children = parent.querySelector(":scope > ol.comment-list--children");
        if (!children) parent.append(children = h("ol", { class: "comment-list comment-list--children" }));
        this.insert(children, li);
        depth.set(li, depth.get(parent) + 1);
      } else {
        this.insert(fragment, li);
        depth.set(li, 1);
      }
      return li;
    };
    for (const c of sorted) attach(c);
    this.list.replaceChildren(fragment);
    this.added = 0;
    for (const li of made.values()) if (li.dataset.parent) this.answers(li);
    this.renumber();
    this.onChange();
  }

  // A comment that arrived live or was just posted. Returns the element, or null when it
  // was already shown (then it is only refreshed): nothing appears twice.
  place(c) {
    if (this.get(c.id)) {
      this.update(c);
      return null;
    }
    const li = this.build(c);
    if (c.status !== STATUS.DELETED) this.added += 1;
    this.insert(this.container(c.parent), li);
    this.answers(li);
    // Replies that arrived before this parent became visible move under it now.
    for (const orphan of this.list.querySelectorAll(`:scope > li.comment[data-parent="${c.id}"]`)) {
      if (orphan === li) continue;
      this.insert(this.container(c.id), orphan);
      this.answers(orphan);
    }
    this.renumber();
    this.onChange();
    return li;
  }

  update(c) {
    const li = this.get(c.id);
    if (!li) return this.place(c);
    const fresh = this.build(c);
    const wasShown = !li.classList.contains("comment--deleted");
    if (wasShown !== (c.status !== STATUS.DELETED)) this.added += wasShown ? -1 : 1;
    const card = fresh.firstElementChild;
    const old = li.querySelector(":scope > .comment__card");
    const editing = old.querySelector(":scope > .comment__edit");
    // A reader whose focus is inside the card (on its Reply link, say) keeps it there.
    const focused = li.getRootNode().activeElement;
    const refocus = focused && old.contains(focused) && !(editing && editing.contains(focused))
      ? focused.classList[0] : null;
    li.className = fresh.className;
    li.replaceChild(card, old);
    if (refocus) {
      const same = card.querySelector("." + refocus);
      if (same) same.focus({ preventScroll: true });
    }
    if (li.dataset.parent) this.answers(li);
    if (editing && c.status !== STATUS.DELETED) {
      // An edit arriving while the reader edits must not throw away what they are typing.
      for (const el of card.querySelectorAll(":scope > .comment__body, :scope > .comment__actions")) el.hidden = true;
      card.querySelector(".comment__body").after(editing);
    }
    this.renumber();
    this.onChange();
    return li;
  }

  remove(id) {
    const li = this.get(id);
    if (!li) return;
    if (!li.classList.contains("comment--deleted")) this.added -= 1;
    const children = li.querySelector(":scope > ol.comment-list--children");
    const home = li.parentElement;
    if (children) for (const child of [...children.children]) this.insert(home, child);
    li.remove();
    if (home !== this.list && !home.children.length) home.remove();
    this.renumber();
    this.onChange();
  }

  // Shown top-level comments are numbered #1, #2, … (placeholders are not), as on the page.
  renumber() {
    if (this.o.numbers === false) return; // kibitz's page keeps the numbers the server gave
    // Numbers count top-level comments by date, so only the oldest-first order has them.
    const roots = [...this.list.querySelectorAll(":scope > li.comment")].sort((a, b) => (before(a, b) ? -1 : 1));
    let n = 0;
    for (const li of this.list.querySelectorAll("li.comment")) {
      const meta = li.querySelector(":scope > .comment__card > .comment__meta");
      const number = meta && meta.querySelector(":scope > .comment__number");
      if (number) number.remove();
    }
    if (this.sort !== "oldest") return;
    for (const li of roots) {
      const meta = li.querySelector(":scope > .comment__card > .comment__meta");
      if (!meta) continue;
      n += 1;
      meta.append(h("a", { class: "comment__number", href: "#comment-" + li.dataset.id,
        "aria-label": this.o.t("Comment %(number)s", { number: n }) }, "#" + n));
    }
  }
}
