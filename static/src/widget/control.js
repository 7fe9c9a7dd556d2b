// Shared control: an agent may click and type on the visitor's real page, only
// after the visitor allowed it, and the visitor takes it back at any moment.
//
//   <- control_requested {agent, allow_submit, timeout}  a prompt in plain words,
//        with a countdown: [Decline] [Allow]      -> control {granted, allow_submit}
//   <- control_state {controller, allow_submit, reason}  who controls the page now;
//        while someone does: a notice with "Take back control" (Esc does it too)
//                                                  -> control {granted: false}
//   <- input {action, node, value, checked, x, y, key}  applied on the page as
//        real events on the element (rrweb node id -> share.js -> the mirror), so
//        the site's own scripts react; anything refused -> input_refused {action, reason}
//
// View-only by default: input without control is refused (no_control). Never
// into private fields: the recorder's masking predicate (passwords, cc-*
// autocomplete, [data-cobrowse-mask], the site's mask selectors) refuses
// input, change, key and clicks on them (masked). Submitting a form (the
// submit action, Enter in a form field, a click on a submit button, or a
// site script submitting during an agent's event) needs allow_submit
// (submit_not_allowed). Our own UI is never a target (not_found).
//
// It also shows the widget's short notices ('notice' {text, action: {label, href}}),
// for commands.js too.
import { h, icon, adopt, promptFocus, FONT, ACCENT, ACCENT_TEXT } from '../lib/dom.js';
import { maskPredicate, siteSelectors } from './recorder.js';
import { viewerName, INFO, CLOSE } from './ui.js';

const D = document;
const W = window;
const CURSOR = 'M5 3l6 16 2.4-6.6L20 10 5 3z';
const HAND = 'M8 13V5.5a1.5 1.5 0 0 1 3 0V12M11 11.5v-2a1.5 1.5 0 0 1 3 0V12M14 10.5a1.5 1.5 0 0 1 3 0V12M17 11.5a1.5 1.5 0 0 1 3 0V16a6 6 0 0 1-6 6h-2a6 6 0 0 1-5-2.7L4.3 16a1.5 1.5 0 0 1 2.4-1.8L8 16';
const TEXT_TYPES = /^(text|search|email|url|tel|number|date|datetime-local|month|week|time|color|range)$/;
const NOTICE_MS = 6000;

const CSS = [
  [
    '.cq',
    'pointer-events:auto;position:fixed;top:68px;left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'width:400px;max-width:calc(100vw - 24px);padding:18px 18px 16px;border-radius:16px;background:#fff;color:#344054;' +
      'font:400 14px/1.5 ' + FONT + ';text-align:left;outline:0;' +
      'box-shadow:0 0 0 1px rgba(16,24,40,.06),0 20px 50px rgba(16,24,40,.3);animation:cq-in .2s ease-out',
  ],
  ['.cq-h', 'display:flex;align-items:flex-start;gap:12px'],
  ['.cq-i', 'flex:none;display:flex;align-items:center;justify-content:center;width:36px;height:36px;border-radius:10px;background:#fef0c7;color:#b54708'],
  ['.cq-i svg', 'width:20px;height:20px'],
  ['.cq h2', 'margin:0;font-size:16px;font-weight:650;line-height:1.35;color:#101828'],
  ['.cq p', 'margin:4px 0 0'],
  ['.cq ul', 'margin:12px 0 0;padding:0 0 0 18px;font-size:13.5px;color:#475467'],
  ['.cq li', 'margin:3px 0 0'],
  ['.cq li.hi', 'color:#101828;font-weight:600'],
  ['.cq-t', 'height:4px;margin:16px 0 6px;border-radius:4px;background:#eaecf0;overflow:hidden'],
  ['.cq-t i', 'display:block;height:100%;border-radius:4px;background:#f79009;transform-origin:0 50%;animation:cq-left linear forwards'],
  ['.cq-s', 'font-size:12.5px;color:#667085;font-variant-numeric:tabular-nums'],
  ['.cq-b', 'display:flex;gap:10px;margin-top:14px'],
  [
    '.cq-b button',
    'flex:1;height:40px;margin:0;padding:0 14px;border-radius:10px;font:600 14.5px/1 ' + FONT + ';cursor:pointer;' +
      'transition:background .15s,filter .15s',
  ],
  ['.cq-n', 'border:1px solid #d0d5dd;background:#fff;color:#344054'],
  ['.cq-n:hover', 'background:#f9fafb'],
  ['.cq-y', 'border:1px solid transparent;background:' + ACCENT + ';color:' + ACCENT_TEXT],
  ['.cq-y:hover', 'filter:brightness(1.1)'],
  ['.cq-b button:focus-visible', 'outline:3px solid ' + ACCENT + ';outline-offset:2px'],
  [
    '.cn',
    // At the bottom, between the launcher and the small sharing badge: at the top it hid the site's own nav.
    'pointer-events:auto;position:fixed;bottom:calc(24px + var(--cb-b,0px));left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'display:flex;align-items:center;gap:10px;max-width:calc(100vw - 24px);padding:5px 5px 5px 14px;border-radius:999px;' +
      'background:#101828;color:#fff;font:500 14px/1.3 ' + FONT + ';white-space:nowrap;' +
      'box-shadow:0 0 0 2px #f79009,0 10px 30px rgba(16,24,40,.35);animation:cn-up .2s ease-out',
  ],
  ['.cn > svg', 'flex:none;width:18px;height:18px;color:#fdb022'],
  ['.cn-t', 'min-width:0;overflow:hidden;text-overflow:ellipsis'],
  ['.cn kbd', 'flex:none;padding:2px 6px;border-radius:5px;background:rgba(255,255,255,.14);font:600 11.5px/1.3 ' + FONT + ';color:#d0d5dd'],
  [
    '.cn button',
    'flex:none;height:34px;margin:0;padding:0 14px;border:0;border-radius:999px;background:#fff;color:#101828;' +
      'font:600 13.5px/1 ' + FONT + ';cursor:pointer',
  ],
  ['.cn button:hover', 'background:#f2f4f7'],
  ['.cn button:focus-visible', 'outline:2px solid #fdb022;outline-offset:2px'],
  ['.cf', 'position:fixed;top:0;right:0;bottom:0;left:0;box-sizing:border-box;border:3px solid #f79009;pointer-events:none'],
  [
    '.ct',
    'pointer-events:auto;position:fixed;top:64px;left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'display:flex;align-items:center;gap:10px;width:max-content;max-width:calc(100vw - 24px);padding:6px 6px 6px 14px;' +
      'border-radius:12px;background:#101828;color:#fff;font:400 14px/1.4 ' + FONT + ';' +
      'box-shadow:0 10px 30px rgba(16,24,40,.35);animation:cq-drop .2s ease-out',
  ],
  ['.ct.low', 'top:116px'],
  ['.ct > svg', 'flex:none;width:18px;height:18px'],
  ['.ct a', 'flex:none;padding:7px 12px;border-radius:8px;background:#fff;color:#101828;font-weight:600;text-decoration:none'],
  ['.ct a:focus-visible', 'outline:2px solid #fff;outline-offset:2px'],
  ['.ct button', 'display:flex;align-items:center;justify-content:center;flex:none;width:30px;height:30px;margin:0;padding:0;border:0;border-radius:8px;background:transparent;color:inherit;cursor:pointer'],
  ['.ct button svg', 'width:18px;height:18px'],
  ['.ct button:hover', 'background:rgba(255,255,255,.16)'],
  [
    '.cr',
    'position:fixed;top:0;left:0;width:36px;height:36px;margin:-18px 0 0 -18px;box-sizing:border-box;border-radius:50%;' +
      'border:3px solid #f79009;background:rgba(247,144,9,.18);pointer-events:none;animation:cr .55s ease-out forwards',
  ],
  '@keyframes cr{from{transform:scale(.3);opacity:1}to{transform:scale(1.3);opacity:0}}',
  '@keyframes cq-in{from{opacity:0;transform:translate(-50%,-8px)}}',
  '@keyframes cq-drop{from{opacity:0;transform:translate(-50%,-8px)}}',
  '@keyframes cn-up{from{opacity:0;transform:translate(-50%,8px)}}',
  '@keyframes cq-left{to{transform:scaleX(0)}}',
  '@media (max-width:480px){.cq,.cn,.ct{top:auto;bottom:80px;left:8px;right:8px;transform:none;width:auto;max-width:none;animation:none}.cn{white-space:normal;border-radius:18px}.cn kbd{display:none}}',
  '@media (prefers-reduced-motion:reduce){.cq,.cn,.ct,.cr{animation:none}.cr{display:none}}',
];

const proto = (el) => (el instanceof HTMLTextAreaElement ? HTMLTextAreaElement : el instanceof HTMLSelectElement ? HTMLSelectElement : HTMLInputElement).prototype;
// The browser's own setter, under whatever a framework put on the element (React's value tracker).
const setNative = (el, prop, v) => Object.getOwnPropertyDescriptor(proto(el), prop).set.call(el, v);

export function control(w) {
  const { root, host } = w.ctx;
  adopt(root, CSS);
  const isMasked = maskPredicate(siteSelectors(w.ctx.base));

  let controller = null; // the Viewer who controls the page, or null
  let allowSubmit = false;
  let takenBack = false; // the visitor took control back: ignore a grant already on its way
  let asked = null; // the pending control_requested
  let askTimer = 0;
  let applying = false; // an agent's events are being dispatched
  const focus = promptFocus(root, host); // to the prompt when it shows, and back after
  let blockedSubmit = false;

  const send = (m) => w.share.send(m);

  // ----- the prompt ---------------------------------------------------------------

  const askTitle = h('h2', { id: 'cobrowse-control-title' });
  const askList = h('ul');
  const askLeft = h('span', { className: 'cq-s', 'aria-live': 'off' });
  const bar = h('i');
  const allow = h('button', { type: 'button', className: 'cq-y', textContent: 'Allow', onclick: () => answer(true) });
  const decline = h('button', { type: 'button', className: 'cq-n', textContent: 'Decline', onclick: () => answer(false) });
  const prompt = h(
    'div',
    { className: 'cq', role: 'alertdialog', 'aria-labelledby': 'cobrowse-control-title', 'aria-describedby': 'cobrowse-control-desc', tabIndex: -1, hidden: true },
    [
      h('div', { className: 'cq-h' }, [
        h('span', { className: 'cq-i' }, [icon(HAND)]),
        h('div', { id: 'cobrowse-control-desc' }, [askTitle, h('p', { textContent: 'They will be able to click and type for you.' }), askList]),
      ]),
      h('div', { className: 'cq-t', 'aria-hidden': 'true' }, [bar]),
      askLeft,
      h('div', { className: 'cq-b' }, [decline, allow]),
    ],
  );
  prompt.addEventListener('keydown', (e) => {
    if (e.key == 'Escape') {
      e.stopPropagation();
      answer(false);
    }
  });

  // ----- while controlled ---------------------------------------------------------

  const noticeText = h('span');
  const notice = h('div', { className: 'cn', role: 'region', 'aria-label': 'Shared control', hidden: true }, [
    icon(CURSOR),
    h('span', { className: 'cn-t', role: 'status' }, [noticeText]),
    h('kbd', { textContent: 'Esc' }),
    h('button', { type: 'button', textContent: 'Take back control', onclick: () => takeBack() }),
  ]);
  const frame = h('div', { className: 'cf', 'aria-hidden': 'true', hidden: true });

  // ----- short notices ------------------------------------------------------------

  const toastText = h('span');
  const toastAction = h('a', { target: '_blank', rel: 'noopener noreferrer', hidden: true });
  let toastTimer = 0;
  const hideToast = () => {
    clearTimeout(toastTimer);
    toast.hidden = true;
  };
  const toast = h('div', { className: 'ct', role: 'status', hidden: true }, [
    icon(INFO),
    toastText,
    toastAction,
    h('button', { type: 'button', 'aria-label': 'Dismiss', onclick: hideToast }, [icon(CLOSE)]),
  ]);
  toastAction.addEventListener('click', hideToast);

  // {text, action: {label, href}}: href must already be a checked http(s) URL.
  function say(n) {
    toastText.textContent = n.text;
    toastAction.hidden = !n.action;
    if (n.action) {
      toastAction.textContent = n.action.label;
      toastAction.href = n.action.href;
    }
    // Below the notice while someone controls the page.
    toast.classList.toggle('low', !!controller);
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(hideToast, n.action ? 20000 : NOTICE_MS);
  }

  root.append(frame, prompt, notice, toast);

  // ----- asking, answering, taking back ---------------------------------------------

  function ask(m) {
    const who = viewerName(m.agent);
    asked = { who, allowSubmit: m.allow_submit === true };
    const secs = Math.max(5, Math.min(300, Number(m.timeout) || 30));
    const until = Date.now() + secs * 1000;
    askTitle.textContent = who + ' asks to control this page';
    askList.replaceChildren(
      h('li', {
        className: asked.allowSubmit ? 'hi' : '',
        textContent: asked.allowSubmit
          ? 'They can also submit forms for you, for example send a message or place an order.'
          : 'They cannot submit forms: sending, paying and signing in stay with you.',
      }),
      h('li', { textContent: 'They can never see or type in passwords, card numbers or private fields.' }),
      h('li', { textContent: 'Press Esc or \u201cTake back control\u201d at any time to stop it.' }),
    );
    // Restart the countdown bar.
    bar.style.animationName = 'none';
    void bar.offsetWidth;
    bar.style.animationName = '';
    bar.style.animationDuration = secs + 's';
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) return closePrompt(); // the hub times it out too (control_state timeout)
      askLeft.textContent = 'Answer within ' + left + (left == 1 ? ' second' : ' seconds');
      askTimer = setTimeout(tick, ((until - Date.now()) % 1000 || 1000) + 5); // when the count changes
    };
    clearTimeout(askTimer);
    tick();
    hideToast();
    // Focus the dialog itself (not Allow: a stray Enter must not give control away).
    focus.show(prompt);
  }

  function closePrompt() {
    clearTimeout(askTimer);
    focus.hide(prompt);
    asked = null;
  }

  function answer(granted) {
    if (!asked) return;
    const req = asked;
    closePrompt();
    send({ t: 'control', granted, allow_submit: granted && req.allowSubmit });
    if (granted) {
      // The hub confirms with control_state; show it at once meanwhile.
      takenBack = false;
      setController({ name: req.who }, req.allowSubmit, true);
    }
  }

  function takeBack() {
    if (!controller) return;
    takenBack = true;
    send({ t: 'control', granted: false });
    setController(null, false);
    say({ text: 'You have control again. Support can only watch.' });
  }

  function setController(v, submit, named) {
    controller = v;
    allowSubmit = !!(v && submit);
    notice.hidden = frame.hidden = !v;
    if (v) {
      hideToast();
      noticeText.textContent = (named ? v.name : viewerName(v)) + ' is controlling this page' + (allowSubmit ? ' (forms too)' : '');
    }
  }

  function onState(m) {
    if (m.controller) {
      if (takenBack) return; // granted before our "take back" reached the hub
      closePrompt();
      setController(m.controller, m.allow_submit === true);
      return;
    }
    takenBack = false;
    closePrompt();
    const had = controller;
    setController(null, false);
    if (had && m.reason != 'revoked') say({ text: 'Support stopped controlling this page. You are in control.' });
  }

  // Esc from the visitor (a real key press, not an agent's) takes control back at once.
  W.addEventListener(
    'keydown',
    (e) => {
      if (e.key == 'Escape' && e.isTrusted && controller) takeBack();
    },
    true,
  );

  // A site script submitting a form while an agent's events run, without permission.
  W.addEventListener(
    'submit',
    (e) => {
      if (applying && !allowSubmit) {
        e.preventDefault();
        e.stopImmediatePropagation();
        blockedSubmit = true;
      }
    },
    true,
  );

  // ----- applying an agent's input ------------------------------------------------------

  const ours = (el) => el == host || host.contains(el) || el.getRootNode() == root;
  const isField = (el) => el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement;
  const checkable = (el) => el instanceof HTMLInputElement && (el.type == 'checkbox' || el.type == 'radio');
  const submitter = (el) =>
    !!el &&
    !!el.form &&
    ((el instanceof HTMLButtonElement && el.type == 'submit') || (el instanceof HTMLInputElement && (el.type == 'submit' || el.type == 'image')));
  // What a click on el activates (a label activates its field).
  const activates = (el) => {
    const a = el.closest('a[href],button,input,select,textarea,label,summary') || el;
    return a instanceof HTMLLabelElement && a.control ? a.control : a;
  };

  function target(id) {
    let el = id >= 0 ? w.share.node(id) : null;
    if (el && el.nodeType == 3) el = el.parentElement;
    return el && el.nodeType == 1 && el.isConnected && el.ownerDocument == D && !ours(el) ? el : null;
  }

  function fire(el, type, init, Ctor) {
    let ev;
    try {
      ev = new (Ctor || Event)(type, { bubbles: true, cancelable: true, composed: true, ...init });
    } catch (e) {
      ev = new Event(type, { bubbles: true, cancelable: true, composed: true });
    }
    return el.dispatchEvent(ev);
  }

  function ripple(x, y) {
    const r = h('div', { className: 'cr', 'aria-hidden': 'true' });
    r.style.left = Math.round(x) + 'px';
    r.style.top = Math.round(y) + 'px';
    root.append(r);
    setTimeout(() => r.remove(), 700);
  }

  function click(el) {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2;
    const y = r.top + r.height / 2;
    const m = { view: W, clientX: x, clientY: y, screenX: x, screenY: y, button: 0 };
    const p = { ...m, pointerId: 1, pointerType: 'mouse', isPrimary: true };
    const PE = W.PointerEvent || MouseEvent;
    ripple(x, y);
    fire(el, 'pointerdown', { ...p, buttons: 1 }, PE);
    const focusable = fire(el, 'mousedown', { ...m, buttons: 1, detail: 1 }, MouseEvent);
    if (focusable) {
      const f = el.closest('a[href],button,input,select,textarea,[tabindex],[contenteditable=""],[contenteditable=true]');
      if (f && f.focus) f.focus({ preventScroll: true });
    }
    fire(el, 'pointerup', p, PE);
    fire(el, 'mouseup', { ...m, detail: 1 }, MouseEvent);
    // A dispatched click runs the element's activation behaviour: links
    // navigate, checkboxes toggle, submit buttons submit (guarded above).
    fire(el, 'click', { ...m, detail: 1 }, MouseEvent);
  }

  // A rich-text editor (contenteditable): the agent's text replaces its contents as
  // plain text, through the browser's own editing command, so the editor's input
  // handlers and undo history see a normal edit; never as markup.
  function typeIntoEditable(el, m) {
    if (isMasked(el)) return 'masked';
    if (typeof m.value != 'string') return 'bad_value';
    const editor = el.closest('[contenteditable]:not([contenteditable=false])') || el;
    if (D.activeElement != editor) editor.focus({ preventScroll: true });
    const range = D.createRange();
    range.selectNodeContents(el);
    const sel = W.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    let done = false;
    try {
      done = D.execCommand('insertText', false, m.value);
    } catch (e) {
      done = false;
    }
    if (!done) {
      el.textContent = m.value;
      fire(el, 'input', { cancelable: false, inputType: 'insertReplacementText', data: m.value }, W.InputEvent || Event);
    }
    return '';
  }

  function typeInto(el, m) {
    if (!isField(el) && el.isContentEditable) return typeIntoEditable(el, m);
    if (!isField(el)) return 'not_a_field';
    if (el.disabled || el.readOnly) return 'disabled';
    if (isMasked(el)) return 'masked';
    if (checkable(el)) {
      const want = typeof m.checked == 'boolean' ? m.checked : !el.checked;
      if (el.checked == want) return '';
      if (want || el.type == 'checkbox') return click(el), '';
      setNative(el, 'checked', false);
    } else {
      if (el instanceof HTMLInputElement && !TEXT_TYPES.test(el.type)) return 'unsupported';
      if (typeof m.value != 'string') return 'bad_value';
      let v = m.value;
      if (!(el instanceof HTMLSelectElement) && el.maxLength >= 0) v = v.slice(0, el.maxLength);
      if (D.activeElement != el) el.focus({ preventScroll: true });
      setNative(el, 'value', v);
    }
    const ie = W.InputEvent || Event;
    fire(el, 'input', { cancelable: false, inputType: 'insertReplacementText', data: el.value }, ie);
    fire(el, 'change', { cancelable: false });
    return '';
  }

  function press(el, key) {
    const field = isField(el) || el.isContentEditable;
    if (field && isMasked(el)) return 'masked';
    const form = el.form || null;
    // What Enter would do: submit the form (implicit submission) or activate a button/link.
    const submits = key == 'Enter' && form && el instanceof HTMLInputElement && !checkable(el) && el.type != 'button';
    if ((submits || ((key == 'Enter' || key == ' ') && submitter(el))) && !allowSubmit) return 'submit_not_allowed';
    const code = key == ' ' ? 'Space' : /^[a-z]$/i.test(key) ? 'Key' + key.toUpperCase() : /^\d$/.test(key) ? 'Digit' + key : key;
    const init = { key, code, view: W };
    const go = fire(el, 'keydown', init, KeyboardEvent);
    if (go) {
      if (submits) form.requestSubmit ? form.requestSubmit() : form.submit();
      else if ((key == 'Enter' && el.matches('a[href],button')) || (key == ' ' && el.matches('button,input[type=checkbox],input[type=radio]'))) click(el);
      else if (key == 'Tab') moveFocus(el);
    }
    fire(el, 'keyup', init, KeyboardEvent);
    return '';
  }

  function moveFocus(from) {
    const all = [...D.querySelectorAll('a[href],button,input,select,textarea,[tabindex]')].filter(
      (e) => e.tabIndex >= 0 && !e.disabled && e.getClientRects().length && !ours(e),
    );
    const next = all[all.indexOf(from) + 1];
    if (next) next.focus();
  }

  function act(m) {
    const action = m.action;
    if (action == 'scroll') {
      const el = target(m.node);
      const x = Number(m.x) || 0;
      const y = Number(m.y) || 0;
      if (el && el != D.documentElement && el != D.body) el.scrollTo(x, y);
      else W.scrollTo(x, y);
      return '';
    }
    let el = target(m.node);
    if (action == 'key') {
      const key = typeof m.key == 'string' ? m.key.slice(0, 40) : '';
      if (!key) return 'bad_value';
      if (!el && m.node < 0) el = D.activeElement && D.activeElement != D.body && !ours(D.activeElement) ? D.activeElement : D.body;
      return el ? press(el, key) : 'not_found';
    }
    if (!el) return 'not_found';
    if (action == 'click') {
      const a = activates(el);
      if ((isField(a) || a.isContentEditable) && isMasked(a)) return 'masked';
      if (submitter(a) && !allowSubmit) return 'submit_not_allowed';
      click(el);
      return '';
    }
    if (action == 'input' || action == 'change') return typeInto(el, m);
    if (action == 'submit') {
      const form = el instanceof HTMLFormElement ? el : el.form || el.closest('form');
      if (!form) return 'not_found';
      if (!allowSubmit) return 'submit_not_allowed';
      form.requestSubmit ? form.requestSubmit() : form.submit();
      return '';
    }
    return 'unsupported';
  }

  function onInput(m) {
    const action = String(m.action || '').slice(0, 20);
    let reason = controller ? '' : 'no_control';
    if (!reason) {
      applying = true;
      blockedSubmit = false;
      try {
        reason = act(m);
      } catch (e) {
        reason = 'failed';
      } finally {
        applying = false;
      }
      if (!reason && blockedSubmit) reason = 'submit_not_allowed';
    }
    if (!reason) return;
    send({ t: 'input_refused', action, reason });
    if (reason == 'masked') say({ text: 'Blocked: support cannot type in private fields.' });
    else if (reason == 'submit_not_allowed') say({ text: 'Blocked: support is not allowed to submit forms. You can do it yourself.' });
  }

  // ----- session events ---------------------------------------------------------------

  w.on('hub:control_requested', ask);
  w.on('hub:control_state', onState);
  w.on('hub:input', onInput);
  w.on('notice', say);
  w.on('share:state', (s) => {
    if (['idle', 'ended', 'failed'].indexOf(s.phase) < 0) return;
    closePrompt();
    setController(null, false);
    takenBack = false;
  });
}
