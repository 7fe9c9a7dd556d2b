// The loader: the one script the proxy injects into every HTML page
// (<script src="<prefix>loader.js" nonce="..." async>). It runs on every page
// whether or not the visitor ever asks for help, so it stays tiny (budget 6 KB
// gzip, enforced by build.mjs) and does almost nothing: it adds a "Get help"
// button once the browser is idle, and only a click loads the widget
// (<prefix>static/widget.js).
//
// Contract with the widget: widget.js sets window.__cobrowseWidget to an object
// with open(ctx), close() and toggle(ctx). The loader calls open(ctx) after the
// first load and toggle(ctx) on later clicks. ctx is:
//   api     1, bumped on incompatible changes of this contract
//   base    absolute URL of the prefix, e.g. "https://shop.example/__cobrowse/"
//   nonce   the CSP nonce the loader was given ("" if none)
//   host    the <div id="cobrowse-root"> in the page
//   root    its open shadow root, where the widget renders
//   button  the launcher <button>
//   load(name, version) -> Promise: loads <base>static/<name>.js?v=<version>
//           with the nonce (and a Trusted Types policy), for later lazy chunks
//
// CSP: everything is built with createElement/createElementNS and styled by a
// constructable stylesheet, so it needs neither 'unsafe-inline' nor
// 'unsafe-eval'; scripts it adds carry the nonce, which also satisfies
// 'strict-dynamic'.
//
// Sharing and chatting across page loads: while a co-browse session the visitor
// agreed to is running, localStorage "cobrowse:share" holds it, and while their
// chat is open, "cobrowse:chat" (widget/store.js writes both). On a page load
// with a recent one, the loader mounts at once, loads the widget (which holds
// the chat; and, when sharing, the recorder) without a click, and calls widget.resume(ctx), which
// reconnects (the panel opens again only if it was open as this tab left its
// last page, see widget/index.js; else the chat shows a count of new messages
// on the button). No other page load touches the widget.

import { h, icon, adopt, FONT, ACCENT, ACCENT_TEXT } from './lib/dom.js';

// Set by build.mjs: the content hash of widget.js, so that the static files can be
// cached for good while loader.js itself is revalidated.
const WIDGET_VERSION = __COBROWSE_HASH_WIDGET__;
const RECORDER_VERSION = __COBROWSE_HASH_RECORDER__;

const W = window;
const D = document;
const LABEL = 'Get help';

const CHAT =
  'M5 4h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-9l-4 4v-4H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z' +
  'M9.8 8.8a2.3 2.3 0 1 1 3.2 2.1c-.6.3-1 .7-1 1.4M12 14.7h.01';
const ALERT = 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM12 7.8v5M12 16.2h.01';

const CSS = [
  // The host takes no room and no clicks: only the button (and later the panel)
  // receive pointer events. !important in :host beats the page's own rules.
  [
    ':host',
    'all:initial!important;display:block!important;position:fixed!important;' +
      'right:0!important;bottom:0!important;width:0!important;height:0!important;' +
      'overflow:visible!important;pointer-events:none!important;z-index:2147483647!important',
  ],
  [
    '.l',
    'pointer-events:auto;position:fixed;right:calc(20px + var(--cb-r,0px));bottom:calc(20px + var(--cb-b,0px));' +
      'box-sizing:border-box;display:flex;align-items:center;gap:8px;height:48px;margin:0;padding:0 20px 0 16px;' +
      'border:0;border-radius:24px;background:' + ACCENT + ';color:' + ACCENT_TEXT + ';' +
      'font:600 15px/1 ' + FONT + ';white-space:nowrap;cursor:pointer;' +
      'box-shadow:0 1px 2px rgba(16,24,40,.14),0 6px 20px rgba(16,24,40,.2);' +
      'transition:transform .15s,box-shadow .15s;' +
      '-webkit-tap-highlight-color:transparent',
  ],
  ['.l:hover', 'transform:translateY(-2px);box-shadow:0 2px 4px rgba(16,24,40,.16),0 10px 28px rgba(16,24,40,.24)'],
  ['.l:active', 'transform:none'],
  ['.l:focus-visible', 'outline:3px solid ' + ACCENT + ';outline-offset:3px'],
  ['.l svg', 'width:22px;height:22px;flex:none'],
  ['.l.b', 'cursor:progress'],
  ['.l.e', 'background:#4a5263;color:#fff'],
  ['.s', 'width:18px;height:18px;margin:2px;box-sizing:border-box;border:2px solid;border-right-color:transparent;border-radius:50%;animation:r .7s linear infinite'],
  ['.sr', 'position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap'],
  '@keyframes r{to{transform:rotate(1turn)}}',
  '@media (max-width:480px){.l{right:calc(16px + var(--cb-r,0px));bottom:calc(16px + var(--cb-b,0px))}}',
  '@media (prefers-reduced-motion:reduce){.l,.s{transition:none;animation:none}.l:hover{transform:none}}',
  '@media print{:host{display:none!important}}',
];

function start() {
  // currentScript is null in modules and callbacks: fall back to the tag itself.
  const me = D.currentScript || [...D.scripts].reverse().find((s) => /\/loader\.js([?#]|$)/.test(s.src));
  if (!me || !me.src) return;
  const base = new URL('.', me.src).href;
  const nonce = me.nonce || '';
  const pending = {};
  let policy;
  let host, root, button, label, glyph, status, ctx;
  let busy = false;

  // Under Trusted Types a script URL must come from a policy; ours only passes
  // URLs under our own base. If the page does not allow a policy named
  // "cobrowse", the plain string is used (and fails only where TT is enforced).
  function scriptURL(url) {
    const tt = W.trustedTypes;
    policy = policy || W.__cobrowseTT; // made by the inline tag (stub.js), which added us
    if (!policy && tt && tt.createPolicy) {
      try {
        policy = tt.createPolicy('cobrowse', { createScriptURL: (u) => (u.indexOf(base) ? '' : u) });
      } catch (e) {
        // not allowed by the page's trusted-types directive
      }
    }
    return policy ? policy.createScriptURL(url) : url;
  }

  function load(name, version) {
    const url = base + 'static/' + name + '.js' + (version ? '?v=' + version : '');
    return (pending[url] =
      pending[url] ||
      new Promise((resolve, reject) => {
        const s = D.createElement('script');
        s.src = scriptURL(url);
        if (nonce) s.nonce = nonce;
        s.onload = resolve;
        s.onerror = () => {
          delete pending[url];
          reject(new Error('cobrowse: cannot load ' + url));
        };
        (D.head || D.documentElement).append(s);
      }));
  }

  function show(text, node, cls) {
    label.textContent = text;
    button.setAttribute('aria-label', text);
    button.className = 'l' + cls;
    button.setAttribute('aria-busy', cls == ' b');
    glyph.replaceWith(node);
    glyph = node;
    status.textContent = text == LABEL ? '' : text;
  }

  function click() {
    let widget = W.__cobrowseWidget;
    if (widget) return widget.toggle(ctx);
    if (busy) return;
    busy = true;
    show('Loading\u2026', h('span', { className: 's' }), ' b');
    load('widget', WIDGET_VERSION)
      .then(() => {
        widget = W.__cobrowseWidget;
        show(LABEL, icon(CHAT), '');
        widget.open(ctx);
      })
      .catch((e) => {
        show('Help is unavailable right now', icon(ALERT), ' e');
        if (W.console) console.warn(e);
      })
      .then(() => (busy = false));
  }

  function mount() {
    if (host) return;
    host = h('div', { id: 'cobrowse-root' });
    root = host.attachShadow({ mode: 'open' });
    adopt(root, CSS);
    glyph = icon(CHAT);
    label = h('span', { textContent: LABEL });
    button = h(
      'button',
      { type: 'button', className: 'l', 'aria-label': LABEL, 'aria-haspopup': 'dialog', 'aria-expanded': 'false', onclick: click },
      [glyph, label],
    );
    status = h('span', { className: 'sr', role: 'status' });
    root.append(button, status);
    ctx = { api: 1, base, nonce, host, root, button, load };
    D.body.append(host);
    keepInView();

    // Single-page apps sometimes replace <body> or its children wholesale; put
    // the button back when that removes it (bounded, in case a page fights us).
    let reattach = 20;
    const watch = new MutationObserver(() => {
      if (!host.isConnected && D.body && reattach--) {
        D.body.append(host);
        observe();
      }
    });
    const observe = () => {
      watch.observe(D.documentElement, { childList: true });
      watch.observe(D.body, { childList: true });
    };
    observe();
  }

  // Fixed boxes sit at the corner of the layout viewport, which on a phone is
  // wider than the screen when the page's content is (a wide table), and which
  // a pinch-zoom leaves behind: the button would be off screen. --cb-r and
  // --cb-b (used by the button and the widget's panel) say how far that corner
  // lies beyond the visible one. The host is fixed at the corner, 0 by 0.
  function keepInView() {
    const vv = W.visualViewport;
    if (!vv) return;
    let queued = 0;
    let was = '';
    const place = () => {
      queued = 0;
      const corner = host.getBoundingClientRect();
      const r = Math.max(0, Math.round(corner.left - vv.offsetLeft - vv.width));
      const b = Math.max(0, Math.round(corner.top - vv.offsetTop - vv.height));
      // (unchanged, as on almost every scroll: no style work for the page)
      if (r + ',' + b == was) return;
      was = r + ',' + b;
      host.style.setProperty('--cb-r', r + 'px');
      host.style.setProperty('--cb-b', b + 'px');
    };
    const soon = () => (queued = queued || requestAnimationFrame(place));
    vv.addEventListener('resize', soon);
    vv.addEventListener('scroll', soon);
    W.addEventListener('resize', soon);
    W.addEventListener('load', soon);
    // Content that widens the page later widens the layout viewport without any
    // event: looked at again when the visitor scrolls (once a frame at most).
    W.addEventListener('scroll', soon, { passive: true });
    place();
  }

  // A sharing session is running (see widget/store.js: same key, same 10 min
  // "seen" window): resume it on this page at once.
  function resume() {
    mount();
    // In parallel; the widget asks for them again.
    if (sharing) load('recorder', RECORDER_VERSION).catch(() => {});
    load('widget', WIDGET_VERSION)
      .then(() => W.__cobrowseWidget.resume(ctx))
      .catch((e) => W.console && console.warn(e));
  }
  // (the same rules as widget/store.js storedSession and storedChat)
  let sharing, chatting;
  try {
    const stored = (key, field, window) => {
      const v = JSON.parse(localStorage.getItem('cobrowse:' + key));
      return v && v[field] && Date.now() - v.seen < window;
    };
    sharing = stored('share', 'resume', 6e5);
    chatting = stored('chat', 'token', 864e5);
  } catch (e) {
    // no storage: nothing to resume
  }

  // Stay off the page's critical path: wait for <body>, then for an idle moment.
  const later = () =>
    sharing || chatting ? resume() : W.requestIdleCallback ? requestIdleCallback(mount, { timeout: 1500 }) : setTimeout(mount, 50);
  if (D.body) later();
  else D.addEventListener('DOMContentLoaded', later);
}

// Once per page (the tag may be both injected and pasted by hand), top window only.
if (W.top === W && !W.__cobrowseLoaded) {
  W.__cobrowseLoaded = true;
  start();
}
