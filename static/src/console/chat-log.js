// The messages of one conversation: merged by seq, drawn as a log.
//
// Messages the server stored have a seq (per conversation, from 1) and are
// shown in seq order, whatever order chat_history and chat_msg brought them
// in; one that is already held (same seq, or same client id) is not shown
// twice. Messages this console is still sending (no chat_ack yet), uploading
// or that failed follow them, in the order they were written.
//
// Everything is text: message text goes in with textContent (web addresses
// become links through lib/linkify.js), system messages' formatting is the
// sanitized node tree of lib/rich.js. Nothing is parsed as HTML.
//
// Status of the agent's own messages: sending -> sent (chat_ack) ->
// delivered -> read (chat_seen {by: visitor}). Notes never reach the visitor,
// so they stop at sent.

import { h, fill, icon } from './dom.js';
import { linkify } from '../lib/linkify.js';
import { renderRich } from '../lib/rich.js';
import { fileCard } from './chat-files.js';

const GROUP_GAP = 5 * 60; // s: a message this soon after the previous one by the same sender joins its group
const NEAR_BOTTOM = 48; // px
const LOCK = ['M6 11h12v10H6z', 'M8 11V7a4 4 0 0 1 8 0v4'];
const TICK = ['M4 12l5 5L20 6'];
const TICKS = ['M2 12l5 5L18 6', 'M13 15l2 2L22 8'];
const CLOCK = ['M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z', 'M12 7v5l3 2'];
const ALERT = ['M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z', 'M12 8v5', 'M12 16h.01'];
const ARROW = ['M5 12h14', 'M13 6l6 6-6 6'];

export const STATUS_TEXT = { sending: 'Sending…', sent: 'Sent', delivered: 'Delivered', read: 'Read' };

export function clockTime(at) {
  const d = new Date(at * 1000);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function dayLabel(at) {
  const d = new Date(at * 1000);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (d.toDateString() == today.toDateString()) return 'Today';
  if (d.toDateString() == yesterday.toDateString()) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
}

export class MessageList {
  // ctx: {me() -> {id, name}, visitorName() -> string, onRetry(m), onDiscard(m), onNewBelow()}
  constructor(el, ctx) {
    this.el = el;
    this.ctx = ctx;
    this.confirmed = new Map(); // seq -> message
    this.ids = new Map(); // client id -> seq
    this.pending = new Map(); // client id -> local message {id, text, kind, state: sending|uploading|failed, ...}
    this.results = new Map(); // client id -> {ok, text}: outcome of a goto:/open: command
    this.maxSeq = 0;
    this.visitorDelivered = 0;
    this.visitorRead = 0;
    this.nodes = new Map(); // key -> {node, version}
    this.frame = 0;
    this.stick = true; // follow new messages (the agent is at the bottom)
    this.scrollTop = 0;
    el.addEventListener('scroll', () => {
      this.stick = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM;
      if (this.stick) this.ctx.onNewBelow(false);
    });
  }

  // ----- the model ----------------------------------------------------------------------

  // A message the server stored: true when it is new here.
  add(m) {
    if (!m || typeof m.seq != 'number' || m.seq < 1) return false;
    const known = this.ids.get(m.id);
    if (known != null || this.confirmed.has(m.seq)) {
      const seq = known != null ? known : m.seq;
      const old = this.confirmed.get(seq);
      if (old && m.file && !old.file) this.confirmed.set(seq, { ...old, file: m.file });
      this.pending.delete(m.id);
      return false;
    }
    this.pending.delete(m.id);
    this.confirmed.set(m.seq, m);
    if (m.id) this.ids.set(m.id, m.seq);
    if (m.seq > this.maxSeq) this.maxSeq = m.seq;
    return true;
  }

  // The last seq held with none missing before it (a conversation's seqs are
  // 1, 2, 3...): where a resync starts. From maxSeq, a history page cut off by a
  // dropped connection while live messages came in would never be fetched.
  heldThrough() {
    let n = 0;
    while (this.confirmed.has(n + 1)) n++;
    return n;
  }

  // chat_ack for one of our messages: it is stored as seq.
  ack(id, seq, at) {
    const local = this.pending.get(id);
    if (!local) return false;
    this.pending.delete(id);
    if (this.ids.has(id)) return true;
    const { state, progress, error, retry, ...rest } = local;
    this.add({ ...rest, seq, at: at || rest.at });
    return true;
  }

  addPending(m) {
    this.pending.set(m.id, m);
  }

  updatePending(id, changes) {
    const m = this.pending.get(id);
    if (m) this.pending.set(id, { ...m, ...changes });
    return m;
  }

  removePending(id) {
    this.pending.delete(id);
  }

  has(id) {
    return this.pending.has(id) || this.ids.has(id);
  }

  // Visitor messages after `seq`.
  visitorAfter(seq) {
    let n = 0;
    for (const m of this.confirmed.values()) if (m.seq > seq && m.sender == 'visitor') n++;
    return n;
  }

  lastVisitorSeq() {
    let last = 0;
    for (const m of this.confirmed.values()) if (m.sender == 'visitor' && m.seq > last) last = m.seq;
    return last;
  }

  ordered() {
    const list = [...this.confirmed.values()].sort((a, b) => a.seq - b.seq);
    return list.concat([...this.pending.values()]);
  }

  // The most recent goto:/open: message of ours (for its result).
  lastCommand() {
    const list = this.ordered();
    for (let i = list.length - 1; i >= 0; i--) {
      const m = list[i];
      if (m.kind == 'command' && this.mine(m)) return m;
    }
    return null;
  }

  setResult(id, result) {
    this.results.set(id, result);
    this.schedule();
  }

  seen(delivered, read) {
    this.visitorDelivered = Math.max(this.visitorDelivered, delivered || 0);
    this.visitorRead = Math.max(this.visitorRead, read || 0);
    this.schedule();
  }

  mine(m) {
    const me = this.ctx.me();
    return m.sender == 'agent' && (m.state != null || (me && m.agent == me.id));
  }

  status(m) {
    if (m.state) return m.state;
    if (m.kind == 'note') return 'sent';
    if (m.seq <= this.visitorRead) return 'read';
    if (m.seq <= this.visitorDelivered) return 'delivered';
    return 'sent';
  }

  // ----- drawing ------------------------------------------------------------------------

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  // Draw now; `toBottom` scrolls to the newest message whatever the position.
  render(toBottom) {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const el = this.el;
    const follow = toBottom || this.stick;
    const list = this.ordered();
    let lastMine = null;
    for (const m of list) if (this.mine(m) && m.kind != 'note' && m.seq) lastMine = m; // the newest stored one shows its status in words
    const wanted = [];
    let prev = null;
    let grew = false;
    for (const m of list) {
      const day = dayLabel(m.at);
      if (!prev || dayLabel(prev.at) != day) {
        wanted.push(this.item(`day:${day}`, day, () => h('div', { className: 'msg-day', role: 'separator' }, h('span', null, day))));
      }
      const grouped = Boolean(prev && bubbly(prev) && bubbly(m) && prev.sender == m.sender && prev.kind != 'note' &&
        m.kind != 'note' && (prev.agent || 0) == (m.agent || 0) && m.at - prev.at < GROUP_GAP && dayLabel(prev.at) == day);
      const status = this.mine(m) ? this.status(m) : '';
      const result = this.results.get(m.id);
      const version = [m.seq || '', m.state || '', status, grouped, m === lastMine, m.progress || 0,
        m.error || '', result ? `${result.ok}${result.text}` : '', m.file ? m.file.id || '' : ''].join('|');
      const before = this.nodes.get(m.id);
      if (!before) grew = true;
      wanted.push(this.item(m.id || `seq:${m.seq}`, version, () => this.node(m, { grouped, status, last: m === lastMine, result })));
      prev = m;
    }
    // Put the nodes in order, touching the DOM only where it differs.
    const keep = new Set(wanted.map((w) => w.key));
    for (const [key, entry] of this.nodes) {
      if (!keep.has(key)) {
        entry.node.remove();
        this.nodes.delete(key);
      }
    }
    let cursor = el.firstChild;
    for (const w of wanted) {
      if (w.node !== cursor) el.insertBefore(w.node, cursor);
      else cursor = cursor.nextSibling;
    }
    if (follow) {
      el.scrollTop = el.scrollHeight;
      this.stick = true;
    } else if (grew) {
      this.ctx.onNewBelow(true);
    }
  }

  item(key, version, make) {
    const entry = this.nodes.get(key);
    if (entry && entry.version === version) return { key, node: entry.node };
    const node = make();
    if (entry) entry.node.replaceWith(node);
    this.nodes.set(key, { node, version });
    return { key, node };
  }

  node(m, { grouped, status, last, result }) {
    const kind = m.kind || 'text';
    const time = h('time', { dateTime: new Date(m.at * 1000).toISOString(), title: new Date(m.at * 1000).toLocaleString() }, clockTime(m.at));
    if (kind == 'event') {
      return h('div', { className: 'msg msg-event', 'data-seq': m.seq || null, 'data-id': m.id },
        h('span', { className: 'msg-event-text' }, linkify(m.text || '')), time);
    }
    if (kind == 'system' || m.sender == 'system') {
      const rich = m.rich ? renderRich(m.rich) : null;
      return h('div', { className: 'msg msg-system', 'data-seq': m.seq || null, 'data-id': m.id },
        h('div', { className: 'msg-system-body' }, rich || linkify(m.text || '')), time);
    }
    const mine = this.mine(m);
    const who = m.sender == 'visitor' ? (m.name || this.ctx.visitorName() || 'Visitor') : (mine ? 'You' : m.name || 'Agent');
    const classes = ['msg', `msg-${m.sender}`, `msg-kind-${kind}`];
    if (mine) classes.push('is-mine');
    if (grouped) classes.push('is-grouped');
    if (m.state) classes.push(`is-${m.state}`);
    const head = grouped ? null : h('div', { className: 'msg-head' },
      h('span', { className: 'msg-name' }, who), time);
    let body;
    if (kind == 'file' || m.file) {
      body = fileCard(m.file || {}, { pending: m.state, progress: m.progress });
    } else if (kind == 'command') {
      body = h('div', { className: 'msg-bubble msg-command' }, icon(...ARROW), h('span', null, linkify(m.text || '')));
    } else {
      body = h('div', { className: 'msg-bubble' }, linkify(m.text || ''));
    }
    if (grouped) body.title = `${who}, ${clockTime(m.at)}`;
    const meta = [];
    if (kind == 'note') {
      meta.push(h('span', { className: 'msg-note-label' }, icon(...LOCK), 'Private note · Only agents see this'));
    }
    if (result) {
      meta.push(h('span', { className: `msg-result ${result.ok ? 'is-ok' : 'is-error'}`, role: 'status' }, result.text));
    }
    if (m.state == 'failed') {
      meta.push(h('span', { className: 'msg-failed', role: 'alert' }, icon(...ALERT), m.error || 'Not sent'),
        h('button', { type: 'button', className: 'link-btn', onclick: () => this.ctx.onRetry(m) }, 'Retry'),
        h('button', { type: 'button', className: 'link-btn', onclick: () => this.ctx.onDiscard(m) }, 'Discard'));
    } else if (mine && status && kind != 'note') {
      const label = m.state == 'uploading' ? `Uploading… ${Math.round((m.progress || 0) * 100)}%` : STATUS_TEXT[status] || '';
      const paths = status == 'sending' || status == 'uploading' ? CLOCK : status == 'sent' ? TICK : TICKS;
      meta.push(h('span', { className: 'msg-status', 'data-status': status, title: label },
        icon(...paths), last || m.state ? h('span', null, label) : h('span', { className: 'sr-only' }, label)));
    }
    return h('div', {
      className: classes.join(' '), 'data-seq': m.seq || null, 'data-id': m.id,
    },
    kind == 'note' && !grouped ? h('div', { className: 'msg-head' }, h('span', { className: 'msg-name' }, `${who} · note`), time) : head,
    body,
    meta.length ? h('div', { className: 'msg-meta' }, meta) : null);
  }

  // Shown again: restore the scroll position it had.
  shown() {
    if (this.stick) this.el.scrollTop = this.el.scrollHeight;
    else this.el.scrollTop = this.scrollTop;
  }

  hidden() {
    this.scrollTop = this.el.scrollTop;
  }

  scrollToEnd() {
    this.el.scrollTop = this.el.scrollHeight;
    this.stick = true;
    this.ctx.onNewBelow(false);
  }

  clear() {
    cancelAnimationFrame(this.frame);
    fill(this.el);
    this.nodes.clear();
  }
}

function bubbly(m) {
  return m.kind != 'event' && m.kind != 'system' && m.sender != 'system';
}
