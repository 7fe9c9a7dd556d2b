// Screen sharing and voice calls, when an agent asks for them during a
// co-browse session (docs/screenshare.md): the part that is loaded only then,
// as its own bundle (screenshare.js, built from ../screenshare-entry.js; the
// widget's screenshare.js fetches it on the first request and hands it the
// frames). The visitor installs nothing: the browser's own getDisplayMedia /
// getUserMedia and WebRTC, signalled through the hub on the widget's socket.
// Nothing is asked without an agent's request, and nothing is shared without
// the visitor's click here and their choice in the browser's own picker.
//
//   <- ice_config {servers, policy}             the STUN/TURN servers to use
//   <- screen_request {by, video, audio, timeout}   a prompt in plain words:
//        [Not now] [Share my screen | Accept the call]
//   -> screen_answer {state, media, reason}     accepted | declined, then
//        started | failed (denied, unsupported, no_path, error) per media,
//        later stopped, muted, unmuted
//   <- signal {kind: offer|candidate|bye, agent, sdp, candidate}
//   -> signal {kind: answer|candidate|bye, agent, sdp, candidate}
//        agents offer and we answer: one RTCPeerConnection per agent connection
//        in the session, which sends the screen (and the microphone in a call)
//   <- screen_stop {media, by, reason}          an agent (or the hub) stopped it
//   <- screen_answer {...}                      another tab answered the request
//
// While sharing, a bar says so, with "Stop sharing screen" (the browser's own
// "Stop sharing" works too); in a call: Mute and Hang up. When sharing cannot
// work (no getDisplayMedia or RTCPeerConnection, permission refused, no network
// path) the visitor reads why, and chat and co-browsing go on.
//
// createScreenShare(w) -> {frame(type, m), state(shareState)}: the widget's
// stub calls frame() for every screen-share frame and state() on 'share:state'.
import { h, icon, adopt, promptFocus, FONT, ACCENT, ACCENT_TEXT } from '../lib/dom.js';
import { viewerName, SCREEN, INFO, CLOSE } from './ui.js';

const W = window;
const N = navigator;
const MIC = 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3';
const CONNECT_MS = 20000; // no agent connected this long after starting: no network path
const NOTICE_MS = 15000;

const CSS = [
  [
    '.sx-q',
    'pointer-events:auto;position:fixed;top:68px;left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'width:420px;max-width:calc(100vw - 24px);padding:18px 18px 16px;border-radius:16px;background:#fff;color:#344054;' +
      'font:400 14px/1.5 ' + FONT + ';text-align:left;outline:0;' +
      'box-shadow:0 0 0 1px rgba(16,24,40,.06),0 20px 50px rgba(16,24,40,.3)',
  ],
  ['.sx-qh', 'display:flex;align-items:flex-start;gap:12px'],
  ['.sx-qi', 'flex:none;display:flex;align-items:center;justify-content:center;width:36px;height:36px;border-radius:10px;background:#e0eaff;color:#2457d6'],
  ['.sx-qi svg', 'width:20px;height:20px'],
  ['.sx-q h2', 'margin:0;font-size:16px;font-weight:650;line-height:1.35;color:#101828'],
  ['.sx-q ul', 'margin:10px 0 0;padding:0 0 0 18px;font-size:13.5px;color:#475467'],
  ['.sx-q li', 'margin:3px 0 0'],
  ['.sx-qb', 'display:flex;gap:10px;margin-top:16px'],
  ['.sx-qb button', 'flex:1;height:40px;margin:0;padding:0 14px;border-radius:10px;font:600 14.5px/1 ' + FONT + ';cursor:pointer'],
  ['.sx-no', 'border:1px solid #d0d5dd;background:#fff;color:#344054'],
  ['.sx-yes', 'border:1px solid transparent;background:' + ACCENT + ';color:' + ACCENT_TEXT],
  ['.sx-qb button:focus-visible,.sx-bar button:focus-visible,.sx-note button:focus-visible', 'outline:3px solid ' + ACCENT + ';outline-offset:2px'],
  [
    '.sx-bar',
    'pointer-events:auto;position:fixed;bottom:24px;left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'display:grid;gap:6px;max-width:calc(100vw - 24px);padding:8px;border-radius:16px;background:#101828;color:#fff;' +
      'font:500 14px/1.3 ' + FONT + ';box-shadow:0 0 0 2px #f04438,0 12px 32px rgba(16,24,40,.4)',
  ],
  ['.sx-row', 'display:flex;align-items:center;gap:10px;padding-left:8px'],
  ['.sx-row[hidden]', 'display:none'],
  ['.sx-row > svg', 'flex:none;width:18px;height:18px;color:#fda29b'],
  ['.sx-dot', 'flex:none;width:10px;height:10px;border-radius:50%;background:#f04438;box-shadow:0 0 0 4px rgba(240,68,56,.3)'],
  ['.sx-text', 'flex:1;min-width:0'],
  ['.sx-bar button', 'flex:none;height:34px;margin:0;padding:0 14px;border:0;border-radius:999px;font:600 13.5px/1 ' + FONT + ';cursor:pointer;background:#fff;color:#101828'],
  ['.sx-bar button.sx-stop', 'background:#f04438;color:#fff'],
  [
    '.sx-note',
    'pointer-events:auto;position:fixed;bottom:24px;left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'display:flex;align-items:center;gap:10px;width:max-content;max-width:min(520px,calc(100vw - 24px));padding:8px 8px 8px 14px;' +
      'border-radius:12px;background:#101828;color:#fff;font:400 14px/1.4 ' + FONT + ';box-shadow:0 10px 30px rgba(16,24,40,.35)',
  ],
  ['.sx-note.up', 'bottom:120px'],
  ['.sx-note > svg', 'flex:none;width:18px;height:18px'],
  ['.sx-note button', 'display:flex;align-items:center;justify-content:center;flex:none;width:30px;height:30px;margin:0;padding:0;border:0;border-radius:8px;background:transparent;color:inherit;cursor:pointer'],
  ['.sx-note button svg', 'width:18px;height:18px'],
  '@media (max-width:480px){.sx-q{top:auto;bottom:88px;left:8px;right:8px;transform:none;width:auto}.sx-bar,.sx-note{bottom:88px;left:8px;right:8px;transform:none;width:auto}.sx-note.up{bottom:184px}}',
];

const FAILED = {
  unsupported: 'This browser cannot share a screen or make calls from a web page. You can keep chatting and co-browsing.',
  denied: 'Nothing is shared: permission was not given. You can keep chatting and co-browsing.',
  no_path: 'Your screen could not reach support: no network connection could be made. Chatting and co-browsing go on.',
  error: 'Screen sharing could not start. You can keep chatting and co-browsing.',
};
const CALL_FAILED = {
  unsupported: 'This browser cannot make calls from a web page. You can keep chatting.',
  denied: 'The call did not start: the microphone was not allowed. You can keep chatting.',
  no_path: 'The call could not connect: no network connection could be made. You can keep chatting.',
  error: 'The call could not start. You can keep chatting.',
};

export const screenSupported = () => !!(N.mediaDevices && N.mediaDevices.getDisplayMedia && W.RTCPeerConnection);
export const callSupported = () => !!(N.mediaDevices && N.mediaDevices.getUserMedia && W.RTCPeerConnection);

const failReason = (e) => (e && (e.name == 'NotAllowedError' || e.name == 'SecurityError') ? 'denied' : 'error');

export function createScreenShare(w) {
  const { root, host } = w.ctx;
  adopt(root, CSS);

  let ice = { iceServers: [] };
  let viewers = [];
  let live = false; // this tab shares the co-browse session
  let asked = null; // the screen_request waiting for the visitor: {by, video, audio}
  let askTimer = 0;
  const focus = promptFocus(root, host); // to the prompt when it shows, and back after
  let screen = null; // the MediaStream of getDisplayMedia
  let mic = null; // the MediaStream of getUserMedia in a call
  let shareWith = '';
  let callWith = '';
  let muted = false;
  let watchdog = 0;
  let callStarted = 0;
  let clock = 0;
  const peers = new Map(); // agent number -> {pc, chain, connected}

  const send = (m) => (w.hub ? w.hub.send(m) : !!(w.share && w.share.send(m)));
  const answer = (state, media, reason) => send({ t: 'screen_answer', state, ...(media ? { media } : {}), ...(reason ? { reason } : {}) });

  // ----- the prompt -------------------------------------------------------------------------

  const askTitle = h('h2', { id: 'cobrowse-screen-title' });
  const askList = h('ul');
  const yes = h('button', { type: 'button', className: 'sx-yes', onclick: () => accept() });
  const no = h('button', { type: 'button', className: 'sx-no', textContent: 'Not now', onclick: () => decline() });
  const askIcon = h('span', { className: 'sx-qi' });
  const prompt = h(
    'div',
    { className: 'sx-q', role: 'alertdialog', 'aria-labelledby': 'cobrowse-screen-title', 'aria-describedby': 'cobrowse-screen-desc', tabIndex: -1, hidden: true },
    [h('div', { className: 'sx-qh' }, [askIcon, h('div', { id: 'cobrowse-screen-desc' }, [askTitle, askList])]), h('div', { className: 'sx-qb' }, [no, yes])],
  );
  prompt.addEventListener('keydown', (e) => {
    if (e.key == 'Escape') {
      e.stopPropagation();
      decline();
    }
  });

  // ----- while sharing / calling --------------------------------------------------------------

  const shareText = h('span', { className: 'sx-text', role: 'status' });
  const callText = h('span', { className: 'sx-text', role: 'status' });
  const muteButton = h('button', { type: 'button', textContent: 'Mute', 'aria-pressed': 'false', onclick: () => mute(!muted) });
  const shareRow = h('div', { className: 'sx-row', hidden: true }, [
    h('span', { className: 'sx-dot', 'aria-hidden': 'true' }),
    shareText,
    h('button', { type: 'button', className: 'sx-stop', textContent: 'Stop sharing screen', onclick: () => stopScreen(true) }),
  ]);
  const callRow = h('div', { className: 'sx-row', hidden: true }, [
    icon(MIC),
    callText,
    muteButton,
    h('button', { type: 'button', className: 'sx-stop', textContent: 'Hang up', onclick: () => hangUp(true) }),
  ]);
  const bar = h('div', { className: 'sx-bar', role: 'region', 'aria-label': 'Screen sharing and call', hidden: true }, [shareRow, callRow]);
  const voice = h('audio', { autoplay: true, hidden: true });

  const noticeText = h('span');
  let noticeTimer = 0;
  const hideNotice = () => {
    clearTimeout(noticeTimer);
    notice.hidden = true;
  };
  const notice = h('div', { className: 'sx-note', role: 'alert', hidden: true }, [
    icon(INFO),
    noticeText,
    h('button', { type: 'button', 'aria-label': 'Dismiss', onclick: hideNotice }, [icon(CLOSE)]),
  ]);
  function say(text) {
    noticeText.textContent = text;
    notice.classList.toggle('up', !bar.hidden);
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(hideNotice, NOTICE_MS);
  }

  root.append(prompt, bar, notice, voice);

  function render() {
    shareRow.hidden = !screen;
    callRow.hidden = !mic;
    bar.hidden = !screen && !mic;
    shareText.textContent = 'You are sharing your screen with ' + (shareWith || 'support');
    muteButton.textContent = muted ? 'Unmute' : 'Mute';
    muteButton.setAttribute('aria-pressed', String(muted));
    clearInterval(clock);
    if (mic) {
      const tick = () => {
        const s = Math.floor((Date.now() - callStarted) / 1000);
        callText.textContent = (muted ? 'Muted \u00b7 ' : '') + 'On a call with ' + (callWith || 'support') + ' \u00b7 ' + Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
      };
      tick();
      clock = setInterval(tick, 1000);
    }
  }

  // ----- asking -----------------------------------------------------------------------------------

  function ask(m) {
    if (!live) return;
    const video = m.video !== false;
    const audio = m.audio === true;
    if (!video && !audio) return;
    const who = viewerName({ name: m.by, role: 'agent' });
    // A browser that cannot do it says so at once: no click is needed to say no.
    if ((video && !screenSupported()) || (!video && !callSupported())) {
      answer('failed', '', 'unsupported');
      return say((video ? FAILED : CALL_FAILED).unsupported);
    }
    asked = { by: m.by || '', who, video, audio };
    const names = viewers.length ? viewers.map(viewerName) : [who];
    const seers = names.length > 1 ? names.slice(0, -1).join(', ') + ' and ' + names[names.length - 1] : names[0];
    askIcon.replaceChildren(icon(video ? SCREEN : MIC));
    askTitle.textContent = video ? who + ' asks to see your screen' : who + ' offers a voice call';
    const items = video
      ? [
          'If you agree, your browser asks what to share: one tab, one window or your whole screen.',
          'Only the support agents in this session see it: ' + seers + '.',
          'Nothing is installed. You can stop sharing at any time, and the chat goes on.',
        ]
      : ['If you accept, your browser asks to use your microphone.', 'You can mute or hang up at any time, and the chat goes on.'];
    if (video && audio) items.push('They also offer a voice call, which uses your microphone.');
    askList.replaceChildren(...items.map((text) => h('li', { textContent: text })));
    yes.textContent = video ? 'Share my screen' : 'Accept the call';
    clearTimeout(askTimer);
    const secs = Number(m.timeout) > 0 ? Number(m.timeout) : 60;
    askTimer = setTimeout(closePrompt, secs * 1000); // the hub withdraws it too (screen_stop timeout)
    hideNotice();
    focus.show(prompt);
  }

  function closePrompt() {
    clearTimeout(askTimer);
    focus.hide(prompt);
    asked = null;
  }

  function decline() {
    if (!asked) return;
    closePrompt();
    answer('declined');
  }

  // The visitor's click: getDisplayMedia is called right here, in the click's
  // own task (it needs the user's gesture), and opens the browser's picker.
  function accept() {
    const req = asked;
    if (!req) return;
    closePrompt();
    answer('accepted');
    let gotScreen = Promise.resolve(null);
    if (req.video) {
      try {
        gotScreen = N.mediaDevices.getDisplayMedia({ video: true, audio: false });
      } catch (e) {
        gotScreen = Promise.reject(e);
      }
    }
    gotScreen
      .then((stream) => {
        if (stream) startScreen(stream, req.who);
      })
      .catch((e) => {
        answer('failed', 'screen', failReason(e));
        say(FAILED[failReason(e)]);
      })
      .then(() => {
        if (!req.audio || !live) return;
        if (!callSupported()) {
          answer('failed', 'call', 'unsupported');
          return say(CALL_FAILED.unsupported);
        }
        return N.mediaDevices.getUserMedia({ audio: true, video: false }).then(
          (stream) => startCall(stream, req.who),
          (e) => {
            answer('failed', 'call', failReason(e));
            say(CALL_FAILED[failReason(e)]);
          },
        );
      });
  }

  function startScreen(stream, who) {
    if (!live) return stream.getTracks().forEach((t) => t.stop());
    if (screen) stopTracks(screen);
    screen = stream;
    shareWith = who;
    const track = stream.getVideoTracks()[0];
    // The browser's own "Stop sharing" ends the track.
    if (track) track.addEventListener('ended', () => screen == stream && stopScreen(true));
    render();
    armWatchdog();
    answer('started', 'screen');
  }

  function startCall(stream, who) {
    if (!live) return stream.getTracks().forEach((t) => t.stop());
    if (mic) stopTracks(mic);
    mic = stream;
    callWith = who;
    muted = false;
    callStarted = Date.now();
    render();
    armWatchdog();
    answer('started', 'call');
  }

  // ----- stopping ---------------------------------------------------------------------------------

  function stopTracks(stream) {
    for (const t of stream.getTracks()) t.stop();
  }

  // tell: the visitor stopped it here (the hub is told); otherwise an agent or the hub did.
  function stopScreen(tell) {
    if (!screen) return;
    stopTracks(screen);
    screen = null;
    for (const peer of peers.values()) setTracks(peer.pc);
    if (tell) answer('stopped', 'screen');
    afterStop();
  }

  function hangUp(tell) {
    if (!mic) return;
    stopTracks(mic);
    mic = null;
    muted = false;
    voice.srcObject = null;
    for (const peer of peers.values()) setTracks(peer.pc);
    if (tell) answer('stopped', 'call');
    afterStop();
  }

  function afterStop() {
    if (!screen && !mic) {
      for (const n of [...peers.keys()]) closePeer(n);
      clearTimeout(watchdog);
    }
    render();
  }

  function stopAll() {
    closePrompt();
    stopScreen(false);
    hangUp(false);
  }

  function mute(on) {
    if (!mic) return;
    muted = on;
    for (const t of mic.getAudioTracks()) t.enabled = !on;
    answer(on ? 'muted' : 'unmuted', 'call');
    render();
  }

  // ----- WebRTC: one connection per agent, who offers -----------------------------------------

  function armWatchdog() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      if ((screen || mic) && ![...peers.values()].some((p) => p.connected)) noPath();
    }, CONNECT_MS);
  }

  function noPath() {
    const had = { screen: !!screen, call: !!mic };
    stopScreen(false);
    hangUp(false);
    if (had.screen) answer('failed', 'screen', 'no_path');
    if (had.call) answer('failed', 'call', 'no_path');
    say(had.screen ? FAILED.no_path : CALL_FAILED.no_path);
  }

  function peerFor(n) {
    let peer = peers.get(n);
    if (peer) return peer;
    const pc = new RTCPeerConnection({ iceServers: ice.iceServers, iceTransportPolicy: ice.policy });
    peer = { pc, chain: Promise.resolve(), connected: false };
    peers.set(n, peer);
    pc.onicecandidate = (e) => send({ t: 'signal', kind: 'candidate', agent: n, candidate: e.candidate ? e.candidate.toJSON() : { candidate: '' } });
    pc.ontrack = (e) => {
      if (e.track.kind == 'audio' && mic) {
        voice.srcObject = e.streams[0] || new MediaStream([e.track]);
        voice.play().catch(() => {});
      }
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState == 'connected') peer.connected = true;
      else if (pc.connectionState == 'failed') {
        send({ t: 'signal', kind: 'bye', agent: n });
        closePeer(n);
        if ((screen || mic) && ![...peers.values()].some((p) => p.connected)) noPath();
      }
    };
    return peer;
  }

  function closePeer(n) {
    const peer = peers.get(n);
    if (!peer) return;
    peers.delete(n);
    try {
      peer.pc.close();
    } catch (e) {
      // closed already
    }
  }

  // What each transceiver carries: our screen on video, our microphone on audio.
  function setTracks(pc) {
    const work = [];
    for (const t of pc.getTransceivers()) {
      if (t.stopped || t.currentDirection == 'stopped') continue;
      const kind = t.receiver.track && t.receiver.track.kind;
      if (kind == 'video') {
        const track = screen ? screen.getVideoTracks()[0] : null;
        work.push(t.sender.replaceTrack(track || null));
        t.direction = track ? 'sendonly' : 'inactive';
      } else if (kind == 'audio') {
        const track = mic ? mic.getAudioTracks()[0] : null;
        work.push(t.sender.replaceTrack(track || null));
        t.direction = track ? 'sendrecv' : 'inactive';
      }
    }
    return Promise.all(work);
  }

  function onSignal(m) {
    const n = Number(m.agent);
    if (!n) return;
    if (m.kind == 'bye') return closePeer(n);
    if (!screen && !mic) {
      // Nothing to send (stopped meanwhile): never answer an offer then.
      if (m.kind == 'offer') send({ t: 'signal', kind: 'bye', agent: n });
      return;
    }
    if (m.kind != 'offer' && !peers.has(n)) return;
    const peer = peerFor(n);
    const pc = peer.pc;
    peer.chain = peer.chain
      .then(() => {
        if (m.kind == 'candidate') return m.candidate && pc.addIceCandidate(m.candidate);
        if (m.kind != 'offer' || typeof m.sdp != 'string') return;
        return pc
          .setRemoteDescription({ type: 'offer', sdp: m.sdp })
          .then(() => setTracks(pc))
          .then(() => pc.createAnswer())
          .then((a) => pc.setLocalDescription(a))
          .then(() => send({ t: 'signal', kind: 'answer', agent: n, sdp: pc.localDescription.sdp }));
      })
      .catch((e) => console.warn('cobrowse: screen sharing:', e));
  }

  // ----- frames from the hub --------------------------------------------------------------------

  function onIce(m) {
    const servers = Array.isArray(m.servers) ? m.servers : [];
    ice = {
      iceServers: servers.map((s) => ({ urls: s.urls, ...(s.username ? { username: s.username, credential: s.credential } : {}) })),
      policy: m.policy == 'relay' ? 'relay' : 'all',
    };
  }

  function onAnswer(m) {
    // Another of the visitor's tabs answered the request: this one's prompt goes.
    if (asked && ['accepted', 'declined', 'failed'].includes(m.state)) closePrompt();
  }

  function onStop(m) {
    const media = m.media || '';
    const by = m.by ? viewerName({ name: m.by, role: 'agent' }) : 'Support';
    if (asked && (m.reason == 'withdrawn' || m.reason == 'timeout' || m.reason == 'left')) {
      closePrompt();
      if (m.reason == 'timeout') say('The request to share your screen has expired. Nothing was shared.');
      return;
    }
    const hadScreen = !!screen && media != 'call';
    const hadCall = !!mic && media != 'screen';
    if (media != 'call') stopScreen(false);
    if (media != 'screen') hangUp(false);
    if (hadScreen) say(m.reason == 'agent' ? by + ' stopped the screen sharing. Nothing more of your screen is shown.' : 'Screen sharing ended. Nothing more of your screen is shown.');
    else if (hadCall) say(m.reason == 'agent' ? by + ' ended the call.' : 'The call ended.');
  }

  const handlers = { ice_config: onIce, screen_request: ask, screen_answer: onAnswer, screen_stop: onStop, signal: onSignal };

  W.addEventListener('pagehide', () => {
    if (screen || mic) stopAll();
  });

  return {
    frame(type, m) {
      if (handlers[type]) handlers[type](m);
    },
    state(s) {
      viewers = s.viewers || [];
      const was = live;
      live = s.phase == 'sharing';
      // The page's connection is what the media hang on: it dropped or the session ended.
      if (was && !live) stopAll();
    },
  };
}
