// Chat: the "Chat with us" card at the top of the panel and the panel's looks.
// Nothing goes to the network before the visitor opens the panel: then GET
// <base>chat/config says whether anyone is available, so the card offers
// "Start a chat" or "Leave a message" before a click, not after it (and
// "Start a chat" asks again when that answer is over a minute old; it also
// holds the pre-chat form). The chat itself (chat-main.js: forms, the conversation, files,
// emoji, the survey; protocol and storage notes there) is installed on "Start
// a chat", or at once when a conversation is open (a page load, another tab).
// It is part of the widget bundle, which loads when the visitor asks for help:
// as a bundle of its own it repeated the widget's DOM and storage helpers and
// compressed apart from the rest, 1 KB more gzip for visitors who chat and
// share, and one more request on "Start a chat" (docs/benchmarks.md, Browser).
//
// The panel has three looks: the start (intro, this card, the sharing
// consent), a form (class k-f: pre-chat, leave a message) and the
// conversation (class k-c: sharing becomes a strip above the messages).
//
//   'chat:config' (cfg)   chat/config arrived (chat-main.js listens)
import { h } from '../lib/dom.js';
import { storedChat, CHAT_KEY } from './store.js';
import { install } from './chat-main.js';

const CONFIG_TTL = 60000; // who is available changes: ask again when the panel opens after this

export function chat(w) {
  const { ctx } = w;
  const sec = w.section('chat', []);
  let cfg = null;
  let cfgAt = 0; // when it arrived
  let view = '';

  const lead = h('p', { className: 'lead' });
  const note = h('p', { className: 'ke', role: 'status', hidden: true });
  const button = h('button', { type: 'button', className: 'btn go', onclick: go });
  const home = h('div', { className: 'kh' }, [h('h3', { textContent: 'Chat with us' }), lead, note, button]);

  function setView(name, el, focus) {
    view = name;
    if (sec.firstChild != el) sec.replaceChildren(el);
    w.panel.classList.toggle('k-c', name == 'chat');
    w.panel.classList.toggle('k-f', name == 'form');
    if (focus && !w.panel.hidden) focus();
  }

  // (What the last chat/config said, when the visitor comes back here.)
  function showHome(text, focus) {
    const away = cfg && cfg.available === false;
    note.textContent = text || '';
    note.hidden = !text;
    button.textContent = away && cfg.offline !== false ? 'Leave a message' : 'Start a chat';
    lead.textContent = away
      ? 'No one is available to chat right now.' + (cfg.offline !== false ? ' Leave a message and we will reply by email.' : '')
      : 'Ask us anything. A member of our support team will answer here.';
    setView('home', home, focus && (() => button.focus()));
  }

  // chat/config (again when older than a minute: who is available changes).
  function loadConfig(force) {
    if (!force && cfgAt && Date.now() - cfgAt < CONFIG_TTL) return Promise.resolve(cfg);
    return fetch(ctx.base + 'chat/config', { credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error('chat/config: ' + r.status))))
      .then((c) => {
        cfg = c && typeof c == 'object' ? c : {};
        cfgAt = Date.now();
        w.emit('chat:config', cfg);
        return cfg;
      });
  }

  // The chat, installed once.
  let installed = null;
  function boot() {
    if (!installed) {
      try {
        installed = Promise.resolve(install(w, { cfg: () => cfg, loadConfig, showHome, setView, view: () => view }));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return installed;
  }

  function go() {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    Promise.all([boot(), loadConfig()])
      .then(([m, c]) =>
        c.enabled === false || (c.available === false && c.offline === false)
          ? showHome('Chat is not available right now. Please try again later.', true)
          : m.begin(),
      )
      .catch((e) => {
        console.warn(e);
        showHome('We could not reach our support service. Check your connection and try again.', true);
      })
      .then(() => {
        button.disabled = false;
        button.removeAttribute('aria-busy');
      });
  }

  // A conversation is open (this page load continues it, or another tab started one).
  const carryOn = () => storedChat() && boot().then((m) => m.resume(), console.warn);

  // The panel opens on the start: say at once whether anyone is there to chat with.
  w.on('open', () => {
    if (view != 'home' || storedChat()) return;
    const text = note.hidden ? '' : note.textContent;
    loadConfig().then(() => view == 'home' && showHome(text), () => {}); // (a failure shows on "Start a chat")
  });
  w.on('resume', carryOn);
  addEventListener('storage', (e) => e.key == CHAT_KEY && e.newValue && carryOn());
  showHome();
  carryOn();
}
