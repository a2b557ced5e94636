/* Sada web chat widget: one file, no build step, no third-party requests, no cookies.
 * Size as served: 25.1 kB, 8.9 kB gzipped, with the words of ar, fa, en (limit: 30 kB
 * gzipped; tests/browser checks).
 * Contract with the server: docs/web-chat.md ("The API"), built in bot/channels/web/.
 *
 *   <script src="https://cx.example.com/web/sada.js" data-flow="b2b-supplier"
 *           data-mode="bubble|inline" data-target="#sada" data-lang="fa" async></script>
 *
 * Everything is drawn in a Shadow DOM (the host page's CSS cannot reach it), every server
 * text goes in with textContent (never innerHTML), and layout uses logical properties only,
 * so a right-to-left language mirrors the whole widget: scales start at the right in ar and
 * fa, as in Telegram. */
(() => {
  "use strict";
  const me = document.currentScript;
  if (!me || me.dataset.sadaStarted) return;
  me.dataset.sadaStarted = "1";
  const opts = me.dataset;
  const base = new URL(me.src, location.href).origin;
  const API = base + "/web/v1/";
  const RTL = /^(ar|fa)\b/i;
  // Letters that set a line's direction; Arabic-Indic and Persian digits and their separators
  // (U+0660-066C, U+06F0-06F9) are not letters: "✓ ۹" takes the message's direction.
  const STRONG = /[A-Za-z\u00C0-\u024F\u0370-\u03FF\u0400-\u04FF\u0590-\u065F\u066D-\u06EF\u06FA-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFC\u200E\u200F]/;

  // The widget's own words in every language, from the server's gettext catalogs: the
  // server puts them between the marks as it serves this file (bot/channels/web/words.py).
  const WORDS = /*sada:words*/{"en":{"title":"Survey","log":"Conversation","label":"Your answer","placeholder":"Type your answer…","send":"Send","menu":"Menu","stop":"Stop the survey","language":"Change language","help":"Help","open":"Open the survey chat","close":"Close","offline":"Connection lost. Trying again…"}}/*sada:end*/;

  const CSS = `
:host{all:initial;display:block}
*{box-sizing:border-box}
.sada{font:16px/1.5 system-ui,"Segoe UI",Tahoma,"Noto Sans Arabic","Vazirmatn","Noto Sans",sans-serif;
 color:#1f2328;text-align:start;overflow-wrap:anywhere;-webkit-text-size-adjust:100%;
 letter-spacing:normal;word-spacing:normal;text-transform:none;text-indent:0;text-shadow:none;font-style:normal;
 font-weight:400;white-space:normal;visibility:visible;cursor:auto}
.panel{display:flex;flex-direction:column;background:#fff;border:1px solid #d0d7de;border-radius:12px;
 overflow:hidden;inline-size:100%;max-inline-size:100%;block-size:100%;max-block-size:100vh;min-block-size:18rem}
.bubble .panel{position:fixed;inset-block-end:5.5rem;inset-inline-end:1rem;z-index:2147483646;
 inline-size:min(25rem,calc(100vw - 2rem));block-size:min(38rem,calc(100vh - 7rem));
 box-shadow:0 8px 28px rgba(0,0,0,.22)}
.bubble .panel[hidden]{display:none}
.launch{position:fixed;inset-block-end:1rem;inset-inline-end:1rem;z-index:2147483647;inline-size:3.75rem;
 block-size:3.75rem;border-radius:50%;border:0;background:#1a5fb4;color:#fff;display:grid;place-items:center;
 cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.3)}
header{display:flex;align-items:center;gap:.5rem;padding-block:.5rem;padding-inline:.875rem .375rem;
 background:#1a5fb4;color:#fff;position:relative}
header h2{flex:1;margin:0;font-size:1.05rem;font-weight:600}
.icon{background:transparent;color:inherit;border:0;border-radius:8px;font:inherit;font-size:1.25rem;
 min-inline-size:2.75rem;min-block-size:2.75rem;cursor:pointer}
.menu{position:absolute;inset-block-start:100%;inset-inline-end:.375rem;z-index:3;display:flex;flex-direction:column;
 background:#fff;border:1px solid #d0d7de;border-radius:10px;padding:.25rem;box-shadow:0 6px 18px rgba(0,0,0,.18)}
.menu[hidden]{display:none}
.menu button{background:transparent;border:0;color:#1f2328;font:inherit;text-align:start;padding:.5rem .75rem;
 border-radius:6px;cursor:pointer}
.menu button:hover{background:#eef3fb}
.log{flex:1;overflow-y:auto;overflow-x:hidden;padding:.5rem;display:flex;flex-direction:column;gap:.5rem;
 min-block-size:8rem;overscroll-behavior:contain;scrollbar-width:thin}
.msg{max-inline-size:90%;padding:.5rem .625rem;border-radius:14px;animation:in .18s ease-out}
.bot{align-self:flex-start;background:#f0f2f5;border-end-start-radius:4px}
.ask{align-self:stretch;max-inline-size:none}
.me{align-self:flex-end;background:#1a5fb4;color:#fff;border-end-end-radius:4px;white-space:pre-wrap}
.me.failed{background:#a40e26}
.line{min-block-size:1.5em;white-space:pre-wrap}
.keys{display:flex;flex-direction:column;gap:.375rem;margin-block-start:.5rem}
.row{display:flex;flex-wrap:wrap;gap:.375rem}
.row button{flex:1 1 0;min-inline-size:2.25rem;min-block-size:2.75rem;padding:.375rem .5rem;font:inherit;
 background:#fff;color:#1a5fb4;border:1.5px solid #1a5fb4;border-radius:10px;cursor:pointer;text-align:center}
.row.one button{text-align:start}
.row button:hover:not(:disabled){background:#e8f0fe}
.row button:disabled{color:#57606a;background:#eef0f2;border-color:#c4c9cf;cursor:default}
form{display:flex;gap:.5rem;padding:.5rem;border-block-start:1px solid #d0d7de;background:#fafbfc}
form input{flex:1;min-inline-size:0;font:inherit;padding:.5rem .75rem;border:1.5px solid #8c959f;border-radius:10px;
 background:#fff;color:#1f2328}
[dir=rtl] form input:placeholder-shown{direction:rtl;text-align:right}
.send{font:inherit;padding-inline:1rem;border:0;border-radius:10px;background:#1a5fb4;color:#fff;cursor:pointer;
 min-block-size:2.75rem}
.status{padding:.25rem .75rem;font-size:.875rem;background:#fff8c5;color:#3b2f00}
.status:empty{display:none}
.toast{position:absolute;inset-inline:1rem;inset-block-start:.5rem;margin:auto;inline-size:fit-content;
 max-inline-size:calc(100% - 2rem);padding:.375rem .875rem;border-radius:999px;background:#24292f;color:#fff;
 font-size:.9rem;animation:in .18s ease-out;pointer-events:none}
.toast:empty{display:none}
.wrap{position:relative;display:flex;flex-direction:column;flex:1;min-block-size:0}
.sr{position:absolute;inline-size:1px;block-size:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
button:focus-visible,input:focus-visible{outline:3px solid #e8a400;outline-offset:2px}
.launch:focus-visible,.icon:focus-visible{outline-color:#ffd33d}
@keyframes in{from{opacity:0;transform:translateY(4px)}to{opacity:1;transform:none}}
@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important;scroll-behavior:auto!important}}
`;

  const el = (tag, props, ...kids) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids) if (kid) node.append(kid);
    return node;
  };
  const store = {
    get: () => { try { return localStorage.getItem("sada.visitor"); } catch (e) { return null; } },
    set: (v) => { try { localStorage.setItem("sada.visitor", v); } catch (e) { /* private mode */ } },
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // a wait that ends early when the browser says it is back online
  const pause = (ms) => Promise.race([sleep(ms), new Promise((r) => addEventListener("online", r, { once: true }))]);
  const backoff = (n) => Math.min(30000, 500 * 2 ** Math.min(n, 6)) * (0.75 + Math.random() / 2);

  let lang = (opts.lang || document.documentElement.lang || navigator.language || "en").slice(0, 2).toLowerCase();
  const words = () => WORDS[lang] || WORDS.en;
  const bubble = (opts.mode || "bubble") !== "inline";
  let visitor = store.get();
  let last = 0;
  let started = false;
  let stream = null;
  const messages = new Map(); // message id → {node, dir, rows}
  let live = null; // the latest bot message that has buttons: the only one whose buttons work
  let latest = null; // the latest bot message
  // On its own page (/s/...) the widget is the page: it may take the focus from the start.
  let engaged = location.origin === base && location.pathname.startsWith("/s/");

  // A speech bubble drawn, not a glyph: no emoji font is needed (and none is downloaded).
  function icon() {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(NS, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
    svg.append(path);
    return svg;
  }

  // --- the DOM ------------------------------------------------------------------------------
  const host = el("div", { "data-sada": "" });
  const shadow = host.attachShadow({ mode: "open" });
  const root = el("div", { class: "sada" + (bubble ? " bubble" : " inline") });
  const title = el("h2", { id: "sada-title" });
  const menuButton = el("button", { class: "icon", type: "button", "aria-expanded": "false",
    "aria-controls": "sada-menu", text: "⋮" });
  const closeButton = bubble ? el("button", { class: "icon", type: "button", text: "✕" }) : null;
  const menu = el("div", { class: "menu", id: "sada-menu", hidden: true });
  const menuItems = ["stop", "language", "help"].map((cmd) =>
    el("button", { type: "button", "data-cmd": cmd, onclick: () => { toggleMenu(false); say("/" + cmd); } }));
  menu.append(...menuItems);
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions text",
    tabindex: "0" });
  const status = el("div", { class: "status", role: "status" });
  const toast = el("div", { class: "toast", role: "status", "aria-live": "polite" });
  const input = el("input", { id: "sada-input", type: "text", dir: "auto", autocomplete: "off",
    enterkeyhint: "send", maxlength: "4096" });
  const label = el("label", { for: "sada-input", class: "sr" });
  const send = el("button", { class: "send", type: "submit" });
  const form = el("form", { onsubmit: (e) => { e.preventDefault(); const t = input.value.trim();
    if (t) { input.value = ""; say(t); } } }, label, input, send);
  const panel = el("section", { class: "panel", "aria-labelledby": "sada-title", id: "sada-panel",
    hidden: bubble },
  el("header", {}, title, menuButton, closeButton, menu), status,
  el("div", { class: "wrap" }, log, toast), form);
  const launch = bubble ? el("button", { class: "launch", type: "button", "aria-expanded": "false",
    "aria-controls": "sada-panel" }, icon()) : null;
  root.append(panel);
  if (launch) root.append(launch);
  // A constructed style sheet: the chat page's CSP (default-src 'self') refuses <style>.
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } catch (e) {
    shadow.append(el("style", { text: CSS }));
  }
  shadow.append(root);
  shadow.addEventListener("focusin", () => { engaged = true; });

  function setLang(code, dir) {
    if (!code) return;
    lang = code;
    root.lang = code;
    root.dir = dir || (RTL.test(code) ? "rtl" : "ltr");
    const w = words();
    title.textContent = opts.title || w.title;
    title.dir = "auto";
    menuButton.setAttribute("aria-label", w.menu);
    menuItems.forEach((b) => { b.textContent = w[b.dataset.cmd]; });
    log.setAttribute("aria-label", w.log);
    label.textContent = w.label;
    input.placeholder = w.placeholder;
    send.textContent = w.send;
    if (closeButton) closeButton.setAttribute("aria-label", w.close);
    if (launch) launch.setAttribute("aria-label", w.open);
    if (status.textContent) status.textContent = w.offline;
  }
  setLang(lang);

  function toggleMenu(open) {
    menu.hidden = !open;
    menuButton.setAttribute("aria-expanded", String(open));
    if (open) menuItems[0].focus();
  }
  menuButton.addEventListener("click", () => toggleMenu(menu.hidden));
  // a click or the focus elsewhere closes the menu, as menus do
  shadow.addEventListener("click", (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !menuButton.contains(e.target)) toggleMenu(false);
  });
  menu.addEventListener("focusout", (e) => {
    if (e.relatedTarget && !menu.contains(e.relatedTarget) && e.relatedTarget !== menuButton) toggleMenu(false);
  });
  menu.addEventListener("keydown", (e) => { if (e.key === "Escape") { toggleMenu(false); menuButton.focus(); } });

  function setOpen(open) {
    panel.hidden = !open;
    launch.setAttribute("aria-expanded", String(open));
    if (open) {
      engaged = true;
      if (!started) start(); else focusCurrent();
    } else {
      launch.focus();
    }
  }
  if (launch) {
    launch.addEventListener("click", () => setOpen(panel.hidden));
    closeButton.addEventListener("click", () => setOpen(false));
    panel.addEventListener("keydown", (e) => { if (e.key === "Escape" && menu.hidden) setOpen(false); });
  }

  // --- messages -------------------------------------------------------------------------------
  function lines(node, text, dir) {
    node.replaceChildren();
    for (const line of String(text).split("\n")) {
      // dir=auto: each line takes its direction from its first strong letter, so a Latin word
      // in a Persian line (or the reverse) never reorders it; a line of digits only keeps the
      // message's direction.
      node.append(el("div", { class: "line", dir: STRONG.test(line) ? "auto" : dir, text: line }));
    }
  }

  // Sada's button data (bot/messaging/keyboards.py): "s1:noop" is an answered question's
  // choice, shown inert; kinds b and k are Back and Skip, not answers.
  function inert(b) { return /:noop$/.test(b.data || ""); }
  const NAV = /^s1:[bk]:/;

  function renderButtons(m, rows) {
    m.rows = rows || null;
    m.keys.replaceChildren();
    if (!rows || !rows.length) return;
    for (const row of rows) {
      // The server sends rows as for Telegram, which reverses them for ar and fa; laid out
      // right to left, reading order puts 0 at the right and first in the Tab order.
      const ordered = m.dir === "rtl" ? [...row].reverse() : row;
      const r = el("div", { class: "row" + (row.length === 1 ? " one" : "") });
      for (const b of ordered) {
        const button = el("button", { type: "button", dir: STRONG.test(b.label) ? "auto" : m.dir, text: b.label });
        button.disabled = inert(b) || m !== live;
        if (NAV.test(b.data || "")) button.dataset.nav = "";
        button.addEventListener("click", () => press(m, b, button));
        r.append(button);
      }
      m.keys.append(r);
    }
  }

  // A file the bot sends (/export's JSON, a chart): a download link (a page's CSP may refuse
  // blob: pictures, never a download).
  function attach(node, file) {
    try {
      const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([bytes], { type: file.type || "application/octet-stream" }));
      node.append(el("a", { href: url, download: file.name || "sada", dir: "auto", text: "⬇ " + (file.name || "") }));
    } catch (e) { /* not base64: nothing to offer */ }
  }

  function liven(m) {
    const before = live;
    live = m;
    if (before && before !== m) renderButtons(before, before.rows);
  }

  function addBot(msg, fresh) {
    const dir = msg.dir || (RTL.test(msg.lang || lang) ? "rtl" : "ltr");
    // A question (a message with buttons) sets the widget's language: a help text starting
    // with "/start" or a line of digits says nothing about the reader's language.
    if (msg.lang && msg.buttons && msg.buttons.length) setLang(msg.lang, dir);
    const node = el("div", { class: "msg bot", dir, lang: msg.lang || lang });
    const body = el("div");
    const keys = el("div", { class: "keys" });
    node.append(body, keys);
    lines(body, msg.text || "", dir);
    if (msg.file && msg.file.data) attach(node, msg.file);
    const m = { node, body, keys, dir, rows: null };
    messages.set(msg.id, m);
    if (msg.buttons && msg.buttons.length) { liven(m); node.classList.add("ask"); }
    renderButtons(m, msg.buttons);
    log.append(node);
    latest = m;
    if (fresh && engaged) focusCurrent();
  }

  function edit(msg) {
    const m = messages.get(msg.id);
    if (!m) return;
    if (msg.dir) m.node.dir = m.dir = msg.dir;
    if (msg.text !== null && msg.text !== undefined) lines(m.body, msg.text, m.dir);
    const had = m.keys.contains(shadow.activeElement) ? [...m.keys.querySelectorAll("button")].indexOf(shadow.activeElement) : m.focusAt;
    renderButtons(m, msg.buttons);
    // a multi-choice toggle redraws the buttons under the visitor's finger: keep the focus there
    const lost = !shadow.activeElement || m.keys.contains(shadow.activeElement);
    if (lost && had !== undefined && had >= 0) {
      const again = m.keys.querySelectorAll("button")[had];
      if (again && !again.disabled) again.focus();
    }
    m.focusAt = undefined;
  }

  const pending = [];
  function addVisitor(text, seq) {
    if (seq !== undefined) {
      const mine = pending.findIndex((p) => p.text === text);
      if (mine >= 0) { pending.splice(mine, 1); return; }
    }
    const node = el("div", { class: "msg me", dir: "auto", text });
    log.append(node);
    return node;
  }

  let toastTimer = 0;
  function notice(text) {
    toast.textContent = text;
    toast.dir = "auto";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.textContent = ""; }, 3500);
  }

  function apply(msg, fresh) {
    if (typeof msg.seq === "number") {
      if (msg.seq <= last) return;
      last = msg.seq;
    }
    if (msg.kind === "message") addBot(msg, fresh);
    else if (msg.kind === "edit") edit(msg);
    else if (msg.kind === "notice") { if (fresh) notice(msg.text || ""); } // not old ones again
    else if (msg.kind === "visitor") addVisitor(msg.text || "", msg.seq);
    if (msg.kind !== "notice") log.scrollTop = log.scrollHeight;
  }

  // A new question takes the focus (its first answer, else the text box) once the visitor is
  // using the widget: never on a host page's load, where it would steal the page's focus.
  function focusCurrent() {
    if (panel.hidden) return;
    const first = live && live === latest && live.keys.querySelector("button:not(:disabled):not([data-nav])");
    (first || input).focus();
  }

  // --- talking to the server ----------------------------------------------------------------
  class Refused extends Error {
    constructor(message, code) { super(message); this.code = code; }
  }
  const errorOf = async (answer) => {
    try { return (await answer.json()).error || {}; } catch (e) { return {}; }
  };
  // The server no longer knows this visitor (erased by /forget, or another database): open
  // again as a new one, the way a first visit does.
  const gone = (e) => e && e.code === "unknown_visitor";
  async function call(path, body, attempt = 0) {
    for (;;) {
      let answer;
      try {
        answer = await fetch(API + path, { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body), credentials: "omit", mode: "cors" });
      } catch (e) {
        offline(true);
        await pause(backoff(attempt++));
        continue;
      }
      offline(false);
      if (answer.ok) return answer.json();
      const error = await errorOf(answer);
      if (answer.status === 429 || answer.status >= 500) {
        const wait = Number(answer.headers.get("Retry-After"));
        await sleep(wait > 0 ? wait * 1000 : backoff(attempt++));
        continue;
      }
      throw new Refused(error.message || answer.statusText || String(answer.status), error.code);
    }
  }

  function offline(down) {
    status.textContent = down ? words().offline : "";
  }

  async function say(text) {
    const node = addVisitor(text);
    pending.push({ text, node });
    log.scrollTop = log.scrollHeight;
    try {
      await call("say", { visitor, text });
    } catch (e) {
      node.classList.add("failed");
      notice(e.message);
      if (gone(e)) restart();
    }
  }

  async function press(m, b, button) {
    if (button.disabled) return;
    m.focusAt = [...m.keys.querySelectorAll("button")].indexOf(button);
    for (const other of m.keys.querySelectorAll("button")) other.disabled = true;
    // answers are shown by the server's history (as the pressed label); until it comes, ours
    const node = addVisitor(b.label);
    pending.push({ text: b.label, node });
    try {
      await call("press", { visitor, data: b.data });
    } catch (e) {
      notice(e.message);
      if (gone(e)) restart();
    }
    // nothing redrew the buttons (a refused or ignored press): let the visitor try again
    setTimeout(() => { if (m.keys.contains(button) && m === live) renderButtons(m, m.rows); }, 4000);
  }

  let generation = 0; // a restart ends the stream and the polling of the one before

  function restart() {
    if (stream) stream.close();
    stream = null;
    visitor = null;
    last = 0;
    messages.clear();
    live = latest = null;
    pending.length = 0;
    start();
  }

  async function start() {
    started = true;
    generation += 1;
    let opened;
    try {
      opened = await call("open", { visitor, token: opts.token || null, flow: opts.flow || null,
        lang: opts.lang || null });
    } catch (e) {
      notice(e.message);
      addBot({ id: -1, kind: "message", text: e.message }, false);
      return;
    }
    visitor = opened.visitor;
    store.set(visitor);
    setLang(opened.lang, opened.dir);
    log.replaceChildren();
    for (const msg of opened.messages || []) apply(msg, false);
    last = Math.max(last, opened.last || 0);
    if (engaged) focusCurrent();
    listen();
  }

  // Back online: the stream reconnects now rather than after the browser's own delay.
  addEventListener("online", () => {
    if (stream && stream.readyState !== EventSource.OPEN) { stream.close(); listen(); }
  });

  function listen() {
    if (!window.EventSource) return poll();
    const mine = generation;
    let errors = 0;
    stream = new EventSource(API + "stream?visitor=" + encodeURIComponent(visitor) + "&after=" + last);
    stream.addEventListener("open", () => { errors = 0; offline(false); });
    stream.addEventListener("message", (e) => {
      errors = 0;
      try { apply(JSON.parse(e.data), true); } catch (err) { /* a malformed event: skip it */ }
    });
    stream.addEventListener("error", () => {
      if (mine !== generation) return;
      errors += 1;
      // closed for good (refused, wrong type), or failing again and again: long polling instead
      if (stream.readyState === EventSource.CLOSED || errors >= 3) {
        stream.close();
        stream = null;
        poll();
      } else {
        offline(true);
      }
    });
  }

  async function poll() {
    const mine = generation;
    for (let attempt = 0; mine === generation;) {
      try {
        const answer = await fetch(API + "poll?visitor=" + encodeURIComponent(visitor) + "&after=" + last,
          { credentials: "omit", mode: "cors" });
        if (mine !== generation) return;
        if (!answer.ok) {
          const error = await errorOf(answer);
          if (gone(error)) return restart();
          throw new Refused(error.message || String(answer.status), error.code);
        }
        const got = await answer.json();
        offline(false);
        attempt = 0;
        for (const msg of got.messages || []) apply(msg, true);
        if (typeof got.last === "number") last = Math.max(last, got.last);
      } catch (e) {
        offline(true);
        await pause(backoff(attempt++));
      }
    }
  }

  // --- mount ----------------------------------------------------------------------------------
  function mount() {
    const target = !bubble && document.querySelector(opts.target || "#sada");
    (target || document.body).append(host);
    if (!bubble) start();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
