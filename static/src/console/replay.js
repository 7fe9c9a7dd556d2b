// One visitor tab replayed live with rrweb's Replayer.
//
// Timing. The Replayer in live mode schedules every event at
//   delay = event.timestamp - baseline
// on a timer that starts at 0 when startLive() is called, so an event shows
// when (time since startLive) >= delay. Started naively (baseline = the first
// event's timestamp) every event is late by however long the replayer took to
// build, plus any clock difference between the visitor's machine and ours
// (rrweb #1073): 110-175 ms measured here, seconds with a skewed clock.
//
// So each event's timestamp is moved onto OUR clock before it is added:
//   local = visitor timestamp - offset,  offset = visitor clock - our clock
// and the replayer starts with baseline = our clock at the moment its timer
// starts (taken after the replayer is built: a baseline taken before building
// it made every event late by the build time, 25-60 ms measured in
// bench/browser.py). "Our clock" is performance.timeOrigin + performance.now(),
// the clock rrweb's timer counts in, so it cannot drift from the timer the way
// Date.now() can over a long stay on one page. An event then falls due
// at the first animation frame after it arrives (its local time is "now minus
// the network delay"), with no buffer. The offset is estimated as
//   max over arrived events of (timestamp - arrival time)
// which is the true offset minus the smallest network delay seen: it only ever
// errs towards "due now", never towards "due later". A late joiner's backlog
// (snapshot plus events since) maps into the past and is applied at once;
// events are kept in order (a later event is never due before an earlier one).
//
// The one exception is the mouse: rrweb's recorder sends a pointer path every
// few hundred ms as one event whose positions carry negative time offsets. Due
// on arrival, the whole path would run in one frame and the pointer would jump,
// so a path is replayed over its own duration starting when it arrives (the
// pointer trails by at most MOUSE_PATH_MAX ms), and clicks wait for the pointer
// to get there. Pointer events are independent of the page's DOM, so this
// never holds up typing, scrolling or page changes.
//
// The page is rebuilt in rrweb's sandboxed iframe (sandbox="allow-same-origin",
// no scripts: the page's own scripts never run here). On a new page the
// replayer is rebuilt off-screen and swapped in once the snapshot is drawn.

import { Replayer } from '@rrweb/replay';

const EV_FULL_SNAPSHOT = 2;
const EV_INCREMENTAL = 3;
const EV_META = 4;
const SRC_MOUSE_MOVE = 1;
const SRC_MOUSE_INTERACTION = 2;
const SRC_TOUCH_MOVE = 6;
const SRC_DRAG = 12;
const POINTER_PATH_SOURCES = new Set([SRC_MOUSE_MOVE, SRC_TOUCH_MOVE, SRC_DRAG]);
// MouseInteractions that place the pointer (not Focus 5 / Blur 6 / TouchCancel 10).
const POINTER_INTERACTIONS = new Set([0, 1, 2, 3, 4, 7, 9]);
const FOCUS = 5;
const BLUR = 6;
const MOUSE_PATH_MAX = 600; // ms the pointer may trail behind
const SWAP_TIMEOUT = 1500;
const EVENTS_KEPT = 2000; // events a replayer keeps in memory (see trim) // show a rebuilt page after this long even without the rebuild event

// Our clock for scheduling (see the top): epoch ms, on the timer's time base.
const clockNow = () => performance.timeOrigin + performance.now();

// Drawn inside the replay document (on top of the page's own styles).
const REPLAY_RULES = [
  // The visitor's focused field (rrweb's triggerFocus would move the agent's
  // keyboard focus into the replay, so focus is shown with a ring instead).
  '[data-cobrowse-focus]{outline:2px solid #4f46e5 !important;outline-offset:2px !important;' +
    'box-shadow:0 0 0 5px rgba(79,70,229,.22) !important}',
  // A frame without focus paints its selection pale grey; keep the visitor's selection visible.
  '::selection{background:rgba(79,70,229,.32) !important}',
];

// visitor clock minus our clock, shared by the tabs of one visitor.
export class VisitorClock {
  constructor() {
    this.offset = null;
    this.lowRun = 0;
  }

  observe(timestamp, now) {
    const seen = timestamp - now;
    if (!Number.isFinite(seen)) return;
    if (this.offset == null || seen > this.offset) {
      this.offset = seen;
      this.lowRun = 0;
    } else if (seen < this.offset - 5000 && ++this.lowRun >= 8) {
      // The visitor's clock went back (NTP, manual change): start over from what we see now.
      this.offset = seen;
      this.lowRun = 0;
    } else if (seen >= this.offset - 5000) {
      this.lowRun = 0;
    }
  }

  toLocal(timestamp) {
    return timestamp - (this.offset ?? 0);
  }
}

export class TabReplay {
  // host: the element the replay is drawn in (its size is the space available).
  // onSize({width, height}) when the visitor's viewport size changes.
  constructor(host, clock, { onSize, onFirstPaint } = {}) {
    this.host = host;
    this.clock = clock;
    this.onSize = onSize || (() => {});
    this.onFirstPaint = onFirstPaint || (() => {});
    this.current = null; // {replayer, mount, size, floor, pointerDue, focused}
    this.pending = null;
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(host);
  }

  get ready() {
    return Boolean(this.pending || this.current);
  }

  get size() {
    const view = this.pending || this.current;
    return view ? view.size : null;
  }

  // A new page or a fresh snapshot: build a new replayer from these events.
  reset(events) {
    const now = clockNow();
    if (events.length) this.clock.observe(events[events.length - 1].timestamp, now);
    if (this.pending) this.discard(this.pending);
    const view = this.build();
    view.timing = { received: Date.now() };
    this.pending = view;
    view.swapTimer = setTimeout(() => this.swapIn(view), SWAP_TIMEOUT);
    this.feed(view, events, now);
  }

  // Events that continue the current page.
  add(events) {
    const view = this.pending || this.current;
    if (!view || !events.length) return false;
    const now = clockNow();
    this.clock.observe(events[events.length - 1].timestamp, now);
    this.feed(view, events, now);
    return true;
  }

  destroy() {
    this.resizeObserver.disconnect();
    if (this.pending) this.discard(this.pending);
    if (this.current) this.discard(this.current);
    this.pending = this.current = null;
  }

  build() {
    const mount = document.createElement('div');
    mount.className = 'replay-mount is-pending';
    this.host.append(mount);
    const view = { mount, replayer: null, size: null, floor: -Infinity, pointerDue: -Infinity, focused: null };
    const replayer = new Replayer([], {
      root: mount,
      liveMode: true,
      // Live events must reach the real DOM at once: rrweb's virtual DOM is only
      // flushed by play(), which live mode never calls.
      useVirtualDom: false,
      UNSAFE_replayCanvas: false, // never let the page's scripts run
      triggerFocus: false, // see REPLAY_RULES
      pauseAnimation: false, // the page's CSS animations run as they do for the visitor
      mouseTail: { duration: 500, lineCap: 'round', lineWidth: 3, strokeStyle: 'rgba(79,70,229,0.4)' },
      insertStyleRules: REPLAY_RULES,
      showWarning: false,
      speed: 1,
    });
    view.replayer = replayer;
    // rrweb's frame: named for screen readers, out of the Tab order (it is a picture, not a page to use).
    if (replayer.iframe) {
      replayer.iframe.setAttribute('title', this.title || "The visitor's page, live");
      replayer.iframe.setAttribute('tabindex', '-1');
    }
    replayer.on('resize', (size) => {
      if (!size || !size.width || !size.height) return;
      view.size = { width: size.width, height: size.height };
      if (view === this.current || (view === this.pending && !this.current)) this.onSize(view.size);
      this.layout();
    });
    // The DOM is complete when this fires: swap now, the next paint shows it whole.
    replayer.on('fullsnapshot-rebuilded', () => this.swapIn(view));
    replayer.on('mouse-interaction', ({ type, target }) => this.markFocus(view, type, target));
    // rrweb adapts every stylesheet of a snapshot for replay (hover rules) and
    // caches the result per replayer: pages of one site share most CSS.
    if (this.cssCache && 'cache' in replayer) replayer.cache = this.cssCache;
    else if ('cache' in replayer) this.cssCache = replayer.cache;
    // Baseline just after now, read as the timer starts: everything that
    // already happened (a late joiner's backlog, a new page's snapshot) is
    // applied at once, synchronously, and a live event is due at the first
    // animation frame after it arrives.
    replayer.startLive(clockNow() + 1);
    return view;
  }

  swapIn(view) {
    if (view !== this.pending) return;
    clearTimeout(view.swapTimer);
    if (view.timing) view.timing.shown = Date.now();
    const old = this.current;
    this.current = view;
    this.pending = null;
    view.mount.classList.remove('is-pending');
    if (old) this.discard(old);
    this.layout();
    if (view.size) this.onSize(view.size);
    this.onFirstPaint();
  }

  discard(view) {
    clearTimeout(view.swapTimer);
    try {
      view.replayer.destroy();
    } catch {
      // already gone
    }
    view.mount.remove();
  }

  feed(view, events, now) {
    for (const event of events) {
      let at = Math.min(this.clock.toLocal(event.timestamp), now);
      const data = event.type == EV_INCREMENTAL ? event.data : null;
      if (data && POINTER_PATH_SOURCES.has(data.source) && data.positions && data.positions.length) {
        // Play the path over its own duration, starting now.
        const first = Math.min(0, data.positions[0].timeOffset || 0);
        at = Math.max(at, view.floor) + Math.min(-first, MOUSE_PATH_MAX);
        view.pointerDue = Math.max(view.pointerDue, at);
      } else if (data && data.source == SRC_MOUSE_INTERACTION && POINTER_INTERACTIONS.has(data.type)) {
        // A click shows where the pointer is, so it waits for the pointer.
        at = Math.max(at, view.floor, view.pointerDue);
      } else {
        at = Math.max(at, view.floor);
        view.floor = at;
      }
      event.timestamp = at;
      if (event.type == EV_META && event.data && !view.size) {
        view.size = { width: event.data.width, height: event.data.height };
      }
      view.replayer.addEvent(event);
    }
    this.trim(view);
  }

  // rrweb keeps every event it was given (rrweb #1158); live mode only needs
  // the first (its time origin) and the latest (ordering new ones). A new page
  // rebuilds the replayer anyway; this bounds a long stay on one page.
  trim(view) {
    try {
      const list = view.replayer.service.state.context.events;
      if (Array.isArray(list) && list.length > EVENTS_KEPT * 2) list.splice(1, list.length - EVENTS_KEPT);
    } catch {
      // rrweb's internals changed: keep everything
    }
  }

  markFocus(view, type, target) {
    if (type != FOCUS && type != BLUR) return;
    if (view.focused && view.focused.removeAttribute) view.focused.removeAttribute('data-cobrowse-focus');
    view.focused = null;
    if (type == FOCUS && target && target.setAttribute && target.nodeName != 'BODY' && target.nodeName != 'HTML') {
      target.setAttribute('data-cobrowse-focus', '');
      view.focused = target;
    }
  }

  // Fit the visitor's viewport into the host (centred, never enlarged), keeping its aspect.
  layout() {
    for (const view of [this.current, this.pending]) {
      if (!view || !view.size) continue;
      const { width, height } = view.size;
      const room = this.host.getBoundingClientRect();
      if (!room.width || !room.height) continue;
      const scale = Math.min(room.width / width, room.height / height, 1);
      const x = Math.max(0, (room.width - width * scale) / 2);
      const y = 0; // top-aligned: the visitor's page starts where the agent looks first
      view.mount.style.width = `${width}px`;
      view.mount.style.height = `${height}px`;
      view.mount.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
      view.scale = scale;
    }
  }

  // When the current page's snapshot arrived and when it was drawn (Date.now()).
  get timing() {
    return this.current ? this.current.timing : null;
  }

  get scale() {
    return this.current ? this.current.scale || 1 : 1;
  }

  // The replay iframe's document (tests and debugging).
  get document() {
    const view = this.current || this.pending;
    const frame = view && view.replayer.iframe;
    return frame ? frame.contentDocument : null;
  }
}
