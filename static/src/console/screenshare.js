// Escalation to screen sharing and voice calls (docs/screenshare.md): when the
// mirrored page is not enough (a PDF viewer, a canvas, a native dialog, another
// application), the agent asks the visitor to share a tab, a window or their
// screen, or offers a voice call. The media come browser to browser over
// WebRTC; the hub carries the signalling and checks it.
//
//   -> screen_request {session, video, audio}    "Request screen share" / "Offer a call"
//   <- screen_request {by, ...}                  someone in the session asked (waiting)
//   <- screen_answer {state, media, reason}      accepted | declined | failed | started | stopped | muted | unmuted
//   <- ice_config {servers, policy}
//   -> signal {session, kind: offer|candidate|bye, sdp, candidate}   we offer: one
//   <- signal {kind: answer|candidate|bye, ...}      connection per console and session
//   -> screen_stop {session, media}              Stop / Hang up / withdraw the request
//   <- screen_stop {media, by, reason}           someone (or the hub) stopped it
//
// The controls live in a card of the session's info column. The video shows
// beside the conversation when the session's chat is the one open (the chat
// column's media slot, chat.js), otherwise in a dock beside the mirrored view;
// the mirrored view stays where it is either way.

import { h, fill, icon, ICONS } from './dom.js';

const MIC = ['M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M5 11a7 7 0 0 0 14 0', 'M12 18v3'];
const ERRORS = new Set(['screen_request', 'screen_stop', 'signal']);
const FRAMES = new Set(['screen_request', 'screen_answer', 'screen_stop', 'signal', 'ice_config']);

const FAILED = {
  unsupported: 'The visitor’s browser cannot share a screen from a web page.',
  denied: 'The visitor did not give permission to share their screen.',
  no_path: 'No network path between the visitor’s browser and yours: their screen could not reach you (a TURN server may be needed).',
  error: 'Something went wrong in the visitor’s browser.',
};
const CALL_FAILED = {
  unsupported: 'The visitor’s browser cannot make calls from a web page.',
  denied: 'The visitor did not allow their microphone.',
  no_path: 'No network path between the visitor’s browser and yours: the call could not connect.',
  error: 'Something went wrong in the visitor’s browser.',
};
const GO_ON = ' Chat and co-browsing go on.';

export class ScreenShare {
  // ctx: {send(frame) -> bool, toast(text), announce(text), session() -> id | null,
  //       info: the info column, stage: the stage, chat: ChatController | null}
  constructor(ctx) {
    this.ctx = ctx;
    this.sessionId = null;
    this.reset(null);
    this.build();
    // The session shown changes without a frame of ours (leave, close, another join).
    this.timer = setInterval(() => this.sync(), 500);
    if (ctx.chat && ctx.chat.on) {
      ctx.chat.on('select', () => this.place());
      ctx.chat.on('state', () => this.place());
    }
  }

  reset(sessionId) {
    if (this.pc) this.closePeer();
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.sessionId = sessionId;
    this.ice = { iceServers: [] };
    this.pending = null; // {by, video, audio, mine}
    this.screen = 'idle'; // idle | accepted | live
    this.call = 'idle';
    this.mic = null; // our microphone, when we offered the call
    this.muted = false;
    this.visitorMuted = false;
    this.pc = null;
    this.note = null; // {text, kind}
    this.connected = false;
  }

  // ----- the view --------------------------------------------------------------------------

  build() {
    const b = (text, cls, onclick) => h('button', { type: 'button', className: `btn ${cls}`, text, onclick });
    this.els = {
      status: h('p', { className: 'screen-status', role: 'status', 'aria-live': 'polite' }),
      note: h('p', { className: 'screen-note', role: 'alert', hidden: true }),
      request: b('Request screen share', 'btn-primary', () => this.requestScreen()),
      call: b('Offer a call', 'btn-secondary', () => this.offerCall()),
      cancel: b('Withdraw request', 'btn-secondary', () => this.stop('')),
      stopScreen: b('Stop screen share', 'btn-danger', () => this.stop('screen')),
      hangUp: b('Hang up', 'btn-danger', () => this.stop('call')),
      mute: b('Mute', 'btn-secondary', () => this.toggleMute()),
    };
    const e = this.els;
    e.card = h('section', { className: 'screen-card', 'data-state': 'idle', 'aria-labelledby': 'screen-heading', hidden: true },
      h('h3', { id: 'screen-heading' }, 'Screen sharing and call'),
      h('p', { className: 'screen-title' }, h('span', { className: 'screen-dot', 'aria-hidden': 'true' }), e.status),
      h('p', { className: 'screen-help' }, 'When the mirrored page is not enough (a PDF, a canvas, another app), ask the visitor to share their screen. They install nothing.'),
      e.note,
      h('div', { className: 'screen-actions' }, e.request, e.call, e.cancel, e.stopScreen, e.hangUp, e.mute));
    e.video = h('video', { className: 'screen-video', autoplay: true, muted: true, playsInline: true, 'aria-label': 'The visitor’s shared screen' });
    e.voice = h('audio', { autoplay: true, hidden: true });
    e.waiting = h('p', { className: 'screen-waiting' }, 'Connecting to the visitor’s screen…');
    e.pip = h('button', { type: 'button', className: 'btn btn-chip', text: 'Pop out', title: 'Show the visitor’s screen in a window of its own', onclick: () => this.popOut() });
    e.media = h('div', { className: 'screen-media', hidden: true },
      h('div', { className: 'screen-media-bar' },
        icon(...ICONS.monitor), h('span', { className: 'screen-media-title' }, 'Visitor’s screen'),
        h('span', { className: 'chip chip-live' }, h('span', { className: 'live-dot', 'aria-hidden': 'true' }), 'Live'),
        document.pictureInPictureEnabled ? e.pip : null),
      h('div', { className: 'screen-frame' }, e.video, e.waiting),
      e.voice);
    e.dock = h('aside', { className: 'screen-dock', hidden: true, 'aria-label': 'The visitor’s shared screen' });
    e.video.addEventListener('resize', () => this.render());
    e.video.addEventListener('playing', () => {
      e.waiting.hidden = true;
    });
    const info = this.ctx.info;
    if (info) {
      const after = info.querySelector('#control-card');
      if (after) after.after(e.card);
      else info.append(e.card);
    }
    if (this.ctx.stage) this.ctx.stage.append(e.dock);
  }

  // The video: beside the session's conversation when it is open, else beside the mirrored view.
  place() {
    const e = this.els;
    const showing = this.screen != 'idle' && this.sessionId != null;
    const chat = this.ctx.chat;
    const conv = chat && chat.current ? chat.current() : null;
    const column = chat && chat.els ? chat.els.column : null;
    const inChat = showing && conv && conv.session == this.sessionId && chat.media && !(column && column.hidden);
    const target = inChat ? chat.media : e.dock;
    if (e.media.parentNode != target) {
      target.append(e.media);
      if (e.video.srcObject) e.video.play().catch(() => {});
    }
    if (chat && chat.showMedia) chat.showMedia(Boolean(inChat));
    e.dock.hidden = !showing || inChat;
    e.media.hidden = !showing;
  }

  render() {
    const e = this.els;
    const sessionOpen = this.sessionId != null;
    e.card.hidden = !sessionOpen;
    const p = this.pending;
    let state = 'idle';
    let text = 'Not sharing';
    if (p) {
      state = 'waiting';
      const who = p.mine ? 'your' : `${p.by}’s`;
      text = p.video ? `Waiting for the visitor to answer ${who} request to see their screen…` : `Waiting for the visitor to answer ${who} call…`;
    } else if (this.screen == 'accepted' || this.call == 'accepted') {
      state = 'waiting';
      text = this.screen == 'accepted' ? 'The visitor is choosing what to share…' : 'The visitor is allowing their microphone…';
    }
    if (this.screen == 'live' || this.call == 'live') {
      state = 'live';
      const parts = [];
      if (this.screen == 'live') parts.push(this.connected ? 'The visitor is sharing their screen' : 'Connecting to the visitor’s screen…');
      if (this.call == 'live') parts.push(`On a call${this.visitorMuted ? ' (the visitor is muted)' : ''}${this.muted ? ' (you are muted)' : ''}`);
      text = parts.join(' · ');
    }
    e.card.dataset.state = state;
    e.status.textContent = text;
    e.note.hidden = !this.note;
    if (this.note) {
      e.note.textContent = this.note.text;
      e.note.dataset.kind = this.note.kind;
    }
    const busy = Boolean(p);
    e.request.hidden = this.screen != 'idle' || busy;
    e.call.hidden = this.call != 'idle' || busy;
    e.cancel.hidden = !busy;
    e.stopScreen.hidden = this.screen == 'idle';
    e.hangUp.hidden = this.call == 'idle';
    e.mute.hidden = !(this.call == 'live' && this.mic);
    e.mute.textContent = this.muted ? 'Unmute' : 'Mute';
    e.mute.setAttribute('aria-pressed', String(this.muted));
    if (this.screen == 'idle') {
      e.video.srcObject = null;
      e.waiting.hidden = false;
    }
    this.place();
  }

  say(text, kind = 'info') {
    this.note = text ? { text, kind } : null;
    this.render();
    if (text) this.ctx.announce(text);
  }

  // ----- the agent's actions -------------------------------------------------------------------

  requestScreen() {
    if (!this.sessionId) return;
    this.say(null);
    if (!this.ctx.send({ t: 'screen_request', session: this.sessionId, video: true, audio: false })) {
      this.ctx.toast('Not connected to the server. Try again in a moment.');
      return;
    }
    this.pending = { by: '', video: true, audio: false, mine: true };
    this.render();
  }

  // The agent's microphone is asked for now, on their click, before the visitor is asked.
  async offerCall() {
    if (!this.sessionId) return;
    this.say(null);
    const session = this.sessionId;
    if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.RTCPeerConnection)) {
      this.say('This browser cannot make calls.', 'error');
      return;
    }
    let mic;
    try {
      mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (err) {
      this.say(`Your microphone is not available (${err && err.name == 'NotAllowedError' ? 'permission refused' : 'no microphone'}).`, 'error');
      return;
    }
    if (session != this.sessionId) return mic.getTracks().forEach((t) => t.stop());
    if (!this.ctx.send({ t: 'screen_request', session, video: false, audio: true })) {
      mic.getTracks().forEach((t) => t.stop());
      this.ctx.toast('Not connected to the server. Try again in a moment.');
      return;
    }
    this.mic = mic;
    this.muted = false;
    this.pending = { by: '', video: false, audio: true, mine: true };
    this.render();
  }

  stop(media) {
    if (!this.sessionId) return;
    this.ctx.send({ t: 'screen_stop', session: this.sessionId, ...(media ? { media } : {}) });
  }

  toggleMute() {
    if (!this.mic) return;
    this.muted = !this.muted;
    for (const t of this.mic.getAudioTracks()) t.enabled = !this.muted;
    this.render();
  }

  popOut() {
    const v = this.els.video;
    if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
    else if (v.requestPictureInPicture) v.requestPictureInPicture().catch(() => this.ctx.toast('This browser cannot pop the video out.'));
  }

  // ----- frames -----------------------------------------------------------------------------------

  sync() {
    const current = this.ctx.session();
    if (current != this.sessionId) {
      this.reset(current);
      this.render();
    }
  }

  // true: the frame was ours.
  handle(frame) {
    if (frame.t == 'error' && ERRORS.has(frame.re)) return this.onError(frame), true;
    if (!FRAMES.has(frame.t)) return false;
    this.sync();
    if (!this.sessionId || (frame.session && frame.session != this.sessionId)) return true;
    switch (frame.t) {
      case 'ice_config':
        this.ice = {
          iceServers: (frame.servers || []).map((s) => ({ urls: s.urls, ...(s.username ? { username: s.username, credential: s.credential } : {}) })),
          iceTransportPolicy: frame.policy == 'relay' ? 'relay' : 'all',
        };
        break;
      case 'screen_request':
        this.pending = { by: frame.by || 'An agent', video: frame.video !== false, audio: frame.audio === true, mine: Boolean(this.pending && this.pending.mine) };
        if (!this.pending.mine) this.say(null);
        break;
      case 'screen_answer':
        this.onAnswer(frame);
        break;
      case 'screen_stop':
        this.onStop(frame);
        break;
      case 'signal':
        this.onSignal(frame);
        break;
    }
    this.render();
    return true;
  }

  onAnswer(m) {
    const p = this.pending;
    if (m.state == 'accepted') {
      if (p) {
        if (p.video) this.screen = 'accepted';
        if (p.audio) this.call = 'accepted';
      }
      this.pending = null;
      this.say(null);
    } else if (m.state == 'declined') {
      this.pending = null;
      this.dropMicUnlessCall();
      this.say(p && !p.video ? 'The visitor declined the call.' + GO_ON : 'The visitor declined to share their screen.' + GO_ON);
    } else if (m.state == 'failed') {
      const media = m.media || (p && !p.video ? 'call' : 'screen');
      this.pending = null;
      const reason = m.reason in FAILED ? m.reason : 'error';
      if (media == 'screen') {
        this.screen = 'idle';
        this.say('Screen sharing is not possible: ' + FAILED[reason] + GO_ON, 'error');
      } else {
        this.call = 'idle';
        this.dropMicUnlessCall();
        this.say('The call is not possible: ' + CALL_FAILED[reason] + GO_ON, 'error');
      }
      this.afterChange();
    } else if (m.state == 'started') {
      if (m.media == 'screen') this.screen = 'live';
      else if (m.media == 'call') this.call = 'live';
      this.negotiate();
    } else if (m.state == 'stopped') {
      if (m.media == 'screen') {
        this.screen = 'idle';
        this.say('The visitor stopped sharing their screen.');
      } else if (m.media == 'call') {
        this.call = 'idle';
        this.dropMicUnlessCall();
        this.say('The visitor hung up.');
      }
      this.afterChange();
    } else if (m.state == 'muted' || m.state == 'unmuted') {
      this.visitorMuted = m.state == 'muted';
    }
  }

  onStop(m) {
    const media = m.media || '';
    const by = m.by || '';
    if (this.pending && ['withdrawn', 'timeout', 'left'].includes(m.reason)) {
      const p = this.pending;
      this.pending = null;
      this.dropMicUnlessCall();
      if (m.reason == 'timeout') this.say(`The visitor did not answer the ${p.video ? 'screen share request' : 'call'} in time.` + GO_ON);
      else if (by && !p.mine) this.say(`${by} withdrew the request.`);
      if (!media || m.reason != 'left') return;
    }
    const had = { screen: this.screen != 'idle' && media != 'call', call: this.call != 'idle' && media != 'screen' };
    if (had.screen) this.screen = 'idle';
    if (had.call) this.call = 'idle';
    if (had.call) this.dropMicUnlessCall();
    const what = had.screen ? 'Screen sharing' : 'The call';
    if (had.screen || had.call) {
      if (m.reason == 'disconnected') this.say(`${what} stopped: the visitor’s page closed or lost its connection.`);
      else if (m.reason == 'left') this.say(`${what} stopped: ${had.call && !had.screen ? 'the agent on the call left' : 'no agent is left to see it'}.`);
      else if (m.reason == 'session_ended') this.say(`${what} stopped: the session ended.`);
      else this.say(`${what} stopped${by ? ` by ${by}` : ''}.`);
    }
    this.afterChange();
  }

  onError(m) {
    if (m.re == 'screen_request') {
      this.pending = null;
      this.dropMicUnlessCall();
      this.say(m.code == 'screen_busy' ? `Not now: ${m.message}.` : m.message || 'The request was refused.', 'error');
    } else if (m.re == 'signal' && m.code != 'not_sharing') {
      this.ctx.toast(`Screen sharing: ${m.message || m.code}`);
    }
  }

  dropMicUnlessCall() {
    if (this.call != 'idle' || (this.pending && this.pending.audio)) return;
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.mic = null;
    this.muted = false;
  }

  afterChange() {
    if (this.screen != 'live' && this.call != 'live') this.closePeer();
    else if (this.pc && this.screen != 'live') this.els.video.srcObject = null;
  }

  // ----- WebRTC: we offer, the visitor answers ----------------------------------------------------

  sendSignal(frame) {
    return this.ctx.send({ t: 'signal', session: this.sessionId, ...frame });
  }

  negotiate() {
    if (this.screen != 'live' && this.call != 'live') return;
    if (!window.RTCPeerConnection) {
      this.say('This browser cannot show a shared screen (no WebRTC).', 'error');
      return;
    }
    if (!this.pc) this.openPeer();
    const pc = this.pc;
    if (pc.signalingState != 'stable') {
      this.again = true; // once the answer is in
      return;
    }
    const have = (kind) => pc.getTransceivers().find((t) => t.receiver.track && t.receiver.track.kind == kind && !t.stopped);
    let video = have('video');
    let audio = have('audio');
    if (this.screen == 'live' && !video) video = pc.addTransceiver('video', { direction: 'recvonly' });
    if (this.call == 'live' && !audio) audio = pc.addTransceiver('audio', { direction: this.mic ? 'sendrecv' : 'recvonly' });
    if (audio) {
      const track = this.call == 'live' && this.mic ? this.mic.getAudioTracks()[0] : null;
      audio.sender.replaceTrack(track).catch(() => {});
      audio.direction = this.call == 'live' ? (track ? 'sendrecv' : 'recvonly') : 'inactive';
    }
    if (video) video.direction = this.screen == 'live' ? 'recvonly' : 'inactive';
    this.chain = this.chain
      .then(() => pc.createOffer())
      .then((offer) => pc.setLocalDescription(offer))
      .then(() => {
        if (this.pc == pc) this.sendSignal({ kind: 'offer', sdp: pc.localDescription.sdp });
      })
      .catch((err) => console.warn('screen sharing: offer', err)); // eslint-disable-line no-console
  }

  openPeer() {
    const pc = new RTCPeerConnection(this.ice);
    this.pc = pc;
    this.chain = Promise.resolve();
    this.again = false;
    this.connected = false;
    pc.onicecandidate = (e) => {
      if (this.pc == pc) this.sendSignal({ kind: 'candidate', candidate: e.candidate ? e.candidate.toJSON() : { candidate: '' } });
    };
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      if (e.track.kind == 'video') {
        this.els.video.srcObject = stream;
        this.els.video.play().catch(() => {});
      } else {
        this.els.voice.srcObject = stream;
        this.els.voice.play().catch(() => {});
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.pc != pc) return;
      if (pc.connectionState == 'connected') {
        this.connected = true;
        this.render();
      } else if (pc.connectionState == 'failed') {
        this.sendSignal({ kind: 'bye' });
        this.closePeer();
        const media = this.screen == 'live' ? 'screen' : 'call';
        this.say((media == 'screen' ? 'Screen sharing failed: ' + FAILED.no_path : 'The call failed: ' + CALL_FAILED.no_path) + GO_ON, 'error');
      }
    };
  }

  closePeer() {
    const pc = this.pc;
    this.pc = null;
    this.connected = false;
    if (pc) {
      try {
        pc.close();
      } catch {
        // closed already
      }
    }
    if (this.els) {
      this.els.video.srcObject = null;
      this.els.voice.srcObject = null;
    }
  }

  onSignal(m) {
    const pc = this.pc;
    if (m.kind == 'bye') {
      if (pc) {
        this.closePeer();
        if (this.screen == 'live' || this.call == 'live') this.say('The connection to the visitor’s browser closed.', 'error');
      }
      return;
    }
    if (!pc) return;
    this.chain = this.chain
      .then(() => {
        if (m.kind == 'answer' && typeof m.sdp == 'string') {
          if (pc.signalingState != 'have-local-offer') return;
          return pc.setRemoteDescription({ type: 'answer', sdp: m.sdp }).then(() => {
            if (this.again) {
              this.again = false;
              this.negotiate();
            }
          });
        }
        if (m.kind == 'candidate' && m.candidate) return pc.addIceCandidate(m.candidate);
      })
      .catch((err) => console.warn('screen sharing: signal', err)); // eslint-disable-line no-console
  }
}
