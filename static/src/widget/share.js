// Share: the visitor's side of a co-browse session (protocol v1,
// cobrowse/sync/protocol.py, docs/protocol.md): it drives the recorder and
// speaks the sharing frames over the widget's hub connection (socket.js, which
// it holds while sharing; chat and screen sharing may hold it too).
//
// Nothing is recorded before consent: the recorder is loaded and the session
// started only on 'share:start' (the consent click) or on 'resume' (a page
// load while a session the visitor agreed to is running; the loader sends it).
//
//   hello {.., resume, last_seq, name}  (socket.js sends it; we add the resume fields)
//   share {name}   on the first connection after the consent click
//   <- shared {session, code, code_expires, resume}     first share: code + token
//   <- welcome {session, have_seq, viewers}              on resume / reconnect
//   rr {seq, ev}   batches of rrweb events; seq = index of the batch's first
//                  event in this tab's stream, which goes on across page loads
//   <- ack {seq}   everything up to seq is safe at the hub: forget it
//   <- snapshot    the hub wants a fresh full snapshot
//   nav {url, title}   same-document navigations (pushState, popstate, hash)
//   <- viewers {viewers}   who is watching (the banner shows them)
//   stop           the visitor ends it;  <- ended {reason}: it ended
//   <- mark, unmark, laser, control_requested, control_state, input, command:
//                  markers and shared control, handled by markers.js,
//                  control.js and commands.js as 'hub:<t>' events (let through
//                  only while this tab shares that session); they answer
//                  with w.share.send(): control, unmark, command_result, input_refused
//
// Features talk to it through the widget's events:
//   in:  'share:start' {name}, 'share:stop', 'share:rejoin', 'resume'
//   out: 'share:state' {phase, code, expires, viewers, reason}
//        phase: idle | starting | resuming | sharing | reconnecting | failed | ended
//        'share:nav' {url}   a same-document navigation (pushState, popstate, hash)
//   w.share.send(frame) -> bool   sends a frame while this tab is live in the session
//   w.share.node(id) -> Node|null  the page's node with this rrweb id (the id agents use)
import { storedSession, saveSession, clearSession, nextSeq as storedSeq, saveSeq, visitorId, tabId, SHARE_KEY } from './store.js';
import { createRecorder } from './recorder.js';

const VERSION = 1;
const FULL_SNAPSHOT = 2;
const FLUSH_MS = 50; // how long high-rate events (pointer moves, scrolling, resizes) wait to be batched
const FLUSH_EVENTS = 200;
// What the agent is waiting to see goes out at once instead, on the next
// microtask (everything rrweb records in the same event listener travels in
// one frame): rrweb IncrementalSnapshot sources MouseInteraction 2, Input 5,
// Selection 14, and DOM mutations (0) within REACTION_MS of one of those (the
// page reacting to the visitor). Batching typing for 50 ms was about half of
// the keystroke-to-agent time (bench/browser.py: ~53 ms of ~116 ms at the
// median). Not a 0 ms timer: right after an input event Chromium runs timers
// only once it has rendered the next frame, 6-21 ms later in that benchmark.
const INCREMENTAL = 3;
const MUTATION = 0;
const URGENT_SOURCES = new Set([2, 5, 14]);
const REACTION_MS = 500;
// At most one such frame per URGENT_GAP_MS (a drag-selection or an animated
// page while typing would otherwise send one per event): well under the hub's
// 100 frames/s per visitor, past which it drops frames.
const URGENT_GAP_MS = 20;
const HOLD_BYTES = 2 * 1024 * 1024; // unacknowledged batches kept for a resend
const RESEND_EVENTS = 2000; // per frame when catching up (the hub takes up to 5000)
const START_TRIES = 4; // before `shared`, give up after this many failed connections
const SEEN_MS = 15000; // how often the stored session's "seen" time is refreshed
// Frames of the session that features handle (markers.js, control.js, commands.js).
const HUB_FRAMES = new Set(['mark', 'unmark', 'laser', 'control_requested', 'control_state', 'input', 'command']);

const W = window;
const L = location;

export function share(w) {
  const ctx = w.ctx;
  const hub = w.hub;
  const recorder = createRecorder(ctx, record);

  let phase = 'idle';
  let reason = '';
  let sess = null; // {session, resume, code, expires}
  let viewers = [];
  let name = '';
  let live = false; // the hub attached this socket to the session
  let tries = 0; // connections lost before `shared`
  let flushTimer = 0;
  let flushSoon = false; // a flush is queued as a microtask
  let lastUrgent = -Infinity;
  let lastFlush = -Infinity;
  let seenWritten = 0;
  let forceSnapshot = false;
  let queue = []; // events not batched yet
  let held = []; // batches not acknowledged: {seq, ev, bytes, full}
  let heldBytes = 0;
  let seq = 0; // seq of the next batch
  let lastUrl = L.href;
  let navTimer = 0;

  function setPhase(p, why) {
    phase = p;
    if (why !== undefined) reason = why;
    w.emit('share:state', { phase, reason, viewers, code: sess && sess.code, expires: sess && sess.expires });
  }

  const active = () => phase != 'idle' && phase != 'failed' && phase != 'ended';

  // ----- the connection (socket.js) -----------------------------------------------

  const send = (m) => hub.send(m);

  function helloFields(m) {
    if (!sess || !active()) return;
    m.resume = sess.resume;
    // A hub that restarted learns the visitor's name again from here.
    if (sess.name) m.name = sess.name;
    // The highest seq we can no longer resend (acknowledged, or dropped with
    // an old page): a hub that does not know this tab yet numbers it on from
    // there, and then takes everything we still hold.
    m.last_seq = (held.length ? held[0].seq : seq) - 1;
  }

  // A new connection: continue (the hello resumed the session) or ask again.
  function connected() {
    if (active() && !sess) send({ t: 'share', name });
  }

  function dropped() {
    live = false;
    if (!active()) return;
    if (!sess) {
      if (++tries >= START_TRIES) {
        recorder.stop();
        hub.release('share');
        setPhase('failed', 'unreachable');
      }
      return;
    }
    if (phase != 'reconnecting') setPhase('reconnecting');
  }

  function alive() {
    const now = Date.now();
    if (sess && live && now - seenWritten > SEEN_MS) {
      seenWritten = now;
      saveSession(sess);
    }
  }

  // ----- frames from the hub -------------------------------------------------------

  const on = {
    shared(m) {
      if (sess || !active()) return;
      sess = { session: m.session, resume: m.resume, code: m.code, expires: m.code_expires, name };
      saveSession(sess);
      seenWritten = Date.now();
      seq = storedSeq(sess.session);
      goLive([]);
      recorder.start().catch(recorderFailed);
    },
    welcome(m) {
      if (!sess || !active()) return; // the first share answers with `shared`
      if (m.session != sess.session) return finish('gone');
      goLive(m.viewers || []);
      catchUp(typeof m.have_seq == 'number' ? m.have_seq : -1);
    },
    ack(m) {
      alive();
      trim(m.seq);
    },
    pong: alive,
    snapshot() {
      // One already on its way answers it (the hub asks when it sees a gap,
      // even in the very batch that carries the new snapshot).
      if (sess && !held.some((b) => b.full) && !queue.some(isFull)) recorder.snapshot();
    },
    viewers(m) {
      if (sess && m.session == sess.session) {
        viewers = m.viewers || [];
        setPhase(phase);
      }
    },
    ended(m) {
      if (!sess || m.session != sess.session) return;
      // A hub shutting down ends sessions for its agents, but the visitor's
      // token resumes it on the hub that comes back: reconnect, do not stop.
      if (m.reason == 'server_shutdown') return hub.drop();
      finish(m.reason || 'gone');
    },
    error(m) {
      // The token is refused, or the hub no longer counts this tab as sharing
      // (the session ended and its `ended` did not reach us): it is over.
      if (m.code == 'bad_resume' || (m.code == 'not_sharing' && live)) return finish('gone');
      // This tab is one too many for the session (a plain `welcome` follows):
      // it does not share, but the session, and the visitor's other tabs, go
      // on. Ending it as 'gone' would clear the stored session, and every other
      // tab follows a cleared one out.
      if (m.code == 'too_many_tabs' && m.re == 'hello') return finish('too_many_tabs', 'failed', false);
      if (m.code == 'bad_version') {
        // (socket.js gave up on the connection)
        if (active()) finish('version', 'failed');
        return;
      }
      // Chat (and other features) deal with their own errors.
      if (!/^(chat|leave|screen|signal)/.test(m.re || '')) console.warn('cobrowse: the help service said ' + m.code + ': ' + m.message);
    },
  };
  for (const t in on) w.on('hub:' + t, on[t]);
  // Session frames reach the features only while this tab shares that session
  // (the hub addresses them so; checked all the same).
  for (const t of HUB_FRAMES)
    hub.gate(t, (m) => sess && live && (m.session == null || m.session == sess.session) && (m.tab == null || m.tab == tabId()));
  w.on('socket:hello', helloFields);
  w.on('socket:up', connected);
  w.on('socket:down', dropped);

  function goLive(list) {
    live = true;
    tries = 0;
    viewers = list;
    setPhase('sharing');
    lastUrl = L.href;
  }

  // ----- events, batches, acknowledgements -----------------------------------------

  const isFull = (e) => e.type == FULL_SNAPSHOT;

  function urgent(event) {
    if (event.type != INCREMENTAL || !event.data) return false;
    const now = Date.now();
    if (URGENT_SOURCES.has(event.data.source)) {
      lastUrgent = now;
      return true;
    }
    return event.data.source == MUTATION && now - lastUrgent < REACTION_MS;
  }

  function record(event) {
    if (!sess) return;
    queue.push(event);
    if (isFull(event) || queue.length >= FLUSH_EVENTS) flush();
    else if (urgent(event)) {
      if (!flushSoon) {
        flushSoon = true;
        const wait = lastFlush + URGENT_GAP_MS - performance.now();
        if (wait <= 0) Promise.resolve().then(flush);
        else {
          clearTimeout(flushTimer);
          flushTimer = setTimeout(flush, wait);
        }
      }
    } else if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  function flush() {
    clearTimeout(flushTimer);
    flushTimer = 0;
    flushSoon = false;
    if (!queue.length || !sess) return;
    lastFlush = performance.now();
    const ev = queue;
    queue = [];
    const frame = JSON.stringify({ t: 'rr', seq, ev });
    held.push({ seq, ev, bytes: frame.length, full: ev.some(isFull) });
    heldBytes += frame.length;
    seq += ev.length;
    saveSeq(sess.session, seq);
    // Bounded: past the limit the oldest go; a reconnect then needs a snapshot.
    while (heldBytes > HOLD_BYTES && held.length > 1) heldBytes -= held.shift().bytes;
    if (live) send(frame);
  }

  function trim(upTo) {
    while (held.length && held[0].seq + held[0].ev.length - 1 <= upTo) heldBytes -= held.shift().bytes;
  }

  // After a (re)connection: the hub holds this tab's events up to `have`.
  function catchUp(have) {
    trim(have);
    let snap = forceSnapshot;
    forceSnapshot = false;
    if (have >= seq || (held.length ? held[0].seq > have + 1 : seq > have + 1)) {
      // The hub lacks events we no longer hold (lost with a page load, or
      // dropped by the bound), or it knows more than we do. Go on right after
      // what it has, from a full snapshot: the last one we hold if any
      // (renumbered), else a fresh one (a new page's recorder starts with one).
      let k = held.length;
      while (k-- > 0 && !held[k].full);
      held = k >= 0 ? held.slice(k) : [];
      seq = have + 1;
      heldBytes = 0;
      for (const b of held) {
        b.seq = seq;
        seq += b.ev.length;
        heldBytes += b.bytes;
      }
      saveSeq(sess.session, seq);
      if (!held.length) snap = true;
    }
    for (let i = 0; i < held.length; ) {
      const first = held[i].seq;
      let ev = held[i++].ev;
      while (i < held.length && ev.length + held[i].ev.length <= RESEND_EVENTS) ev = ev.concat(held[i++].ev);
      send({ t: 'rr', seq: first, ev });
    }
    if (snap && !queue.some(isFull)) recorder.snapshot();
    flush();
  }

  // ----- starting, resuming, stopping ----------------------------------------------------

  let startTries = 0;
  function recorderFailed(e) {
    console.warn(e);
    if (!sess) return;
    // A flaky network on a page load: try the bundle again a few times.
    if (++startTries < 3) setTimeout(() => sess && recorder.start().catch(recorderFailed), 1000 * startTries);
    else stop('broken');
  }

  function start(visitorName) {
    if (active()) return;
    name = String(visitorName || '').trim().slice(0, 200);
    sess = null;
    viewers = [];
    tries = 0;
    startTries = 0;
    queue = [];
    held = [];
    heldBytes = 0;
    setPhase('starting', '');
    recorder.preload();
    hub.hold('share');
    if (hub.up()) connected(); // (the chat's connection: no new hello)
  }

  function resume() {
    if (active()) return;
    const s = storedSession();
    if (!s) return;
    sess = s;
    seq = storedSeq(s.session);
    tries = 0;
    startTries = 0;
    setPhase('resuming', '');
    hub.hold('share');
    recorder.start().catch(recorderFailed);
  }

  // "Try again" in a tab turned away as one too many: join the session again,
  // or share anew if it has ended meanwhile. The resume token goes in a hello,
  // so a socket kept open by the chat is opened again.
  function rejoin(data) {
    if (active()) return;
    if (!storedSession()) return start(data && data.name);
    const wasUp = hub.up();
    resume();
    if (wasUp) hub.drop();
  }

  // The visitor stops: every agent's view ends at once. `stop` goes on the live
  // socket, or over a short connection of its own while we are reconnecting.
  function stop(why) {
    if (!active()) return;
    const s = sess;
    if (hub.up()) {
      // (before `shared` too: the hub takes frames in order, so this stop ends
      // the session our `share` is creating)
      flush();
      send({ t: 'stop' });
    } else if (s) {
      try {
        const sock = new WebSocket(ctx.base.replace(/^http/, 'ws') + 'ws');
        sock.onopen = () => {
          sock.send(JSON.stringify({ t: 'hello', v: VERSION, visitor: visitorId(), tab: tabId(), url: L.href, resume: s.resume }));
          sock.send('{"t":"stop"}');
          sock.close();
        };
      } catch (e) {
        // the hub ends it at its idle timeout
      }
    }
    finish(why || 'visitor_stopped');
  }

  // `forget`: clear the stored session, so no tab resumes it (and the others stop).
  function finish(why, to, forget = true) {
    if (!active()) return;
    live = false;
    clearTimeout(flushTimer);
    flushTimer = 0;
    flushSoon = false;
    recorder.stop();
    hub.release('share');
    if (forget) clearSession(sess && sess.session);
    sess = null;
    queue = [];
    held = [];
    heldBytes = 0;
    viewers = [];
    setPhase(to || 'ended', why);
  }

  // ----- the page around us ----------------------------------------------------------

  // Same-document navigations: tell the hub the new address (and title, which
  // single-page apps usually set a moment after the URL).
  function urlChanged() {
    if (L.href == lastUrl) return;
    lastUrl = L.href;
    w.emit('share:nav', { url: L.href });
    clearTimeout(navTimer);
    navTimer = setTimeout(() => live && send({ t: 'nav', url: L.href, title: document.title }), 150);
  }
  const history = W.history;
  for (const method of ['pushState', 'replaceState']) {
    const original = history[method];
    if (typeof original != 'function') continue;
    history[method] = function () {
      const result = original.apply(this, arguments);
      if (active()) urlChanged();
      return result;
    };
  }
  W.addEventListener('popstate', () => active() && urlChanged());
  W.addEventListener('hashchange', () => active() && urlChanged());

  W.addEventListener('pagehide', (e) => {
    if (!active()) return;
    flush();
    if (sess && live) saveSession(sess);
    // Into the back/forward cache: socket.js lets go of the socket, and picks it up on return.
    if (e.persisted) live = false;
  });
  W.addEventListener('pageshow', (e) => {
    if (!e.persisted || !active()) return;
    // Other pages of this tab went on with its event stream meanwhile.
    const s = storedSession();
    if (!s || !sess || s.session != sess.session) return finish('gone');
    held = [];
    heldBytes = 0;
    queue = [];
    seq = storedSeq(s.session);
    forceSnapshot = true;
  });
  // Another tab of this site stopped sharing (or saw it end): so does this one,
  // unless the hub tells it first why.
  W.addEventListener('storage', (e) => {
    if (e.key == SHARE_KEY && !e.newValue && sess) setTimeout(() => sess && !storedSession() && finish('gone'), 1000);
  });

  w.on('share:start', (data) => start(data && data.name));
  w.on('share:stop', () => stop());
  w.on('resume', resume);
  w.on('share:rejoin', rejoin);
  w.share = {
    state: () => ({ phase, reason, viewers, code: sess && sess.code, expires: sess && sess.expires }),
    send: (m) => live && send(m),
    node: (id) => recorder.node(id),
  };
}
