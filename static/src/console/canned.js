// Canned replies: the agent's prepared answers.
//
// In the composer, "/" and the start of a reply's name (at the start of the
// message or after a space) lists the matching replies; arrow keys move, Enter
// or Tab inserts the reply's text in place of "/name" (it can still be edited
// before sending), Escape closes the list.
//
// The "Canned replies" dialog lists the replies the agent may use (their own,
// their departments', the site's) and manages them through /api/chat/canned:
// any agent creates, edits and deletes their own; supervisors and admins also
// the department and site ones. The server checks the same rules.

import { h, fill } from './dom.js';
import * as chatApi from './chat-api.js';
import { departmentName, knownDepartments } from './departments.js';

const MAX_SUGGESTIONS = 8;
const FRESH_FOR = 30_000; // ms: older, the list is fetched again when "/" opens it (colleagues add replies)
const SCOPES = {
  agent: 'Only me',
  department: 'A department',
  site: 'Everyone',
};

export class CannedReplies {
  // ctx: {me() -> {id, name, role}, toast(text)}
  constructor(ctx) {
    this.ctx = ctx;
    this.replies = [];
    this.loaded = false;
    this.loading = null;
    this.listeners = new Set();
  }

  load(force) {
    if (this.loading && !force) return this.loading;
    this.loading = chatApi.canned().then((list) => {
      this.replies = list.filter(Boolean).sort((a, b) => a.name.localeCompare(b.name));
      this.loaded = true;
      this.loadedAt = Date.now();
      this.error = null;
      this.changed();
      return this.replies;
    }, (e) => {
      this.error = e.message;
      this.loading = null;
      return this.replies;
    });
    return this.loading;
  }

  changed() {
    for (const fn of this.listeners) fn();
  }

  // Fetched again in the background when older than FRESH_FOR (once at a time).
  refreshIfStale() {
    if (Date.now() - this.loadedAt <= FRESH_FOR) return;
    this.loadedAt = Date.now();
    this.load(true);
  }

  // Replies whose name starts with the query first, then names and texts containing it.
  match(query) {
    const q = query.toLowerCase();
    const starts = [];
    const names = [];
    const texts = [];
    for (const r of this.replies) {
      const name = r.name.toLowerCase();
      if (name.startsWith(q)) starts.push(r);
      else if (name.includes(q)) names.push(r);
      else if (q.length > 1 && r.body.toLowerCase().includes(q)) texts.push(r);
    }
    return starts.concat(names, texts).slice(0, MAX_SUGGESTIONS);
  }

  canManage(scope) {
    const me = this.ctx.me();
    return scope == 'agent' || Boolean(me && me.role && me.role != 'agent');
  }

  canEdit(reply) {
    if (typeof reply.editable == 'boolean') return reply.editable;
    return this.canManage(reply.scope);
  }

  clear() {
    this.replies = [];
    this.loaded = false;
    this.loading = null;
  }
}

// The list under the composer's "/" (a listbox the textarea controls).
export class CannedSuggest {
  // textarea: the composer; pop: the (hidden) listbox element; onChoose(reply, range)
  constructor(textarea, pop, store, onChoose) {
    this.input = textarea;
    this.pop = pop;
    this.store = store;
    this.onChoose = onChoose;
    this.items = [];
    this.active = 0;
    this.range = null;
    pop.id = pop.id || 'canned-suggestions';
    pop.setAttribute('role', 'listbox');
    pop.setAttribute('aria-label', 'Canned replies');
    textarea.setAttribute('aria-autocomplete', 'list');
    textarea.setAttribute('aria-controls', pop.id);
    textarea.setAttribute('aria-expanded', 'false');
    textarea.addEventListener('input', () => this.update());
    textarea.addEventListener('click', () => this.update());
    textarea.addEventListener('blur', () => setTimeout(() => {
      if (document.activeElement !== textarea) this.close();
    }, 150));
    store.listeners.add(() => {
      if (this.isOpen()) this.update();
    });
  }

  isOpen() {
    return !this.pop.hidden;
  }

  // The "/name" being typed just before the caret: {start, end, query} or null.
  token() {
    const { value, selectionStart, selectionEnd } = this.input;
    if (selectionStart !== selectionEnd) return null;
    const before = value.slice(0, selectionStart);
    const m = /(^|\s)\/([^\s/]{0,40})$/.exec(before);
    if (!m) return null;
    return { start: selectionStart - m[2].length - 1, end: selectionStart, query: m[2] };
  }

  update() {
    const token = this.token();
    if (!token) {
      this.close();
      return;
    }
    if (!this.store.loaded) this.store.load();
    else this.store.refreshIfStale();
    this.range = token;
    this.items = this.store.match(token.query);
    this.active = Math.min(this.active, Math.max(0, this.items.length - 1));
    this.render();
  }

  render() {
    const { pop, input } = this;
    const token = this.range;
    if (!this.items.length) {
      const text = !this.store.loaded ? 'Loading canned replies…'
        : this.store.replies.length ? `No canned reply named “/${token.query}”.`
          : 'No canned replies yet: add some with “Canned replies” at the top.';
      fill(pop, h('div', { className: 'canned-empty', role: 'option', 'aria-disabled': 'true', id: `${pop.id}-none` }, text));
    } else {
      fill(pop, this.items.map((r, i) => h('div', {
        className: 'canned-option', role: 'option', id: `${pop.id}-${i}`,
        'aria-selected': String(i == this.active),
        onmousedown: (e) => {
          e.preventDefault(); // keep the focus in the composer
          this.choose(i);
        },
        onmousemove: () => {
          if (this.active != i) {
            this.active = i;
            this.render();
          }
        },
      },
      h('span', { className: 'canned-name' }, `/${r.name}`),
      r.scope != 'agent' ? h('span', { className: 'canned-scope' }, r.scope == 'department' ? departmentName(r.department) || 'department' : 'everyone') : null,
      h('span', { className: 'canned-body' }, r.body))));
    }
    pop.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    const active = this.items.length ? pop.querySelector(`#${CSS.escape(`${pop.id}-${this.active}`)}`) : null;
    if (active) {
      input.setAttribute('aria-activedescendant', active.id);
      active.scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  }

  close() {
    if (this.pop.hidden) return;
    this.pop.hidden = true;
    this.items = [];
    this.active = 0;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  // Composer keydown: true when the list used the key.
  key(e) {
    if (!this.isOpen()) return false;
    if (e.key == 'ArrowDown' || e.key == 'ArrowUp') {
      if (!this.items.length) return false;
      e.preventDefault();
      const step = e.key == 'ArrowDown' ? 1 : -1;
      this.active = (this.active + step + this.items.length) % this.items.length;
      this.render();
      return true;
    }
    if ((e.key == 'Enter' && !e.shiftKey) || e.key == 'Tab') {
      if (!this.items.length) return false;
      e.preventDefault();
      this.choose(this.active);
      return true;
    }
    if (e.key == 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.close();
      return true;
    }
    return false;
  }

  choose(i) {
    const reply = this.items[i];
    const range = this.range;
    this.close();
    if (reply && range) this.onChoose(reply, range);
  }
}

// The "Canned replies" dialog: list, create, edit, delete.
export class CannedManager {
  // els: {dialog, list, form, name, body, scope, department, departmentList, departmentRow, error, title, save, cancel, add, close, status}
  constructor(els, store, ctx) {
    this.els = els;
    this.store = store;
    this.ctx = ctx;
    this.editing = null; // the reply being edited, or 'new'
    els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.save();
    });
    els.cancel.addEventListener('click', () => this.edit(null));
    els.add.addEventListener('click', () => this.edit('new'));
    els.close.addEventListener('click', () => els.dialog.close());
    els.scope.addEventListener('change', () => this.scopeChanged());
    store.listeners.add(() => {
      if (els.dialog.open) this.renderList();
    });
  }

  async open() {
    const { dialog } = this.els;
    this.edit(null);
    this.status('Loading…');
    if (!dialog.open) dialog.showModal();
    await this.store.load(true);
    this.status(this.store.error ? `Could not load the canned replies: ${this.store.error}` : '');
    this.renderList();
    this.els.add.focus();
  }

  status(text) {
    this.els.status.textContent = text || '';
    this.els.status.hidden = !text;
  }

  renderList() {
    const { list } = this.els;
    const groups = new Map();
    for (const r of this.store.replies) {
      const key = r.scope == 'agent' ? 'Yours' : r.scope == 'department' ? `Department: ${departmentName(r.department) || '—'}` : 'Everyone';
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(r);
    }
    if (!this.store.replies.length) {
      fill(list, h('p', { className: 'muted canned-none' }, 'No canned replies yet. Add one, then type / and its name in a chat.'));
      return;
    }
    fill(list, [...groups].map(([title, replies]) => h('section', { className: 'canned-group' },
      h('h3', null, title),
      h('ul', { className: 'canned-list' }, replies.map((r) => h('li', { className: 'canned-row' + (this.editing === r ? ' is-editing' : '') },
        h('div', { className: 'canned-row-text' },
          h('span', { className: 'canned-name' }, `/${r.name}`),
          h('span', { className: 'canned-body' }, r.body)),
        this.store.canEdit(r) ? h('div', { className: 'canned-row-actions' },
          h('button', { type: 'button', className: 'btn btn-quiet btn-sm', onclick: () => this.edit(r), 'aria-label': `Edit /${r.name}` }, 'Edit'),
          h('button', { type: 'button', className: 'btn btn-quiet btn-sm btn-quiet-danger', onclick: (e) => this.remove(r, e.currentTarget), 'aria-label': `Delete /${r.name}` }, 'Delete'))
          : null))))));
  }

  edit(reply) {
    const els = this.els;
    this.editing = reply;
    this.error(null);
    els.form.hidden = !reply;
    els.add.hidden = Boolean(reply);
    if (reply) {
      const fresh = reply == 'new';
      els.title.textContent = fresh ? 'New canned reply' : `Edit /${reply.name}`;
      els.name.value = fresh ? '' : reply.name;
      els.body.value = fresh ? '' : reply.body;
      for (const option of els.scope.options) option.disabled = !this.store.canManage(option.value);
      els.scope.value = fresh ? 'agent' : reply.scope;
      els.scope.disabled = !fresh; // a reply stays where it was made
      els.department.value = fresh ? '' : reply.department || '';
      // The configured departments, offered by id (what the server checks) with their names.
      if (els.departmentList) fill(els.departmentList, knownDepartments().map((d) => h('option', { value: d.id }, d.name)));
      this.scopeChanged();
      els.name.focus();
    }
    this.renderList();
  }

  scopeChanged() {
    this.els.departmentRow.hidden = this.els.scope.value != 'department';
  }

  error(text) {
    this.els.error.hidden = !text;
    this.els.error.textContent = text || '';
  }

  async save() {
    const els = this.els;
    const name = els.name.value.trim().replace(/^\/+/, '');
    const body = els.body.value.trim();
    const scope = els.scope.value;
    if (!name || /\s/.test(name)) {
      this.error('Give the reply a short name without spaces: you type / and the name to use it.');
      els.name.focus();
      return;
    }
    if (!body) {
      this.error('Write the reply’s text.');
      els.body.focus();
      return;
    }
    if (scope == 'department' && !els.department.value.trim()) {
      this.error('Say which department the reply is for.');
      els.department.focus();
      return;
    }
    const reply = { name, body, scope, department: els.department.value.trim() };
    els.save.disabled = true;
    try {
      if (this.editing == 'new') await chatApi.createCanned(reply);
      else await chatApi.updateCanned(this.editing.id, reply);
      await this.store.load(true);
      this.edit(null);
      this.status(`Saved /${name}.`);
    } catch (e) {
      this.error(e.message || 'Could not save the reply.');
    } finally {
      els.save.disabled = false;
    }
  }

  async remove(reply, button) {
    if (button.dataset.confirm != '1') {
      button.dataset.confirm = '1';
      button.textContent = 'Delete for good?';
      return;
    }
    button.disabled = true;
    try {
      await chatApi.deleteCanned(reply.id);
      if (this.editing === reply) this.edit(null);
      await this.store.load(true);
      this.status(`Deleted /${reply.name}.`);
    } catch (e) {
      button.disabled = false;
      this.status(e.message || 'Could not delete the reply.');
    }
  }
}

export { SCOPES };
