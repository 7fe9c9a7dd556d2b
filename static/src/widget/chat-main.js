// Chat: the visitor's conversation with support, in the panel (docs/chat.md,
// the "chat" frames of cobrowse/sync/protocol.py). Nothing is sent before the
// visitor acts: the socket (socket.js) is held from their first message (or the
// pre-chat form, or "Leave a message") until the chat ends, and on page loads
// while a conversation is open.
//
//   chat_start {key, name, email, department, fields, url, title, tz}  (tz: their clock, for the transcript)
//     <- chat_started {conversation, token, key}   stored in localStorage cobrowse:chat
//   chat_resume {token, after}   on every (re)connect: after = highest seq held
//     <- chat_state {status: waiting|active|ended, agents, survey}
//     <- chat_history {messages, more}   merged by seq (more: chat_sync {after})
//   chat_send {id, text}   id: crypto-random client id; the message waits in the
//     <- chat_ack {id, seq, at}   outbox (sessionStorage) until acked, and is
//                                 sent again after a reconnect or a page load
//                                 (the hub acks a known id again, storing it once;
//                                 our own message back in chat_msg/chat_history,
//                                 which the hub sends only once it is stored,
//                                 counts as its ack)
//   <- chat_msg {m}   a message of the conversation (dropped if its seq is held)
//   chat_typing {on} / <- chat_typing {on, who}
//   chat_seen {delivered, read} / <- chat_seen {by: agent, delivered, read}
//   chat_end, chat_survey {rating, comment}, leave_message -> <- offline_stored {key}
//   <- error {code, message, re}   shown in plain words near the input
//
// Messages are not cached in the browser: a new page (or tab) asks for the
// whole conversation (chat_resume after=0). The database is the truth, every
// tab gets the same list, and no copy of the conversation lingers in storage;
// the panel is closed on a page load, so the round trip is not seen.
//
// Installed by the widget's chat.js when the visitor starts a chat or leaves a
// message, or when a page loads during a conversation. chat.js keeps the start
// ("Chat with us", chat/config) and the panel's looks; this module does the rest:
// forms (chat-form.js), the conversation, files (chat-files.js), emoji, survey.
import { h, icon, adopt } from '../lib/dom.js';
import { linkify } from '../lib/linkify.js';
import { renderRich } from '../lib/rich.js';
import { storedChat, saveChat, storedOutbox, saveOutbox, randomId } from './store.js';
import { chatForm } from './chat-form.js';
import { fileProblem, fileSize, upload, download } from './chat-files.js';
import { emojiPicker } from './emoji.js';
import { CHAT_CSS } from './chat-styles.js';

const SEND = 'M4 12 20 4l-4 16-4-7-8-1zM12 13l8-9';
const CLIP = 'M20 11.5 12 19.5a5 5 0 0 1-7-7l8.5-8.5a3.3 3.3 0 0 1 4.7 4.7L9.7 17.2a1.7 1.7 0 0 1-2.4-2.4L15 7';
const SAVE = 'M12 4v11M7 10l5 5 5-5M5 20h14';
const FILE = 'M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5M12 11v6M9 14l3 3 3-3';
const MAX_TEXT = 4000; // protocol.py MAX_CHAT_TEXT
const TYPING_EVERY = 2000; // chat_typing {on: true} at most this often while typing
const TYPING_IDLE = 5000; // then {on: false} after this long without a keystroke
const TYPING_SHOWN = 7000; // an agent's "is typing" fades if not renewed
const RESEND_MS = 8000; // an unacked message is sent again after this long

const ERRORS = {
  rate_limited: 'You are sending messages very quickly. We will send them in a moment.',
  too_large: 'That message is too long to send.',
  bad_frame: 'That could not be sent. Please try again.',
  no_conversation: 'The chat is not connected yet. Please try again in a moment.',
  ended: 'This chat has ended, so your message was not sent.',
  forbidden: 'That is not allowed in this chat.',
  server_error: 'Our support service had a problem. Please try again.',
  chat_disabled: 'Chat is not available here right now.',
};

const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
const names = (list) => list.map((a) => a.name || 'Support').join(' and ');

// install(w, ui) -> {begin(), resume()}; ui is chat.js's {cfg(), loadConfig(force),
// showHome(note, focus), setView(name, el, focus), view()}.
export function install(w, ui) {
  const { ctx } = w;
  const base = ctx.base;
  const { showHome, loadConfig, setView } = ui;
  adopt(ctx.root, CHAT_CSS);

  let cfg = ui.cfg() || {}; // chat/config
  let conv = null; // {conversation, token, read}
  let status = ''; // '' | starting | resuming | waiting | active | ended
  let agents = [];
  let staffed = true; // while waiting: is anyone taking chats now (chat_state.available)
  let survey = false;
  let down = false; // the socket dropped and is reconnecting
  let start = null; // our chat_start until chat_started
  let offline = null; // our leave_message until offline_stored
  let outbox = []; // [{id, text, at, sent}] not acknowledged
  let held = false;
  let maxSeq = 0;
  let seenSent = [0, 0]; // delivered, read we told the hub
  let agentSeen = [0, 0]; // delivered, read the agent told us
  let unread = 0;
  let lastAgent = '';
  let typingOn = false;
  let typingAt = 0;
  let typingTimer = 0;
  let theirTypingTimer = 0;
  let seenTimer = 0;
  const bySeq = new Map(); // seq -> row
  const pending = new Map(); // client id -> row (outbox, uploads)
  const mine = []; // [row] acked own messages (status updates)

  const send = (m) => w.hub.send(m);
  const hold = () => held || ((held = true), w.hub.hold('chat'));
  const release = () => held && ((held = false), w.hub.release('chat'));
  const opened = () => !w.panel.hidden;
  const view = () => ui.view();

  // ----- the launcher's unread badge (and a word for screen readers) -----------

  const badge = h('span', { className: 'kub', 'aria-hidden': 'true', hidden: true });
  const said = h('span', { className: 'sr', id: 'cobrowse-unread', role: 'status' });
  ctx.button.append(badge);
  ctx.root.append(said);
  function showUnread() {
    badge.hidden = !unread;
    badge.textContent = unread > 9 ? '9+' : unread;
    said.textContent = unread ? unread + (unread > 1 ? ' new messages' : ' new message') + (lastAgent ? ' from ' + lastAgent : '') : '';
    if (unread) ctx.button.setAttribute('aria-describedby', said.id);
    else ctx.button.removeAttribute('aria-describedby');
  }

  // ----- the start (the card is chat.js's) -------------------------------------

  // The name the visitor may have typed to share their page (consent.js): not asked twice.
  function typedName() {
    const input = w.ctx.root.getElementById('cobrowse-name');
    const name = input ? input.value.trim() : '';
    return name ? { name } : null;
  }

  function begin() {
    cfg = ui.cfg() || {};
    if (cfg.available === false) return leaveMessage(typedName());
    if (!cfg.prechat) return chatView(true);
    const form = chatForm(cfg, {
      title: 'Before we start',
      lead: 'Tell us a little about you, so we can help you faster.',
      submit: 'Start chat',
      prefill: form0 || typedName(),
      onBack: () => showHome(),
      onSubmit(v) {
        form0 = v;
        const dep = (cfg.departments || []).find((d) => d.id == v.department);
        if (dep && dep.available === false && cfg.offline !== false) return leaveMessage(v);
        startChat(v);
      },
    });
    setView('form', form.el, form.focus);
  }
  let form0 = null;

  function startChat(v) {
    start = { t: 'chat_start', key: randomId(), url: location.href, title: document.title, tz: Intl.DateTimeFormat().resolvedOptions().timeZone };
    if (v) Object.assign(start, { name: v.name, email: v.email, department: v.department || '', fields: v.fields });
    else Object.assign(start, typedName());
    status = 'starting';
    hold();
    send(start);
    chatView(true);
  }

  // ----- leave a message --------------------------------------------------------

  let offlineForm = null;
  function leaveMessage(prefill, back) {
    offlineForm = chatForm(cfg, {
      offline: true,
      title: 'Leave a message',
      lead: 'No one is available to chat right now. Leave a message and we will reply by email.',
      submit: 'Send message',
      prefill,
      onBack: back || (() => showHome()),
      onSubmit(v) {
        offline = { t: 'leave_message', key: randomId(), name: v.name, email: v.email, department: v.department || '', text: v.text, fields: v.fields };
        offlineForm.error('');
        offlineForm.busy(true);
        hold();
        send(offline);
      },
    });
    setView('form', offlineForm.el, offlineForm.focus);
  }

  function offlineStored(m) {
    if (!offline || m.key != offline.key) return;
    const who = offline.name;
    offline = null;
    if (conv) reset(); // left instead of waiting on: the hub ended that chat
    else if (!start) release();
    const back = h('button', { type: 'button', className: 'btn go', textContent: 'Done', onclick: () => showHome() });
    setView('form', h('div', { className: 'kh' }, [
      h('h3', { textContent: 'Message sent', tabIndex: -1 }),
      h('p', { className: 'lead', textContent: 'Thank you' + (who ? ', ' + who : '') + '. We have your message and will reply by email.' }),
      back,
    ]), () => back.focus());
  }

  // ----- the conversation ---------------------------------------------------------

  const stText = h('span');
  const stSpin = h('span', { className: 'spin', 'aria-hidden': 'true' });
  const statusLine = h('p', { className: 'ks', role: 'status' }, [stSpin, stText]);
  const hint = h('p', { className: 'kw', textContent: 'Send a message to start. A member of our support team will answer here.' });
  const log = h('div', { className: 'kl', role: 'log', 'aria-label': 'Messages', tabIndex: 0 });
  const typing = h('p', { className: 'ky', hidden: true });
  const error = h('p', { className: 'ke', role: 'alert', hidden: true });
  const input = h('textarea', {
    className: 'ki',
    rows: 1,
    maxLength: MAX_TEXT,
    placeholder: 'Write a message\u2026',
    'aria-label': 'Your message',
    onkeydown(e) {
      if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        sendText();
      }
    },
    oninput: typed,
  });
  const emoji = emojiPicker(input);
  const picker = h('input', { type: 'file', hidden: true, onchange: attachFile });
  const attach = h('button', { type: 'button', className: 'kx', 'aria-label': 'Send a file', onclick: () => picker.click() }, [icon(CLIP)]);
  const tb = (text, onclick) => h('button', { type: 'button', className: 'kn', textContent: text, onclick });
  const transcript = tb('Download transcript', saveTranscript);
  const endButton = tb('End chat', () => confirmEnd(true));
  const tools = h('div', { className: 'ktl' }, [
    emoji.button,
    attach,
    picker,
    h('button', { type: 'button', className: 'kx', 'aria-label': 'Download the transcript', onclick: saveTranscript }, [icon(SAVE)]),
    h('span', { className: 'kg' }),
    endButton,
  ]);
  const confirm = h('div', { className: 'ktl kc', role: 'group', 'aria-label': 'End the chat', hidden: true }, [
    h('span', { textContent: 'End this chat?' }),
    h('span', { className: 'kg' }),
    tb('Keep chatting', () => confirmEnd(false)),
    h('button', { type: 'button', className: 'btn kend', textContent: 'End chat', onclick: endChat }),
  ]);
  const composer = h('div', { className: 'kp' }, [
    emoji.grid,
    h('div', { className: 'kr' }, [input, h('button', { type: 'button', className: 'kx ksd', 'aria-label': 'Send', onclick: sendText }, [icon(SEND)])]),
    tools,
    confirm,
  ]);
  const endBox = h('div', { className: 'kd', hidden: true });
  // Nobody takes chats now: what the visitor wrote so far can go as a message instead.
  const instead = tb('Leave a message instead', () =>
    leaveMessage({ ...(form0 || typedName()), text: [...log.querySelectorAll('.me .kb')].map((e) => e.textContent).join('\n') }, () => chatView(true)));
  const convEl = h('div', { className: 'kv' }, [statusLine, instead, hint, log, typing, error, composer, endBox]);

  function chatView(focus) {
    renderStatus();
    setView('chat', convEl, focus && (() => input.focus()));
  }

  function renderStatus() {
    let text = '';
    if (down && held) text = 'Connection lost. Reconnecting\u2026';
    else if (status == 'starting' || status == 'resuming') text = 'Connecting you to support\u2026';
    else if (status == 'waiting' && !staffed) text = 'No one is available right now. You can wait' + (cfg.offline !== false ? ', or leave a message and we will reply by email.' : ' or come back later.');
    else if (status == 'waiting') text = 'Waiting for an agent\u2026 You can write your question meanwhile.';
    else if (status == 'active') text = agents.length ? 'You are chatting with ' + names(agents) + '.' : 'You are chatting with support.';
    stText.textContent = text;
    stSpin.hidden = !(status == 'waiting' || status == 'starting' || status == 'resuming' || (down && held));
    statusLine.className = 'ks ' + status;
    statusLine.hidden = !text;
    instead.hidden = !(status == 'waiting' && !staffed && cfg.offline !== false) || (down && held);
    hint.hidden = !!(bySeq.size || pending.size || status);
    const ended = status == 'ended';
    composer.hidden = ended;
    w.panel.classList.toggle('k-e', ended); // (styles.js: no "Share my page with the agent" then)
    endButton.hidden = tools.children[3].hidden = !conv;
    if (ended && endBox.hidden) {
      endBox.hidden = false;
      showEnded();
    }
    endBox.hidden = !ended;
  }

  // ----- messages -------------------------------------------------------------------

  function row(m, sending) {
    const me = m.sender == 'visitor';
    const kind = m.kind || 'text';
    if (kind == 'event' || kind == 'command' || (m.sender == 'system' && kind != 'system'))
      return h('div', { className: 'km ev' }, [linkify(m.text || ''), h('span', { className: 'kt', textContent: ' \u00b7 ' + clock(m.at) })]);
    if (kind == 'system') return h('div', { className: 'km sy' }, [h('div', { className: 'kb' }, [renderRich(m.rich) || linkify(m.text || '')])]);
    const f = m.file;
    const body = f
      ? h('button', { type: 'button', className: 'kf', disabled: !f.id, 'aria-label': 'Download ' + f.name + ', ' + fileSize(f.size), onclick: () => save(base + 'chat/files/' + encodeURIComponent(f.id), f.name) }, [
          icon(FILE),
          h('span', { textContent: f.name }),
          h('small', { textContent: fileSize(f.size) }),
        ])
      : linkify(m.text || '');
    const st = h('span', { className: 'kst' });
    const el = h('div', { className: 'km ' + (me ? 'me' : 'ag') }, [
      h('div', { className: 'kb' }, [body]),
      h('div', { className: 'kt' }, [(me ? '' : (m.name || 'Support') + ' \u00b7 ') + clock(m.at), st]),
    ]);
    el.st = st;
    el.seq = sending ? Infinity : m.seq;
    if (me) st.textContent = sending ? ' \u00b7 ' + sending : '';
    return el;
  }

  function place(el) {
    let after = log.lastChild;
    while (after && after.seq > el.seq) after = after.previousSibling;
    log.insertBefore(el, after ? after.nextSibling : log.firstChild);
  }

  // A message from the hub (history, chat_msg, an ack, an upload's answer).
  function add(m) {
    if (!m || typeof m.seq != 'number' || m.kind == 'note' || bySeq.has(m.seq)) return;
    const p = pending.get(m.id);
    if (p) {
      p.remove();
      pending.delete(m.id);
      dropOutbox(m.id);
    }
    const el = row(m);
    bySeq.set(m.seq, el);
    place(el);
    if (m.sender == 'visitor') {
      mine.push(el);
      markStatus(el);
    }
    maxSeq = Math.max(maxSeq, m.seq);
    if (m.sender == 'agent') {
      hideTyping();
      if (conv && m.seq > (conv.read || 0)) {
        unread++;
        lastAgent = m.name || '';
      }
    }
  }

  function markStatus(el) {
    const [d, r] = agentSeen;
    el.st.textContent = ' \u00b7 ' + (el.seq <= r ? '\u2713\u2713 Read' : el.seq <= d ? '\u2713\u2713 Delivered' : '\u2713 Sent');
  }

  // After new messages: scroll, tell the hub what arrived and what was seen, badge.
  function arrived() {
    const nearEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    renderStatus();
    if (nearEnd || view() != 'chat' || !opened()) toEnd();
    seen();
    if (!opened() || document.visibilityState != 'visible') showUnread();
  }

  const toEnd = () => (log.scrollTop = log.scrollHeight);

  // What arrived, and what the visitor saw (the panel open on the chat, the tab
  // visible): noted at once, told to the hub a moment later (one frame for a burst).
  let readSeq = 0;
  function seen() {
    if (!conv) return;
    if (opened() && view() == 'chat' && document.visibilityState == 'visible') {
      readSeq = maxSeq;
      unread = 0;
      showUnread();
      if ((conv.read || 0) < maxSeq) {
        conv.read = maxSeq;
        if (status != 'ended') saveChat(conv);
      }
    }
    clearTimeout(seenTimer);
    seenTimer = setTimeout(() => {
      const r = Math.max(readSeq, seenSent[1]);
      if ((maxSeq > seenSent[0] || r > seenSent[1]) && send({ t: 'chat_seen', delivered: maxSeq, read: r })) seenSent = [maxSeq, r];
    }, 200);
  }


  // ----- sending ---------------------------------------------------------------------

  function sendText() {
    const text = input.value.trim();
    if (!text || status == 'ended') return;
    if (text.length > MAX_TEXT) return showError(ERRORS.too_large);
    input.value = '';
    input.rows = 1;
    typed();
    showError('');
    if (!conv && !start) startChat();
    const o = { id: randomId(), text, at: Date.now() / 1000 };
    outbox.push(o);
    keepOutbox();
    showPending(o);
    if (conv) sendOut(o);
    renderStatus();
    toEnd();
  }

  function showPending(o) {
    const el = row({ sender: 'visitor', text: o.text, at: o.at }, 'Sending\u2026');
    pending.set(o.id, el);
    place(el);
  }

  function sendOut(o) {
    if (send({ t: 'chat_send', id: o.id, text: o.text })) o.sent = Date.now();
  }

  const keepOutbox = () => conv && saveOutbox(conv.conversation, outbox.map(({ id, text, at }) => ({ id, text, at })));

  function dropOutbox(id) {
    outbox = outbox.filter((o) => o.id != id);
    keepOutbox();
  }

  // Unacknowledged messages go again (the hub acks a known id without storing it twice).
  setInterval(() => {
    if (conv && w.hub.up()) for (const o of outbox) if (!o.sent || Date.now() - o.sent > RESEND_MS) sendOut(o);
  }, 2000);

  // chat_typing: on at most every 2 s while typing, off when the input empties or after 5 s idle.
  function typed() {
    input.rows = Math.min(5, input.value.split('\n').length);
    if (!conv || status == 'ended') return;
    clearTimeout(typingTimer);
    const on = !!input.value.trim();
    if (on && (!typingOn || Date.now() - typingAt > TYPING_EVERY)) {
      typingAt = Date.now();
      if (send({ t: 'chat_typing', on: true })) typingOn = true;
    } else if (!on && typingOn && send({ t: 'chat_typing', on: false })) typingOn = false;
    if (typingOn) typingTimer = setTimeout(() => typingOn && send({ t: 'chat_typing', on: false }) && (typingOn = false), TYPING_IDLE);
  }

  function theyType(m) {
    if (!conv || m.who == 'visitor' || (m.conversation && m.conversation != conv.conversation)) return;
    clearTimeout(theirTypingTimer);
    if (!m.on) return hideTyping();
    typing.textContent = (m.who || 'Support') + ' is typing\u2026';
    typing.hidden = false;
    theirTypingTimer = setTimeout(hideTyping, TYPING_SHOWN);
  }
  const hideTyping = () => (typing.hidden = true);

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  // ----- files, transcript ---------------------------------------------------------------

  function attachFile() {
    const file = picker.files[0];
    picker.value = '';
    if (!file) return;
    if (!conv || status != 'active') return showError('Files can be sent once an agent has joined the chat.');
    const problem = fileProblem(file, cfg);
    if (problem) return showError(problem);
    showError('');
    const id = randomId();
    const el = row({ sender: 'visitor', at: Date.now() / 1000, file: { name: file.name, size: file.size } }, 'Uploading\u2026');
    pending.set(id, el);
    place(el);
    toEnd();
    upload(base, conv.token, file, id)
      .then((m) => {
        add({ sender: 'visitor', kind: 'file', ...m });
        arrived();
      })
      .catch((e) => showError(file.name + ' was not sent. ' + e.message))
      .then(() => {
        if (pending.get(id) == el) {
          el.remove();
          pending.delete(id);
        }
        renderStatus();
      });
  }

  function save(url, name) {
    if (conv) download(ctx.root, url, conv.token, name).catch((e) => showError(e.message));
  }

  function saveTranscript() {
    save(base + 'chat/transcript.txt', 'chat-transcript.txt');
  }

  // ----- ending, the survey ------------------------------------------------------------------

  function confirmEnd(ask) {
    tools.hidden = ask;
    confirm.hidden = !ask;
    (ask ? confirm.lastChild : endButton).focus();
  }

  function endChat() {
    confirmEnd(false);
    send({ t: 'chat_end' }) || showError('The chat is not connected. Please try again in a moment.');
  }

  function showEnded() {
    const again = h('button', { type: 'button', className: 'btn go', textContent: 'Start a new chat', onclick: () => reset() });
    const head = h('h3', { textContent: 'This chat has ended', tabIndex: -1 });
    const kids = [head, h('p', { className: 'lead', textContent: 'Thank you for contacting us.' })];
    if (survey) kids.push(surveyForm(again));
    else if (!offline) release(); // (a message left instead of waiting still needs the socket)
    kids.push(again, transcript);
    endBox.replaceChildren(...kids);
    if (opened() && (!ctx.root.activeElement || !w.panel.contains(ctx.root.activeElement) || composer.contains(ctx.root.activeElement))) head.focus();
  }

  function surveyForm(again) {
    const note = h('p', { className: 'ke', role: 'alert', hidden: true });
    const comment = h('textarea', { id: 'cobrowse-sv-c', className: 'in kta', rows: 3, maxLength: 2000 });
    const stars = [1, 2, 3, 4, 5].map((n) =>
      h('label', { className: 'krt' }, [h('input', { type: 'radio', name: 'cobrowse-rating', value: n, onchange: () => (note.hidden = true) }), h('span', { textContent: n, 'aria-hidden': 'true' }), h('span', { className: 'sr', textContent: n + ' of 5' })]),
    );
    const done = (text) => {
      release();
      form.replaceWith(h('p', { className: 'lead', role: 'status', textContent: text }));
      again.focus();
    };
    const form = h('form', {
      className: 'ksv',
      noValidate: true,
      onsubmit(e) {
        e.preventDefault();
        const picked = stars.find((s) => s.firstChild.checked);
        if (!picked) {
          note.textContent = 'Choose a rating from 1 to 5.';
          note.hidden = false;
          return stars[0].firstChild.focus();
        }
        if (!send({ t: 'chat_survey', rating: +picked.firstChild.value, comment: comment.value.trim() })) {
          note.textContent = 'The chat is not connected. Please try again in a moment.';
          note.hidden = false;
          return;
        }
        done('Thank you for your feedback.');
      },
    }, [
      h('fieldset', {}, [h('legend', { textContent: 'How was your chat? (1 = poor, 5 = excellent)' }), h('div', { className: 'krts' }, stars)]),
      h('label', { className: 'lbl', htmlFor: comment.id }, ['Anything to add? ', h('span', { className: 'opt', textContent: '(optional)' })]),
      comment,
      note,
      h('button', { type: 'submit', className: 'btn go', textContent: 'Send feedback' }),
      tb('No thanks', () => done('')),
    ]);
    return form;
  }

  // Back to the start: forget the conversation (a new one may begin).
  function reset(note) {
    conv = start = null;
    status = '';
    agents = [];
    survey = down = false;
    staffed = true;
    outbox = [];
    saveOutbox('', []);
    saveChat(null);
    release();
    bySeq.clear();
    pending.clear();
    mine.length = 0;
    maxSeq = unread = 0;
    seenSent = [0, 0];
    readSeq = 0;
    agentSeen = [0, 0];
    log.replaceChildren();
    endBox.replaceChildren();
    endBox.hidden = true;
    showUnread();
    showHome(note, opened());
    loadConfig(true).then(() => view() == 'home' && showHome(note), () => {});
  }

  // ----- frames from the hub ----------------------------------------------------------------

  const ours = (m) => conv && m.conversation == conv.conversation;
  const on = {
    chat_started(m) {
      if (!start || m.key != start.key) return;
      start = null;
      conv = { conversation: m.conversation, token: m.token, read: 0 };
      saveChat(conv);
      keepOutbox();
      for (const o of outbox) sendOut(o);
      renderStatus();
    },
    chat_state(m) {
      if (!ours(m)) return;
      status = m.status;
      agents = m.agents || [];
      staffed = m.available !== false;
      survey = !!m.survey;
      // An ended chat is not reopened on the next page; this page still shows it.
      saveChat(status == 'ended' ? null : conv);
      if (status == 'ended') {
        outbox = [];
        keepOutbox();
        pending.forEach((el) => el.st && (el.st.textContent = ' \u00b7 Not sent'));
        hideTyping();
      }
      renderStatus();
    },
    chat_history(m) {
      if (!ours(m)) return;
      const page = m.messages || [];
      page.forEach(add);
      // The next page starts after this one, not after the newest message held: live
      // messages that arrived meanwhile must not hide the ones between.
      if (m.more && page.length) send({ t: 'chat_sync', after: page[page.length - 1].seq });
      arrived();
    },
    chat_msg(m) {
      if (!ours(m)) return;
      add(m.m);
      arrived();
    },
    chat_ack(m) {
      const o = outbox.find((x) => x.id == m.id);
      if (!o || !conv) return;
      add({ seq: m.seq, id: m.id, at: m.at, sender: 'visitor', kind: 'text', text: o.text });
      arrived();
    },
    chat_typing: theyType,
    chat_seen(m) {
      if (!ours(m) || m.by != 'agent') return;
      agentSeen = [Math.max(agentSeen[0], m.delivered || 0), Math.max(agentSeen[1], m.read || 0)];
      mine.forEach(markStatus);
    },
    offline_stored: offlineStored,
    error(m) {
      const re = m.re || '';
      if (m.code == 'bad_version') {
        if (held) showError('Chat is not available on this page right now. Please reload the page.');
        return;
      }
      if (!/^(chat_|leave_message)/.test(re)) return;
      // (the service's own messages are plain enough: "email must be an address like name@example.com")
      const text = ERRORS[m.code] || (m.message ? m.message[0].toUpperCase() + m.message.slice(1) + '.' : 'That did not work. Please try again.');
      if (re == 'leave_message' && offline) {
        offline = null;
        if (!conv && !start) release();
        offlineForm.busy(false);
        return offlineForm.error(text);
      }
      if (re == 'chat_resume' && /^(bad_token|not_found|forbidden)$/.test(m.code)) return reset('Your previous chat has ended.');
      if (re == 'chat_start' && start) {
        start = null;
        status = '';
        if (!conv) release();
        if (/^(offline|unavailable|no_agents?)$/.test(m.code) && cfg.offline !== false) return leaveMessage(form0 || typedName());
      }
      // Typing and seen are best effort: not worth a word to the visitor.
      if (re != 'chat_typing' && re != 'chat_seen') showError(text);
      renderStatus();
    },
  };
  for (const t in on) w.on('hub:' + t, on[t]);

  // A conversation's messages are numbered 1, 2, 3...: a resync starts after the
  // last one held with none missing before it. From the newest held, a history
  // page cut off by a dropped connection (while live messages came in) would
  // never be fetched.
  function heldThrough() {
    let n = 0;
    while (bySeq.has(n + 1)) n++;
    return n;
  }

  w.on('socket:up', () => {
    down = false;
    if (start) send(start);
    if (conv) {
      send({ t: 'chat_resume', token: conv.token, after: heldThrough() });
      seenSent = [0, 0];
      for (const o of outbox) sendOut(o);
    }
    if (offline) send(offline);
    if (view() == 'chat') renderStatus();
  });
  w.on('socket:down', () => {
    down = true;
    typingOn = false;
    if (view() == 'chat') renderStatus();
  });

  // ----- the panel, page loads, other tabs -----------------------------------------------

  // Continue the stored conversation (a page load, another tab started one).
  function carryOn(c) {
    if (conv || start || !c) return;
    conv = c;
    status = 'resuming';
    outbox = storedOutbox(c.conversation);
    outbox.forEach(showPending);
    hold();
    if (w.hub.up()) send({ t: 'chat_resume', token: conv.token, after: heldThrough() });
    chatView(false);
    loadConfig().catch(() => {}); // (file limits)
  }

  w.on('open', () => {
    if (view() != 'chat') return;
    toEnd();
    seen();
    input.focus();
  });
  w.on('close', () => emoji.close());
  w.on('chat:config', (c) => {
    cfg = c;
    attach.hidden = !(c.file_types || []).length;
  });
  document.addEventListener('visibilitychange', seen);
  attach.hidden = !(cfg.file_types || []).length;
  return { begin, resume: () => carryOn(storedChat()) };
}
