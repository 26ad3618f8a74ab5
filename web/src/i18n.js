// Language strings from static/i18n/<lang>.json; a key missing from a language falls back to
// English, then to the key itself, so a partly translated file is always usable.

const NAMES = {
  en: "English",
  sq: "Shqip",
  bs: "Bosanski",
  hr: "Hrvatski",
  sr: "Српски",
  mk: "Македонски",
  cnr: "Crnogorski",
};

const STORAGE_KEY = "borderwatch.language";

async function loadStrings(lang) {
  try {
    const reply = await fetch(`static/i18n/${encodeURIComponent(lang)}.json`, { cache: "no-cache" });
    if (!reply.ok) return {};
    const strings = await reply.json();
    return strings && typeof strings === "object" && !Array.isArray(strings) ? strings : {};
  } catch {
    return {};
  }
}

export class I18n {
  constructor() {
    this.lang = "en";
    this.english = {};
    this.strings = {};
    this.listeners = [];
  }

  /** Loads English and the stored (or the service's default) language. */
  async init(defaultLang, available) {
    this.available = available && available.length ? available : ["en"];
    this.english = await loadStrings("en");
    let wanted = defaultLang || "en";
    try {
      wanted = localStorage.getItem(STORAGE_KEY) || wanted;
    } catch {
      // storage may be disabled; use the default
    }
    await this.use(this.available.includes(wanted) ? wanted : defaultLang || "en", false);
  }

  async use(lang, remember = true) {
    this.strings = lang === "en" ? this.english : await loadStrings(lang);
    this.lang = lang;
    document.documentElement.lang = lang;
    if (remember) {
      try {
        localStorage.setItem(STORAGE_KEY, lang);
      } catch {
        // not remembered
      }
    }
    this.apply(document);
    for (const listener of this.listeners) listener(lang);
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  /** The string for key with {name} placeholders filled from vars. */
  t(key, vars) {
    let text = this.strings[key] ?? this.english[key] ?? key;
    if (vars) {
      text = text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
    }
    return text;
  }

  /** The string for key, or fallback (not the key) when no language has it. */
  tOr(key, fallback, vars) {
    return key in this.strings || key in this.english ? this.t(key, vars) : fallback;
  }

  /** Fills every element with data-i18n under root. */
  apply(root) {
    for (const el of root.querySelectorAll("[data-i18n]")) {
      el.textContent = this.t(el.dataset.i18n);
    }
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = this.t(el.dataset.i18nPlaceholder);
    }
  }

  /** Fills the language picker and switches language when the officer picks one. */
  bindPicker(select) {
    select.replaceChildren(
      ...this.available.map((code) => {
        const option = document.createElement("option");
        option.value = code;
        option.textContent = NAMES[code] || code;
        return option;
      }),
    );
    select.value = this.lang;
    select.addEventListener("change", () => this.use(select.value));
  }
}
