// "Transfer this chat": to a colleague (chat_transfer {agent}) or back to the
// queue of a department (chat_transfer {department}). The people and
// departments come from GET /api/chat/agents when the server has it; without
// it the dialog asks for a department by name.

import { h, fill } from './dom.js';
import * as chatApi from './chat-api.js';
import { learnDepartments } from './departments.js';

export class TransferDialog {
  // els: {dialog, form, title, toAgent, toDepartment, agent, department, departmentInput, error, submit, cancel}
  // ctx: {me() -> {id}, transfer(conv, {agent} | {department})}
  constructor(els, ctx) {
    this.els = els;
    this.ctx = ctx;
    this.conv = null;
    els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    els.cancel.addEventListener('click', () => els.dialog.close());
    for (const radio of [els.toAgent, els.toDepartment]) radio.addEventListener('change', () => this.mode());
    els.agent.addEventListener('focus', () => this.pick('agent'));
    els.department.addEventListener('focus', () => this.pick('department'));
    els.departmentInput.addEventListener('focus', () => this.pick('department'));
  }

  async open(conv) {
    const els = this.els;
    this.conv = conv;
    this.error(null);
    els.title.textContent = `Transfer the chat with ${conv.visitor || 'the visitor'}`;
    fill(els.agent, h('option', { value: '' }, 'Loading…'));
    fill(els.department);
    els.department.hidden = true;
    els.departmentInput.hidden = false;
    els.departmentInput.value = conv.department || '';
    els.dialog.showModal();
    let targets = null;
    try {
      targets = await chatApi.transferTargets();
      if (targets) learnDepartments(targets.departments);
    } catch (e) {
      this.error(`Could not load your colleagues: ${e.message}`);
    }
    const me = this.ctx.me();
    const agents = ((targets && targets.agents) || []).filter((a) => !me || a.id != me.id);
    if (agents.length) {
      fill(els.agent, agents.map((a) => h('option', { value: String(a.id) },
        `${a.name}${a.role && a.role != 'agent' ? ` (${a.role})` : ''}${a.status ? ` · ${a.status}` : ''}`)));
      els.toAgent.disabled = false;
      els.agent.disabled = false;
    } else {
      fill(els.agent, h('option', { value: '' }, targets ? 'No other agents' : 'Not available on this server'));
      els.toAgent.disabled = true;
      els.agent.disabled = true;
    }
    const departments = (targets && targets.departments) || [];
    if (departments.length) {
      fill(els.department, departments.map((d) => h('option', { value: String(d.id != null ? d.id : d.name) }, d.name || String(d.id))));
      if (conv.department) els.department.value = conv.department;
      els.department.hidden = false;
      els.departmentInput.hidden = true;
    }
    this.pick(agents.length ? 'agent' : 'department');
  }

  pick(mode) {
    if (mode == 'agent' && this.els.toAgent.disabled) return;
    this.els.toAgent.checked = mode == 'agent';
    this.els.toDepartment.checked = mode == 'department';
    this.mode();
  }

  mode() {
    const agent = this.els.toAgent.checked;
    this.els.agent.classList.toggle('is-off', !agent);
    this.els.department.classList.toggle('is-off', agent);
    this.els.departmentInput.classList.toggle('is-off', agent);
  }

  error(text) {
    this.els.error.hidden = !text;
    this.els.error.textContent = text || '';
  }

  submit() {
    const els = this.els;
    if (!this.conv) return;
    let target;
    if (els.toAgent.checked) {
      const id = Number(els.agent.value);
      if (!id) {
        this.error('Choose who takes the chat.');
        return;
      }
      target = { agent: id, name: els.agent.selectedOptions[0] ? els.agent.selectedOptions[0].textContent.replace(/ \(.*$| · .*$/, '') : '' };
    } else {
      const department = (els.department.hidden ? els.departmentInput.value : els.department.value).trim();
      if (!department) {
        this.error('Say which department’s queue the chat goes back to.');
        return;
      }
      target = { department };
    }
    if (this.ctx.transfer(this.conv, target) !== false) els.dialog.close();
  }
}
