// Entry for other sites (contract: "Embedding on another site").
//   <div data-kibitz-thread="/uri" [data-kibitz-title] [data-kibitz-lang="de|en"]
//        [data-kibitz-theme="light|dark|auto"] [data-kibitz-sso="TOKEN"]></div>
//                                                        → the thread, in an open shadow root
// Single sign-on (docs/sso.md): the host page renews the token without reloading by setting
// the attribute again (or `kibitz.signIn(token)`); the widget fires `kibitz:sso-rejected` on
// the element when the server refuses a token.
//   <span data-kibitz-count="/uri"></span>              → its approved-comment count
// Loaded with `async`, it starts once the host's DOM is there and never blocks it. Styles
// come as a constructable stylesheet (or a <link> to kibitz's origin), so a host CSP without
// 'unsafe-inline' is fine, and nothing here uses eval.
import { pickLanguage, translator } from "./i18n.js";
import { makeApi } from "./api.js";
import { h, ThreadView } from "./render.js";
import { buildForm, enhanceForm } from "./form.js";
import { Own } from "./own.js";
import { follow } from "./thread.js";
import { PAGE, Pager, Votes, buildOrder, storedSort } from "./paging.js";

const CSS = /*kibitz:css*/"";
const CSS_URL = /*kibitz:css-url*/"";
const SCRIPT = document.currentScript || document.querySelector("script[src*='/embed']");
const BASE = new URL(SCRIPT ? SCRIPT.src : "/", location.href).origin;
let sheet = null;
const busy = new WeakSet(); // elements being mounted: `kibitz.start()` twice mounts once
if (window.performance && performance.mark) performance.mark("kibitz:start");

function adoptStyles(root) {
  if ("adoptedStyleSheets" in root && "replaceSync" in CSSStyleSheet.prototype) {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
    }
    root.adoptedStyleSheets = [sheet];
  } else {
    root.append(h("link", { rel: "stylesheet", href: BASE + CSS_URL }));
  }
}

function heading(t, n, title) {
  return title
    ? t.n("%(count)s comment on “%(title)s”", "%(count)s comments on “%(title)s”", n, { title })
    : t.n("%(count)s comment", "%(count)s comments", n);
}

async function mount(el, api, configured) {
  if (busy.has(el)) return;
  busy.add(el);
  const root = el.shadowRoot || el.attachShadow({ mode: "open" });
  root.replaceChildren();
  adoptStyles(root);
  const uri = el.dataset.kibitzThread;
  const title = el.dataset.kibitzTitle || "";
  const langHolder = el.closest("[lang]");
  const lang = pickLanguage(el.dataset.kibitzLang, langHolder && langHolder.lang, navigator.language);
  const t = translator(lang);
  api = makeApi(BASE, { "Accept-Language": lang }); // the API's messages come in the widget's language
  const theme = ["light", "dark", "auto"].includes(el.dataset.kibitzTheme) ? el.dataset.kibitzTheme : "auto";
  const box = h("div", { class: "kibitz", "data-theme": theme, lang },
    h("p", { class: "kibitz__status", role: "status" }, t("Loading comments…")));
  root.append(box);
  const ready = (state) => {
    el.dataset.kibitzState = state; // lets the host (and our :host rules) style each state
    el.dispatchEvent(new CustomEvent("kibitz:ready", { detail: state }));
  };

  const sort = storedSort() || "oldest";
  // The first page is as long as the site's pages (KIBITZ_PAGE_SIZE), so /api/config first.
  const [config, thread] = await Promise.allSettled([configured,
    configured.then((c) => api.page(uri, { sort, limit: c.page_size || PAGE }))]);
  if (window.performance && performance.mark) performance.mark("kibitz:data");
  if (config.status === "fulfilled" && config.value.origin_allowed === false) {
    box.replaceChildren(h("p", { class: "notice notice--error", role: "alert" },
      t("Comments cannot be shown here: %(origin)s is not allowed to embed the discussion from %(kibitz)s. The site's owner can allow it with KIBITZ_ALLOWED_ORIGINS.",
        { origin: location.origin, kibitz: BASE })));
    return ready("refused");
  }
  if (config.status === "rejected" || thread.status === "rejected") {
    const retry = h("button", { type: "button" }, t("Try again"));
    retry.addEventListener("click", () => { busy.delete(el); mount(el, api, api.config()); });
    box.replaceChildren(h("p", { class: "notice notice--error", role: "alert" },
      t("The comments could not be loaded."), " ", retry));
    return ready("failed");
  }
  const { max_depth: maxDepth, follow_author_links: followAuthorLinks, edit_window: editWindow,
    live_url: liveUrl } = config.value;
  const announcer = h("div", { class: "visually-hidden", "aria-live": "polite" });
  const presence = h("p", { class: "comments__presence", hidden: true });
  const count = h("h2", { class: "comments__title" });
  const empty = h("p", { class: "comments__empty" }, t("No comments yet. Start the discussion!"));
  const list = h("ol", { class: "comment-list", "data-comment-list": true });
  let own = null;
  const sso = () => el.dataset.kibitzSso || "";
  const votes = new Votes({ api, t, mode: config.value.votes || "off", scope: BASE, announcer, sso });
  const view = new ThreadView(list, { t, maxDepth, followAuthorLinks, sort,
    decorate: (li, c) => { if (own) own.decorate(li, c); votes.decorate(li, c); },
    onVotes: (li, up, down) => votes.show(li, up, down) });
  own = new Own({ api, t, editWindow, view, scope: BASE });
  votes.attach(list, view);
  view.onChange = () => {
    count.textContent = heading(t, view.shown, title);
    empty.hidden = view.count > 0 || list.children.length > 0;
  };
  view.total = thread.value.count;
  view.render(thread.value.comments);
  const loginOnly = config.value.sso_only && !sso();
  const respond = loginOnly ? signInLink(t, config.value.sso_login_url) : buildForm(t);
  const order = thread.value.top_level > 1 && buildOrder(t, sort);
  const closedNotice = h("p", { class: "notice notice--closed", role: "status", hidden: true },
    t("Comments are closed on this page."));
  const newNotice = h("p", { class: "comments__new", hidden: true }, h("button", { type: "button" }));
  const more = h("p", { class: "comments__more" });
  box.replaceChildren(h("section", { class: "comments" }, count, presence, announcer, closedNotice, order, empty,
    list, newNotice, more), respond);
  const pager = new Pager({ api, uri, view, t, announcer, limit: config.value.page_size || PAGE,
    next: thread.value.next, more, newNotice, closedNotice, form: respond });
  pager.attachOrder(order);
  pager.setClosed(thread.value.closed);
  // Links to #comment-N point into the shadow root, where the host page's URL cannot reach.
  const reveal = (hash) => {
    const target = /^#comment-\d+$/.test(hash) && root.getElementById(hash.slice(1));
    if (target) target.scrollIntoView({ block: "center" });
    return Boolean(target);
  };
  list.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#comment-']");
    if (link && reveal(link.getAttribute("href"))) event.preventDefault();
  });
  reveal(location.hash);
  if (!loginOnly) {
    const form = enhanceForm({ section: respond, api, uri, title: title || document.title, t, view, own, sso,
      onRejected: (message) => el.dispatchEvent(new CustomEvent("kibitz:sso-rejected", { detail: { message } })) });
    watchSignIn(el, () => form.showIdentity());
  } else {
    watchSignIn(el, () => { busy.delete(el); mount(el, api, configured); });
  }
  if (window.performance && performance.mark) performance.mark("kibitz:rendered");
  ready("rendered");
  if ("WebSocket" in window) {
    follow({ liveUrl, uri, cursor: thread.value.cursor, view, api, t, announcer, presence, pager });
  }
}

// SSO_ONLY without a token: a link to the host site's sign-in instead of the form.
function signInLink(t, url) {
  return h("section", { class: "respond" },
    h("p", { class: "respond__sso" }, url
      ? h("a", { href: url }, t("Sign in to comment"))
      : t("Only readers signed in on the site may comment here.")));
}

const watchers = new WeakMap();
// The host page renews the sign-in by setting data-kibitz-sso again; no reload needed.
function watchSignIn(el, changed) {
  if (watchers.has(el)) watchers.get(el).disconnect();
  const observer = new MutationObserver(changed);
  observer.observe(el, { attributes: true, attributeFilter: ["data-kibitz-sso"] });
  watchers.set(el, observer);
}

async function fillCounts(api) {
  const spans = [...document.querySelectorAll("[data-kibitz-count]")];
  const uris = [...new Set(spans.map((span) => span.dataset.kibitzCount))];
  for (let i = 0; i < uris.length; i += 100) { // the API answers up to 100 uris per request
    try {
      const counts = await api.counts(uris.slice(i, i + 100));
      for (const span of spans) {
        if (span.dataset.kibitzCount in counts) span.textContent = String(counts[span.dataset.kibitzCount]);
      }
    } catch { /* counts are decoration; an unreachable server leaves them empty */ }
  }
}

function start() {
  const api = makeApi(BASE);
  const configured = api.config();
  configured.catch(() => {});
  fillCounts(api);
  for (const el of document.querySelectorAll("[data-kibitz-thread]")) mount(el, api, configured);
}

// kibitz.signIn(token[, element]): give every widget (or one) a renewed sign-in token;
// kibitz.signIn("") signs out.
function signIn(token, element) {
  const targets = element ? [element] : document.querySelectorAll("[data-kibitz-thread]");
  for (const el of targets) {
    if (token) el.dataset.kibitzSso = token; else delete el.dataset.kibitzSso;
  }
}

window.kibitz = { start, signIn };
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start, { once: true });
else start();
