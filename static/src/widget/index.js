// The widget: loaded by the loader on the first click of "Get help" and then in
// charge of everything the visitor sees beyond the button.
//
// It registers window.__cobrowseWidget = {api, open(ctx), close(), toggle(ctx),
// isOpen(), resume(ctx)}; see loader.js for ctx. resume(ctx) is called by the
// loader, without a click, on a page load during a sharing session the visitor
// agreed to or while their chat is open: it builds the widget and resumes
// sharing and the chat, with the panel open again if it was open when this
// tab left its last page (the code being read out, a conversation going on),
// closed otherwise.
// The panel frame lives in panel.js, and each feature is its own module listed
// in FEATURES below:
//   socket.js   the one websocket to the hub, shared by every feature (API below)
//   share.js    co-browsing: the sharing frames; drives recorder.js, which
//               loads the rrweb recorder bundle after consent
//   intro.js    what the widget is for
//   chat.js     the chat with support (with chat-form.js, chat-files.js,
//               emoji.js; lib/linkify.js and lib/rich.js, shared with the console)
//   consent.js  the consent form, the share code, the stop button (panel; in
//               the chat, a strip above the messages)
//   banner.js   who is viewing (bar above the page), end-of-sharing notice
//   markers.js  what an agent marks on the page (boxes, highlights, drawings, laser)
//   control.js  shared control: the prompt, "Take back control", the agent's input
//   commands.js an agent sends the tab to a page or opens a new one
//   screenshare.js  screen sharing and voice calls on an agent's request
//               (WebRTC, signalled through the hub)
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
//
// The hub connection (socket.js), for every feature (chat, sharing, screen sharing):
//   w.emit('hub:hold', name) / w.hub.hold(name)    keep the socket open (and
//                           reconnecting, with backoff) while any feature holds
//                           it; only after the visitor acted, or on a page load
//                           continuing what they started
//   w.emit('hub:release', name) / w.hub.release(name)   the last release closes it
//   w.emit('hub:send', frame) / w.hub.send(frame) -> bool   sends now if the
//                           socket is open (false: not sent; send it again on
//                           'socket:up')
//   w.on('hub:<t>', fn)     every frame from the hub, by its type t ('hub:chat_msg',
//                           'hub:screen_request', 'hub:error' {code, message, re}...)
//   w.hub.gate(t, fn)       let frames of type t through only while fn(frame) is
//                           true (share.js gates the session's marker/control frames)
//   w.on('socket:hello', fn(hello))  add fields to the connection's hello
//   w.on('socket:up', fn)   a new connection, hello sent: send what continues
//                           your state on it (share: share; chat: chat_resume)
//   w.on('socket:down', fn({tries}))  the connection dropped; reconnecting
//   w.hub.up() -> bool      open and hello sent;  w.hub.drop(): reconnect now
// Features must follow the loader's CSP rules: build nodes with lib/dom.js h()
// and style them with lib/dom.js adopt(), never parse HTML or set style
// attributes. A feature with heavy code (the rrweb recorder) should be a
// separate bundle fetched with ctx.load() when it is needed.

import { h } from '../lib/dom.js';
import { hub } from './events.js';
import { storedSession, storedChat } from './store.js';
import { createPanel } from './panel.js';
import { intro } from './intro.js';
import { socket } from './socket.js';
import { share } from './share.js';
import { chat } from './chat.js';
import { consent } from './consent.js';
import { banner } from './banner.js';
import { markers } from './markers.js';
import { control } from './control.js';
import { commands } from './commands.js';
import { screenshare } from './screenshare.js';

// socket first, then share: the others listen to what they report. The panel
// shows the sections in this order (chat above the sharing consent).
const FEATURES = [socket, share, intro, chat, consent, banner, markers, control, commands, screenshare];

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

// Whether this tab's panel was open as it left a page, while sharing or
// chatting (nothing is stored for a visitor who only looked at the panel).
const PANEL_KEY = 'cobrowse:panel';
function rememberPanel() {
  try {
    if (opened && (storedSession() || storedChat())) sessionStorage.setItem(PANEL_KEY, '1');
    else sessionStorage.removeItem(PANEL_KEY);
  } catch (e) {
    // no storage: the panel starts closed
  }
}

function panelWasOpen() {
  try {
    return sessionStorage.getItem(PANEL_KEY) == '1';
  } catch (e) {
    return false;
  }
}

// focus: false when the page has just loaded (its own focus stays where it is).
function open(ctx, focus = true) {
  if (!w) build(ctx);
  if (!opened) {
    opened = true;
    w.panel.hidden = false;
    w.ctx.button.setAttribute('aria-expanded', 'true');
    w.emit('open');
  }
  // (a feature may have put focus on its own control, e.g. the chat's input)
  if (focus && !w.panel.contains(ctx.root.activeElement)) w.panel.focus();
}
addEventListener('pagehide', rememberPanel);

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
      if (panelWasOpen()) open(ctx, false);
    },
  };
}
