// Socket: the widget's one websocket to the hub (<base>ws on the page's own
// origin, protocol v1: cobrowse/sync/protocol.py, docs/protocol.md), shared by
// every feature that talks to the hub: sharing (share.js), chat (chat.js),
// screen sharing. It is open only while some feature holds it, and a feature
// holds it only after the visitor acted (agreed to share, started a chat, left
// a message) or on a page load that continues what they started. While held it
// reconnects by itself, with backoff, and pings to notice a dead connection.
//
// Every connection starts with `hello` {v, visitor, tab, url, title}; the
// features add their own fields to it ('socket:hello') and then send what
// continues their state on the new connection ('socket:up'). Frames from the
// hub go to the features as 'hub:<t>' events. See index.js for the API.
import { visitorId, tabId } from './store.js';

const VERSION = 1;
const BACKOFF_MIN = 500;
const BACKOFF_MAX = 10000;
const PING_MS = 20000;
const SILENT_MS = 45000; // nothing heard for this long: the connection is dead
const OURS = /^(send|hold|release)$/; // our own 'hub:' request events, never a frame type

export function socket(w) {
  const url = w.ctx.base.replace(/^http/, 'ws') + 'ws';
  const holders = new Set();
  const gates = {};
  let ws = null;
  let up = false; // open, hello sent
  let failed = false; // the hub speaks another version: do not retry
  let tries = 0;
  let retryTimer = 0;
  let pingTimer = 0;
  let heard = 0;
  let pings = 0;

  function send(m) {
    if (!up || ws.readyState != 1) return false;
    ws.send(typeof m == 'string' ? m : JSON.stringify(m));
    return true;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (ws || failed || !holders.size) return;
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      return dropped();
    }
    ws = sock;
    sock.onopen = () => {
      heard = Date.now();
      const hello = { t: 'hello', v: VERSION, visitor: visitorId(), tab: tabId(), url: location.href, title: document.title };
      w.emit('socket:hello', hello);
      up = true;
      send(hello);
      pingTimer = setInterval(ping, PING_MS);
      w.emit('socket:up');
    };
    sock.onmessage = (e) => {
      heard = Date.now();
      tries = 0;
      let m;
      try {
        m = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (!m || typeof m.t != 'string' || OURS.test(m.t) || (gates[m.t] && !gates[m.t](m))) return;
      if (m.t == 'error' && m.code == 'bad_version') {
        // Retrying with the same version cannot help: give up (and say so, below).
        failed = true;
        detach();
      }
      w.emit('hub:' + m.t, m);
    };
    sock.onclose = () => ws == sock && dropped();
  }

  // Forget the socket without waiting for its closing handshake.
  function detach() {
    const sock = ws;
    ws = null;
    up = false;
    clearInterval(pingTimer);
    if (sock) {
      sock.onclose = sock.onmessage = sock.onopen = null;
      try {
        sock.close(1000);
      } catch (e) {
        // already closed
      }
    }
  }

  function dropped() {
    detach();
    if (failed || !holders.size) return;
    const n = tries++;
    // 0.5 s doubling to 10 s, with jitter so a restarted hub is not hit by every visitor at once.
    const delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** Math.min(n, 10));
    retryTimer = setTimeout(connect, delay * (0.7 + Math.random() * 0.6));
    w.emit('socket:down', { tries: n + 1 });
  }

  function reconnectNow() {
    if (holders.size && !ws) {
      tries = 0;
      connect();
    }
  }

  function ping() {
    if (Date.now() - heard > SILENT_MS) return dropped();
    send({ t: 'ping', n: ++pings });
  }

  function hold(name) {
    holders.add(name);
    connect();
  }

  function release(name) {
    holders.delete(name);
    if (!holders.size) {
      clearTimeout(retryTimer);
      detach();
    }
  }

  // Into the back/forward cache: let go of the socket, pick it up on return.
  addEventListener('pagehide', (e) => e.persisted && detach());
  addEventListener('pageshow', (e) => e.persisted && reconnectNow());
  addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => document.visibilityState == 'visible' && reconnectNow());

  w.on('hub:send', send);
  w.on('hub:hold', hold);
  w.on('hub:release', release);
  w.hub = {
    send,
    hold,
    release,
    up: () => up,
    drop: dropped, // (a hub going away said so: reconnect now, with backoff)
    gate: (t, fn) => (gates[t] = fn),
  };
}
