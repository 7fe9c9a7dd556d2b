// Shared control: the agent asks to click and type on the visitor's page;
// while the visitor allows it, what the agent does in the replay becomes
// `input` frames that the visitor's page applies as real events.
//
//   -> control_request {session, allow_submit}     -> control_release {session}
//   <- control_state {controller {name, role}|null, allow_submit, reason}
//        reason: granted | declined | revoked | released | timeout | left | visitor_left
//   -> input {session, tab, action, node, value, checked, x, y, key}
//        click   any element but fields whose value changes tell more
//        input   a text field's full new value (as typed in the replay)
//        change  a select's value, a checkbox's or radio's `checked`, a
//                text field's value when it loses focus
//        scroll  the page or a scrolled element, to page offsets x/y
//        key     Enter, Tab, Escape (what typing into a value cannot say)
//   <- input_refused {action, reason}   the visitor's page would not (masked field...)
//
// The replay is rrweb's iframe, sandboxed without scripts: nothing of the
// page runs there. Its document is same-origin with the console, so the
// listeners live here, on replayer.iframe.contentDocument; the iframe takes
// pointer events only while the agent has control (rrweb's enableInteract,
// minus the scrollbars: the view never scrolls on its own, the agent's wheel
// becomes `scroll` frames and the view follows the visitor's page).
//
// The replay keeps showing the visitor's page: the agent's typing shows at
// once in the replay's field, and rrweb then replays the visitor's field
// catching up. An echo of an older value (the visitor's page a keystroke
// behind) would throw the agent's latest keystrokes away, so for a moment
// after each keystroke a replayed value that is one the agent already went
// past is put back to the agent's latest (the same for scrolling).

import { isTextField, mirrorId } from './anchors.js';

const SRC_SCROLL = 3;
const SRC_INPUT = 5;
const ECHO_WINDOW = 1500; // ms after the agent's last keystroke/scroll during which stale echoes are undone
const SCROLL_HZ = 30;
const LINE = 40; // px per wheel line
const WAIT_LIMIT = 95_000; // ms without an answer before the request is given up locally

const REFUSED = {
  masked: 'That field is private: the visitor’s page hides it from you, so you cannot type in it. Ask the visitor to fill it in.',
  submit_not_allowed: 'Submitting forms is not allowed. Ask the visitor to submit it, or release control and ask again with “Also allow submitting forms” ticked.',
  not_found: 'That part of the page changed before your action arrived. Try again.',
  no_control: 'You do not have control of the visitor’s page any more.',
  disabled: 'That field is disabled or read-only on the visitor’s page.',
  not_a_field: 'That is not a field the visitor’s page can type into.',
  unsupported: 'The visitor’s page cannot do that for you. Ask the visitor to do it.',
  failed: 'The visitor’s page could not do that. Try again, or ask the visitor to do it.',
};
REFUSED.submit = REFUSED.submit_not_allowed;

const STATE_TEXT = {
  view: ['View only', 'You see the visitor’s page. To click and type for them, ask for control.'],
  waiting: ['Waiting for the visitor…', 'They are asked on their screen whether to let you control their page.'],
  mine: ['You have control', 'Your clicks, typing and scrolling in the view happen on the visitor’s page.'],
  other: ['', 'Only one agent can control the visitor’s page at a time.'],
};

const NOTES = {
  declined: 'The visitor declined your request.',
  timeout: 'The visitor did not answer your request.',
  revoked: 'The visitor took control back.',
  released: 'You released control.',
  left: 'Control ended.',
  visitor_left: 'The visitor left, so control ended. Ask again when they are back.',
};

export function refusedText(frame) {
  const reason = (frame && frame.reason) || '';
  return REFUSED[reason] || `The visitor’s page did not accept that${frame && frame.action ? ` ${frame.action}` : ''}${reason ? ` (${reason})` : ''}.`;
}

export class ControlPanel {
  // els: {card, title, text, note, allowSubmit, allowRow, request, release, chip, session}
  // ctx: {send(frame) -> bool, toast(text), announce(text), me() -> name, session() -> id|null,
  //       tab() -> {id, replay}|null}
  constructor(els, ctx) {
    this.els = els;
    this.ctx = ctx;
    this.state = 'view';
    this.controller = null;
    this.allowSubmit = false;
    this.capture = new InputCapture(ctx, () => this.state == 'mine');
    els.request.addEventListener('click', () => this.request());
    els.release.addEventListener('click', () => this.release());
    this.render();
  }

  request() {
    const session = this.ctx.session();
    if (!session || this.state == 'mine' || this.state == 'waiting') return;
    const allow = this.els.allowSubmit.checked;
    if (!this.ctx.send({ t: 'control_request', session, allow_submit: allow })) {
      this.ctx.toast('Not connected: the request was not sent. Try again in a moment.');
      return;
    }
    this.state = 'waiting';
    this.note = '';
    clearTimeout(this.waitTimer);
    this.waitTimer = setTimeout(() => {
      if (this.state != 'waiting') return;
      this.state = 'view';
      this.note = NOTES.timeout;
      this.render();
    }, WAIT_LIMIT);
    this.render();
  }

  release() {
    const session = this.ctx.session();
    if (!session) return;
    const was = this.state;
    if (was != 'waiting' && was != 'mine') return;
    if (this.ctx.send({ t: 'control_release', session })) {
      // The hub answers with control_state (released); stop acting on the page meanwhile.
      this.els.release.disabled = true;
      this.releasing = true;
      this.capture.detach();
      return;
    }
    this.state = 'view';
    this.note = was == 'mine' ? NOTES.released : '';
    this.render();
  }

  // control_requested (sent to every agent): someone else is waiting for the visitor.
  onRequested(frame) {
    const who = frame.agent && frame.agent.name;
    if (this.state == 'waiting' || !who) return;
    this.othersWaiting = who;
    this.render();
  }

  // control_state from the hub.
  onState(frame) {
    this.othersWaiting = null;
    this.releasing = false;
    this.els.release.disabled = false;
    const controller = frame.controller || null;
    const me = this.ctx.me();
    const was = this.state;
    clearTimeout(this.waitTimer);
    this.controller = controller;
    this.allowSubmit = Boolean(frame.allow_submit);
    this.note = '';
    if (controller && controller.name == me && (was == 'waiting' || was == 'mine' || frame.reason == 'granted')) {
      this.state = 'mine';
      if (was != 'mine') this.ctx.announce('You have control of the visitor’s page.');
    } else if (controller) {
      this.state = 'other';
    } else {
      this.state = 'view';
      if (was == 'waiting' && (frame.reason == 'declined' || frame.reason == 'timeout')) this.note = NOTES[frame.reason];
      else if (was == 'mine' && frame.reason && NOTES[frame.reason]) this.note = NOTES[frame.reason];
      else if (was == 'waiting' && frame.reason == 'revoked') this.note = NOTES.declined;
      else if (was == 'waiting' && frame.reason == 'visitor_left') this.note = NOTES.visitor_left;
      if (this.note) this.ctx.announce(this.note);
    }
    this.render();
  }

  // An `error` answering one of ours.
  onError(frame) {
    if (this.state == 'waiting') {
      this.state = this.controller ? 'other' : 'view';
      clearTimeout(this.waitTimer);
    }
    this.note = frame.message || 'The request for control failed.';
    this.render();
  }

  onRefused(frame) {
    this.capture.refused(frame);
    this.ctx.toast(refusedText(frame));
  }

  // The session closed, ended or the connection dropped: control is gone.
  reset(enabled) {
    clearTimeout(this.waitTimer);
    this.releasing = false;
    this.els.release.disabled = false;
    this.othersWaiting = null;
    this.state = 'view';
    this.controller = null;
    this.note = '';
    this.enabled = enabled;
    this.render();
  }

  // Every animation frame: keep the capture on the tab shown.
  sync() {
    if (!this.releasing) this.capture.sync();
  }

  render() {
    const { els } = this;
    const s = this.state;
    const [title, text] = STATE_TEXT[s];
    els.card.dataset.state = s;
    els.title.textContent = s == 'other' ? `${(this.controller && this.controller.name) || 'Another agent'} has control` : title;
    let detail = text;
    if (s == 'mine') detail += this.allowSubmit ? ' You may submit forms.' : ' Submitting forms is not allowed.';
    els.text.textContent = detail;
    els.note.textContent = this.note || '';
    els.note.hidden = !this.note;
    const enabled = this.enabled !== false;
    els.request.hidden = s == 'mine' || s == 'waiting';
    els.request.disabled = !enabled || s == 'other' || Boolean(this.othersWaiting && s == 'view');
    if (s == 'view' && this.othersWaiting && !this.note) {
      els.note.textContent = `${this.othersWaiting} is waiting for the visitor to allow control.`;
      els.note.hidden = false;
    }
    els.allowRow.hidden = s == 'mine' || s == 'waiting';
    els.allowSubmit.disabled = !enabled || s == 'other';
    els.release.hidden = !(s == 'mine' || s == 'waiting');
    els.release.textContent = s == 'waiting' ? 'Cancel request' : 'Release control';
    els.chip.hidden = s != 'mine';
    els.session.classList.toggle('has-control', s == 'mine');
    if (s != 'mine') this.capture.sync();
    if (this.ctx.changed) this.ctx.changed(s);
  }
}

// ---------------------------------------------------------------------------------------
// What the agent does in the replay, as `input` frames
// ---------------------------------------------------------------------------------------

class InputCapture {
  constructor(ctx, active) {
    this.ctx = ctx;
    this.active = active;
    this.doc = null;
    this.replayer = null;
    this.tabId = null;
    this.edits = new Map(); // node id -> {values: [...sent], at, el, before}
    this.scrolls = new Map(); // node id -> {x, y, at, el}
    this.scrollTimer = null;
    this.scrollPending = new Map();
    this.lastScrollSent = 0;
    this.handlers = {
      click: (e) => this.onClick(e),
      input: (e) => this.onInput(e),
      change: (e) => this.onChange(e),
      keydown: (e) => this.onKey(e),
      wheel: (e) => this.onWheel(e),
      submit: (e) => e.preventDefault(),
      dragstart: (e) => e.preventDefault(),
      auxclick: (e) => e.preventDefault(),
    };
    this.onCast = (event) => this.echo(event);
  }

  // Attach to the replay of the tab shown while the agent has control; detach otherwise.
  sync() {
    const tab = this.active() ? this.ctx.tab() : null;
    const view = tab && tab.replay ? tab.replay.current : null;
    const replayer = view ? view.replayer : null;
    const doc = replayer && replayer.iframe ? replayer.iframe.contentDocument : null;
    if (replayer === this.replayer && doc === this.doc) return;
    this.detach();
    if (!replayer || !doc) return;
    this.replayer = replayer;
    this.doc = doc;
    this.tabId = tab.id;
    for (const [type, fn] of Object.entries(this.handlers)) doc.addEventListener(type, fn, { capture: true, passive: false });
    replayer.on('event-cast', this.onCast);
    // rrweb's enableInteract(), without its scrollbars (see the top).
    replayer.iframe.style.pointerEvents = 'auto';
    replayer.iframe.classList.add('is-controlled');
  }

  detach() {
    const { doc, replayer } = this;
    if (doc) for (const [type, fn] of Object.entries(this.handlers)) doc.removeEventListener(type, fn, { capture: true });
    if (replayer) {
      replayer.off('event-cast', this.onCast);
      try {
        replayer.disableInteract();
      } catch {
        // destroyed with its page
      }
      if (replayer.iframe) replayer.iframe.classList.remove('is-controlled');
      const active = doc && doc.activeElement;
      if (active && active.blur && active !== doc.body) active.blur();
    }
    this.doc = null;
    this.replayer = null;
    this.edits.clear();
    this.scrolls.clear();
    this.scrollPending.clear();
    clearTimeout(this.scrollTimer);
    this.scrollTimer = null;
  }

  mirror() {
    return this.replayer ? this.replayer.getMirror() : null;
  }

  // The nearest element (from el up) the visitor's page knows.
  nodeOf(el) {
    const mirror = this.mirror();
    for (let n = el; n; n = n.parentNode) {
      const id = mirrorId(mirror, n);
      if (id > 0) return { el: n, id };
    }
    return null;
  }

  send(frame) {
    const session = this.ctx.session();
    if (!session || !this.tabId) return false;
    return this.ctx.send({ t: 'input', session, tab: this.tabId, ...frame });
  }

  // ----- pointer and keyboard ------------------------------------------------------------------

  onClick(e) {
    if (e.button != 0) return;
    const target = e.target && e.target.nodeType == 1 ? e.target : e.target && e.target.parentElement;
    if (!target) return;
    // A select opens, a checkbox or radio toggles: their change says it all.
    const choice = toggleOf(target);
    if (choice || target.closest('select, option')) return;
    // Nothing happens inside the replay itself (no link followed, no form sent,
    // no <details> opened): the visitor's page does it and the replay shows it.
    // Only the focus moves, into a text field (or through its label), to type there.
    const label = target.closest('label');
    if (!isTextField(target) && !(label && label.control && isTextField(label.control))) e.preventDefault();
    const hit = this.nodeOf(target);
    if (!hit) return;
    this.send({ action: 'click', node: hit.id });
  }

  onInput(e) {
    const el = e.target;
    if (!el || el.nodeType != 1 || !isTextField(el)) return;
    const hit = this.nodeOf(el);
    if (!hit) return;
    const value = el.isContentEditable ? el.textContent : el.value;
    let edit = this.edits.get(hit.id);
    if (!edit || performance.now() - edit.at > ECHO_WINDOW) {
      edit = { values: [], el, before: edit ? edit.values[edit.values.length - 1] : undefined };
      this.edits.set(hit.id, edit);
    }
    if (edit.before === undefined) edit.before = this.lastKnown(hit.id, el, value);
    edit.values.push(value);
    if (edit.values.length > 200) edit.values.splice(0, edit.values.length - 200);
    edit.at = performance.now();
    edit.el = el;
    edit.selection = selectionOf(el);
    this.send({ action: 'input', node: hit.id, value });
  }

  // The field's value before the agent's first keystroke of a burst (to undo a refused one).
  lastKnown(id, el, value) {
    const known = this.known && this.known.get(id);
    return known != null ? known : value.slice(0, -1);
  }

  onChange(e) {
    const el = e.target;
    if (!el || el.nodeType != 1) return;
    const hit = this.nodeOf(el);
    if (!hit) return;
    const type = (el.getAttribute('type') || '').toLowerCase();
    if (el.localName == 'input' && (type == 'checkbox' || type == 'radio')) {
      this.send({ action: 'change', node: hit.id, checked: el.checked });
    } else if (el.localName == 'select') {
      this.send({ action: 'change', node: hit.id, value: el.value });
    } else if (isTextField(el) && !el.isContentEditable) {
      this.send({ action: 'change', node: hit.id, value: el.value });
    }
  }

  onKey(e) {
    const el = e.target && e.target.nodeType == 1 ? e.target : null;
    const inField = el && (isTextField(el) || el.localName == 'select');
    if (e.key == 'Enter' || e.key == 'Escape' || e.key == 'Tab') {
      if (e.key == 'Enter' && el && el.localName != 'textarea') e.preventDefault();
      const hit = this.nodeOf(el || this.doc.body);
      this.send({ action: 'key', node: hit ? hit.id : -1, key: e.key });
      return;
    }
    if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
    const view = this.doc.defaultView;
    const page = view ? view.innerHeight * 0.85 : 600;
    const deltas = {
      ArrowDown: [0, LINE], ArrowUp: [0, -LINE], ArrowLeft: [-LINE, 0], ArrowRight: [LINE, 0],
      PageDown: [0, page], PageUp: [0, -page], ' ': [0, e.shiftKey ? -page : page],
      Home: [0, -Infinity], End: [0, Infinity],
    };
    const d = deltas[e.key];
    if (!d) return;
    e.preventDefault();
    this.scrollBy(el, d[0], d[1]);
  }

  onWheel(e) {
    e.preventDefault();
    const k = e.deltaMode == 1 ? LINE : e.deltaMode == 2 ? (this.doc.defaultView ? this.doc.defaultView.innerHeight : 800) : 1;
    this.scrollBy(e.target, e.deltaX * k, e.deltaY * k);
  }

  // ----- scrolling -------------------------------------------------------------------------------

  scrollBy(from, dx, dy) {
    const s = scrollerOf(this.doc, from, dx, dy);
    const hit = this.nodeOf(s.node);
    if (!hit) return;
    const now = performance.now();
    let state = this.scrolls.get(hit.id);
    if (!state || now - state.at > 400) state = { x: s.left(), y: s.top() };
    state.x = clamp(state.x + dx, 0, s.maxX());
    state.y = clamp(state.y + dy, 0, s.maxY());
    state.at = now;
    state.s = s;
    this.scrolls.set(hit.id, state);
    s.to(state.x, state.y); // shown at once; the visitor's page follows
    this.scrollPending.set(hit.id, { x: Math.round(state.x), y: Math.round(state.y) });
    this.flushScroll();
  }

  flushScroll() {
    if (this.scrollTimer) return;
    const wait = this.lastScrollSent + 1000 / SCROLL_HZ - performance.now();
    if (wait > 0) {
      this.scrollTimer = setTimeout(() => {
        this.scrollTimer = null;
        this.flushScroll();
      }, wait);
      return;
    }
    if (!this.scrollPending.size) return;
    this.lastScrollSent = performance.now();
    for (const [id, p] of this.scrollPending) this.send({ action: 'scroll', node: id, x: p.x, y: p.y });
    this.scrollPending.clear();
  }

  // ----- echoes of the visitor's page -----------------------------------------------------------

  echo(event) {
    if (!event || event.type != 3 || !event.data) return;
    const d = event.data;
    const now = performance.now();
    if (d.source == SRC_INPUT) {
      if (!this.known) this.known = new Map();
      if (typeof d.text == 'string') this.known.set(d.id, d.text);
      const edit = this.edits.get(d.id);
      if (!edit || now - edit.at > ECHO_WINDOW || !edit.el.isConnected) return;
      const latest = edit.values[edit.values.length - 1];
      if (d.text === latest) return;
      // One of the values the agent already typed past: put the latest back.
      if (edit.values.includes(d.text)) {
        edit.el.value = latest;
        restoreSelection(edit.el, edit.selection);
      }
    } else if (d.source == SRC_SCROLL) {
      const state = this.scrolls.get(d.id);
      if (!state || now - state.at > ECHO_WINDOW) return;
      if (Math.abs(d.y - state.y) > 1 || Math.abs(d.x - state.x) > 1) state.s.to(state.x, state.y);
    }
  }

  // input_refused: undo what the agent typed into a field the page would not take.
  refused(frame) {
    if (frame.action != 'input' && frame.action != 'change') return;
    for (const [id, edit] of this.edits) {
      if (frame.node != null && frame.node != id) continue;
      if (edit.el && edit.el.isConnected && edit.before !== undefined && edit.el.value !== undefined) edit.el.value = edit.before;
      this.edits.delete(id);
    }
  }
}

// The checkbox or radio a click toggles (itself, or through its label).
function toggleOf(el) {
  const input = el.closest('input') || (el.closest('label') && el.closest('label').control);
  if (!input || input.localName != 'input') return null;
  const type = (input.getAttribute('type') || '').toLowerCase();
  return type == 'checkbox' || type == 'radio' ? input : null;
}

function selectionOf(el) {
  try {
    return { start: el.selectionStart, end: el.selectionEnd };
  } catch {
    return null;
  }
}

function restoreSelection(el, sel) {
  if (!sel || sel.start == null) return;
  try {
    el.setSelectionRange(sel.start, sel.end);
  } catch {
    // not a text field
  }
}

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), Math.max(lo, hi));

// The element a wheel over `from` scrolls: the nearest scrollable box in that
// direction, else the page itself.
function scrollerOf(doc, from, dx, dy) {
  const view = doc.defaultView;
  for (let el = from && from.nodeType == 1 ? from : null; el && el !== doc.body && el !== doc.documentElement; el = el.parentElement) {
    const style = view.getComputedStyle(el);
    const canY = dy && /(auto|scroll|overlay)/.test(style.overflowY) && el.scrollHeight > el.clientHeight + 1;
    const canX = dx && /(auto|scroll|overlay)/.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1;
    if (canY || canX) {
      return {
        node: el,
        left: () => el.scrollLeft, top: () => el.scrollTop,
        maxX: () => el.scrollWidth - el.clientWidth, maxY: () => el.scrollHeight - el.clientHeight,
        to: (x, y) => el.scrollTo({ left: x, top: y, behavior: 'instant' }),
      };
    }
  }
  const root = doc.scrollingElement || doc.documentElement;
  return {
    node: doc,
    left: () => view.scrollX, top: () => view.scrollY,
    maxX: () => root.scrollWidth - view.innerWidth, maxY: () => root.scrollHeight - view.innerHeight,
    to: (x, y) => view.scrollTo({ left: x, top: y, behavior: 'instant' }),
  };
}
