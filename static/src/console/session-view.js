// The session the agent is watching: the visitor's tabs (each a live replay),
// who else is watching, Leave / End session, and what happens when the
// session ends or the connection drops.
//
// Hub frames handled here: joined, tab_rr, tab, viewers, ended (and the
// answers to our `join`), and for the open session: markers (mark, unmark,
// laser: markers.js), shared control (control_requested, control_state,
// input_refused: control.js) and operator commands (command_result:
// commands.js). Each tab remembers the seq of the last event it applied, so
// a rejoin after a reconnect asks only for what was missed (`since`); a gap
// in the numbering asks the hub for a fresh copy of that tab.
// After a hub restart the hub numbers a tab's events afresh, and nothing in
// the protocol says so: the console notices it from the session's start time
// in the queue changing (or the hub not knowing the session for a while) and
// then rejoins without `since`, which gets every tab's page whole.

import { h, fill, icon, ICONS, duration, shortUrl } from './dom.js';
import { initials } from './queue.js';
import { TabReplay, VisitorClock } from './replay.js';
import { MarkerLayer, MarkerTools } from './markers.js';
import { ControlPanel } from './control.js';
import { CommandBox } from './commands.js';

const REJOIN_PATIENCE = 60_000; // ms to keep asking for a session the hub does not know (a restart)
const REJOIN_EVERY = 1500;
const RESYNC_MIN_GAP = 2000; // ms between two requests for a fresh copy of the same tab
const QUEUE_WAIT = 2000; // ms to wait for the queue after a reconnect before rejoining anyway
// A tab the visitor closed keeps its place this long, marked "closed", then leaves the strip
// (while another tab is open: the last one stays, to show that the visitor left).
const CLOSED_TAB_LINGER = 4000;
const INTERACTION_SOURCES = new Set([1, 2, 3, 5, 6, 12, 14]); // mouse, click, scroll, input, touch, drag, selection
const MARKER_ERRORS = new Set(['mark', 'unmark', 'laser']);

const ENDED_TEXT = {
  visitor_stopped: ['The visitor stopped sharing', 'They closed the session from their side. Nothing more of their screen is shown.'],
  agent_ended: ['The session was ended', 'An agent ended this co-browsing session.'],
  idle_timeout: ['The session timed out', 'Nothing happened for a long time, so the session was closed.'],
  chat_ended: ['The chat ended', 'The visitor shared this page for the chat, so sharing stopped with it.'],
  transferred: ['The chat was handed on', 'The visitor shared this page for their chat, which another agent holds now. You no longer see it.'],
  server_shutdown: ['The session was closed', 'The co-browsing service shut down.'],
  gone: ['The session is no longer available', 'The visitor did not come back after the connection was lost.'],
};

export class SessionController {
  // ctx: {send(frame) -> bool, els, toast(text), announce(text), queue}
  constructor(ctx) {
    this.ctx = ctx;
    this.els = ctx.els;
    this.view = null; // the open SessionView
    this.request = null; // the join we are waiting for an answer to
    this.rejoinTimer = null;
    this.me = ''; // the agent's display name (set by main.js)
    this.meId = 0; // the agent's user id (set by main.js)
    this.frameRequest = 0;
    const tools = {
      send: (frame) => ctx.send(frame),
      toast: (text) => ctx.toast(text),
      announce: (text) => ctx.announce(text),
      me: () => this.me,
      session: () => (this.view && !this.view.ended ? this.view.id : null),
      tab: () => (this.view && !this.view.ended ? this.view.tabs.get(this.view.active) || null : null),
    };
    this.tools = new MarkerTools(this.els.markBar, this.els.toolHint, tools);
    this.commands = new CommandBox(this.els.command, tools);
    this.control = new ControlPanel(this.els.control, { ...tools, changed: (state) => this.commands.setControl(state == 'mine') });
    this.tools.enable(false);
    this.control.reset(false);
    this.commands.reset(false);
    this.els.leave.addEventListener('click', () => this.leave());
    this.els.end.addEventListener('click', () => this.confirmEnd());
    this.els.endConfirm.addEventListener('click', () => this.end());
    this.els.back.addEventListener('click', () => this.close());
    this.els.follow.addEventListener('click', () => this.view && this.view.setFollow(!this.view.follow));
  }

  get sessionId() {
    return this.view ? this.view.id : null;
  }

  // ----- requests -------------------------------------------------------------

  // focus: false keeps the keyboard focus where it is (the chat joins a conversation's session by itself).
  join(target, { focus = true } = {}) {
    if (target.session && this.view && this.view.id == target.session && !this.view.ended) {
      if (focus) this.view.focusTitle();
      return;
    }
    this.request = { ...target, at: Date.now(), focus };
    if (!this.ctx.send({ t: 'join', ...target })) {
      this.request = null;
      if (target.code) this.ctx.queue.codeResult('offline', 'Not connected to the server. Try again in a moment.');
      else this.ctx.toast('Not connected to the server yet. Try again in a moment.');
    }
  }

  // The socket (re)connected: come back into the open session where we left off.
  // The rejoin waits for the first `queue` frame (the answer to `watch`, sent
  // just before): it tells whether the hub still has the session as we knew it.
  onReady() {
    clearTimeout(this.readyTimer);
    if (!this.view || this.view.ended) return;
    this.awaitingQueue = true;
    this.readyTimer = setTimeout(() => this.onQueue(null), QUEUE_WAIT);
  }

  // Every `queue` frame (null: none came in time).
  onQueue(entries) {
    const view = this.view;
    if (view && !view.ended && entries) {
      const entry = entries.find((e) => e.session == view.id);
      if (entry && view.hubSince != null && entry.since !== view.hubSince) {
        // The hub made the session anew (it restarted and the visitor resumed):
        // its event numbering starts over, so our `since` means nothing there.
        view.hubLost = true;
      }
      if (entry) view.hubSince = entry.since;
      else if (this.awaitingQueue) view.hubLost = true; // not there (yet): a restart
    }
    if (this.awaitingQueue) {
      this.awaitingQueue = false;
      clearTimeout(this.readyTimer);
      if (view && !view.ended) this.rejoin(true);
    }
  }

  onOffline() {
    if (this.view && !this.view.ended) {
      this.view.setOverlay('reconnecting');
      this.control.reset(true); // the hub gives control back when our connection goes
    }
  }

  rejoin(fresh) {
    clearTimeout(this.rejoinTimer);
    const view = this.view;
    if (!view || view.ended) return;
    const started = !fresh && this.request && this.request.rejoin ? this.request.started : Date.now();
    this.request = { session: view.id, rejoin: true, started, at: Date.now() };
    this.ctx.send({ t: 'join', session: view.id, since: view.hubLost ? {} : view.since() });
  }

  // Ask the hub for a fresh copy of one tab (its events have a gap).
  resync(tabId) {
    const view = this.view;
    if (!view || view.ended) return;
    const tab = view.tabs.get(tabId);
    const now = Date.now();
    if (tab && now - tab.resyncAt < RESYNC_MIN_GAP) return;
    if (tab) {
      tab.resyncAt = now;
      tab.lastSeq = -1;
    }
    this.request = { session: view.id, resync: true, at: now };
    this.ctx.send({ t: 'join', session: view.id, since: view.hubLost ? {} : view.since(tabId) });
  }

  leave() {
    const view = this.view;
    if (!view) return;
    if (!view.ended) this.ctx.send({ t: 'leave', session: view.id });
    this.close();
  }

  confirmEnd() {
    if (!this.view || this.view.ended) return;
    this.els.endDialog.showModal();
  }

  end() {
    this.els.endDialog.close();
    const view = this.view;
    if (!view || view.ended) return;
    if (!this.ctx.send({ t: 'end', session: view.id })) this.ctx.toast('Not connected: the session could not be ended. Try again.');
  }

  close() {
    clearTimeout(this.rejoinTimer);
    clearTimeout(this.readyTimer);
    this.awaitingQueue = false;
    this.request = null;
    if (this.view) this.view.destroy();
    this.view = null;
    this.stopFrames();
    this.tools.enable(false);
    this.control.reset(false);
    this.commands.reset(false);
    this.ctx.queue.setCurrent(null);
    this.els.session.hidden = true;
    this.els.info.hidden = true;
    this.els.stageEmpty.hidden = false;
  }

  // ----- frames -----------------------------------------------------------------

  handle(frame) {
    switch (frame.t) {
      case 'joined':
        return this.onJoined(frame);
      case 'tab_rr':
        return this.onEvents(frame);
      case 'tab':
        if (this.view && frame.session == this.view.id) this.view.updateTab(frame.state);
        return true;
      case 'viewers':
        if (this.view && frame.session == this.view.id) this.view.setViewers(frame.viewers);
        return true;
      case 'ended':
        if (this.view && frame.session == this.view.id) this.view.end(frame.reason);
        return true;
      case 'mark':
      case 'unmark':
      case 'laser':
        if (this.view && frame.session == this.view.id && !this.view.ended) this.view.marker(frame);
        return true;
      case 'control_requested':
        if (this.view && frame.session == this.view.id && !this.view.ended) this.control.onRequested(frame);
        return true;
      case 'control_state':
        if (this.view && (frame.session == null || frame.session == this.view.id) && !this.view.ended) this.control.onState(frame);
        return true;
      case 'input_refused':
        if (this.view && (frame.session == null || frame.session == this.view.id)) this.control.onRefused(frame);
        return true;
      case 'command_result':
        if (this.view && (frame.session == null || frame.session == this.view.id)) this.commands.onResult(frame);
        return true;
      case 'error':
        if (frame.re == 'join' || frame.re == 'end') return this.onError(frame);
        if (frame.re == 'command') this.commands.onError(frame);
        else if (frame.re == 'control_request' || frame.re == 'control_release') this.control.onError(frame);
        else if (frame.re == 'input') this.ctx.toast(frame.message ? `Your action was refused: ${frame.message}` : 'Your action was refused.');
        else if (MARKER_ERRORS.has(frame.re)) {
          if (frame.re == 'mark') this.tools.rejected(frame.id);
          this.ctx.toast(frame.message ? `The marker was refused: ${frame.message}` : 'The marker was refused.');
        }
        else return false;
        return true;
      default:
        return false;
    }
  }

  // ----- markers, control: redrawn every animation frame while a session is open --------

  startFrames() {
    if (this.frameRequest) return;
    const tick = () => {
      this.frameRequest = 0;
      const view = this.view;
      if (!view || view.ended) return;
      const tab = view.tabs.get(view.active);
      if (tab && tab.layer) tab.layer.frame();
      this.control.sync();
      this.frameRequest = requestAnimationFrame(tick);
    };
    this.frameRequest = requestAnimationFrame(tick);
  }

  stopFrames() {
    cancelAnimationFrame(this.frameRequest);
    this.frameRequest = 0;
  }

  onJoined(frame) {
    const request = this.request;
    this.request = null;
    clearTimeout(this.rejoinTimer);
    if (request && request.code) this.ctx.queue.codeResult(null);
    if (this.view && this.view.id == frame.session && !this.view.ended) {
      this.view.rejoined(frame);
      this.view.hubLost = false; // what follows is consistent with the hub again
      return true;
    }
    if (this.view) {
      if (!this.view.ended) this.ctx.send({ t: 'leave', session: this.view.id });
      this.view.destroy();
    }
    this.view = new SessionView(this, frame);
    this.tools.enable(true);
    this.tools.attach();
    this.control.reset(true);
    this.commands.reset(true);
    this.startFrames();
    this.ctx.queue.setCurrent(frame.session);
    this.els.stageEmpty.hidden = true;
    this.els.session.hidden = false;
    this.els.info.hidden = false;
    if (!request || request.focus !== false) this.view.focusTitle();
    return true;
  }

  onEvents(frame) {
    const view = this.view;
    if (!view || frame.session != view.id || view.ended) return true;
    const outcome = view.events(frame);
    if (outcome == 'gap') this.resync(frame.tab);
    return true;
  }

  onError(frame) {
    const request = this.request;
    if (frame.re == 'end') {
      this.ctx.toast(frame.message || 'The session could not be ended.');
      return true;
    }
    this.request = null;
    if (request && request.code) {
      this.ctx.queue.codeResult(frame.code, frame.message);
    } else if (request && (request.rejoin || request.resync) && this.view && !this.view.ended) {
      if (frame.code == 'not_found') this.view.hubLost = true;
      if (frame.code == 'not_found' && Date.now() - (request.started || request.at) < REJOIN_PATIENCE) {
        // The hub does not know the session (yet): after a restart it learns it
        // again when the visitor's page reconnects.
        this.view.setOverlay('waiting');
        this.request = { ...request, rejoin: true, started: request.started || request.at };
        this.rejoinTimer = setTimeout(() => this.rejoin(false), REJOIN_EVERY);
      } else if (frame.code == 'not_found') {
        this.view.end('gone');
      } else if (frame.code == 'forbidden') {
        this.view.end('transferred'); // (its chat was handed on while this console was away)
      } else {
        this.ctx.toast(frame.message || 'Could not rejoin the session.');
      }
    } else if (frame.code == 'not_found') {
      this.ctx.toast('That visitor is no longer sharing.');
    } else {
      this.ctx.toast(frame.message || 'Could not join the session.');
    }
    return true;
  }

  queueSince(sessionId) {
    const entry = this.ctx.queue.entries.find((e) => e.session == sessionId);
    return entry ? entry.since : null;
  }

  // The queue tells us the visitor's name (the joined frame does not).
  nameFor(sessionId) {
    const entry = this.ctx.queue.entries.find((e) => e.session == sessionId);
    return entry ? entry.name : '';
  }
}

// One open session: its tabs and their replays, its viewers, its details.
class SessionView {
  constructor(controller, joined) {
    this.controller = controller;
    this.els = controller.els;
    this.id = joined.session;
    this.site = joined.site;
    this.name = controller.nameFor(joined.session);
    this.started = Date.now();
    this.hubSince = controller.queueSince(joined.session); // the hub's start time of the session
    this.hubLost = false; // the hub lost the session's state: rejoin without `since`
    this.clock = new VisitorClock();
    this.tabs = new Map(); // tab id -> {state, lastSeq, replay, button, panel, resyncAt, seen}
    this.active = null;
    this.follow = true;
    this.ended = null;
    this.viewers = joined.viewers || [];
    this.overlay = null;
    fill(this.els.tabs);
    fill(this.els.panels);
    this.els.tabs.onkeydown = (e) => this.tabKeys(e);
    this.setFollow(true);
    this.els.end.disabled = false;
    this.els.leave.disabled = false;
    this.els.endedCard.hidden = true;
    this.els.session.classList.remove('is-ended');
    this.timer = setInterval(() => this.renderInfo(), 1000);
    for (const state of joined.tabs || []) this.updateTab(state);
    this.setViewers(this.viewers);
    this.setOverlay(this.tabs.size ? (this.anyOpen() ? 'loading' : 'left') : 'no-tabs');
    this.renderInfo();
  }

  // Every tab we hold a replayable copy of, with its last seq (minus `except`).
  since(except) {
    const since = {};
    for (const [id, tab] of this.tabs) {
      if (id != except && tab.replay && tab.replay.ready && tab.lastSeq >= 0) since[id] = tab.lastSeq;
    }
    return since;
  }

  rejoined(joined) {
    this.site = joined.site || this.site;
    for (const state of joined.tabs || []) this.updateTab(state);
    this.setViewers(joined.viewers || []);
    this.setOverlay(this.anyReady() ? null : this.anyOpen() ? 'loading' : 'left');
  }

  anyOpen() {
    for (const tab of this.tabs.values()) if (tab.state.open !== false) return true;
    return false;
  }

  anyReady() {
    for (const tab of this.tabs.values()) if (tab.replay && tab.replay.ready) return true;
    return false;
  }

  // ----- tabs -----------------------------------------------------------------------

  ensureTab(id, state) {
    let tab = this.tabs.get(id);
    if (tab) return tab;
    const index = this.tabs.size + 1;
    const panel = h('div', {
      className: 'replay-host', role: 'tabpanel', id: `panel-${id}`, hidden: true,
      'aria-label': `Replay of the visitor's tab ${index}`, tabIndex: -1, 'data-tab': id,
    });
    const button = h('button', {
      type: 'button', role: 'tab', className: 'tab', id: `tab-${id}`, 'aria-selected': 'false',
      'aria-controls': panel.id, tabIndex: -1, 'data-tab': id,
      onclick: () => {
        this.select(id, true);
        this.setFollow(false);
      },
    });
    this.els.tabs.append(button);
    this.els.panels.append(panel);
    tab = { id, index, state: { open: true, ...(state || { tab: id, url: '', title: '' }) }, lastSeq: -1, replay: null, button, panel, resyncAt: 0, seen: 0 };
    tab.replay = new TabReplay(panel, this.clock, {
      onSize: (size) => {
        if (this.active == id) this.renderSize(size);
      },
      onFirstPaint: () => {
        if (this.active == id) this.setOverlay(null);
      },
    });
    tab.layer = this.makeLayer(tab);
    this.tabs.set(id, tab);
    this.renderTabsCount();
    if (!this.active || !this.tabs.get(this.active).state.open) this.select(id, false);
    return tab;
  }

  updateTab(state) {
    const tab = this.ensureTab(state.tab, state);
    tab.state = { open: true, ...state };
    const closed = state.open === false;
    tab.button.classList.toggle('is-closed', closed);
    const label = state.title || shortUrl(state.url) || `Tab ${tab.index}`;
    fill(tab.button,
      icon(...ICONS.tab),
      h('span', { className: 'tab-label' }, label),
      closed ? h('span', { className: 'tab-closed' }, 'closed') : null);
    tab.button.title = `${state.title || ''}\n${state.url || ''}`.trim();
    if (closed) {
      // The hub drops a closed tab's page; so do we.
      tab.replay.destroy();
      tab.replay = new TabReplay(tab.panel, this.clock, {});
      tab.layer.replay = tab.replay;
      tab.layer.clear();
      tab.lastSeq = -1;
      if (this.active == tab.id) {
        const other = [...this.tabs.values()].find((t) => t.state.open !== false && t.replay.ready);
        if (other) this.select(other.id, false);
        else this.setOverlay('closed');
      }
      if (!this.anyOpen()) this.setOverlay('left'); // whichever tab is shown
      else this.pruneSoon();
    } else {
      if (this.active == tab.id && (this.overlay == 'closed' || this.overlay == 'left')) {
        this.setOverlay(tab.replay.ready ? null : 'loading'); // the visitor is back on this tab
      }
      // Tabs that closed while this was the only one kept their place; with one open again, they go.
      if (!this.pruneTimer && [...this.tabs.values()].some((t) => t.state.open === false)) this.pruneSoon();
    }
    this.renderTabsCount();
    if (this.active == tab.id) this.renderInfo();
  }

  pruneSoon() {
    clearTimeout(this.pruneTimer);
    this.pruneTimer = setTimeout(() => this.pruneClosed(), CLOSED_TAB_LINGER);
  }

  // Drop closed tabs from the strip, as long as an open one is left to show.
  pruneClosed() {
    this.pruneTimer = 0;
    if (this.ended || !this.anyOpen()) return;
    for (const tab of [...this.tabs.values()]) {
      if (tab.state.open !== false) continue;
      tab.replay.destroy();
      tab.layer.destroy();
      tab.button.remove();
      tab.panel.remove();
      this.tabs.delete(tab.id);
    }
    if (!this.tabs.has(this.active)) {
      const next = [...this.tabs.values()].find((t) => t.replay.ready) || this.tabs.values().next().value;
      this.select(next.id, false);
    }
    this.renderTabsCount();
  }

  select(id, byAgent) {
    const previous = this.active;
    this.active = id;
    for (const tab of this.tabs.values()) {
      const on = tab.id == id;
      tab.button.setAttribute('aria-selected', String(on));
      tab.button.tabIndex = on ? 0 : -1;
      tab.panel.hidden = !on;
    }
    const tab = this.tabs.get(id);
    if (!tab) return;
    tab.replay.layout();
    if (tab.replay.size) this.renderSize(tab.replay.size);
    else this.renderSize(null);
    if (!this.ended) {
      if (tab.state.open === false) this.setOverlay(this.anyOpen() ? 'closed' : 'left');
      else this.setOverlay(tab.replay.ready ? null : 'loading');
    }
    if (byAgent) tab.button.focus();
    if (previous != id) {
      this.renderInfo();
      this.controller.tools.attach();
    }
  }

  makeLayer(tab) {
    const tools = this.controller.tools;
    return new MarkerLayer(tab.panel, tab.replay, {
      me: () => this.controller.me,
      meId: () => this.controller.meId,
      onPointer: (type, e, point) => {
        if (this.active == tab.id) tools.pointer(type, e, point);
      },
      onRemove: (id) => {
        if (this.active == tab.id) tools.remove(id);
      },
    });
  }

  // mark / unmark / laser relayed by the hub.
  marker(frame) {
    const tab = this.tabs.get(frame.tab);
    if (!tab) return;
    const me = this.controller.me;
    if (frame.t == 'mark') {
      if (frame.marker) this.controller.tools.confirmed(frame.marker.id);
      const m = frame.marker || {};
      // The hub stamps the placer's user id: a namesake's marker is not ours.
      tab.layer.upsert(frame.marker, { mine: m.agent ? m.agent == this.controller.meId : Boolean(m.by && m.by == me) });
    } else if (frame.t == 'unmark') {
      if (frame.id == null) tab.layer.clear();
      else tab.layer.remove(frame.id);
    } else if (frame.t == 'laser') {
      const by = frame.by || '';
      if (!frame.agent && by && by == me) return; // our own (an older hub without ids), drawn as we move
      const key = frame.agent ? 'agent:' + frame.agent : by || 'Agent';
      tab.layer.laser(by || 'Agent', frame.anchor || null, Number(frame.x) || 0, Number(frame.y) || 0, key);
    }
    if (tab.id == this.active) this.controller.tools.refresh();
  }

  tabKeys(e) {
    const ids = [...this.tabs.keys()];
    const at = ids.indexOf(this.active);
    let next = null;
    if (e.key == 'ArrowRight') next = ids[(at + 1) % ids.length];
    else if (e.key == 'ArrowLeft') next = ids[(at - 1 + ids.length) % ids.length];
    else if (e.key == 'Home') next = ids[0];
    else if (e.key == 'End') next = ids[ids.length - 1];
    if (next == null) return;
    e.preventDefault();
    this.select(next, true);
    this.setFollow(false);
  }

  setFollow(on) {
    this.follow = on;
    this.els.follow.setAttribute('aria-pressed', String(on));
  }

  // ----- events ---------------------------------------------------------------------

  // tab_rr: 'ok', or 'gap' when events are missing (the controller asks for a fresh copy).
  events(frame) {
    const tab = this.ensureTab(frame.tab);
    const ev = frame.ev || [];
    const last = frame.seq + ev.length - 1;
    // A batch that carries a full snapshot starts a new page even when the hub
    // does not say so (e.g. a rejoin with `since` that lands on a fresh snapshot).
    const start = frame.reset ? 0 : snapshotStart(ev);
    if (frame.reset || start != null) {
      tab.replay.reset(start ? ev.slice(start) : ev);
      tab.lastSeq = last;
      if (tab.state.open === false) tab.state = { ...tab.state, open: true };
      this.followTo(tab, true);
      if (this.active == tab.id && !tab.replay.current) this.setOverlay('loading');
      return 'ok';
    }
    if (!tab.replay.ready) return 'gap'; // nothing to apply these to
    if (last <= tab.lastSeq) return 'ok'; // already have them
    let fresh = ev;
    if (frame.seq > tab.lastSeq + 1) return 'gap';
    if (frame.seq <= tab.lastSeq) fresh = ev.slice(tab.lastSeq + 1 - frame.seq);
    tab.replay.add(fresh);
    tab.lastSeq = last;
    if (fresh.some((e) => e.type == 3 && e.data && INTERACTION_SOURCES.has(e.data.source))) this.followTo(tab, false);
    return 'ok';
  }

  // Show the tab the visitor is busy in, unless the agent picked a tab.
  followTo(tab, newPage) {
    tab.seen = Date.now();
    if (!this.follow || this.active == tab.id) return;
    const current = this.tabs.get(this.active);
    // Do not flip back and forth: stay a moment on a tab the visitor just used.
    if (!newPage && current && current.state.open !== false && Date.now() - current.seen < 1500) return;
    this.select(tab.id, false);
  }

  // ----- viewers, info ----------------------------------------------------------------

  setViewers(viewers) {
    this.viewers = viewers || [];
    const names = this.viewers.map((v) => (v.role == 'supervisor' ? `${v.name} (supervisor)` : v.name));
    const line = names.length ? `${names.join(', ')} watching` : 'No one else is watching';
    this.els.viewersLine.textContent = line;
    fill(this.els.viewersList, this.viewers.map((v) =>
      h('li', { className: 'viewer' },
        h('span', { className: 'avatar avatar-sm', 'aria-hidden': 'true' }, initials(v.name)),
        h('span', { className: 'viewer-name' }, v.name),
        v.role == 'supervisor' ? h('span', { className: 'badge badge-role' }, 'supervisor') : null)));
  }

  renderSize(size) {
    this.els.size.textContent = size ? `${size.width}×${size.height}` : '–';
    this.els.size.title = size ? `The visitor's window is ${size.width} by ${size.height} pixels` : '';
    const tab = this.tabs.get(this.active);
    const scale = tab && size ? Math.round(tab.replay.scale * 100) : null;
    this.els.scale.textContent = scale ? `${scale}%` : '';
    this.els.scale.hidden = !scale;
  }

  renderTabsCount() {
    const open = [...this.tabs.values()].filter((t) => t.state.open !== false).length;
    this.els.tabsCount.textContent = `${open} open`;
    this.els.follow.hidden = this.tabs.size < 2; // only means something with more than one tab
  }

  renderInfo() {
    const els = this.els;
    const name = this.name || this.controller.nameFor(this.id) || 'Visitor';
    this.name = this.name || this.controller.nameFor(this.id);
    els.title.textContent = name;
    els.avatar.textContent = initials(name);
    els.site.textContent = this.site;
    const tab = this.tabs.get(this.active);
    els.pageTitle.textContent = tab ? tab.state.title || 'Untitled page' : '–';
    els.pageUrl.textContent = tab ? tab.state.url || '' : '';
    els.elapsed.textContent = duration((Date.now() - this.started) / 1000);
    const size = tab && tab.replay.size;
    if (size && this.els.scale) {
      const scale = Math.round(tab.replay.scale * 100);
      if (this.els.scale.textContent != `${scale}%`) this.renderSize(size);
    }
  }

  focusTitle() {
    this.els.title.focus();
  }

  // ----- overlays and the end -------------------------------------------------------------

  setOverlay(kind) {
    if (this.ended) return;
    this.overlay = kind;
    const texts = {
      loading: ['Loading the visitor’s page…', 'Their screen appears here in a moment.'],
      'no-tabs': ['Waiting for the visitor’s page…', 'Their browser has not sent a page yet.'],
      reconnecting: ['Reconnecting…', 'The connection to the server dropped. The view catches up when it is back.'],
      waiting: ['Waiting for the visitor to reconnect…', 'Their page will appear again as soon as they are back.'],
      closed: ['This tab was closed', 'The visitor closed this tab.'],
      left: ['The visitor has no page open',
        'They closed it or lost their connection. Their page appears here again if they come back; ' +
        'otherwise the session ends after a while.'],
    };
    const { overlay, overlayTitle, overlayText, session } = this.els;
    const text = kind && texts[kind];
    overlay.hidden = !text;
    const stale = kind == 'reconnecting' || kind == 'waiting' || kind == 'left';
    session.classList.toggle('is-stale', stale);
    this.els.liveText.textContent = kind == 'left' ? 'Away' : stale ? 'Paused' : 'Live';
    if (text) {
      overlay.dataset.kind = kind;
      overlayTitle.textContent = text[0];
      overlayText.textContent = text[1];
    }
  }

  end(reason) {
    if (this.ended) return;
    this.ended = reason || 'server_shutdown';
    clearTimeout(this.controller.rejoinTimer);
    // Consent is gone: stop showing the visitor's screen at once.
    for (const tab of this.tabs.values()) tab.replay.destroy();
    const [title, text] = ENDED_TEXT[this.ended] || ENDED_TEXT.server_shutdown;
    const els = this.els;
    els.overlay.hidden = true;
    els.session.classList.remove('is-stale');
    els.session.classList.add('is-ended');
    els.liveText.textContent = 'Ended';
    els.endedTitle.textContent = title;
    els.endedText.textContent = text;
    els.endedCard.hidden = false;
    els.end.disabled = true;
    els.leave.disabled = true;
    for (const tab of this.tabs.values()) tab.layer.clear();
    this.controller.tools.enable(false);
    this.controller.control.reset(false);
    this.controller.commands.reset(false);
    if (els.endDialog.open) els.endDialog.close();
    els.back.focus();
    this.controller.ctx.announce(`${title}. ${text}`);
  }

  destroy() {
    clearInterval(this.timer);
    clearTimeout(this.pruneTimer);
    for (const tab of this.tabs.values()) {
      tab.replay.destroy();
      tab.layer.destroy();
    }
    this.tabs.clear();
    fill(this.els.tabs);
    fill(this.els.panels);
    this.els.overlay.hidden = true;
    this.els.endedCard.hidden = true;
    this.els.session.classList.remove('is-ended', 'is-stale');
  }
}

// Index where the last full snapshot in these events begins (its Meta event when right before it).
function snapshotStart(events) {
  for (let i = events.length - 1; i >= 0; i--) {
    if (events[i].type == 2) return i > 0 && events[i - 1].type == 4 ? i - 1 : i;
  }
  return null;
}
