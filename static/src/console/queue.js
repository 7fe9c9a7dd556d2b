// The left column: visitors waiting for help (live `queue` frames) and the
// "Join by code" form.

import { h, fill, icon, ICONS, duration, shortUrl } from './dom.js';

const CODE_ERRORS = {
  not_found: 'No visitor is sharing with that code. Check the digits, or ask the visitor for a new code (codes last 10 minutes).',
  rate_limited: 'Too many code attempts. Wait a few minutes, then try again.',
};

export class QueuePanel {
  // els: {list, empty, count, form, input, error, submit}
  // onJoin({session} | {code})
  constructor(els, onJoin) {
    this.els = els;
    this.onJoin = onJoin;
    this.entries = [];
    this.current = null; // the session open in the main pane
    this.received = false;
    this.ticker = setInterval(() => this.tick(), 1000);
    els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submitCode();
    });
    els.input.addEventListener('input', () => {
      const digits = els.input.value.replace(/\D/g, '').slice(0, 6);
      if (digits != els.input.value) els.input.value = digits;
      this.codeError(null);
    });
  }

  submitCode() {
    const code = this.els.input.value.trim();
    if (!/^\d{6}$/.test(code)) {
      this.codeError('Enter the 6 digits the visitor reads out to you.');
      this.els.input.focus();
      return;
    }
    this.codeError(null);
    this.els.submit.disabled = true;
    this.els.submit.textContent = 'Joining…';
    this.onJoin({ code });
  }

  // The hub answered a join by code: ok, or an error code.
  codeResult(error, message) {
    this.els.submit.disabled = false;
    this.els.submit.textContent = 'Join';
    if (!error) {
      this.els.input.value = '';
      return;
    }
    this.codeError(CODE_ERRORS[error] || message || 'That code did not work.');
    this.els.input.focus();
    this.els.input.select();
  }

  codeError(text) {
    const { error, input } = this.els;
    error.hidden = !text;
    error.textContent = text || '';
    if (text) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  setCurrent(sessionId) {
    this.current = sessionId;
    this.render();
  }

  update(sessions) {
    this.received = true;
    // Visitors with a page open first, longest waiting first; those who left after them.
    this.entries = [...sessions].sort((a, b) => (!a.away_since - !b.away_since) * -1 || a.since - b.since);
    this.render();
  }

  render() {
    const { list, empty, count } = this.els;
    const waiting = this.entries.filter((e) => !e.viewers && !e.away_since && !e.chat).length;
    count.textContent = String(this.entries.length);
    count.setAttribute('aria-label', `${this.entries.length} shared sessions, ${waiting} without an agent`);
    empty.hidden = !this.received || this.entries.length > 0;
    // Keep the focused item focused across re-renders.
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest('[data-session]') : null;
    const focusedId = focused && list.contains(focused) ? focused.dataset.session : null;
    fill(list, this.entries.map((entry) => this.item(entry)));
    if (focusedId) {
      const again = list.querySelector(`[data-session="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  item(entry) {
    const name = entry.name || 'Visitor';
    const watched = entry.viewers > 0;
    const open = entry.session == this.current;
    const away = entry.away_since > 0; // no page open: closed, or gone; they may still come back
    const status = away
      ? h('span', { className: 'badge badge-away', title: 'The visitor has no page open. The session ends if they do not come back.' },
        'Left')
      : watched
        ? h('span', { className: 'badge badge-live' }, icon(...ICONS.eye), `${entry.viewers} watching`)
        : entry.chat
          // Shared inside a chat: its agent joins from the chat; others cannot.
          ? h('span', { className: 'badge badge-role', title: 'Shared in a chat. The agent of that chat sees it there.' }, 'In a chat')
          : h('span', { className: 'badge badge-wait' }, 'Waiting');
    const state = away ? `left ${duration(Date.now() / 1000 - entry.away_since)} ago`
      : `${watched ? entry.viewers + ' watching' : entry.chat ? 'in a chat' : 'waiting'} for ${duration(this.waitOf(entry))}`;
    return h('li', { className: 'queue-item' },
      h('button', {
        type: 'button',
        className: 'queue-card' + (open ? ' is-open' : '') + (away ? ' is-away' : ''),
        'data-session': entry.session,
        'aria-current': open ? 'true' : null,
        'aria-label': `${name} on ${entry.site}: ${entry.title || shortUrl(entry.url)}. ` +
          `${state}. Join.`,
        onclick: () => this.onJoin({ session: entry.session }),
      },
      h('span', { className: 'queue-top' },
        h('span', { className: 'avatar avatar-sm', 'aria-hidden': 'true' }, initials(name)),
        h('span', { className: 'queue-name' }, name),
        status),
      h('span', { className: 'queue-title' }, entry.title || 'Untitled page'),
      h('span', { className: 'queue-url' }, icon(...ICONS.globe), h('span', {}, entry.site + shortUrl(entry.url))),
      h('span', { className: 'queue-wait' }, icon(...ICONS.clock),
        h('span', { 'data-wait-since': String(entry.since) }, duration(this.waitOf(entry))))));
  }

  waitOf(entry) {
    return Date.now() / 1000 - entry.since;
  }

  tick() {
    for (const el of this.els.list.querySelectorAll('[data-wait-since]')) {
      el.textContent = duration(Date.now() / 1000 - Number(el.dataset.waitSince));
    }
  }

  clear() {
    this.entries = [];
    this.received = false;
    this.render();
  }
}

export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}
