// The team view, for supervisors and admins (GET /api/chat/team): every
// agent's status (available, away, offline) and how many chats they hold, and
// the chats going on, waiting or active, each of which can be opened here to
// look in (chat_open: supervisors may open any chat, and write a note or take
// over from there). Refreshed every few seconds while it is open.

import { h, fill, duration } from './dom.js';
import * as chatApi from './chat-api.js';
import { departmentName } from './departments.js';

const REFRESH_EVERY = 5000;
const STATUS_TEXT = { available: 'Available', away: 'Away', offline: 'Offline' };
const STATUS_ORDER = { available: 0, away: 1, offline: 2 };

export class TeamView {
  // els: {open, dialog, close, agents, chats, status, summary}
  // ctx: {lookIn(conversation, visitor)}
  constructor(els, ctx) {
    this.els = els;
    this.ctx = ctx;
    this.timer = null;
    els.open.addEventListener('click', () => this.show());
    els.close.addEventListener('click', () => els.dialog.close());
    els.dialog.addEventListener('close', () => clearInterval(this.timer));
  }

  // Only supervisors and admins have it.
  setRole(role) {
    this.els.open.hidden = !role || role == 'agent';
    if (this.els.open.hidden && this.els.dialog.open) this.els.dialog.close();
  }

  async show() {
    if (!this.els.dialog.open) this.els.dialog.showModal();
    this.status('Loading…');
    await this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_EVERY);
  }

  async refresh() {
    let team;
    try {
      team = await chatApi.team();
    } catch (e) {
      this.status(`Could not load the team: ${e.message}`);
      return;
    }
    this.status('');
    this.render(team);
  }

  status(text) {
    this.els.status.textContent = text || '';
    this.els.status.hidden = !text;
  }

  render({ agents, chats }) {
    const { els } = this;
    const sorted = [...agents].sort((a, b) =>
      (STATUS_ORDER[a.status] ?? 3) - (STATUS_ORDER[b.status] ?? 3) || String(a.name).localeCompare(b.name));
    const available = agents.filter((a) => a.status == 'available').length;
    const waiting = chats.filter((c) => c.status == 'waiting').length;
    els.summary.textContent = `${available} of ${agents.length} available · ${waiting} waiting · ${chats.length - waiting} active`;
    fill(els.agents, sorted.map((a) => h('tr', { 'data-agent': String(a.id) },
      h('th', { scope: 'row' }, a.name, a.role && a.role != 'agent' ? h('span', { className: 'badge badge-role team-role' }, a.role) : null),
      h('td', null, h('span', { className: `team-status is-${a.status}` }, h('span', { className: 'team-dot', 'aria-hidden': 'true' }),
        STATUS_TEXT[a.status] || a.status)),
      h('td', { className: 'team-num' }, String(a.chats || 0)),
      h('td', null, (a.departments || []).length ? a.departments.map(departmentName).join(', ') : 'All'))));
    if (!chats.length) {
      fill(els.chats, h('tr', null, h('td', { colSpan: 5, className: 'muted' }, 'No chats going on.')));
      return;
    }
    const now = Date.now() / 1000;
    fill(els.chats, chats.map((c) => {
      const visitor = c.visitor_name || 'Visitor';
      return h('tr', { 'data-conversation': c.id },
        h('th', { scope: 'row' }, visitor),
        h('td', null, h('span', { className: `badge ${c.status == 'waiting' ? 'badge-wait' : 'badge-live'}` },
          c.status == 'waiting' ? 'Waiting' : 'Active')),
        h('td', null, c.agent || '—'),
        h('td', null, c.department ? departmentName(c.department) : '—'),
        h('td', { className: 'team-num' }, duration(now - (c.created_at || now)),
          h('button', {
            type: 'button', className: 'btn btn-quiet btn-sm team-open',
            'aria-label': `Open the chat with ${visitor}`,
            onclick: () => {
              this.els.dialog.close();
              this.ctx.lookIn(c.id, visitor);
            },
          }, 'Open')));
    }));
  }
}
