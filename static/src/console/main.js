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
//   chat.js          the agent's conversations (tabs, messages, composer) beside the shared view
//   chat-log.js      one conversation's messages, merged by seq; chat-composer.js the composer
//   chat-offers.js   incoming chats (Accept) and the Available / Away switch
//   chat-files.js    file transfer; chat-transfer.js the Transfer dialog; chat-api.js the chat's HTTP API
//   canned.js        canned replies ("/" in the composer, and their manager)
//   offline.js       messages left while nobody was available
//   departments.js   department names for the ids chats carry
//   emoji.js         the composer's emoji picker
//   screenshare.js   screen sharing and voice calls on the agent's request (WebRTC)
//   layout.js        the side columns folding away to give the visitor's page room
//
// The page is console.html; this runs deferred, under the console's CSP.

import * as api from './api.js';
import { $, duration, icon, ICONS } from './dom.js';
import { LoginScreen } from './login.js';
import { QueuePanel, initials } from './queue.js';
import { SessionController } from './session-view.js';
import { AgentSocket, socketUrl } from './socket.js';
import { ChatController } from './chat.js';
import { ChatOffers } from './chat-offers.js';
import { CannedReplies, CannedManager } from './canned.js';
import { OfflineMessages } from './offline.js';
import { TeamView } from './team.js';
import { ScreenShare } from './screenshare.js';
import * as chatApi from './chat-api.js';
import { learnDepartments } from './departments.js';
import { WorkspaceLayout } from './layout.js';

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

const layout = new WorkspaceLayout({
  workspace: els.workspace,
  session: $('#session'),
  queueToggle: $('#queue-toggle'),
  rail: $('#queue-rail'),
  railOpen: $('#queue-rail-open'),
  railOffers: $('#queue-rail-offers'),
  railOffersItem: $('#queue-rail-offers-item'),
  railWaiting: $('#queue-rail-waiting'),
  offersSection: $('#offers'),
  offersCount: $('#offers-count'),
  queueCount: $('#queue-count'),
  infoToggle: $('#info-toggle'),
});

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
}, (target) => {
  chat.manual(); // the stage shows what the agent picked, not the chat's visitor
  session.join(target);
});

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

// ----- chat ----------------------------------------------------------------------

let me = null;
let offers = null;
let chat = null;
const BASE_TITLE = document.title;

// The page title counts what waits for the agent: chats on offer and unread messages.
function badge() {
  const n = (offers ? offers.count : 0) + (chat ? chat.unreadTotal() : 0);
  document.title = n ? `(${n}) ${BASE_TITLE}` : BASE_TITLE;
}

const canned = new CannedReplies({ me: () => me, toast });
const cannedManager = new CannedManager({
  dialog: $('#canned-dialog'),
  list: $('#canned-list'),
  form: $('#canned-form'),
  title: $('#canned-form-title'),
  name: $('#canned-name'),
  body: $('#canned-body'),
  scope: $('#canned-scope'),
  department: $('#canned-department'),
  departmentList: $('#canned-department-list'),
  departmentRow: $('#canned-department-row'),
  error: $('#canned-error'),
  save: $('#canned-save'),
  cancel: $('#canned-cancel'),
  add: $('#canned-add'),
  close: $('#canned-close'),
  status: $('#canned-status'),
}, canned, { toast });
$('#canned-open').prepend(icon('M4 5h16v11H8l-4 4z', 'M8 9h8', 'M8 12h5'));
$('#canned-open').addEventListener('click', () => cannedManager.open());

const offline = new OfflineMessages({
  open: $('#offline-open'),
  count: $('#offline-count'),
  dialog: $('#offline-dialog'),
  list: $('#offline-list'),
  detail: $('#offline-detail'),
  close: $('#offline-close'),
  status: $('#offline-status'),
  tabs: { open: $('#offline-tab-open'), resolved: $('#offline-tab-resolved') },
}, { announce });
$('#offline-open').prepend(icon(...ICONS.inbox));

const team = new TeamView({
  open: $('#team-open'),
  dialog: $('#team-dialog'),
  close: $('#team-close'),
  agents: $('#team-agents'),
  chats: $('#team-chats'),
  status: $('#team-status'),
  summary: $('#team-summary'),
}, { lookIn: (id, visitor) => chat.lookIn(id, visitor) });
$('#team-open').prepend(icon(...ICONS.user));

offers = new ChatOffers({
  section: $('#offers'),
  tools: $('#chat-tools'),
  list: $('#offers-list'),
  empty: $('#offers-empty'),
  count: $('#offers-count'),
  toggle: $('#availability'),
  toggleText: $('#availability-text'),
}, {
  send: (frame) => (socket ? socket.send(frame) : false),
  me: () => me,
  accepting: (conversation) => chat.accepting(conversation),
  acceptFailed: (conversation) => chat.acceptFailed(conversation),
  enabled: (on) => {
    // The chat's HTTP endpoints exist only when the hub has chat.
    if (on) {
      offline.start();
      chat.enable();
    } else {
      offline.stop();
      chat.disable();
    }
  },
  announce,
  toast,
  badge: () => badge(),
});

chat = new ChatController({
  send: (frame) => (socket ? socket.send(frame) : false),
  toast,
  announce,
  session,
  offers,
  canned,
  badge: () => badge(),
  els: {
    workspace: els.workspace,
    stage: $('#stage'),
    stagePlaceholder: $('#chat-stage'),
    stageTitle: $('#chat-stage-title'),
    stageText: $('#chat-stage-text'),
    stageFacts: $('#chat-stage-facts'),
    column: $('#chat'),
    tabs: $('#chat-tabs'),
    panel: $('#chat-panel'),
    avatar: $('#chat-avatar'),
    name: $('#chat-name'),
    sub: $('#chat-sub'),
    status: $('#chat-status'),
    sharing: $('#chat-sharing'),
    media: $('#chat-media'),
    mediaActions: $('#chat-media-actions'),
    banner: $('#chat-banner'),
    logs: $('#chat-logs'),
    jump: $('#chat-jump'),
    typing: $('#chat-typing'),
    live: $('#chat-live'),
    transcriptButton: $('#chat-transcript'),
    transcriptMenu: $('#chat-transcript-menu'),
    transferButton: $('#chat-transfer'),
    end: $('#chat-end'),
    close: $('#chat-close'),
    endDialog: $('#chat-end-dialog'),
    endConfirm: $('#chat-end-confirm'),
    endCancel: $('#chat-end-cancel'),
    composer: {
      form: $('#chat-composer'),
      input: $('#chat-input'),
      send: $('#chat-send'),
      note: $('#chat-note'),
      emojiButton: $('#chat-emoji-button'),
      emojiPop: $('#chat-emoji'),
      cannedPop: $('#chat-canned'),
      attach: $('#chat-attach'),
      file: $('#chat-file'),
      hint: $('#chat-hint'),
      count: $('#chat-count'),
    },
    transfer: {
      dialog: $('#transfer-dialog'),
      form: $('#transfer-form'),
      title: $('#transfer-title'),
      toAgent: $('#transfer-to-agent'),
      toDepartment: $('#transfer-to-department'),
      agent: $('#transfer-agent'),
      department: $('#transfer-department'),
      departmentInput: $('#transfer-department-input'),
      error: $('#transfer-error'),
      submit: $('#transfer-submit'),
      cancel: $('#transfer-cancel'),
    },
  },
});
$('#chat-emoji-button').append(icon('M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z', 'M8 14s1.5 2 4 2 4-2 4-2', 'M9 9h.01', 'M15 9h.01'));
$('#chat-attach').append(icon('M21 12l-8.5 8.5a5 5 0 0 1-7-7L14 5a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 8'));

// Screen sharing and calls, for the session shown (its video beside the chat, or beside the mirrored view).
const screen = new ScreenShare({
  send: (frame) => (socket ? socket.send(frame) : false),
  toast,
  announce,
  session: () => (session.view && !session.view.ended ? session.view.id : null),
  info: $('#info'),
  stage: $('#stage'),
  chat,
});

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
  chat.onConnection(state);
}

function enter(who) {
  me = who;
  login.hide();
  els.boot.hidden = true;
  els.workspace.hidden = false;
  els.meName.textContent = me.name;
  els.meRole.textContent = me.role;
  els.meRole.hidden = !me.role || me.role == 'agent';
  team.setRole(me.role);
  els.meAvatar.textContent = initials(me.name);
  session.me = me.name;
  session.meId = me.id;
  document.body.classList.add('is-in');
  if (socket) socket.stop();
  chat.stop();
  chat.start(me);
  canned.clear();
  loadDepartmentNames();
  socket = new AgentSocket(socketUrl(), {
    onReady: () => {
      socket.send({ t: 'watch' });
      offers.onReady();
      chat.onReady();
      session.onReady();
    },
    onFrame: (frame) => {
      if (frame.t == 'offline_left') return void offline.refreshCount(); // a visitor left a message
      if (offers.handle(frame) || chat.handle(frame) || screen.handle(frame)) return;
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
  window.__cobrowseConsole = { session, queue, socket, chat, offers, canned, screen, layout }; // for the end-to-end tests and debugging
}

// Chats and messages carry department ids; the console shows their names (departments.js).
async function loadDepartmentNames() {
  let targets = null;
  try {
    targets = await chatApi.transferTargets();
  } catch {
    return; // the ids stay; the Transfer dialog asks again
  }
  if (targets && learnDepartments(targets.departments)) {
    chat.render();
    offers.render();
    if (offline.items.length) offline.render();
  }
}

function leaveWorkspace(message) {
  if (socket) socket.stop();
  socket = null;
  session.close();
  queue.clear();
  chat.stop();
  offers.clear();
  offline.stop();
  canned.clear();
  team.setRole(null);
  me = null;
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
