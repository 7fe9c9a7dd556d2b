// Consent: the panel section where the visitor agrees to share, in plain words,
// and then sees the code to read to the support agent, who is watching, and a
// button to stop. It only shows what share.js reports ('share:state') and asks
// it to start or stop ('share:start', 'share:stop'); nothing is sent or
// recorded before the "Share this page" click.
//
// In the chat (the panel's class k-c, see chat.js) the section is a strip above
// the messages: "Share my page with the agent" opens the same consent form
// there, and while sharing it shows the code (for phone support) and "Stop
// sharing", so the visitor never leaves the chat.
import { h, icon } from '../lib/dom.js';
import { SCREEN, EYE, LOCK, STOP, INFO, viewingText } from './ui.js';

const ENDED = {
  visitor_stopped: 'You stopped sharing. Support can no longer see your pages.',
  agent_ended: 'The support agent ended the session. They can no longer see your pages.',
  idle_timeout: 'Sharing ended because nothing happened for a while. Support can no longer see your pages.',
  chat_ended: 'The chat ended, so sharing stopped. Support can no longer see your pages.',
  broken: 'Sharing stopped because part of it could not load. Please try again.',
  gone: 'Sharing has ended. Support can no longer see your pages.',
};
const FAILED = {
  unreachable: 'We could not reach our support service. Check your connection and try again.',
  version: 'Sharing is not available on this page right now. Please reload the page and try again.',
  too_many_tabs: 'This tab is not shared: too many of your tabs are open. Close some, then try again.',
};

const pretty = (code) => String(code).replace(/^(\d{3})(\d{3})$/, '$1 $2');
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export function consent(w) {
  let state = { phase: 'idle' };
  let expiryTimer = 0;

  // --- the consent form ---
  const name = h('input', {
    type: 'text',
    id: 'cobrowse-name',
    className: 'in',
    autocomplete: 'name',
    maxLength: 80,
    placeholder: 'e.g. Sam Taylor',
    onkeydown: (e) => e.key == 'Enter' && start(),
  });
  const startLabel = h('span', { textContent: 'Share this page' });
  const startButton = h('button', { type: 'button', className: 'btn pri', onclick: start }, [icon(SCREEN), startLabel]);
  const noteText = h('span');
  const note = h('p', { className: 'note', hidden: true }, [icon(INFO), noteText]);
  const fact = (cls, d, strong, text) =>
    h('li', { className: cls }, [icon(d), h('span', {}, strong ? [h('b', { textContent: strong }), ' ' + text] : [text])]);
  const form = h('div', { className: 'cs' }, [
    h('h3', { textContent: 'Show this page to support' }),
    h('p', {
      className: 'lead',
      textContent: 'A support agent sees what you see on this site while sharing is on, so they can guide you.',
    }),
    h('ul', { className: 'facts' }, [
      fact('ok', EYE, 'Shared:', 'this page and the pages you visit on this site while sharing is on.'),
      fact('no', LOCK, 'Never shared:', 'passwords, card numbers and the fields this site marks as private.'),
      fact('', STOP, '', 'The agent can only look. You can stop sharing at any time.'),
    ]),
    h('label', { className: 'lbl', htmlFor: 'cobrowse-name' }, ['Your name ', h('span', { className: 'opt', textContent: '(optional)' })]),
    name,
    startButton,
  ]);

  // --- while sharing ---
  const code = h('p', { className: 'code' });
  const codeLabel = h('p', { className: 'cb-l', textContent: 'Read this code to the support agent:' });
  const codeExpiry = h('p', { className: 'cb-x' });
  const spinner = h('span', { className: 'spin', 'aria-hidden': 'true' });
  const codeBox = h('div', { className: 'cb' }, [codeLabel, spinner, code, codeExpiry]);
  const statusText = h('span');
  const status = h('p', { className: 'st', role: 'status' }, [h('span', { className: 'dot' }), statusText]);
  const stopLabel = h('span', { textContent: 'Stop sharing' });
  const stopButton = h('button', { type: 'button', className: 'btn stop', onclick: () => w.emit('share:stop') }, [
    icon(STOP),
    stopLabel,
  ]);
  const live = h('div', { className: 'lv', tabIndex: -1, hidden: true }, [codeBox, status, stopButton]);

  const toggle = h('button', {
    type: 'button',
    className: 'shx',
    'aria-expanded': 'false',
    onclick() {
      toggle.setAttribute('aria-expanded', String(sec.classList.toggle('open')));
      sec.scrollTop = 0;
    },
  }, [icon(SCREEN), h('span', { textContent: 'Share my page with the agent' })]);
  const sec = w.section('share', [toggle, note, form, live]);

  function start() {
    if (state.phase != 'idle' && state.phase != 'ended' && state.phase != 'failed') return;
    // A tab turned away from a session that goes on joins it again, not a new one.
    if (state.phase == 'failed' && state.reason == 'too_many_tabs') return w.emit('share:rejoin', { name: name.value });
    w.emit('share:start', { name: name.value });
  }

  function showCode() {
    clearTimeout(expiryTimer);
    const s = state;
    const waiting = s.phase == 'starting' || (s.phase == 'resuming' && !s.code);
    spinner.hidden = !waiting;
    if (waiting) {
      codeLabel.textContent = 'Getting your code\u2026';
      code.hidden = codeExpiry.hidden = true;
      return;
    }
    if (!s.code || (s.viewers && s.viewers.length)) {
      // (an agent has joined: nothing more to read out; back if they all leave)
      codeBox.hidden = true;
      return;
    }
    codeBox.hidden = false;
    const left = s.expires * 1000 - Date.now();
    if (left <= 0) {
      codeLabel.textContent = 'Your code has expired. Our support team can still find you in their list of visitors.';
      code.hidden = codeExpiry.hidden = true;
      return;
    }
    codeLabel.textContent = 'Read this code to the support agent:';
    code.hidden = codeExpiry.hidden = false;
    code.textContent = pretty(s.code);
    code.setAttribute('aria-label', String(s.code).split('').join(' '));
    codeExpiry.textContent = 'Valid until ' + clock(s.expires);
    expiryTimer = setTimeout(showCode, Math.min(left + 50, 60000));
  }

  function render(s) {
    state = s;
    const active = !['idle', 'ended', 'failed'].includes(s.phase);
    form.hidden = active;
    live.hidden = !active;
    toggle.hidden = active;
    if (active) {
      sec.classList.remove('open');
      toggle.setAttribute('aria-expanded', 'false');
    }

    const message = s.phase == 'ended' ? ENDED[s.reason] || ENDED.gone : s.phase == 'failed' ? FAILED[s.reason] || FAILED.unreachable : '';
    note.hidden = !message;
    note.className = 'note' + (s.phase == 'failed' ? ' err' : '');
    noteText.textContent = message;
    note.setAttribute('role', message ? 'status' : 'presentation');
    startLabel.textContent = s.phase == 'idle' ? 'Share this page' : s.phase == 'failed' ? 'Try again' : 'Share again';

    if (active) {
      showCode();
      let text = 'Sharing is on. Waiting for a support agent to join\u2026';
      let cls = 'on';
      if (s.phase == 'starting') (text = 'Starting to share\u2026'), (cls = '');
      else if (s.phase == 'resuming') (text = 'Connecting\u2026'), (cls = '');
      else if (s.phase == 'reconnecting') (text = 'Connection lost. Reconnecting\u2026'), (cls = 'warn');
      else if (s.viewers.length) (text = viewingText(s.viewers)), (cls = 'view');
      status.className = 'st ' + cls;
      statusText.textContent = text;
      stopLabel.textContent = s.phase == 'starting' ? 'Cancel' : 'Stop sharing';
    } else {
      clearTimeout(expiryTimer);
    }
    // The button that had focus may just have been hidden: keep focus in the panel.
    const focused = w.ctx.root.activeElement;
    if (focused && w.panel.contains(focused) && focused.closest('[hidden]')) (active ? live : startButton).focus();
  }

  w.on('share:state', render);
}
