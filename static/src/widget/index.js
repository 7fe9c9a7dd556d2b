// The widget: loaded by the loader on the first click of "Get help" and then in
// charge of everything the visitor sees beyond the button.
//
// It registers window.__cobrowseWidget = {api, open(ctx), close(), toggle(ctx),
// isOpen(), resume(ctx)}; see loader.js for ctx. resume(ctx) is called by the
// loader, without a click, on a page load during a sharing session the visitor
// agreed to: it builds the widget (panel closed) and resumes sharing.
// The panel frame lives in panel.js, and each feature is its own module listed
// in FEATURES below:
//   intro.js    what the widget is for
//   share.js    the hub connection and protocol client; drives recorder.js,
//               which loads the rrweb recorder bundle after consent
//   consent.js  the consent form, the share code, the stop button (panel)
//   banner.js   who is viewing (bar above the page), end-of-sharing notice
//   markers.js  what an agent marks on the page (boxes, highlights, drawings, laser)
//   control.js  shared control: the prompt, "Take back control", the agent's input
//   commands.js an agent sends the tab to a page or opens a new one
// (chat.js is meant to join them.)
//
// A feature is a function called once, when the panel is first built, with the
// widget object w:
//   w.ctx                   the loader's context (base, nonce, root, button, load)
//   w.panel                 the panel element (a non-modal dialog)
//   w.section(name, kids)   appends <div class="sec name"> with kids to the body
//   w.on(type, fn)          'open', 'close', 'resume' events, and what features
//                           say to each other ('share:start', 'share:stop',
//                           'share:state', see share.js); returns an unsubscribe
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
import { share } from './share.js';
import { consent } from './consent.js';
import { banner } from './banner.js';
import { markers } from './markers.js';
import { control } from './control.js';
import { commands } from './commands.js';

// share first: the others listen to what it reports.
const FEATURES = [share, intro, consent, banner, markers, control, commands];

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
    resume(ctx) {
      if (!w) build(ctx);
      w.emit('resume');
    },
  };
}
