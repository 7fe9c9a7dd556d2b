// The agent websocket into the hub (GET /ws on the console's own origin,
// authenticated by the session cookie). It says agent_hello, waits for
// welcome, then hands control to onReady, which (re)subscribes to the queue
// and (re)joins the open session with `since`. When the socket drops (network,
// hub restart) it reconnects with exponential backoff and jitter, without a
// page reload; a socket that goes quiet is treated as dropped.

const PROTOCOL_VERSION = 1;
const BACKOFF_FIRST = 400; // ms
const BACKOFF_MAX = 10_000;
const PING_EVERY = 15_000;
const SILENCE_LIMIT = 40_000; // no frame at all for this long: the socket is dead

export class AgentSocket {
  // handlers: onFrame(frame), onReady(), onStatus({state, retryIn}), onAuthLost()
  // checkAuth(): Promise<boolean> — is the login still valid? (asked after failed attempts)
  constructor(url, handlers, checkAuth) {
    this.url = url;
    this.h = handlers;
    this.checkAuth = checkAuth;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.failures = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastFrame = 0;
    this.pingCount = 0;
    this.onOnline = () => this.reconnectNow();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.drop(1000, 'logout');
    this.status('offline');
  }

  // Send a frame; false when not connected (callers resend from onReady).
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState != WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // Drop the socket and reconnect at once (e.g. the browser came back online).
  reconnectNow() {
    if (this.stopped) return;
    this.failures = 0;
    clearTimeout(this.retryTimer);
    this.drop(4000, 'reconnect');
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.status('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => {
      this.lastFrame = Date.now();
      ws.send(JSON.stringify({ t: 'agent_hello', v: PROTOCOL_VERSION }));
    };
    ws.onmessage = (message) => {
      this.lastFrame = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!frame || typeof frame.t != 'string') return;
      if (frame.t == 'welcome' && !this.ready) {
        this.ready = true;
        this.failures = 0;
        this.startPings();
        this.status('online');
        this.h.onReady();
        return;
      }
      if (frame.t == 'pong') return;
      this.h.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      this.stopPings();
      this.scheduleRetry();
    };
    ws.onerror = () => {
      // onclose follows and does the work
    };
  }

  drop(code, reason) {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    this.stopPings();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, reason);
      } catch {
        // already closed
      }
    }
  }

  async scheduleRetry() {
    if (this.stopped) return;
    this.failures += 1;
    // After a few failed attempts, find out whether the login itself is gone
    // (an expired cookie fails the upgrade with 401, which a websocket cannot see).
    if (this.failures >= 2 && this.checkAuth) {
      let valid = true;
      try {
        valid = await this.checkAuth();
      } catch {
        valid = true; // the server is unreachable: keep trying
      }
      if (this.stopped) return;
      if (!valid) {
        this.stop();
        this.h.onAuthLost();
        return;
      }
    }
    const base = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (this.failures - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.status('reconnecting', Date.now() + delay);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastFrame > SILENCE_LIMIT) {
        // Half-open connection: the close handshake may never finish, so do not wait for it.
        this.drop(4000, 'silent');
        this.scheduleRetry();
        return;
      }
      this.send({ t: 'ping', n: ++this.pingCount });
    }, PING_EVERY);
  }

  stopPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  status(state, retryAt) {
    if (this.h.onStatus) this.h.onStatus({ state, retryAt });
  }
}

export function socketUrl() {
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol == 'https:' ? 'wss:' : 'ws:';
  return url.href;
}
