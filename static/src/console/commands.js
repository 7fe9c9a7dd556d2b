// Operator commands: send the visitor's tab to a page, or open one in a new tab.
//
//   goto: https://shop.example/cart     (or a path on the visitor's site: goto: /cart)
//   open: https://shop.example/help
//
//   -> command {session, tab, kind: goto|open, url}
//   <- command_result {kind, url, ok, reason}     from the visitor's page
//        reason: popup_blocked (the browser blocked the new tab) | refused | ...
//   <- error {code, message, re: "command"}       the hub refused (e.g. not http(s), another site)
//
// Only http(s) addresses leave the console: any other scheme (script URLs,
// data:, file:...) is refused here, before it is sent.

import { h, fill } from './dom.js';

const PATTERN = /^\s*(goto|open)\s*:?\s+(\S.*)$|^\s*(goto|open)\s*:\s*(\S.*)$/i;

const RESULT_REASONS = {
  popup_blocked: 'The visitor’s browser blocked the new tab. Ask them to allow pop-ups for this site, or use goto: instead.',
  refused: 'The visitor’s page refused to go to that address.',
  not_allowed: 'The visitor’s page refused to go to that address.',
  same_page: 'The visitor is already on that page.',
};

// {kind, url} or {error}.
export function parseCommand(text, base) {
  const m = PATTERN.exec(text || '');
  let kind;
  let target;
  if (m) {
    kind = (m[1] || m[3]).toLowerCase();
    target = (m[2] || m[4]).trim();
  } else if (/^\s*(https?:\/\/|\/)\S*\s*$/i.test(text || '')) {
    kind = 'goto';
    target = text.trim();
  } else {
    return { error: 'Start with goto: or open:, for example “goto: /cart” or “open: https://example.com/help”.' };
  }
  let url;
  try {
    url = base ? new URL(target, base) : new URL(target);
  } catch {
    return { error: `“${target}” is not a web address.` };
  }
  if (url.protocol != 'http:' && url.protocol != 'https:') {
    return { error: 'Only web addresses (http:// or https://) can be opened for the visitor.' };
  }
  return { kind, url: url.href };
}

export class CommandBox {
  // els: {form, input, submit, status, help}
  // ctx: {send(frame) -> bool, session() -> id|null, tab() -> {id, state}|null}
  constructor(els, ctx) {
    this.els = els;
    this.ctx = ctx;
    this.pending = null;
    els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    els.input.addEventListener('input', () => {
      if (els.input.getAttribute('aria-invalid')) {
        els.input.removeAttribute('aria-invalid');
        this.status(null);
      }
    });
  }

  submit() {
    const { input } = this.els;
    const session = this.ctx.session();
    const tab = this.ctx.tab();
    if (!session || !tab) return;
    const parsed = parseCommand(input.value, tab.state && tab.state.url);
    if (parsed.error) {
      input.setAttribute('aria-invalid', 'true');
      this.status('error', parsed.error);
      input.focus();
      return;
    }
    if (!this.ctx.send({ t: 'command', session, tab: tab.id, kind: parsed.kind, url: parsed.url })) {
      this.status('error', 'Not connected: the command was not sent. Try again in a moment.');
      return;
    }
    this.pending = { ...parsed, at: Date.now() };
    input.value = '';
    this.status('pending', parsed.kind == 'open'
      ? `Opening ${parsed.url} in a new tab for the visitor…`
      : `Taking the visitor to ${parsed.url}…`);
  }

  // command_result from the visitor's page.
  onResult(frame) {
    this.pending = null;
    if (frame.ok) {
      this.status('ok', frame.kind == 'open'
        ? `A new tab opened for the visitor: ${frame.url}`
        : `The visitor’s page went to ${frame.url}`);
    } else {
      const reason = RESULT_REASONS[frame.reason] || `The visitor’s page could not do it${frame.reason ? ` (${frame.reason})` : ''}.`;
      this.status('error', reason);
    }
  }

  // An error from the hub about our command.
  onError(frame) {
    this.pending = null;
    this.status('error', frame.message ? `Refused: ${frame.message}` : 'The server refused that command.');
  }

  reset(enabled) {
    this.pending = null;
    this.enabled = enabled;
    this.status(null);
    this.render();
  }

  // Commands need control of the visitor's page (the hub checks it too).
  setControl(on) {
    if (this.control === on) return;
    this.control = on;
    this.render();
  }

  render() {
    const on = Boolean(this.enabled && this.control);
    this.els.input.disabled = !on;
    this.els.submit.disabled = !on;
    if (on) {
      fill(this.els.help, h('b', null, 'goto:'), ' an address, in their tab', h('br'), h('b', null, 'open:'), ' an address, in a new tab');
    } else {
      this.els.help.textContent = 'Available while you have control of the visitor’s page.';
    }
  }

  status(kind, text) {
    const el = this.els.status;
    el.hidden = !kind;
    el.dataset.kind = kind || '';
    el.textContent = text || '';
  }
}
