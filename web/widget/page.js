// Entry for kibitz's own post page (web/templates/post.html). The page is complete without
// this script: comments are server-rendered and the form posts the plain way. With it, the
// thread goes live and the form posts through the JSON API without a page load. Anything
// missing (no fetch, no WebSocket, /api/config unreachable) leaves the plain page as it is.
import { pickLanguage, translator } from "./i18n.js";
import { makeApi } from "./api.js";
import { ThreadView } from "./render.js";
import { enhanceForm } from "./form.js";
import { Own } from "./own.js";
import { follow } from "./thread.js";
import { Pager, Votes, storedSort } from "./paging.js";
import { STATUS } from "./statuses.js";

async function enhance(section) {
  const lang = pickLanguage(document.documentElement.lang);
  const t = translator(lang);
  const csrf = document.querySelector('meta[name="csrf-token"]');
  // The API's messages come in the page's language (the bundle carries no copy of them).
  const api = makeApi("", { "Accept-Language": lang, ...(csrf ? { "X-CSRF-Token": csrf.content } : {}) });
  let config;
  try { config = await api.config(); } catch { return; }
  const uri = section.dataset.uri;
  const list = section.querySelector("[data-comment-list]");
  const titleEl = document.querySelector(".post__title");
  const title = titleEl ? titleEl.textContent.trim() : "";
  const count = section.querySelector(".comments__title");
  let own = null;
  const announcer = section.querySelector("[data-announcer]");
  const votes = new Votes({ api, t, mode: config.votes || "off", scope: location.origin, announcer });
  const orderForm = section.querySelector("[data-order-form]");
  const view = new ThreadView(list, { t, maxDepth: config.max_depth, followAuthorLinks: config.follow_author_links,
    sort: orderForm ? orderForm.elements.sort.value : "oldest", numbers: false,
    decorate: (li, c) => { if (own) own.decorate(li, c); votes.decorate(li, c); },
    onVotes: (li, up, down) => votes.show(li, up, down) });
  own = new Own({ api, t, editWindow: config.edit_window, view, scope: location.origin });
  view.total = Number(section.dataset.count) || 0;
  for (const li of list.querySelectorAll("li.comment:not(.comment--deleted)")) {
    own.decorate(li, { id: Number(li.dataset.id), created: li.dataset.created, status: STATUS.APPROVED });
    const counts = li.querySelector(":scope > .comment__card > .comment__actions > .comment__votes");
    if (counts) votes.decorate(li, { id: Number(li.dataset.id), up: Number(counts.dataset.up), down: Number(counts.dataset.down), status: STATUS.APPROVED });
  }
  votes.attach(list, view);
  // Pages: the plain "next page" link becomes "load more"; the order control reorders in place.
  const nextLink = section.querySelector("[data-next-page]");
  let more = nextLink ? nextLink.parentElement : null;
  if (!more) {
    more = document.createElement("p");
    more.className = "comments__more";
    list.after(more);
  }
  const pager = new Pager({ api, uri, view, t, announcer, limit: config.page_size || 50,
    next: nextLink ? nextLink.dataset.after : null, more,
    newNotice: section.querySelector("[data-new-notice]"),
    closedNotice: section.querySelector("[data-closed]"),
    form: document.querySelector("#respond form[data-comment-form]") });
  pager.attachOrder(orderForm);
  const paged = new URLSearchParams(location.search).has("after");
  const wanted = storedSort();
  if (orderForm && wanted && wanted !== view.sort && !paged) {
    orderForm.elements.sort.value = wanted;
    try { await pager.reorder(wanted); } catch { /* the server's order stays */ }
  }
  view.onChange = () => {
    if (count) count.textContent = t.n("%(count)s comment on “%(title)s”", "%(count)s comments on “%(title)s”", view.shown, { title });
    const empty = section.querySelector("[data-empty]");
    if (empty) empty.hidden = list.children.length > 0;
    // Staff pages: a pin changed live (by another staff member) shows the button that fits.
    for (const form of list.querySelectorAll("form[data-pin-form]")) {
      const pinned = form.parentElement.classList.contains("comment--pinned");
      for (const button of form.querySelectorAll("button")) button.hidden = (button.value === "pin") === pinned;
    }
  };
  const form = document.querySelector("form[data-comment-form]");
  if (form) enhanceForm({ section: form.closest("section") || form.parentElement, api, uri, t, view, own });
  if ("WebSocket" in window) {
    follow({ liveUrl: config.live_url, uri, cursor: Number(section.dataset.cursor) || 0, view, api, t,
      announcer, presence: section.querySelector("[data-presence]"), pager });
  }
  section.dataset.live = "ready";
}

const page = document.querySelector("[data-kibitz-page]");
if (page && "fetch" in window) enhance(page);
