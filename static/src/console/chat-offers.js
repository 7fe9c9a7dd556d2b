// Incoming chats and the agent's availability.
//
//   -> chat_watch {available}      on every (re)connect, and when the switch changes
//   <- chat_offers {offers}        the whole list this agent may accept (now, and on change)
//   -> chat_accept {conversation}  first agent wins (one conditional update on the server)
//   <- chat_taken {conversation, by}   someone accepted it: gone from every list
//   <- error {code: taken, re: chat_accept}   someone else was first: "Ann took this chat"
//
// New offers are shown without sound: the item is highlighted, the count and
// the page title's badge go up, and screen readers hear "New chat from Ada".
// Away stops those alerts, not the list: an away agent still sees who waits
// (and may accept), so a visitor never waits where nobody can see them.
//
// The chat's parts of the console (this list, the top bar's chat tools) stay
// hidden until the hub answers chat_watch with a list: a hub without chat
// answers error {code: chat_disabled} instead, and the console stays as it was.

import { h, fill, icon, ICONS, duration, shortUrl } from './dom.js';
import { initials } from './queue.js';
import { departmentName } from './departments.js';

const AVAILABLE_KEY = 'cobrowse:chat-available';
const TAKEN_SHOWN = 4000; // ms the "Ann took this chat" line stays
const NEW_FOR = 8000; // ms an offer stays highlighted as new

export class ChatOffers {
  // els: {section, tools, list, empty, count, toggle, toggleText}
  // ctx: {send(frame) -> bool, me() -> {id}, accepting(conversation), acceptFailed(conversation),
  //       enabled(on): the hub has chat (or not), announce(text), toast(text), badge()}
  constructor(els, ctx) {
    this.els = els;
    this.ctx = ctx;
    this.offers = [];
    this.received = false;
    this.known = new Set(); // offers seen before (the rest are new)
    this.fresh = new Map(); // conversation -> time it arrived
    this.accepting = []; // conversations we asked for, oldest first
    this.taken = new Map(); // conversation -> {offer, by, until}: our accept lost
    this.available = localStorage.getItem(AVAILABLE_KEY) != '0';
    this.disabled = false;
    this.enabled = false; // the hub answered chat_watch with a list
    this.ticker = setInterval(() => this.tick(), 1000);
    els.toggle.addEventListener('click', () => this.setAvailable(!this.available));
    this.renderToggle();
    this.render();
  }

  get count() {
    return this.enabled && this.available ? this.offers.length : 0;
  }

  setAvailable(on) {
    this.available = on;
    localStorage.setItem(AVAILABLE_KEY, on ? '1' : '0');
    this.renderToggle();
    this.ctx.send({ t: 'chat_watch', available: on });
    this.render();
    this.ctx.badge();
  }

  renderToggle() {
    const { toggle, toggleText } = this.els;
    toggle.setAttribute('aria-checked', String(this.available));
    toggle.dataset.state = this.available ? 'available' : 'away';
    toggleText.textContent = this.available ? 'Available' : 'Away';
    toggle.title = this.available
      ? 'You are alerted to new chats. Click to go away (on a break: no alerts; chats waiting still show).'
      : 'You are away: no alerts for new chats. Click to be available.';
  }

  // The socket is (again) connected.
  onReady() {
    this.accepting = [];
    this.ctx.send({ t: 'chat_watch', available: this.available });
  }

  handle(frame) {
    if (frame.t == 'chat_offers') {
      if (!this.enabled) this.enable(true);
      this.update(frame.offers || []);
      return true;
    }
    if (frame.t == 'chat_taken') {
      this.onTaken(frame);
      return true;
    }
    if (frame.t == 'error' && frame.re == 'chat_accept') {
      this.onAcceptError(frame);
      return true;
    }
    if (frame.t == 'error' && frame.re == 'chat_watch') {
      if (frame.code == 'chat_disabled') this.disable();
      else this.ctx.toast(frame.message || 'Could not subscribe to incoming chats.');
      return true;
    }
    return false;
  }

  // The hub has chat (on), or has none (off): show or hide what belongs to it.
  enable(on) {
    this.enabled = on;
    this.disabled = !on;
    this.els.section.hidden = !on;
    this.els.tools.hidden = !on;
    this.ctx.enabled(on);
    this.ctx.badge();
  }

  disable() {
    this.enable(false);
  }

  update(offers) {
    this.received = true;
    const now = Date.now();
    const added = [];
    for (const o of offers) {
      if (!this.known.has(o.conversation)) {
        this.known.add(o.conversation);
        if ((this.offers.length || this.seenFirst) && this.available) {
          this.fresh.set(o.conversation, now);
          added.push(o);
        }
      }
    }
    this.seenFirst = true;
    this.offers = [...offers].sort((a, b) => a.since - b.since);
    // Accepts that are no longer on offer and got no answer: the answer comes as chat_state.
    this.render();
    this.ctx.badge();
    if (added.length == 1) this.ctx.announce(`New chat from ${added[0].name || 'a visitor'}.`);
    else if (added.length > 1) this.ctx.announce(`${added.length} new chats.`);
  }

  onTaken(frame) {
    const i = this.offers.findIndex((o) => o.conversation == frame.conversation);
    const offer = i >= 0 ? this.offers[i] : null;
    if (i >= 0) this.offers.splice(i, 1);
    const mine = this.accepting.includes(frame.conversation);
    const me = this.ctx.me();
    const byMe = frame.by && me && frame.by.id == me.id;
    if (mine && !byMe && offer) {
      this.taken.set(frame.conversation, { offer, by: frame.by && frame.by.name, until: Date.now() + TAKEN_SHOWN });
    }
    if (byMe || !mine) this.accepting = this.accepting.filter((c) => c != frame.conversation);
    this.render();
    this.ctx.badge();
  }

  accept(offer) {
    if (this.accepting.includes(offer.conversation)) return;
    if (!this.ctx.send({ t: 'chat_accept', conversation: offer.conversation })) {
      this.ctx.toast('Not connected to the server yet. Try again in a moment.');
      return;
    }
    this.accepting.push(offer.conversation);
    this.ctx.accepting(offer.conversation);
    this.render();
  }

  // The server's answer to our accept, when it was not ours to have.
  onAcceptError(frame) {
    const conversation = this.accepting.shift();
    if (!conversation) {
      this.ctx.toast(frame.message || 'Could not accept the chat.');
      return;
    }
    this.ctx.acceptFailed(conversation);
    const known = this.taken.get(conversation);
    const offer = (known && known.offer) || this.offers.find((o) => o.conversation == conversation);
    this.offers = this.offers.filter((o) => o.conversation != conversation);
    if (frame.code == 'taken' || (known && known.by)) {
      this.taken.set(conversation, { offer, by: known && known.by, until: Date.now() + TAKEN_SHOWN, message: frame.message });
      const who = known && known.by;
      this.ctx.announce(who ? `${who} took this chat.` : 'Another agent took this chat.');
    } else {
      this.ctx.toast(frame.message ? `Could not accept the chat: ${frame.message}` : 'Could not accept the chat.');
    }
    this.render();
    this.ctx.badge();
  }

  // Our accept went through (the conversation's state arrived).
  accepted(conversation) {
    this.accepting = this.accepting.filter((c) => c != conversation);
    this.offers = this.offers.filter((o) => o.conversation != conversation);
    this.render();
    this.ctx.badge();
  }

  render() {
    const { list, empty, count } = this.els;
    const now = Date.now();
    for (const [c, t] of this.taken) if (t.until < now) this.taken.delete(c);
    count.textContent = String(this.offers.length);
    count.classList.toggle('count-hot', this.offers.length > 0 && this.available);
    count.setAttribute('aria-label', `${this.offers.length} chats waiting`);
    const rows = this.offers.map((o) => this.item(o));
    for (const [conversation, t] of this.taken) {
      if (!this.offers.some((o) => o.conversation == conversation)) rows.push(this.takenItem(conversation, t));
    }
    empty.hidden = rows.length > 0 && this.available;
    empty.textContent = this.available ? 'No chats waiting. New chats appear here.'
      : rows.length ? 'You are away: no alerts for new chats. You can still accept one.'
        : 'You are away: no alerts for new chats. Chats waiting still show here.';
    const focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.closest('[data-offer]') : null;
    const focusedId = focused ? focused.dataset.offer : null;
    fill(list, rows);
    if (focusedId) {
      const again = list.querySelector(`[data-offer="${CSS.escape(focusedId)}"] button`);
      if (again) again.focus();
    }
  }

  item(o) {
    const name = o.name || 'Visitor';
    const busy = this.accepting.includes(o.conversation);
    const isNew = this.fresh.has(o.conversation) && Date.now() - this.fresh.get(o.conversation) < NEW_FOR;
    return h('li', { className: 'offer' + (isNew ? ' is-new' : ''), 'data-offer': o.conversation },
      h('div', { className: 'offer-top' },
        h('span', { className: 'avatar avatar-sm', 'aria-hidden': 'true' }, initials(name)),
        h('span', { className: 'offer-name' }, name),
        o.department ? h('span', { className: 'badge badge-role offer-dept' }, departmentName(o.department)) : null,
        isNew ? h('span', { className: 'badge badge-new' }, 'New') : null),
      o.preview ? h('p', { className: 'offer-preview' }, `“${o.preview}”`) : null,
      o.url ? h('span', { className: 'queue-url' }, icon(...ICONS.globe), h('span', { title: o.url }, hostAndPath(o.url))) : null,
      h('div', { className: 'offer-bottom' },
        h('span', { className: 'queue-wait' }, icon(...ICONS.clock),
          h('span', { 'data-offer-since': String(o.since) }, `waiting ${duration(Date.now() / 1000 - o.since)}`)),
        h('button', {
          type: 'button', className: 'btn btn-primary btn-sm', disabled: busy,
          'aria-label': `Accept the chat with ${name}${o.department ? `, ${departmentName(o.department)}` : ''}`,
          onclick: () => this.accept(o),
        }, busy ? 'Accepting…' : 'Accept')));
  }

  takenItem(conversation, t) {
    const name = (t.offer && t.offer.name) || 'Visitor';
    const text = t.by ? `${t.by} took this chat` : 'Another agent took this chat';
    return h('li', { className: 'offer is-taken', 'data-offer': conversation },
      h('div', { className: 'offer-top' },
        h('span', { className: 'avatar avatar-sm', 'aria-hidden': 'true' }, initials(name)),
        h('span', { className: 'offer-name' }, name)),
      h('p', { className: 'offer-taken', role: 'status' }, text));
  }

  tick() {
    for (const el of this.els.list.querySelectorAll('[data-offer-since]')) {
      el.textContent = `waiting ${duration(Date.now() / 1000 - Number(el.dataset.offerSince))}`;
    }
    const now = Date.now();
    let stale = false;
    for (const t of this.taken.values()) if (t.until < now) stale = true;
    for (const [c, at] of this.fresh) {
      if (now - at >= NEW_FOR) {
        this.fresh.delete(c);
        stale = true;
      }
    }
    if (stale) this.render();
  }

  clear() {
    this.offers = [];
    this.known.clear();
    this.fresh.clear();
    this.taken.clear();
    this.accepting = [];
    this.received = false;
    this.seenFirst = false;
    this.enabled = false; // shown again when the next login's chat_watch is answered
    this.els.section.hidden = true;
    this.els.tools.hidden = true;
    this.render();
  }
}

function hostAndPath(url) {
  try {
    const u = new URL(url);
    return u.host + shortUrl(url);
  } catch {
    return url;
  }
}
