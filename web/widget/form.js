// The comment form: the same fields as the page's server-rendered form (which is where the
// widget's copy comes from, see buildForm), posted with fetch to the JSON API. Messages go
// beside their fields; nothing typed is lost: the draft is kept in sessionStorage on every
// keystroke and only the comment text is cleared, and only once the server has accepted it.
// Each submission carries an Idempotency-Key; sending the same comment again after no answer
// (a cut connection, a 5xx) reuses it, so a comment that did arrive is never posted twice.
import { h } from "./render.js";
import { STATUS } from "./statuses.js";

const FIELDS = ["author", "email", "website", "text", "parent"];
const OFFLINE = "The comment could not be sent. Check your connection; everything you typed is still here.";

// 128 random bits as hex: crypto.randomUUID exists only on https pages, getRandomValues everywhere.
function newKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// A fingerprint of a body (FNV-1a twice, 64 bits): enough to know the same body again, without
// keeping a second copy of the comment, or the host site's sign-in token, in storage.
function fingerprint(text) {
  let a = 0x811c9dc5, b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  return (a >>> 0).toString(16) + "-" + (b >>> 0).toString(16);
}

// The key of the submission that got no answer, kept with its body's fingerprint (in
// sessionStorage, so a reload before sending again keeps it too). The same body again reuses
// the key; another body, or any answer from the server, starts a new submission.
function submissions(storageKey) {
  const load = () => {
    try { return JSON.parse(sessionStorage.getItem(storageKey) || "null"); } catch { return null; }
  };
  let unanswered = load();
  const store = () => {
    try {
      if (unanswered) sessionStorage.setItem(storageKey, JSON.stringify(unanswered));
      else sessionStorage.removeItem(storageKey);
    } catch { /* storage off: the key lives as long as the page */ }
  };
  return {
    keyFor(body) {
      const print = fingerprint(body);
      if (!unanswered || unanswered.print !== print) unanswered = { print, key: newKey() };
      store();
      return unanswered.key;
    },
    answered() { unanswered = null; store(); },
  };
}

// The widget's form, in the markup of web/templates/post.html.
export function buildForm(t) {
  const field = (name, label, type, required, autocomplete, maxlength) => {
    const id = "kibitz-" + name;
    return h("p", { class: "field field--" + name },
      h("label", { for: id }, label, required && [" ", h("span", { class: "field__required" }, "(" + t("required") + ")")]),
      h("input", { id, name, type, autocomplete, maxlength, required, "aria-required": required && "true",
        "aria-describedby": name === "email" && "kibitz-email-hint" }),
      name === "email" && h("span", { class: "field__hint", id: "kibitz-email-hint" }, t("will not be published")));
  };
  return h("section", { class: "respond" },
    h("h2", { class: "respond__title", id: "respond" }, t("Leave a comment")),
    h("form", { class: "comment-form", "data-comment-form": true, novalidate: true },
      h("p", { class: "comment-form__signed-in", "data-signed-in": true, hidden: true }),
      h("div", { class: "comment-form__identity" },
        field("author", t("Name"), "text", true, "name", "100"),
        field("email", t("E-mail"), "email", true, "email", "254"),
        field("website", t("Website"), "url", false, "url", "500")),
      h("p", { class: "field field--text" },
        h("label", { for: "kibitz-text" }, t("Comment"), " ", h("span", { class: "field__required" }, "(" + t("required") + ")")),
        h("textarea", { id: "kibitz-text", name: "text", rows: "6", required: true, "aria-required": "true", maxlength: "10000" })),
      h("input", { type: "hidden", name: "parent", value: "" }),
      h("p", { class: "form__submit" }, h("button", { type: "submit" }, t("Post comment")))));
}

// The name in a single sign-on token, for display only: the server verifies the token.
export function ssoName(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part + "=".repeat((4 - (part.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims.name === "string" ? claims.name : "";
  } catch {
    return "";
  }
}

// `sso()` gives the host site's current sign-in token (or nothing); `onRejected(message)` is
// told when the server refuses it, so the host page can renew it (docs/sso.md).
export function enhanceForm({ section, api, uri, title, t, view, own, onPosted, sso = () => "", onRejected }) {
  const form = section.querySelector("form[data-comment-form]");
  const els = form.elements;
  const heading = section.querySelector(".respond__title");
  const headingText = t("Leave a comment");
  const key = "kibitz:draft:" + uri;
  const sending = submissions("kibitz:sending:" + uri);
  const signedIn = form.querySelector("[data-signed-in]");
  const identity = form.querySelector(".comment-form__identity");
  let notice = null;

  // Signed in by the host site: its name instead of the name and e-mail fields.
  function showIdentity() {
    const token = sso();
    if (!signedIn || !identity) return;
    signedIn.hidden = !token;
    identity.hidden = Boolean(token);
    const name = token ? ssoName(token) : "";
    signedIn.textContent = token ? (name ? t("Signed in as %(name)s", { name }) : t("Signed in")) : "";
  }
  showIdentity();

  const saveDraft = () => {
    const draft = Object.fromEntries(FIELDS.map((name) => [name, els[name] ? els[name].value : ""]));
    try { sessionStorage.setItem(key, JSON.stringify(draft)); } catch { /* storage off: form still works */ }
  };

  function setParent(id) {
    const parent = id && view.get(id);
    const author = parent && parent.querySelector(".comment__author");
    els.parent.value = parent ? String(id) : "";
    heading.textContent = parent ? t("Reply to %(author)s", { author: author ? author.textContent.trim() : "" }) : headingText;
    let cancel = section.querySelector(".respond__cancel");
    if (parent && !cancel) {
      const button = h("button", { type: "button", class: "button--link", "data-cancel-reply": true }, t("Cancel reply"));
      cancel = h("p", { class: "respond__cancel" }, button);
      heading.after(cancel);
    }
    if (cancel) cancel.hidden = !parent;
  }

  function say(text, kind) {
    for (const old of section.querySelectorAll(".notice")) old.remove();
    notice = h("p", { class: "notice notice--" + kind, role: kind === "error" ? "alert" : "status" }, text);
    form.before(notice);
  }

  function clearErrors() {
    for (const el of form.querySelectorAll(".field__error")) el.remove();
    for (const el of form.querySelectorAll(".field--invalid")) el.classList.remove("field--invalid");
    for (const el of form.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
      const rest = (el.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.endsWith("-error"));
      if (rest.length) el.setAttribute("aria-describedby", rest.join(" ")); else el.removeAttribute("aria-describedby");
    }
  }

  function showErrors(fields) {
    let first = null;
    for (const [name, message] of Object.entries(fields)) {
      const input = els[name] && els[name].type !== "hidden" ? els[name] : null;
      const error = h("span", { class: "field__error", id: "kibitz-" + name + "-error" }, t(message));
      if (!input) { say(t(message), "error"); continue; }
      input.closest(".field").classList.add("field--invalid");
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", [input.getAttribute("aria-describedby"), error.id].filter(Boolean).join(" "));
      input.after(error);
      first = first || input;
    }
    return first;
  }

  // Restore a draft into fields the server left empty (after a 422 it filled them itself).
  try {
    const draft = JSON.parse(sessionStorage.getItem(key) || "null");
    if (draft) {
      for (const name of FIELDS) if (els[name] && !els[name].value && draft[name]) els[name].value = draft[name];
      if (els.parent.value) setParent(els.parent.value);
    }
  } catch { /* a broken draft is no reason to break the form */ }
  form.addEventListener("input", saveDraft);

  view.list.addEventListener("click", (event) => {
    const link = event.target.closest("[data-reply]");
    if (!link) return;
    event.preventDefault();
    setParent(link.dataset.reply);
    saveDraft();
    els.text.focus(); // the reader asked to reply: taking them to the text box is expected
  });
  section.addEventListener("click", (event) => {
    if (!event.target.closest("[data-cancel-reply]")) return;
    event.preventDefault();
    setParent(null);
    saveDraft();
    els.text.focus();
  });

  form.addEventListener("submit", async (event) => {
    // A filled honeypot goes the plain way, where the server's invisible checks hold it.
    if (els.subject && els.subject.value) return;
    event.preventDefault();
    // Not `disabled`: that would drop keyboard focus from the button to the page.
    if (form.hasAttribute("aria-busy")) return;
    clearErrors();
    const token = sso();
    const payload = token
      ? { uri, sso: token, website: els.website.value, text: els.text.value,
        parent: els.parent.value ? Number(els.parent.value) : null }
      : { uri, author: els.author.value, email: els.email.value, website: els.website.value,
        text: els.text.value, parent: els.parent.value ? Number(els.parent.value) : null };
    if (title) payload.title = title;
    form.setAttribute("aria-busy", "true");
    try {
      const { comment, edit_token: token } = await api.post(payload, sending.keyFor(JSON.stringify(payload)));
      sending.answered();
      own.remember(comment, token, payload.text);
      els.text.value = "";
      setParent(null);
      saveDraft();
      if (comment.status === STATUS.APPROVED) {
        say(t("Your comment has been published."), "published");
        const li = view.place(comment);
        if (li) li.classList.add("comment--new");
      } else {
        say(t("Thank you! Your comment awaits moderation and will appear once it is approved."), "held");
      }
      if (onPosted) onPosted(comment);
    } catch (err) {
      // No answer, or the server could not say whether it stored it: keep the key for the retry.
      if (err.status && err.status < 500) sending.answered();
      if (err.status === 422) {
        say(t("Please correct the marked fields; everything you typed is still here."), "error");
        const first = showErrors(err.fields);
        if (first) first.focus();
      } else {
        say(t(err.status ? err.message : OFFLINE), "error");
        if (err.status === 401 && token && onRejected) onRejected(err.message);
      }
    } finally {
      form.removeAttribute("aria-busy");
    }
  });
  return { setParent, showIdentity };
}
