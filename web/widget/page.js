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
import { STATUS } from "./statuses.js";

async function enhance(section) {
  const t = translator(pickLanguage(document.documentElement.lang));
  const csrf = document.querySelector('meta[name="csrf-token"]');
  const api = makeApi("", csrf ? { "X-CSRF-Token": csrf.content } : {});
  let config;
  try { config = await api.config(); } catch { return; }
  const uri = section.dataset.uri;
  const list = section.querySelector("[data-comment-list]");
  const titleEl = document.querySelector(".post__title");
  const title = titleEl ? titleEl.textContent.trim() : "";
  const count = section.querySelector(".comments__title");
  let own = null;
  const view = new ThreadView(list, { t, maxDepth: config.max_depth, followAuthorLinks: config.follow_author_links,
    decorate: (li, c) => own && own.decorate(li, c) });
  own = new Own({ api, t, editWindow: config.edit_window, view, scope: location.origin });
  for (const li of list.querySelectorAll("li.comment:not(.comment--deleted)")) {
    own.decorate(li, { id: Number(li.dataset.id), created: li.dataset.created, status: STATUS.APPROVED });
  }
  view.onChange = () => {
    if (count) count.textContent = t.n("%(count)s comment on “%(title)s”", "%(count)s comments on “%(title)s”", view.count, { title });
    const empty = section.querySelector("[data-empty]");
    if (empty) empty.hidden = list.children.length > 0;
  };
  const form = document.querySelector("form[data-comment-form]");
  if (form) enhanceForm({ section: form.closest("section") || form.parentElement, api, uri, t, view, own });
  if ("WebSocket" in window) {
    follow({ liveUrl: config.live_url, uri, cursor: Number(section.dataset.cursor) || 0, view, api, t,
      announcer: section.querySelector("[data-announcer]"), presence: section.querySelector("[data-presence]") });
  }
  section.dataset.live = "ready";
}

const page = document.querySelector("[data-kibitz-page]");
if (page && "fetch" in window) enhance(page);
