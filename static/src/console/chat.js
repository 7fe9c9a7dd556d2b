// The agent's conversations: one tab each, the selected one's messages and
// composer in the chat column, beside the visitor's shared screen.
//
// Frames (docs/chat.md, cobrowse/sync/protocol.py "chat"):
//   -> chat_open {conversation, after}   reopen (console reload, reconnect): state + history after `after`
//   -> chat_send {conversation, id, text, private}   id: our client id, the idempotency key
//   <- chat_ack {conversation, id, seq, at}   stored: "sent"
//   <- chat_msg {conversation, m}, chat_history {conversation, messages}   merged by seq
//   <> chat_typing {conversation, on (, who)}, chat_seen {conversation, delivered, read (, by)}
//   <- chat_state {conversation, status, agents, session, visitor, email, department, fields, url}
//   -> chat_transfer {conversation, agent | department}, chat_end {conversation}, chat_close {conversation}
//
// Reliability. Every message gets a client id before it is shown; until its
// chat_ack it sits in the outbox (kept in localStorage, so a reload does not
// lose it) and is sent again after every reconnect (the server stores a
// client id once). On every (re)connect each open tab sends chat_open with
// the highest seq it holds and merges what comes back by seq. The tabs that
// were open come back after a reload, with the agent's active conversations
// from GET /api/chat/conversations?state=active.
//
// The stage. When the selected conversation has a linked co-browse session
// (chat_state.session), its shared view opens in the stage automatically
// (SessionController.join); otherwise the stage says "Not sharing yet" and
// that the visitor can share from the chat. Joining a session from the queue
// (or by code) shows that session instead, until a conversation is picked again.
//
// Screen share (static/src/console/screenshare.js) plugs in here:
//   chat.media         #chat-media: the slot for its video, between the selected
//                      conversation's header and its messages; hidden while unused:
//                      chat.showMedia(true | false)
//   chat.mediaActions  #chat-media-actions: room in the conversation's header for its buttons
//   chat.on('select', fn)  fn(info | null) when another conversation is selected (or none)
//   chat.on('state', fn)   fn(info) when a conversation's state changes (its session comes or goes)
//   chat.current()     info of the selected conversation, or null
//   info = {conversation, session, status, visitor, selected}

import { h, fill, icon, shortUrl } from './dom.js';
import { initials } from './queue.js';
import { MessageList, clockTime } from './chat-log.js';
import { Composer } from './chat-composer.js';
import { TransferDialog } from './chat-transfer.js';
import { upload } from './chat-files.js';
import { parseCommand } from './commands.js';
import { linkify } from '../lib/linkify.js';
import * as chatApi from './chat-api.js';
import { departmentName } from './departments.js';

const CHAT_ERRORS = new Set(['chat_open', 'chat_send', 'chat_typing', 'chat_seen', 'chat_end', 'chat_close',
  'chat_transfer', 'chat_sync']);
const RESEND_AFTER = 10_000; // ms without an ack before a message is sent again (same id)
const TYPING_SHOWN = 8000; // ms a typing indicator lasts without news
const COMMAND = /^\s*(goto|open):\s*\S+\s*$/i;
const DOTS = () => h('span', { className: 'typing-dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i'));
const SCREEN = ['M4 4h16a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1z', 'M8 20h8', 'M12 16v4'];

const RESULT_REASONS = {
  popup_blocked: 'their browser blocked the new tab (ask them to allow pop-ups, or use goto:)',
  refused: 'their page refused that address',
  not_allowed: 'their page refused that address',
  same_page: 'they are already on that page',
};

// A client id: 22 characters of [A-Za-z0-9_-].
export function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function readJson(key, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(key));
    return value == null ? fallback : value;
  } catch {
    return fallback;
  }
}

function writeJson(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or blocked: the state lives in memory only
  }
}

class Conversation {
  constructor(id) {
    this.id = id;
    this.status = ''; // waiting | active | ended ('' until its state arrives)
    this.agents = [];
    this.session = '';
    this.everShared = false;
    this.department = '';
    this.visitor = '';
    this.email = '';
    this.fields = {};
    this.url = '';
    this.readLocal = 0; // highest seq the agent has seen here
    this.sentDelivered = 0;
    this.sentRead = 0;
    this.typing = null; // {who, timer}
    this.transferred = ''; // set locally after we handed it on
    this.draft = null;
    this.log = null;
    this.tab = null;
    this.newBelow = false;
  }

  get unread() {
    return this.log ? this.log.visitorAfter(this.readLocal) : 0;
  }

  info(selected) {
    return { conversation: this.id, session: this.session, status: this.status, visitor: this.visitor, selected };
  }
}

export class ChatController {
  // ctx: {send(frame) -> bool, toast, announce, session (SessionController), offers (ChatOffers),
  //       canned (CannedReplies), badge(), els}
  constructor(ctx) {
    this.ctx = ctx;
    this.els = ctx.els;
    this.me = null;
    this.convs = new Map();
    this.selected = null;
    this.expecting = new Set(); // accepted by us, state not here yet: select when it comes
    this.openRequests = []; // chat_open sent on this socket, oldest first (their errors carry no id)
    this.inflight = []; // [{conversation, id}] chat_send sent on this socket awaiting chat_ack or error
    this.online = false;
    this.manualStage = false; // the agent picked a session from the queue: show it, not the chat's
    this.joining = null; // the session we asked to join for the selected conversation
    this.listeners = { select: new Set(), state: new Set() };
    this.media = this.els.media;
    this.mediaActions = this.els.mediaActions;
    const els = this.els;
    this.composer = new Composer(els.composer, {
      canned: ctx.canned,
      send: (text, { note }) => this.sendText(this.current(true), text, note),
      typing: (conv, on) => this.ctx.send({ t: 'chat_typing', conversation: conv.id, on }),
      attach: (files) => this.attach(this.current(true), files),
    });
    this.transfer = new TransferDialog(els.transfer, {
      me: () => this.me,
      transfer: (conv, target) => this.doTransfer(conv, target),
    });
    els.tabs.addEventListener('keydown', (e) => this.tabKeys(e));
    els.end.addEventListener('click', () => {
      if (this.current(true)) els.endDialog.showModal();
    });
    els.endConfirm.addEventListener('click', () => this.end());
    els.endCancel.addEventListener('click', () => els.endDialog.close());
    els.close.addEventListener('click', () => this.closeConversation(this.current(true)));
    els.transferButton.addEventListener('click', () => {
      const conv = this.current(true);
      if (conv) this.transfer.open(conv);
    });
    els.transcriptButton.addEventListener('click', () => this.toggleTranscriptMenu());
    els.transcriptMenu.addEventListener('keydown', (e) => this.menuKeys(e));
    document.addEventListener('pointerdown', (e) => {
      if (!els.transcriptMenu.hidden && !els.transcriptMenu.contains(e.target) && !els.transcriptButton.contains(e.target)) {
        this.toggleTranscriptMenu(false);
      }
    });
    els.jump.addEventListener('click', () => {
      const conv = this.current(true);
      if (conv) conv.log.scrollToEnd();
    });
    // Files dropped on the conversation are sent like attached ones.
    els.panel.addEventListener('dragover', (e) => {
      if (!this.canWrite(this.current(true)) || !e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
      e.preventDefault();
      els.panel.classList.add('is-drop');
    });
    els.panel.addEventListener('dragleave', (e) => {
      if (!els.panel.contains(e.relatedTarget)) els.panel.classList.remove('is-drop');
    });
    els.panel.addEventListener('drop', (e) => {
      els.panel.classList.remove('is-drop');
      const conv = this.current(true);
      if (!this.canWrite(conv) || !e.dataTransfer || !e.dataTransfer.files.length) return;
      e.preventDefault();
      if (this.composer && this.composer.note) return; // files always reach the visitor: not in note mode
      this.attach(conv, [...e.dataTransfer.files]);
    });
    document.addEventListener('visibilitychange', () => this.seenAll());
    window.addEventListener('focus', () => this.seenAll());
    this.resendTimer = null;
    this.render();
  }

  // ----- hooks (screen share) -------------------------------------------------------------

  on(event, fn) {
    this.listeners[event].add(fn);
    return () => this.listeners[event].delete(fn);
  }

  emit(event, value) {
    for (const fn of this.listeners[event]) {
      try {
        fn(value);
      } catch (e) {
        console.error(e); // eslint-disable-line no-console
      }
    }
  }

  showMedia(on) {
    this.media.hidden = !on;
  }

  // The selected conversation: its info (raw: the Conversation itself), or null.
  current(raw) {
    const conv = this.selected ? this.convs.get(this.selected) : null;
    if (raw) return conv || null;
    return conv ? conv.info(true) : null;
  }

  // ----- lifecycle ------------------------------------------------------------------------

  key(name) {
    return `cobrowse:chat-${name}:${this.me ? this.me.id : 0}`;
  }

  // The agent logged in: bring back their tabs and unsent messages.
  start(me) {
    this.me = me;
    const saved = readJson(this.key('tabs'), {});
    const read = readJson(this.key('read'), {});
    for (const id of Array.isArray(saved.open) ? saved.open : []) {
      if (typeof id == 'string' && id) this.ensure(id).readLocal = Number(read[id]) || 0;
    }
    for (const m of readJson(this.key('outbox'), [])) {
      if (!m || typeof m.id != 'string' || typeof m.conversation != 'string') continue;
      const conv = this.ensure(m.conversation);
      if (!conv.log.has(m.id)) conv.log.addPending({ ...m, state: 'sending', sentAt: 0 });
    }
    if (saved.selected && this.convs.has(saved.selected)) this.select(saved.selected, { quiet: true });
    else if (this.convs.size) this.select(this.convs.keys().next().value, { quiet: true });
    this.render();
    clearInterval(this.resendTimer);
    this.resendTimer = setInterval(() => this.resendStale(), 2500);
  }

  // The hub has chat (ChatOffers heard back from chat_watch): bring back the
  // agent's active conversations, once per login.
  enable() {
    this.disabled = false;
    this.render();
    if (!this.loadedActive) {
      this.loadedActive = true;
      this.loadActive();
    }
  }

  // The hub has no chat: nothing of it shows (remembered tabs stay remembered).
  disable() {
    this.disabled = true;
    this.render();
  }

  // The agent's active conversations on the server (a reload, another browser).
  async loadActive() {
    let list;
    try {
      list = await chatApi.conversations('active');
    } catch {
      return; // older server or offline: the remembered tabs are all we reopen
    }
    const me = this.me;
    if (!me) return;
    for (const c of list) {
      const id = c && (c.id || c.conversation);
      if (typeof id != 'string' || this.convs.has(id)) continue;
      if (!isMine(c, me)) continue;
      const conv = this.ensure(id);
      conv.visitor = c.visitor || c.visitor_name || c.name || '';
      if (this.online) this.open(conv);
    }
    if (!this.selected && this.convs.size) this.select(this.convs.keys().next().value, { quiet: true });
    this.render();
  }

  // Logged out: forget everything shown (the outbox stays in storage for the next login).
  stop() {
    clearInterval(this.resendTimer);
    for (const conv of this.convs.values()) {
      if (conv.typing) clearTimeout(conv.typing.timer);
      conv.log.clear();
    }
    this.convs.clear();
    fill(this.els.tabs);
    fill(this.els.logs);
    this.selected = null;
    this.me = null;
    this.loadedActive = false;
    this.expecting.clear();
    this.composer.bind(null);
    this.render();
    this.emit('select', null);
  }

  // The socket is (again) connected: reopen every tab and send what is unsent.
  onReady() {
    this.online = true;
    this.inflight = [];
    this.openRequests = [];
    for (const conv of this.convs.values()) this.open(conv);
    for (const conv of this.convs.values()) {
      for (const m of conv.log.pending.values()) if (m.state == 'sending' && m.kind != 'file') this.transmit(conv, m);
    }
    this.render();
  }

  onConnection(state) {
    const online = state == 'online';
    if (online == this.online && online) return;
    if (!online) this.online = false;
    this.renderPanel();
  }

  // A supervisor opens a chat from the team view: it opens here as a tab, to look in.
  lookIn(id, visitor) {
    const fresh = !this.convs.has(id);
    const conv = this.ensure(id);
    if (fresh && visitor) conv.visitor = visitor;
    if (fresh && this.online) this.open(conv);
    this.select(id);
    this.render();
  }

  open(conv) {
    if (this.ctx.send({ t: 'chat_open', conversation: conv.id, after: conv.log.heldThrough() })) this.openRequests.push(conv.id);
  }

  // ----- conversations and tabs -------------------------------------------------------------

  ensure(id) {
    let conv = this.convs.get(id);
    if (conv) return conv;
    conv = new Conversation(id);
    const logEl = h('div', {
      className: 'chat-log', role: 'log', 'aria-live': 'off', tabIndex: 0, hidden: true, id: `chat-log-${id}`,
      'aria-label': 'Messages',
    });
    conv.log = new MessageList(logEl, {
      me: () => this.me,
      visitorName: () => conv.visitor,
      onRetry: (m) => this.retry(conv, m),
      onDiscard: (m) => this.discard(conv, m),
      onNewBelow: (on) => {
        conv.newBelow = on;
        if (conv.id == this.selected) this.els.jump.hidden = !on;
      },
    });
    conv.tab = h('button', {
      type: 'button', role: 'tab', className: 'ctab', id: `ctab-${id}`, 'aria-selected': 'false',
      'aria-controls': this.els.panel.id, tabIndex: -1, 'data-conversation': id,
      onclick: () => this.select(id, { byAgent: true }),
    });
    this.els.tabs.append(conv.tab);
    this.els.logs.append(logEl);
    this.convs.set(id, conv);
    this.saveTabs();
    return conv;
  }

  select(id, { byAgent = false, quiet = false } = {}) {
    const conv = this.convs.get(id);
    if (!conv) return;
    const previous = this.selected ? this.convs.get(this.selected) : null;
    if (previous && previous !== conv) previous.log.hidden();
    this.selected = id;
    if (byAgent || !quiet) this.manualStage = false;
    for (const c of this.convs.values()) {
      const on = c === conv;
      c.tab.setAttribute('aria-selected', String(on));
      c.tab.tabIndex = on ? 0 : -1;
      c.log.el.hidden = !on;
    }
    this.els.panel.setAttribute('aria-labelledby', conv.tab.id);
    this.composer.bind(conv);
    conv.log.render();
    conv.log.shown();
    this.els.jump.hidden = !conv.newBelow;
    this.saveTabs();
    this.render();
    this.seen(conv);
    if (byAgent) conv.tab.focus();
    else if (!quiet) this.composer.focus();
    if (previous !== conv) this.emit('select', conv.info(true));
  }

  tabKeys(e) {
    const ids = [...this.convs.keys()];
    const at = ids.indexOf(this.selected);
    let next = null;
    if (e.key == 'ArrowRight') next = ids[(at + 1) % ids.length];
    else if (e.key == 'ArrowLeft') next = ids[(at - 1 + ids.length) % ids.length];
    else if (e.key == 'Home') next = ids[0];
    else if (e.key == 'End') next = ids[ids.length - 1];
    if (next == null) return;
    e.preventDefault();
    this.select(next, { byAgent: true });
  }

  closeConversation(conv) {
    if (!conv) return;
    this.ctx.send({ t: 'chat_close', conversation: conv.id });
    if (conv.typing) clearTimeout(conv.typing.timer);
    const ids = [...this.convs.keys()];
    const at = ids.indexOf(conv.id);
    conv.tab.remove();
    conv.log.el.remove();
    this.convs.delete(conv.id);
    this.expecting.delete(conv.id);
    this.saveOutbox();
    if (this.selected == conv.id) {
      this.selected = null;
      const next = ids[at + 1] || ids[at - 1];
      if (next && this.convs.has(next)) this.select(next, { quiet: true });
      else {
        this.composer.bind(null);
        this.emit('select', null);
      }
    }
    this.saveTabs();
    this.render();
    this.ctx.badge();
  }

  saveTabs() {
    if (!this.me) return;
    writeJson(this.key('tabs'), { open: [...this.convs.keys()], selected: this.selected });
  }

  saveRead() {
    if (!this.me) return;
    const read = {};
    for (const conv of this.convs.values()) if (conv.readLocal) read[conv.id] = conv.readLocal;
    writeJson(this.key('read'), read);
  }

  saveOutbox() {
    if (!this.me) return;
    const out = [];
    for (const conv of this.convs.values()) {
      for (const m of conv.log.pending.values()) {
        if (m.kind == 'file' || m.state == 'failed') continue;
        out.push({ id: m.id, conversation: conv.id, text: m.text, kind: m.kind, private: Boolean(m.private),
          at: m.at, sender: 'agent', agent: m.agent, name: m.name });
      }
    }
    writeJson(this.key('outbox'), out);
  }

  // ----- frames -------------------------------------------------------------------------------

  handle(frame) {
    switch (frame.t) {
      case 'chat_state':
        this.onState(frame);
        return true;
      case 'chat_history':
        this.onHistory(frame);
        return true;
      case 'chat_msg':
        this.onMessage(frame);
        return true;
      case 'chat_ack':
        this.onAck(frame);
        return true;
      case 'chat_typing':
        this.onTyping(frame);
        return true;
      case 'chat_seen':
        this.onSeen(frame);
        return true;
      case 'command_result':
        this.onCommandResult(frame);
        return false; // the session view shows it too
      case 'error':
        if (!CHAT_ERRORS.has(frame.re)) return false;
        this.onError(frame);
        return true;
      default:
        return false;
    }
  }

  // Called by ChatOffers: we asked for this one; show it when it comes.
  accepting(conversation) {
    this.expecting.add(conversation);
  }

  acceptFailed(conversation) {
    this.expecting.delete(conversation);
  }

  onState(frame) {
    const fresh = !this.convs.has(frame.conversation);
    const conv = this.ensure(frame.conversation);
    const was = conv.status;
    const hadSession = conv.session;
    conv.status = frame.status;
    conv.agents = frame.agents || [];
    conv.session = frame.session || '';
    if (conv.session) conv.everShared = true;
    if (conv.session != hadSession) this.joining = null;
    conv.department = frame.department || '';
    if (frame.visitor != null) conv.visitor = frame.visitor || conv.visitor;
    if (frame.email != null) conv.email = frame.email || '';
    if (frame.fields) conv.fields = frame.fields;
    if (frame.url) conv.url = frame.url;
    conv.transferring = false; // a transfer we asked for went through
    const i = this.openRequests.indexOf(conv.id);
    if (i >= 0) this.openRequests.splice(i, 1);
    // Neither accepted nor opened here, and ours: a colleague handed it to us.
    const handed = fresh && i < 0 && !this.expecting.has(conv.id) && this.isAgent(conv);
    if (handed) {
      const text = `You have a chat handed to you: ${conv.visitor || 'a visitor'}.`;
      this.ctx.toast(text);
      this.ctx.announce(text);
      if (!this.selected) this.select(conv.id);
    } else if (this.expecting.has(conv.id)) {
      this.expecting.delete(conv.id);
      conv.transferred = '';
      this.ctx.offers.accepted(conv.id);
      this.select(conv.id);
      this.ctx.announce(`You are chatting with ${conv.visitor || 'the visitor'}.`);
    } else if (!this.selected) {
      this.select(conv.id, { quiet: true });
    }
    if (was && was != 'ended' && conv.status == 'ended') {
      this.ctx.announce(`The chat with ${conv.visitor || 'the visitor'} ended.`);
      if (conv.typing) this.setTyping(conv, null);
    }
    conv.log.schedule();
    this.render();
    this.seen(conv);
    this.emit('state', conv.info(conv.id == this.selected));
  }

  onHistory(frame) {
    const conv = this.ensure(frame.conversation);
    let added = 0;
    for (const m of frame.messages || []) if (conv.log.add(m)) added++;
    if (added) this.arrived(conv, null);
    // The hub sends a long history a page at a time: ask for the next one.
    // (After this page's last message, not the newest held: live ones may have come meanwhile.)
    const page = frame.messages || [];
    if (frame.more && page.length) {
      this.ctx.send({ t: 'chat_sync', conversation: conv.id, after: page[page.length - 1].seq });
    }
  }

  onMessage(frame) {
    if (!frame.m) return;
    const conv = this.ensure(frame.conversation);
    if (!conv.log.add(frame.m)) {
      this.saveOutbox();
      conv.log.schedule();
      return;
    }
    const m = frame.m;
    if (m.sender == 'visitor' && conv.typing && conv.typing.visitor) this.setTyping(conv, null);
    this.arrived(conv, m);
  }

  arrived(conv, m) {
    this.saveOutbox();
    conv.log.schedule();
    this.seen(conv);
    this.renderTab(conv);
    this.ctx.badge();
    if (m && m.sender == 'visitor') {
      const name = m.name || conv.visitor || 'The visitor';
      if (this.isVisible(conv)) this.say(`${name}: ${m.file ? `sent a file, ${m.file.name}` : m.text}`);
      else this.say(`New message from ${name}.`);
    }
  }

  onAck(frame) {
    let conv = frame.conversation ? this.convs.get(frame.conversation) : null;
    if (!conv) conv = [...this.convs.values()].find((c) => c.log.pending.has(frame.id));
    this.inflight = this.inflight.filter((x) => x.id != frame.id);
    if (!conv) return;
    conv.log.ack(frame.id, frame.seq, frame.at);
    this.saveOutbox();
    conv.log.schedule();
  }

  onTyping(frame) {
    const conv = this.convs.get(frame.conversation);
    if (!conv) return;
    const visitor = frame.who == 'visitor';
    if (!visitor && this.me && frame.who == this.me.name) return; // our own, echoed
    if (!frame.on) {
      if (conv.typing && conv.typing.visitor == visitor) this.setTyping(conv, null);
      return;
    }
    this.setTyping(conv, { visitor, who: visitor ? conv.visitor || 'The visitor' : frame.who || 'An agent' });
  }

  setTyping(conv, typing) {
    if (conv.typing) clearTimeout(conv.typing.timer);
    conv.typing = typing;
    if (typing) typing.timer = setTimeout(() => this.setTyping(conv, null), TYPING_SHOWN);
    this.renderTab(conv);
    if (conv.id == this.selected) this.renderTyping(conv);
  }

  onSeen(frame) {
    const conv = this.convs.get(frame.conversation);
    if (!conv || frame.by != 'visitor') return;
    conv.log.seen(frame.delivered, frame.read);
  }

  onCommandResult(frame) {
    const conv = [...this.convs.values()].find((c) => c.session && c.session == frame.session);
    if (!conv) return;
    const cmd = conv.log.lastCommand();
    if (!cmd || conv.log.results.has(cmd.id)) return;
    let text;
    if (frame.ok) text = frame.kind == 'open' ? `Opened in a new tab for ${conv.visitor || 'the visitor'}` : 'Their page went there';
    else text = `It did not work: ${RESULT_REASONS[frame.reason] || frame.reason || 'their page could not do it'}`;
    conv.log.setResult(cmd.id, { ok: Boolean(frame.ok), text });
  }

  onError(frame) {
    switch (frame.re) {
      case 'chat_send': {
        const item = this.inflight.shift();
        const conv = item && this.convs.get(item.conversation);
        const m = conv && conv.log.pending.get(item.id);
        if (!m) {
          this.ctx.toast(frame.message ? `A message was refused: ${frame.message}` : 'A message was refused.');
          return;
        }
        if (frame.code == 'rate_limited') {
          conv.log.updatePending(m.id, { sentAt: Date.now() - RESEND_AFTER + 1500 }); // again shortly
          return;
        }
        const error = frame.code == 'command_failed' ? `Not run: ${frame.message}` : `Not sent: ${frame.message || frame.code}`;
        conv.log.updatePending(m.id, { state: 'failed', error });
        conv.log.schedule();
        this.saveOutbox();
        this.say(error);
        return;
      }
      case 'chat_open': {
        const id = this.openRequests.shift();
        const conv = id && this.convs.get(id);
        if (conv && (frame.code == 'not_found' || frame.code == 'forbidden')) {
          this.ctx.toast(conv.visitor
            ? `The chat with ${conv.visitor} cannot be opened any more (${frame.message}).`
            : `A chat could not be reopened: ${frame.message}.`);
          for (const m of conv.log.pending.values()) conv.log.removePending(m.id);
          this.closeConversation(conv);
        } else if (frame.code != 'chat_disabled') {
          this.ctx.toast(frame.message ? `Could not open the chat: ${frame.message}` : 'Could not open the chat.');
        }
        return;
      }
      case 'chat_transfer': {
        const conv = [...this.convs.values()].find((c) => c.transferring);
        if (conv) {
          conv.transferring = false;
          conv.transferred = '';
          this.render();
        }
        this.ctx.toast(frame.message ? `The chat was not transferred: ${frame.message}` : 'The chat was not transferred.');
        return;
      }
      case 'chat_end':
        this.ctx.toast(frame.message ? `The chat could not be ended: ${frame.message}` : 'The chat could not be ended.');
        return;
      default:
        // typing, seen, close, sync: nothing the agent needs to act on
        console.debug('chat:', frame.re, frame.code, frame.message); // eslint-disable-line no-console
    }
  }

  // ----- sending --------------------------------------------------------------------------------

  sendText(conv, text, note) {
    if (!this.canWrite(conv)) return false;
    const command = !note && COMMAND.test(text);
    let problem = '';
    if (command) {
      // goto: /cart -> an absolute address on the visitor's current page; only http(s) leaves the console.
      const parsed = parseCommand(text, this.pageOf(conv));
      if (parsed.error) problem = `Not sent: ${parsed.error}`;
      else text = `${parsed.kind}: ${parsed.url}`;
    }
    const m = {
      id: newId(), text, kind: note ? 'note' : command ? 'command' : 'text', private: Boolean(note),
      sender: 'agent', agent: this.me.id, name: this.me.name, at: Date.now() / 1000, state: 'sending', sentAt: 0,
    };
    if (problem) {
      conv.log.addPending({ ...m, state: 'failed', error: problem });
      conv.log.render(true);
      this.say(problem);
      return true;
    }
    conv.log.addPending(m);
    this.saveOutbox();
    this.transmit(conv, m);
    conv.log.render(true);
    return true;
  }

  // The address of the visitor's page now (the linked session's tab shown), else where the chat started.
  pageOf(conv) {
    const view = this.ctx.session.view;
    if (view && conv.session && view.id == conv.session && !view.ended) {
      const tab = view.tabs.get(view.active);
      if (tab && tab.state && tab.state.url) return tab.state.url;
    }
    return conv.url || undefined;
  }

  transmit(conv, m) {
    const frame = { t: 'chat_send', conversation: conv.id, id: m.id, text: m.text };
    if (m.private) frame.private = true;
    if (this.ctx.send(frame)) {
      this.inflight.push({ conversation: conv.id, id: m.id });
      conv.log.updatePending(m.id, { sentAt: Date.now() });
    }
  }

  // Messages that got no answer for a while go again (same id: stored once).
  resendStale() {
    if (!this.online) return;
    const now = Date.now();
    for (const conv of this.convs.values()) {
      for (const m of conv.log.pending.values()) {
        if (m.state == 'sending' && m.kind != 'file' && m.sentAt && now - m.sentAt > RESEND_AFTER) {
          this.inflight = this.inflight.filter((x) => x.id != m.id);
          this.transmit(conv, m);
        }
      }
    }
  }

  retry(conv, m) {
    if (m.kind == 'file') {
      if (m.blob) this.uploadOne(conv, m.blob, m.id);
      else conv.log.removePending(m.id);
      conv.log.schedule();
      return;
    }
    conv.log.updatePending(m.id, { state: 'sending', error: '' });
    this.saveOutbox();
    this.transmit(conv, conv.log.pending.get(m.id));
    conv.log.schedule();
  }

  discard(conv, m) {
    conv.log.removePending(m.id);
    this.saveOutbox();
    conv.log.schedule();
    this.composer.focus();
  }

  attach(conv, files) {
    if (!this.canWrite(conv)) return;
    for (const file of files) this.uploadOne(conv, file, newId());
  }

  uploadOne(conv, file, id) {
    const base = {
      id, kind: 'file', sender: 'agent', agent: this.me.id, name: this.me.name, at: Date.now() / 1000,
      file: { name: file.name, size: file.size, type: file.type }, blob: file,
    };
    if (conv.log.pending.has(id)) conv.log.updatePending(id, { state: 'uploading', progress: 0, error: '' });
    else conv.log.addPending({ ...base, state: 'uploading', progress: 0 });
    conv.log.render(true);
    upload(conv.id, file, id, (progress) => {
      conv.log.updatePending(id, { progress });
      conv.log.schedule();
    }).then((stored) => {
      const local = conv.log.pending.get(id);
      if (stored && typeof stored.seq == 'number' && local) {
        const { state, progress, error, blob, ...rest } = local;
        conv.log.add({ ...rest, ...stored, kind: 'file', sender: 'agent', file: stored.file || rest.file });
      } else if (local) {
        conv.log.updatePending(id, { state: 'sending' }); // its chat_msg brings it
      }
      conv.log.schedule();
    }, (e) => {
      conv.log.updatePending(id, { state: 'failed', error: `Not sent: ${e.message}` });
      conv.log.schedule();
      this.say(`${file.name} was not sent: ${e.message}`);
    });
  }

  doTransfer(conv, target) {
    const frame = { t: 'chat_transfer', conversation: conv.id };
    if (target.agent) frame.agent = target.agent;
    else frame.department = target.department;
    if (!this.ctx.send(frame)) {
      this.ctx.toast('Not connected: the chat was not transferred. Try again in a moment.');
      return false;
    }
    conv.transferring = true;
    conv.transferred = target.agent ? `You handed this chat to ${target.name || 'a colleague'}.`
      : `You put this chat back in the ${departmentName(target.department)} queue.`;
    this.composer.stopTyping();
    this.render();
    this.ctx.announce(conv.transferred);
    return true;
  }

  end() {
    this.els.endDialog.close();
    const conv = this.current(true);
    if (!conv) return;
    if (!this.ctx.send({ t: 'chat_end', conversation: conv.id })) {
      this.ctx.toast('Not connected: the chat was not ended. Try again in a moment.');
    }
  }

  // ----- seen, unread ---------------------------------------------------------------------------

  isVisible(conv) {
    return conv.id == this.selected && document.visibilityState == 'visible' && !this.els.column.hidden;
  }

  // Tell the visitor what reached us (delivered) and what the agent has in front of them (read).
  seen(conv) {
    if (!conv) return;
    const last = conv.log.lastVisitorSeq();
    const visible = this.isVisible(conv);
    if (visible && conv.log.maxSeq > conv.readLocal) {
      conv.readLocal = conv.log.maxSeq;
      this.saveRead();
      this.renderTab(conv);
      this.ctx.badge();
    }
    if (!last || !this.online) return;
    const read = visible ? last : conv.sentRead;
    if (last > conv.sentDelivered || read > conv.sentRead) {
      if (this.ctx.send({ t: 'chat_seen', conversation: conv.id, delivered: last, read })) {
        conv.sentDelivered = last;
        conv.sentRead = read;
      }
    }
  }

  seenAll() {
    const conv = this.current(true);
    if (conv) this.seen(conv);
  }

  unreadTotal() {
    let n = 0;
    for (const conv of this.convs.values()) n += conv.unread;
    return n;
  }

  // ----- permissions ----------------------------------------------------------------------------

  isAgent(conv) {
    return Boolean(this.me && conv.agents.some((a) => a.id == this.me.id));
  }

  canWrite(conv) {
    return Boolean(conv && this.me && conv.status == 'active' && !conv.transferred);
  }

  // The agent picked a session from the queue (or by code): the stage shows it.
  manual() {
    this.manualStage = true;
    this.updateStage();
  }

  // ----- drawing --------------------------------------------------------------------------------

  render() {
    const els = this.els;
    const any = this.convs.size > 0 && !this.disabled;
    els.column.hidden = !any;
    els.workspace.classList.toggle('has-chat', any);
    for (const conv of this.convs.values()) this.renderTab(conv);
    this.renderPanel();
    this.updateStage();
    this.ctx.badge();
  }

  renderTab(conv) {
    const name = conv.visitor || 'Visitor';
    const unread = conv.id == this.selected && this.isVisible(conv) ? 0 : conv.unread;
    const typing = Boolean(conv.typing && conv.typing.visitor);
    const state = conv.transferred ? 'Transferred' : conv.status == 'ended' ? 'Ended' : conv.status == 'waiting' ? 'Waiting' : '';
    conv.tab.classList.toggle('is-ended', conv.status == 'ended' || Boolean(conv.transferred));
    conv.tab.classList.toggle('is-unread', unread > 0);
    const parts = [name];
    if (unread) parts.push(`${unread} unread`);
    if (typing) parts.push('typing');
    if (conv.session && !conv.transferred) parts.push('sharing their page');
    if (state) parts.push(state.toLowerCase());
    conv.tab.setAttribute('aria-label', parts.join(', '));
    conv.tab.title = parts.join(' · ');
    fill(conv.tab,
      h('span', { className: 'avatar avatar-xs', 'aria-hidden': 'true' }, initials(name)),
      h('span', { className: 'ctab-name' }, name),
      conv.session && !conv.transferred ? h('span', { className: 'ctab-share', 'aria-hidden': 'true' }, icon(...SCREEN)) : null,
      typing ? DOTS() : null,
      unread ? h('span', { className: 'ctab-unread', 'aria-hidden': 'true' }, unread > 99 ? '99+' : String(unread)) : null,
      state ? h('span', { className: 'ctab-state', 'aria-hidden': 'true' }, state) : null);
  }

  renderPanel() {
    const els = this.els;
    const conv = this.current(true);
    els.panel.hidden = !conv;
    if (!conv) return;
    const name = conv.visitor || 'Visitor';
    els.avatar.textContent = initials(name);
    els.name.textContent = name;
    const sub = [];
    if (conv.department) sub.push(h('span', { className: 'badge badge-role' }, departmentName(conv.department)));
    if (conv.email) sub.push(h('a', { href: `mailto:${conv.email}`, className: 'chat-email' }, conv.email));
    if (conv.url) sub.push(h('span', { className: 'chat-url', title: conv.url }, shortHost(conv.url)));
    fill(els.sub, sub);
    const status = conv.transferred ? ['Transferred', 'wait'] : conv.status == 'active' ? ['Active', 'live']
      : conv.status == 'ended' ? ['Ended', 'ended'] : conv.status == 'waiting' ? ['Waiting', 'wait'] : ['Loading…', 'wait'];
    els.status.textContent = status[0];
    els.status.className = `badge badge-${status[1]}`;
    els.sharing.hidden = !conv.session || Boolean(conv.transferred);
    // Close (stop following it) once it is over, or when it is someone else's (a supervisor looking in).
    const over = conv.status == 'ended' || Boolean(conv.transferred);
    els.end.hidden = over;
    els.end.disabled = conv.status != 'active';
    els.transferButton.hidden = over;
    els.transferButton.disabled = conv.status != 'active';
    els.close.hidden = !(over || !conv.status || !this.isAgent(conv));
    for (const link of els.transcriptMenu.querySelectorAll('[data-format]')) {
      link.href = chatApi.transcriptUrl(conv.id, link.dataset.format);
      link.download = `chat-${conv.id}.${link.dataset.format}`;
    }
    // The banner over the composer.
    let banner = '';
    if (!this.online) banner = 'Offline: messages are sent when the connection is back.';
    else if (conv.transferred) banner = conv.transferred;
    else if (conv.status == 'ended') banner = 'This chat has ended. Download the transcript, or close it.';
    else if (conv.status == 'waiting') banner = 'This chat is waiting for an agent to accept it.';
    else if (conv.status == 'active' && !this.isAgent(conv) && conv.agents.length) {
      banner = `${conv.agents.map((a) => a.name).join(', ')} ${conv.agents.length > 1 ? 'have' : 'has'} this chat.`;
    }
    els.banner.textContent = banner;
    els.banner.hidden = !banner;
    els.banner.dataset.kind = !this.online ? 'offline' : conv.status == 'ended' ? 'ended' : 'info';
    const writable = this.canWrite(conv);
    this.composer.setEnabled(writable, conv.status == 'ended' ? 'This chat has ended.'
      : conv.transferred ? 'You transferred this chat.' : conv.status == 'waiting' ? 'Waiting for an agent.' : 'Loading the chat…');
    els.jump.hidden = !conv.newBelow;
    this.renderTyping(conv);
  }

  renderTyping(conv) {
    const el = this.els.typing;
    if (!conv.typing) {
      el.hidden = true;
      fill(el);
      return;
    }
    el.hidden = false;
    fill(el, DOTS(), h('span', null, `${conv.typing.who} is typing…`));
  }

  updateStage() {
    const els = this.els;
    const conv = this.current(true);
    const session = this.ctx.session;
    let placeholder = false;
    if (conv && !this.manualStage && !els.column.hidden) {
      // A chat handed on is another agent's, and so is the page shared in it (the hub refuses).
      const mayWatch = !conv.transferred && (this.isAgent(conv) || Boolean(this.me && this.me.role != 'agent'));
      if (conv.session && mayWatch) {
        const view = session.view;
        const showing = view && view.id == conv.session && !view.ended;
        if (!showing && this.joining != conv.session && this.online) {
          this.joining = conv.session;
          session.join({ session: conv.session }, { focus: false });
        }
      } else {
        placeholder = true;
      }
    }
    els.stage.classList.toggle('is-chat-stage', placeholder);
    els.workspace.classList.toggle('is-chat-stage', placeholder);
    els.stagePlaceholder.hidden = !placeholder;
    if (placeholder) this.renderStage(conv);
  }

  renderStage(conv) {
    const els = this.els;
    const name = conv.visitor || 'The visitor';
    // (This is the page the visitor shares from the chat, not screen sharing, which the right column offers.)
    const handedOn = conv.status != 'ended' && conv.session;
    els.stageTitle.textContent = conv.status == 'ended' ? 'Chat ended' : handedOn ? 'Chat handed on'
      : conv.everShared ? 'Page sharing ended' : 'Not sharing yet';
    els.stageText.textContent = conv.status == 'ended'
      ? `The chat with ${name} has ended.`
      : handedOn ? `${name}'s chat is another agent's now, and so is the page they share.`
      : `${name} is not sharing their page${conv.everShared ? ' any more' : ' yet'}. They can share it from the chat: ` +
        '“Share my page with the agent” in their chat window. It opens here as soon as they do.';
    const facts = [];
    const fact = (label, value) => {
      if (value) facts.push(h('dt', null, label), h('dd', null, value));
    };
    fact('Name', conv.visitor);
    fact('Email', conv.email ? h('a', { href: `mailto:${conv.email}` }, conv.email) : '');
    fact('Department', departmentName(conv.department));
    fact('Started on', conv.url ? linkify(conv.url) : '');
    for (const [k, v] of Object.entries(conv.fields || {})) fact(k, String(v));
    fill(els.stageFacts, facts);
    els.stageFacts.hidden = !facts.length;
  }

  // ----- transcript menu --------------------------------------------------------------------------

  toggleTranscriptMenu(force) {
    const { transcriptMenu: menu, transcriptButton: button } = this.els;
    const open = force != null ? force : menu.hidden;
    menu.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) {
      const first = menu.querySelector('[role="menuitem"]');
      if (first) first.focus();
    }
  }

  menuKeys(e) {
    const items = [...this.els.transcriptMenu.querySelectorAll('[role="menuitem"]')];
    const at = items.indexOf(document.activeElement);
    if (e.key == 'ArrowDown' || e.key == 'ArrowUp') {
      e.preventDefault();
      const next = items[(at + (e.key == 'ArrowDown' ? 1 : -1) + items.length) % items.length];
      next.focus();
    } else if (e.key == 'Escape' || e.key == 'Tab') {
      if (e.key == 'Escape') e.preventDefault();
      this.toggleTranscriptMenu(false);
      if (e.key == 'Escape') this.els.transcriptButton.focus();
    }
  }

  say(text) {
    const el = this.els.live;
    el.textContent = '';
    requestAnimationFrame(() => {
      el.textContent = text;
    });
  }
}

// Is this conversation (from GET /api/chat/conversations) held by `me`?
function isMine(c, me) {
  if (c.mine === true) return true;
  if (c.agent_id != null) return c.agent_id == me.id;
  if (c.agent && typeof c.agent == 'object') return c.agent.id == me.id;
  if (typeof c.agent == 'number') return c.agent == me.id;
  if (Array.isArray(c.agents)) return c.agents.some((a) => (a && typeof a == 'object' ? a.id : a) == me.id);
  return me.role == 'agent'; // an agent may open only their own
}

function shortHost(url) {
  try {
    const u = new URL(url);
    return u.host + shortUrl(url);
  } catch {
    return url;
  }
}

export { clockTime };
