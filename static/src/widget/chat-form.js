// The chat's forms: the pre-chat form (name, email, department and the site's
// own questions from chat/config `fields`: text, textarea, select) and "Leave a
// message" when nobody is available (the same, plus the message). Required
// answers and e-mail addresses are checked here, each error under its field,
// tied to it (aria-invalid, aria-describedby), focus on the first one.
import { h } from '../lib/dom.js';

const MAX_FIELD = 500; // protocol.py MAX_FIELD
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

// chatForm(cfg, {offline, title, lead, submit, onSubmit(values), onBack, prefill})
export function chatForm(cfg, o) {
  const p = 'cobrowse-' + (o.offline ? 'o' : 'p') + '-';
  const checks = [];
  const kids = [h('h3', { textContent: o.title }), h('p', { className: 'lead', textContent: o.lead })];

  function field(key, label, type, required, extra) {
    const id = p + key;
    const err = h('p', { className: 'kfe', id: id + '-e', hidden: true });
    const tag = type == 'select' || type == 'textarea' ? type : 'input';
    const el = h(tag, { id, name: key, className: 'in' + (tag == 'textarea' ? ' kta' : ''), required, ...extra });
    if (tag == 'input') el.type = type;
    if (tag != 'select') el.maxLength = key == 'text' ? 4000 : MAX_FIELD;
    const fail = (text) => {
      err.textContent = text;
      err.hidden = !text;
      el.setAttribute('aria-invalid', String(!!text));
      if (text) el.setAttribute('aria-describedby', err.id);
      else el.removeAttribute('aria-describedby');
      return !text;
    };
    el.addEventListener('input', () => err.hidden || fail(''));
    checks.push({ key, el, check: () => {
      const v = el.value.trim();
      if (required && !v) return fail(type == 'select' ? 'Choose an answer for \u201c' + label + '\u201d.' : 'Please fill in \u201c' + label + '\u201d.');
      if (type == 'email' && v && !EMAIL.test(v)) return fail('Enter an email address like name@example.com.');
      return fail('');
    } });
    kids.push(
      h('label', { className: 'lbl', htmlFor: id }, [label + ' ', h('span', { className: 'opt', textContent: required ? '(required)' : '(optional)' })]),
      el,
      err,
    );
    return el;
  }

  const pre = o.prefill || {};
  field('name', 'Your name', 'text', true, { autocomplete: 'name', value: pre.name || '' });
  field('email', 'Email', 'email', !!o.offline, { autocomplete: 'email', value: pre.email || '' });
  const deps = cfg.departments || [];
  if (deps.length > 1) {
    const sel = field('department', 'Department', 'select', true);
    sel.append(h('option', { value: '', textContent: 'Choose\u2026' }));
    for (const d of deps)
      sel.append(h('option', { value: d.id, textContent: d.name + (!o.offline && d.available === false ? ' (no one available)' : '') }));
    sel.value = pre.department || '';
  }
  // (The site's questions belong to the pre-chat form: a message left offline has them only when it is on.)
  for (const f of (!o.offline || cfg.prechat) && cfg.fields ? cfg.fields : []) {
    if (!f || !f.name) continue;
    const el = field('f-' + f.name, f.label || f.name, f.type == 'textarea' || f.type == 'select' ? f.type : 'text', !!f.required);
    if (f.type == 'select') {
      el.append(h('option', { value: '', textContent: 'Choose\u2026' }));
      for (const opt of f.options || []) el.append(h('option', { value: opt, textContent: opt }));
    }
    if (pre.fields && pre.fields[f.name]) el.value = pre.fields[f.name];
  }
  if (o.offline) field('text', 'Your message', 'textarea', true, { rows: 4, value: pre.text || '' });

  const error = h('p', { className: 'ke', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', className: 'btn go', textContent: o.submit });
  kids.push(error, submit);
  if (o.onBack) kids.push(h('button', { type: 'button', className: 'kn', textContent: 'Back', onclick: o.onBack }));

  const form = h('form', {
    className: 'kfm',
    noValidate: true,
    onsubmit(e) {
      e.preventDefault();
      const bad = checks.filter((c) => !c.check());
      if (bad.length) return bad[0].el.focus();
      const v = { fields: {} };
      for (const c of checks) {
        const val = c.el.value.trim();
        if (c.key.startsWith('f-')) {
          if (val) v.fields[c.key.slice(2)] = val;
        } else v[c.key] = val;
      }
      if (!v.department && deps.length == 1) v.department = deps[0].id;
      o.onSubmit(v);
    },
  }, kids);
  return {
    el: form,
    focus: () => checks[0].el.focus(),
    // A problem with the whole form (from the hub), or '' to clear it.
    error(text) {
      error.textContent = text;
      error.hidden = !text;
    },
    busy(on) {
      submit.disabled = on;
    },
  };
}
