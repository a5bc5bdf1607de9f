// Words in English and German. English is the message id itself; German comes from the
// server's own catalogue (web/locale, the one the templates use), which server/http/widget.py
// inlines here when it assembles the bundle, so a page and the widget say the same thing.
const CATALOGUES = /*kibitz:catalogues*/{};

function fill(text, params) {
  return params ? text.replace(/%\((\w+)\)s/g, (whole, key) => (key in params ? params[key] : whole)) : text;
}

export function pickLanguage(...candidates) {
  for (const value of candidates) {
    const lang = String(value || "").slice(0, 2).toLowerCase();
    if (lang === "de" || lang === "en") return lang;
  }
  return "en";
}

// t("msgid", {name}) and t.n("singular", "plural", n, {…}); both fill %(name)s.
export function translator(lang) {
  const words = CATALOGUES[lang] || {};
  const t = (msgid, params) => fill(typeof words[msgid] === "string" ? words[msgid] : msgid, params);
  t.n = (singular, plural, n, params) => {
    const forms = words[singular];
    const text = Array.isArray(forms) ? forms[n === 1 ? 0 : 1] : n === 1 ? singular : plural;
    return fill(text, { count: n, ...params });
  };
  const dates = new Intl.DateTimeFormat(lang, { dateStyle: "long" });
  const times = new Intl.DateTimeFormat(lang, { dateStyle: "long", timeStyle: "long" });
  t.date = (iso) => dates.format(new Date(iso));
  t.dateTime = (iso) => times.format(new Date(iso));
  t.lang = lang;
  return t;
}
