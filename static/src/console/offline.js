// "Messages left while nobody was available": the offline messages visitors
// left through the widget (GET /api/chat/offline?state=open|resolved), each
// opened in full and marked resolved (POST /api/chat/offline/<id>/resolve).
// The count of open ones shows on the top bar's button: refreshed when the hub
// says a visitor left one (offline_left), and every minute besides.

import { h, fill, duration } from './dom.js';
import { linkify } from '../lib/linkify.js';
import * as chatApi from './chat-api.js';
import { departmentName } from './departments.js';

const REFRESH_EVERY = 60_000;

function when(m) {
  const raw = m.at != null ? m.at : m.created_at != null ? m.created_at : m.created;
  if (raw == null) return null;
  const t = typeof raw == 'number' ? raw * 1000 : Date.parse(raw);
  return Number.isFinite(t) ? t : null;
}

export class OfflineMessages {
  // els: {open, count, dialog, list, detail, close, tabs: {open, resolved}, status}
  constructor(els, ctx) {
    this.els = els;
    this.ctx = ctx;
    this.items = [];
    this.state = 'open';
    this.selected = null;
    this.timer = null;
    els.open.addEventListener('click', () => this.show());
    els.close.addEventListener('click', () => els.dialog.close());
    for (const [state, button] of Object.entries(els.tabs)) {
      button.addEventListener('click', () => this.switchTo(state));
    }
  }

  start() {
    this.refreshCount();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refreshCount(), REFRESH_EVERY);
  }

  stop() {
    clearInterval(this.timer);
    this.items = [];
    this.setCount(0);
    if (this.els.dialog.open) this.els.dialog.close();
  }

  async refreshCount() {
    try {
      const open = await chatApi.offline('open');
      this.setCount(open.length);
      if (this.state == 'open' && this.els.dialog.open) {
        this.items = open;
        this.render();
      }
    } catch {
      // the count stays as it was; the dialog says what went wrong when opened
    }
  }

  setCount(n) {
    const { count, open } = this.els;
    count.textContent = String(n);
    count.hidden = !n;
    open.setAttribute('aria-label', n ? `Offline messages: ${n} open` : 'Offline messages');
  }

  async show() {
    if (!this.els.dialog.open) this.els.dialog.showModal();
    await this.switchTo(this.state);
  }

  async switchTo(state) {
    this.state = state;
    for (const [name, button] of Object.entries(this.els.tabs)) button.setAttribute('aria-selected', String(name == state));
    this.status('Loading…');
    try {
      this.items = await chatApi.offline(state);
      this.status('');
      if (state == 'open') this.setCount(this.items.length);
    } catch (e) {
      this.items = [];
      this.status(`Could not load the messages: ${e.message}`);
    }
    if (this.selected && !this.items.some((m) => m.id == this.selected)) this.selected = null;
    if (!this.selected && this.items.length) this.selected = this.items[0].id;
    this.render();
  }

  status(text) {
    this.els.status.textContent = text || '';
    this.els.status.hidden = !text;
  }

  render() {
    const { list } = this.els;
    if (!this.items.length) {
      fill(list, h('li', { className: 'offline-none muted' },
        this.state == 'open' ? 'No open messages. Messages visitors leave while nobody is available appear here.' : 'No resolved messages.'));
      this.renderDetail(null);
      return;
    }
    fill(list, this.items.map((m) => {
      const t = when(m);
      return h('li', null, h('button', {
        type: 'button', className: 'offline-item' + (m.id == this.selected ? ' is-open' : ''),
        'aria-current': m.id == this.selected ? 'true' : null,
        onclick: () => {
          this.selected = m.id;
          this.render();
          this.els.detail.focus();
        },
      },
      h('span', { className: 'offline-top' },
        h('span', { className: 'offline-name' }, m.name || m.email || 'Visitor'),
        t ? h('span', { className: 'offline-when' }, `${duration((Date.now() - t) / 1000)} ago`) : null),
      m.department ? h('span', { className: 'badge badge-role' }, departmentName(m.department)) : null,
      h('span', { className: 'offline-preview' }, m.text || '')));
    }));
    this.renderDetail(this.items.find((m) => m.id == this.selected) || null);
  }

  renderDetail(m) {
    const { detail } = this.els;
    if (!m) {
      fill(detail, h('p', { className: 'muted' }, 'Select a message to read it.'));
      return;
    }
    const t = when(m);
    const facts = [];
    const fact = (label, value) => {
      if (value) facts.push(h('dt', null, label), h('dd', null, value));
    };
    fact('Name', m.name);
    fact('Email', m.email ? h('a', { href: `mailto:${m.email}` }, m.email) : '');
    fact('Department', departmentName(m.department));
    fact('Page', m.url ? linkify(m.url) : '');
    fact('Left', t ? new Date(t).toLocaleString() : '');
    const fields = m.fields && typeof m.fields == 'object' ? Object.entries(m.fields) : [];
    for (const [k, v] of fields) fact(k, String(v));
    const resolved = m.resolved_at || m.resolved || this.state == 'resolved';
    fill(detail,
      h('h3', { className: 'offline-title' }, m.name || m.email || 'Visitor'),
      h('dl', { className: 'facts' }, facts),
      h('div', { className: 'offline-text' }, linkify(m.text || '')),
      h('div', { className: 'offline-actions' },
        m.email ? h('a', { className: 'btn btn-secondary', href: `mailto:${m.email}` }, 'Reply by email') : null,
        resolved
          ? h('span', { className: 'badge badge-live' }, 'Resolved')
          : h('button', { type: 'button', className: 'btn btn-primary', onclick: (e) => this.resolve(m, e.currentTarget) }, 'Mark resolved')));
  }

  async resolve(m, button) {
    button.disabled = true;
    button.textContent = 'Resolving…';
    try {
      await chatApi.resolveOffline(m.id);
      this.items = this.items.filter((x) => x.id != m.id);
      if (this.state == 'open') this.setCount(this.items.length);
      this.selected = this.items.length ? this.items[0].id : null;
      this.render();
      this.ctx.announce('Marked resolved.');
    } catch (e) {
      button.disabled = false;
      button.textContent = 'Mark resolved';
      this.status(`Could not mark it resolved: ${e.message}`);
    }
  }
}
