// The agent console: entry point of console.js (built by static/build.mjs).
//
//   login.js         the login screen
//   api.js           POST /api/login, /api/logout, GET /api/me
//   socket.js        the agent websocket (reconnects with backoff)
//   queue.js         visitors waiting for help, "Join by code"
//   session-view.js  the open session: tabs, viewers, leave / end, its end
//   replay.js        one tab replayed live with rrweb (timing, scaling)
//   anchors.js       how markers and actions name the visitor's elements
//   markers.js       marker tools and the markers drawn over the replay
//   control.js       shared control: request / release, the agent's input
//   commands.js      goto: / open: for the visitor's tab
//
// The page is console.html; this runs deferred, under the console's CSP.

import * as api from './api.js';
import { $, duration } from './dom.js';
import { LoginScreen } from './login.js';
import { QueuePanel, initials } from './queue.js';
import { SessionController } from './session-view.js';
import { AgentSocket, socketUrl } from './socket.js';

const els = {
  boot: $('#boot'),
  workspace: $('#workspace'),
  conn: $('#conn'),
  connText: $('#conn-text'),
  meName: $('#me-name'),
  meRole: $('#me-role'),
  meAvatar: $('#me-avatar'),
  logout: $('#logout'),
  toast: $('#toast'),
  announcer: $('#announcer'),
};

const login = new LoginScreen({
  root: $('#login'),
  form: $('#login-form'),
  username: $('#login-username'),
  password: $('#login-password'),
  submit: $('#login-submit'),
  error: $('#login-error'),
}, (me) => enter(me));

let socket = null;
let toastTimer = null;

function toast(text) {
  const el = els.toast;
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 6000);
}

function announce(text) {
  els.announcer.textContent = '';
  requestAnimationFrame(() => {
    els.announcer.textContent = text;
  });
}

const queue = new QueuePanel({
  list: $('#queue-list'),
  empty: $('#queue-empty'),
  count: $('#queue-count'),
  form: $('#code-form'),
  input: $('#code-input'),
  error: $('#code-error'),
  submit: $('#code-submit'),
}, (target) => session.join(target));

const session = new SessionController({
  send: (frame) => (socket ? socket.send(frame) : false),
  toast,
  announce,
  queue,
  els: {
    stageEmpty: $('#stage-empty'),
    session: $('#session'),
    info: $('#info'),
    tabs: $('#tabs'),
    panels: $('#panels'),
    follow: $('#follow'),
    size: $('#viewport-size'),
    liveText: $('#live-text'),
    scale: $('#viewport-scale'),
    overlay: $('#overlay'),
    overlayTitle: $('#overlay-title'),
    overlayText: $('#overlay-text'),
    endedCard: $('#ended'),
    endedTitle: $('#ended-title'),
    endedText: $('#ended-text'),
    back: $('#ended-back'),
    title: $('#session-title'),
    avatar: $('#visitor-avatar'),
    site: $('#info-site'),
    pageTitle: $('#info-page-title'),
    pageUrl: $('#info-page-url'),
    elapsed: $('#info-elapsed'),
    tabsCount: $('#info-tabs'),
    viewersLine: $('#viewers-line'),
    viewersList: $('#viewers-list'),
    leave: $('#leave'),
    end: $('#end'),
    endDialog: $('#end-dialog'),
    endConfirm: $('#end-confirm'),
    markBar: $('#mark-bar'),
    toolHint: $('#tool-hint'),
    control: {
      card: $('#control-card'),
      title: $('#control-title'),
      text: $('#control-text'),
      note: $('#control-note'),
      allowSubmit: $('#control-allow-submit'),
      allowRow: $('#control-allow-row'),
      request: $('#control-request'),
      release: $('#control-release'),
      chip: $('#control-chip'),
      session: $('#session'),
    },
    command: {
      form: $('#command-form'),
      input: $('#command-input'),
      submit: $('#command-submit'),
      status: $('#command-status'),
      help: $('#command-help'),
    },
  },
});
$('#end-cancel').addEventListener('click', () => $('#end-dialog').close());

function connectionStatus({ state, retryAt }) {
  const { conn, connText } = els;
  conn.dataset.state = state;
  clearInterval(connectionStatus.timer);
  if (state == 'online') connText.textContent = 'Connected';
  else if (state == 'connecting') connText.textContent = 'Connecting…';
  else if (state == 'offline') connText.textContent = 'Offline';
  else if (state == 'reconnecting') {
    const show = () => {
      const left = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      connText.textContent = left ? `Reconnecting in ${duration(left)}…` : 'Reconnecting…';
    };
    show();
    connectionStatus.timer = setInterval(show, 500);
  }
  if (state != 'online') session.onOffline();
}

function enter(me) {
  login.hide();
  els.boot.hidden = true;
  els.workspace.hidden = false;
  els.meName.textContent = me.name;
  els.meRole.textContent = me.role;
  els.meRole.hidden = !me.role || me.role == 'agent';
  els.meAvatar.textContent = initials(me.name);
  session.me = me.name;
  document.body.classList.add('is-in');
  if (socket) socket.stop();
  socket = new AgentSocket(socketUrl(), {
    onReady: () => {
      socket.send({ t: 'watch' });
      session.onReady();
    },
    onFrame: (frame) => {
      if (frame.t == 'queue') {
        queue.update(frame.sessions || []);
        session.onQueue(frame.sessions || []);
      }
      else if (!session.handle(frame) && frame.t == 'error') toast(frame.message || 'Something went wrong.');
    },
    onStatus: connectionStatus,
    onAuthLost: () => leaveWorkspace('Your login has expired. Sign in again.'),
  }, async () => (await api.me()) != null);
  socket.start();
  window.__cobrowseConsole = { session, queue, socket }; // for the end-to-end tests and debugging
}

function leaveWorkspace(message) {
  if (socket) socket.stop();
  socket = null;
  session.close();
  queue.clear();
  els.workspace.hidden = true;
  document.body.classList.remove('is-in');
  login.show(message);
}

els.logout.addEventListener('click', async () => {
  els.logout.disabled = true;
  try {
    await api.logout();
  } catch {
    // the cookie is dropped on the server side only; leave anyway
  } finally {
    els.logout.disabled = false;
  }
  leaveWorkspace(null);
});

async function boot() {
  let me = null;
  try {
    me = await api.me();
  } catch (e) {
    els.boot.hidden = true;
    login.show(e.message);
    return;
  }
  els.boot.hidden = true;
  if (me) enter(me);
  else login.show(null);
}

boot();
