// The widget: loaded by the loader on the first click of "Get help" and then in
// charge of everything the visitor sees beyond the button.
//
// It registers window.__cobrowseWidget = {api, open(ctx), close(), toggle(ctx),
// isOpen()}; see loader.js for ctx. The panel frame lives in panel.js, and each
// feature is its own module listed in FEATURES below (today only the intro;
// chat.js, consent.js, recorder.js and markers.js are meant to join it).
//
// A feature is a function called once, when the panel is first built, with the
// widget object w:
//   w.ctx                   the loader's context (base, nonce, root, button, load)
//   w.panel                 the panel element (a non-modal dialog)
//   w.section(name, kids)   appends <div class="sec name"> with kids to the body
//   w.on(type, fn)          'open' and 'close' events; returns an unsubscribe
//   w.emit(type, data)      for features to talk to each other
//   w.open(), w.close()
// Features must follow the loader's CSP rules: build nodes with lib/dom.js h()
// and style them with lib/dom.js adopt(), never parse HTML or set style
// attributes. A feature with heavy code (the rrweb recorder) should be a
// separate bundle fetched with ctx.load() when it is needed.

import { h } from '../lib/dom.js';
import { hub } from './events.js';
import { createPanel } from './panel.js';
import { intro } from './intro.js';

const FEATURES = [intro];

let w = null;
let opened = false;

function build(ctx) {
  const events = hub();
  const panel = createPanel(ctx, { onClose: () => close(true) });
  w = {
    ctx,
    panel: panel.el,
    on: events.on,
    emit: events.emit,
    open: () => open(ctx),
    close: () => close(false),
    section(name, kids) {
      const el = h('div', { className: 'sec ' + name }, kids);
      panel.body.append(el);
      return el;
    },
  };
  // Esc closes from anywhere inside our shadow root (panel or launcher).
  ctx.root.addEventListener('keydown', (e) => {
    if (e.key == 'Escape' && opened) {
      e.stopPropagation();
      close(true);
    }
  });
  for (const feature of FEATURES) {
    try {
      feature(w);
    } catch (e) {
      console.error('cobrowse:', e);
    }
  }
}

function open(ctx) {
  if (!w) build(ctx);
  if (!opened) {
    opened = true;
    w.panel.hidden = false;
    w.ctx.button.setAttribute('aria-expanded', 'true');
    w.emit('open');
  }
  w.panel.focus();
}

// refocus: give focus back to the launcher (after Esc or the close button),
// as a dialog should; not when focus is elsewhere on the page.
function close(refocus) {
  if (!opened) return;
  opened = false;
  const { root, button } = w.ctx;
  const hadFocus = refocus || w.panel.contains(root.activeElement);
  w.panel.hidden = true;
  button.setAttribute('aria-expanded', 'false');
  if (hadFocus) button.focus();
  w.emit('close');
}

if (!window.__cobrowseWidget) {
  window.__cobrowseWidget = {
    api: 1,
    open,
    close: () => close(false),
    toggle: (ctx) => (opened ? close(false) : open(ctx)),
    isOpen: () => opened,
  };
}
