// Markers: what a support agent points at, shown on the visitor's real page.
//
//   <- mark {marker: {id, kind, anchor, note, pinned, scroll, points, by}}
//        element  an outline box round the element, the note beside it
//        text     the words, like a highlighter pen: a Range inside the
//                 anchored element from anchor.start/end (offsets over its
//                 text), checked against anchor.quote, drawn from getClientRects()
//        field    a form field to fill in
//        draw     a freehand line, points relative to the element's box (0..1)
//   <- unmark {id|null}          one marker, or all of them
//   <- laser {anchor|null, x, y} a dot following the agent's pointer, fading when still
//   -> unmark {id|null}          the visitor clears them ("Clear marks", or x on one)
//
// Anchored to elements, not to coordinates: anchor.node is the element's rrweb
// node id on this page (share.js resolves it through the recorder's mirror),
// with anchor.selector and anchor.quote (its text) as fallbacks, which also
// find a pinned marker again after a page load. A node id is only trusted when
// the element still fits the selector or the quote, since ids are per page.
// Markers follow their element: a scroll (of the page or any box in it),
// a resize, a zoom, a size change (ResizeObserver) or a DOM change
// (MutationObserver) schedules ONE requestAnimationFrame that measures every
// marker first and then moves them (transforms). An element that leaves the
// DOM hides its marker; it comes back when the element does (the same node,
// or one found again by id, selector or quote).
//
// Scrolling must stay cheap (a page with 20 markers used to spend 10-20 ms per
// scrolled frame restyling them; see bench/markers.py): every transform and
// size is written only when it changed, and things are placed relative to
// their parent. The markers sit on one composited plane (.mk-w) at the page's
// origin, so a page scroll moves only the plane (one transform, which the
// compositor applies); each marker's group sits at its element's corner, so an
// element that moves as a whole (in a box that scrolls, in a sticky header)
// moves only its group; the box, rects and note are rewritten only when the
// element's size or the note's side changes. Once a marker's arrival
// animations are over they are dropped, and so is the box's ring (a
// pseudo-element): they made each restyle several times dearer.
//
// Everything is drawn in our shadow root (never recorded, so agents do not see
// it twice) on a layer with pointer-events: none: only our own buttons take
// clicks. Notes are plain text (textContent); nothing an agent sends is parsed
// as HTML or used as a URL, and styles go through the adopted stylesheet and
// CSSOM properties (strict-CSP pages).
import { h, icon, adopt, FONT } from '../lib/dom.js';
import { CLOSE } from './ui.js';

const D = document;
const W = window;
const SVG_NS = 'http://www.w3.org/2000/svg';
const KINDS = ['element', 'text', 'field', 'draw'];
const MAX_NOTE = 280;
const MAX_POINTS = 2000;
const MAX_MARKERS = 100; // per tab, as the hub keeps them
const RETRY_MS = 400; // a missing element is looked for at most this often
const SCROLL_WITHIN = 3000; // ms after a mark arrives during which it may still scroll the page to it
const LASER_IDLE = 1500; // ms without a move before the dot fades
const SETTLE_MS = 2700; // ms after a marker shows when its arrival animations (ring: .1 s + 2 x 1.2 s) are over
const PEN = 'M4 20h4L19 9a2.8 2.8 0 0 0-4-4L4 16v4zM13.5 6.5l4 4';
const MARK_ICON = 'M12 3v3M12 18v3M3 12h3M18 12h3M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z';
// Text that is not the page's words (and is not in the agent's replay either).
const NOT_TEXT = /^(SCRIPT|STYLE|NOSCRIPT|TEMPLATE)$/;

const norm = (s) => String(s || '').replace(/\s+/g, ' ').trim();
const num = (v, d) => (typeof v == 'number' && isFinite(v) ? v : d);
const str = (v, max) => (typeof v == 'string' ? v.slice(0, max) : '');

const CSS = [
  [
    '.mk-l',
    'position:fixed;top:0;right:0;bottom:0;left:0;overflow:hidden;pointer-events:none;contain:strict;' +
      '--mk:var(--cobrowse-marker,#6941c6);--mk-soft:rgba(105,65,198,.2)',
  ],
  // The plane the markers are drawn on, in page coordinates: scrolling moves it, not them.
  ['.mk-w', 'position:absolute;top:0;left:0;width:0;height:0;will-change:transform'],
  ['.mk-g', 'position:absolute;top:0;left:0;width:0;height:0'],
  ['.mk-g.off', 'visibility:hidden'],
  ['.mk-g.off *', 'animation:none!important'],
  // Arrived (its animations are over): nothing left to animate, no ring.
  ['.mk-g.still *', 'animation:none'],
  ['.mk-g.still .mk-b::after', 'content:none'],
  [
    '.mk-b',
    'position:absolute;top:0;left:0;box-sizing:border-box;border:2.5px solid var(--mk);border-radius:10px;' +
      'box-shadow:0 0 0 4px var(--mk-soft),0 6px 24px rgba(105,65,198,.18);animation:mk-fade .2s ease-out',
  ],
  // (positioned by its transform: only its ring may scale)
  ['.mk-b::after', "content:'';position:absolute;top:-3px;right:-3px;bottom:-3px;left:-3px;border-radius:12px;border:2px solid var(--mk);opacity:0;animation:mk-ring 1.2s ease-out .1s 2"],
  ['.mk-f', 'border-style:dashed;background:rgba(105,65,198,.05)'],
  ['.mk-h', 'position:absolute;top:0;left:0;border-radius:3px;background:rgba(255,204,0,.42);box-shadow:0 2px 0 rgba(230,168,0,.55);animation:mk-fade .25s ease-out'],
  ['.mk-d', 'position:absolute;top:0;left:0;overflow:visible;animation:mk-fade .25s ease-out'],
  ['.mk-d path', 'fill:none;stroke-linecap:round;stroke-linejoin:round'],
  ['.mk-d .mk-u', 'stroke:#fff;stroke-width:7px;opacity:.9'],
  ['.mk-d .mk-s', 'stroke:var(--mk);stroke-width:3.5px'],
  [
    '.mk-t',
    'position:absolute;top:0;left:0;box-sizing:border-box;display:flex;align-items:flex-start;gap:8px;' +
      'width:max-content;max-width:min(300px,calc(100vw - 16px));padding:7px 6px 8px 10px;border-radius:10px;' +
      'background:var(--mk);color:#fff;font:400 13.5px/1.4 ' + FONT + ';text-align:left;' +
      'box-shadow:0 1px 3px rgba(16,24,40,.16),0 10px 28px rgba(16,24,40,.24);animation:mk-fade .25s ease-out',
  ],
  ['.mk-t::after', "content:'';position:absolute;left:14px;bottom:-4px;width:9px;height:9px;border-radius:2px;background:inherit;transform:rotate(45deg)"],
  ['.mk-t.dn::after', 'top:-4px;bottom:auto'],
  ['.mk-t.rt::after', 'left:auto;right:14px'],
  ['.mk-t > svg', 'flex:none;width:16px;height:16px;margin-top:2px'],
  ['.mk-t.bare > svg', 'width:15px;height:15px;margin:0'],
  ['.mk-c', 'min-width:0;padding-top:1px'],
  ['.mk-c b', 'display:block;font-size:11.5px;font-weight:600;letter-spacing:.02em;line-height:1.3;opacity:.8'],
  ['.mk-n', 'display:block;white-space:pre-line;overflow-wrap:anywhere'],
  ['.mk-t.bare', 'padding:3px 4px 3px 9px;border-radius:8px;font-size:12px;font-weight:600;align-items:center'],
  ['.mk-t.bare .mk-c', 'padding:0'],
  [
    '.mk-x',
    'pointer-events:auto;flex:none;display:flex;align-items:center;justify-content:center;width:22px;height:22px;' +
      'margin:0;padding:0;border:0;border-radius:6px;background:transparent;color:inherit;cursor:pointer;opacity:.8',
  ],
  ['.mk-x svg', 'width:14px;height:14px'],
  ['.mk-x:hover', 'opacity:1;background:rgba(255,255,255,.18)'],
  ['.mk-x:focus-visible', 'opacity:1;outline:2px solid #fff;outline-offset:0'],
  [
    '.mk-p',
    'position:absolute;top:0;left:0;width:18px;height:18px;box-sizing:border-box;border-radius:50%;' +
      'background:#f63d68;border:2.5px solid #fff;opacity:0;' +
      'box-shadow:0 0 0 5px rgba(246,61,104,.25),0 0 18px 4px rgba(246,61,104,.55);transition:transform .07s linear,opacity .4s ease-out',
  ],
  ['.mk-p.on', 'opacity:1;transition:transform .07s linear,opacity .12s'],
  ['.mk-p.nt', 'transition:none'],
  [
    '.mk-bar',
    'pointer-events:auto;position:fixed;left:20px;bottom:20px;box-sizing:border-box;display:flex;align-items:center;gap:10px;' +
      'max-width:calc(100vw - 200px);height:44px;padding:0 5px 0 14px;border-radius:999px;background:#101828;color:#fff;' +
      'font:500 13.5px/1.3 ' + FONT + ';box-shadow:0 10px 30px rgba(16,24,40,.3);animation:mk-up .2s ease-out',
  ],
  ['.mk-bar > svg', 'flex:none;width:18px;height:18px;color:#bda8ff'],
  ['.mk-bar span', 'min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap'],
  [
    '.mk-clr',
    'flex:none;height:34px;margin:0;padding:0 14px;border:0;border-radius:999px;background:rgba(255,255,255,.14);color:#fff;' +
      'font:600 13px/1 ' + FONT + ';cursor:pointer;transition:background .15s',
  ],
  ['.mk-clr:hover', 'background:rgba(255,255,255,.24)'],
  ['.mk-clr:focus-visible', 'outline:2px solid #fff;outline-offset:2px'],
  ['.mk-sr', 'position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap'],
  '@keyframes mk-ring{0%{opacity:.7;transform:scale(1)}100%{opacity:0;transform:scale(1.12)}}',
  '@keyframes mk-fade{from{opacity:0}}',
  '@keyframes mk-up{from{opacity:0;transform:translateY(8px)}}',
  // Narrow screens: the button says enough (the launcher is beside it).
  '@media (max-width:480px){.mk-bar{left:16px;bottom:16px;max-width:calc(100vw - 170px);padding-left:12px}.mk-bar span{display:none}}',
  '@media (prefers-reduced-motion:reduce){.mk-b,.mk-b::after,.mk-h,.mk-d,.mk-t,.mk-bar{animation:none}.mk-p,.mk-p.on{transition:opacity .2s}}',
  '@media print{.mk-l,.mk-bar{display:none}}',
];

// ----- finding the page's text ---------------------------------------------------

// The text under root as one string, with the text node and offset of every
// character (whitespace runs collapsed to one space when `collapse`). Our own
// UI, scripts and styles are not the page's words.
function textMap(root, collapse, host) {
  const nodes = [];
  const at = [];
  const off = [];
  let s = '';
  let space = true;
  const walker = D.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => (NOT_TEXT.test(n.parentNode.nodeName) || (host && host.contains(n)) ? 2 : 1),
  });
  for (let n; (n = walker.nextNode()); ) {
    const k = nodes.push(n) - 1;
    const data = n.data;
    for (let i = 0; i < data.length; i++) {
      let c = data[i];
      if (collapse && /\s/.test(c)) {
        if (space) continue;
        c = ' ';
        space = true;
      } else space = false;
      s += c;
      at.push(k);
      off.push(i);
    }
  }
  return {
    s,
    // A Range over characters [i, j) of s.
    range(i, j) {
      if (i < 0 || j <= i || j > s.length) return null;
      const r = D.createRange();
      r.setStart(nodes[at[i]], off[i]);
      r.setEnd(nodes[at[j - 1]], off[j - 1] + 1);
      return r;
    },
  };
}

// Where `quote` is in `text`: the occurrence nearest `near`, or -1.
function nearest(text, quote, near) {
  let best = -1;
  for (let i = text.indexOf(quote); i >= 0; i = text.indexOf(quote, i + 1)) {
    if (best < 0 || Math.abs(i - near) < Math.abs(best - near)) best = i;
    if (i > near) break;
  }
  return best;
}

// The highlighted words inside el: offsets start/end over its text if the
// words there are the quote, else the quote found in its text (nearest to
// start), else with whitespace differences ignored.
function wordsIn(el, a, host) {
  const raw = textMap(el, false, host);
  const quote = a.quote;
  if (a.start >= 0 && a.end > a.start && a.end <= raw.s.length) {
    const there = raw.s.slice(a.start, a.end);
    if (!quote || there == quote || norm(there) == norm(quote)) return raw.range(a.start, a.end);
  }
  if (!quote) return null;
  const i = nearest(raw.s, quote, Math.max(0, a.start));
  if (i >= 0) return raw.range(i, i + quote.length);
  const flat = textMap(el, true, host);
  const q = norm(quote);
  let j = flat.s.indexOf(q);
  if (j < 0) j = flat.s.toLowerCase().indexOf(q.toLowerCase());
  return j >= 0 && q ? flat.range(j, j + q.length) : null;
}

// Rects of a text range, one per line piece: no zero-sized ones, no duplicates
// (an inline element and its text give the same rect), neighbours on a line merged.
function lineRects(range) {
  const out = [];
  for (const r of range.getClientRects()) {
    if (r.width < 1 || r.height < 1) continue;
    const same = out.find((o) => Math.abs(o.top - r.top) < 3 && Math.abs(o.bottom - r.bottom) < 3 && r.left <= o.right + 3 && r.right >= o.left - 3);
    if (same) {
      same.left = Math.min(same.left, r.left);
      same.right = Math.max(same.right, r.right);
      same.top = Math.min(same.top, r.top);
      same.bottom = Math.max(same.bottom, r.bottom);
    } else out.push({ left: r.left, top: r.top, right: r.right, bottom: r.bottom });
  }
  return out;
}

// ----- the feature ------------------------------------------------------------------

export function markers(w) {
  const { root, host } = w.ctx;
  adopt(root, CSS);
  // (the drawings are decorative; the notes and their buttons are read)
  const layer = h('div', { className: 'mk-l' });
  const plane = h('div', { className: 'mk-w' });
  const dot = h('div', { className: 'mk-p', 'aria-hidden': 'true' });
  layer.append(plane, dot);
  // Below the rest of our UI (banner, panel, notices): first in the shadow root.
  root.insertBefore(layer, root.firstChild);

  const barText = h('span');
  const said = h('span', { className: 'mk-sr', role: 'status' });
  const bar = h('div', { className: 'mk-bar', role: 'region', 'aria-label': 'Marks from support', hidden: true }, [
    icon(MARK_ICON),
    barText,
    h('button', { type: 'button', className: 'mk-clr', textContent: 'Clear marks', onclick: () => clear(null, true) }),
  ]);
  root.append(bar, said);

  const list = []; // {m: the marker, el, range (text), g, box, svg, paths, rects, tag, at, tried}
  let raf = 0;
  let dirty = false; // the DOM changed: find anchors again, recompute text ranges
  let watching = false;
  let path = location.pathname;
  let laser = null; // {a, x, y, el, node}
  let laserTimer = 0;
  let safety = 0;
  const scrolledTo = new Set(); // marker ids this page was scrolled to

  const ours = (el) => el == host || host.contains(el) || el.getRootNode() == root;
  const usable = (el) => el && el.nodeType == 1 && el.isConnected && !ours(el);

  function matches(el, selector) {
    try {
      return el.matches(selector);
    } catch (e) {
      return false;
    }
  }

  // A node id belongs to one page: trust it when the element fits what else we
  // know: the selector, or the quote (for an element, its text, cut at 120
  // characters; for a text marker, words it holds).
  function fits(el, a, kind) {
    if (a.selector && matches(el, a.selector)) return true;
    if (!a.quote) return !a.selector;
    const t = norm(el.textContent);
    const q = norm(a.quote);
    return kind == 'text' ? t.indexOf(q) >= 0 : t == q || (q.length >= 100 && t.indexOf(q) == 0);
  }

  function bySelector(a) {
    let found = [];
    try {
      found = [...D.querySelectorAll(a.selector)].filter((el) => !ours(el));
    } catch (e) {
      return null; // not a selector this browser knows
    }
    const q = norm(a.quote);
    return (q && found.find((el) => norm(el.textContent).indexOf(q) >= 0)) || found[0] || null;
  }

  // The element whose text the quote is: the largest element around the first
  // place the words are found that has no other text (for text markers, the
  // element holding the words).
  function byQuote(a, kind) {
    const q = norm(a.quote);
    if (!q || !D.body) return null;
    const flat = textMap(D.body, true, host);
    let i = flat.s.indexOf(q);
    if (i < 0) i = flat.s.toLowerCase().indexOf(q.toLowerCase());
    const r = i >= 0 ? flat.range(i, i + q.length) : null;
    if (!r) return null;
    let el = r.commonAncestorContainer;
    if (el.nodeType != 1) el = el.parentElement;
    if (kind != 'text') while (el.parentElement && el.parentElement != D.body && norm(el.parentElement.textContent) == norm(el.textContent)) el = el.parentElement;
    return usable(el) ? el : null;
  }

  function resolve(a, kind) {
    let el = a.node >= 0 ? w.share.node(a.node) : null;
    if (el && el.nodeType == 3) el = el.parentElement;
    if (!(usable(el) && fits(el, a, kind))) el = null;
    if (!el && a.selector) el = bySelector(a);
    if (!el && a.quote) el = byQuote(a, kind);
    return usable(el) ? el : null;
  }

  // ----- observing the page ----------------------------------------------------------

  const schedule = () => {
    if (!raf && (list.length || laser)) raf = requestAnimationFrame(frame);
  };
  const changed = () => {
    dirty = true;
    schedule();
  };
  const resized = new ResizeObserver(schedule);
  const mutated = new MutationObserver(changed);
  const vv = W.visualViewport;

  function watch(on) {
    if (on == watching) return;
    watching = on;
    const how = on ? 'addEventListener' : 'removeEventListener';
    // capture: scrolling of any box in the page, not just the window
    D[how]('scroll', schedule, { capture: true, passive: true });
    W[how]('resize', schedule);
    if (vv) {
      vv[how]('resize', schedule);
      vv[how]('scroll', schedule);
    }
    if (on) {
      mutated.observe(D.documentElement, { childList: true, subtree: true, characterData: true, attributes: true });
      if (D.body) resized.observe(D.body);
      // Layout can move without any of the above (a CSS transition, a font loading).
      safety = setInterval(() => (list.some((k) => !k.el || !k.el.isConnected) ? changed() : schedule()), 1000);
    } else {
      mutated.disconnect();
      resized.disconnect();
      clearInterval(safety);
    }
  }

  function follow(k, el) {
    if (k.el == el) return;
    if (k.el) resized.unobserve(k.el);
    k.el = el;
    if (el) resized.observe(el);
  }

  // ----- drawing ------------------------------------------------------------------

  function svg(tag, attrs) {
    const el = D.createElementNS(SVG_NS, tag);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    return el;
  }

  function tagFor(k) {
    const { m } = k;
    const who = m.by || 'Support';
    const note = m.note;
    const close = h('button', { type: 'button', className: 'mk-x', 'aria-label': 'Remove this mark', onclick: () => clear(m.id, true) }, [icon(CLOSE)]);
    // With a note: who, then the note. Without: just who (a field: "Please fill this in").
    const body = h(
      'span',
      { className: 'mk-c' },
      note ? [h('b', { textContent: who }), h('span', { className: 'mk-n', textContent: note })] : [m.kind == 'field' ? 'Please fill this in' : who],
    );
    return h('div', { className: 'mk-t' + (note ? '' : ' bare') + (m.kind == 'field' ? ' rt' : '') }, m.kind == 'field' ? [icon(PEN), body, close] : [body, close]);
  }

  function build(k) {
    const { m } = k;
    const g = h('div', { className: 'mk-g off' });
    g.dataset.mark = m.id;
    if (m.kind == 'element' || m.kind == 'field') {
      k.box = h('div', { className: 'mk-b' + (m.kind == 'field' ? ' mk-f' : ''), 'aria-hidden': 'true' });
      g.append(k.box);
    } else if (m.kind == 'draw') {
      // Drawn in pixels of the element's box (recomputed when its size changes).
      k.svg = svg('svg', { class: 'mk-d', 'aria-hidden': 'true' });
      k.paths = ['mk-u', 'mk-s'].map((cls) => svg('path', { class: cls }));
      k.svg.append(...k.paths);
      g.append(k.svg);
    }
    k.rects = [];
    // Element boxes always say who marked them; text and drawings only with a note.
    if (m.note || m.kind == 'element' || m.kind == 'field') {
      k.tag = tagFor(k);
      g.append(k.tag);
      resized.observe(k.tag); // placed by its size, which the fonts may still change
    }
    k.g = g;
    plane.append(g);
  }

  let zoom = 1;
  // Viewport pixels to our layer's units, on whole device pixels (crisp edges).
  const snap = (v) => {
    const dpr = W.devicePixelRatio || 1;
    return Math.round((v / zoom) * dpr) / dpr;
  };
  // Viewport pixels, on whole device pixels of our layer.
  const aligned = (v) => snap(v) * zoom;
  // Each thing is placed relative to its parent: the plane at the page's
  // origin (which moves as the page scrolls), a marker's group at its
  // element's top left corner on the plane, the box, rects and note in the
  // group. So a page scroll moves only the plane, and an element that moves
  // as a whole (in a box that scrolls, a sticky header) only its group. Every
  // origin is on a whole device pixel: things land where they would if placed
  // in the viewport directly.
  let ox = 0;
  let oy = 0;
  // Every write goes through move() and size(): a transform or a size is
  // written only when it changed, since each write restyles the element.
  const last = new WeakMap(); // element -> [x, y, width, height] as written, in our units
  const was = (el) => {
    let w = last.get(el);
    if (!w) last.set(el, (w = [NaN, NaN, NaN, NaN]));
    return w;
  };
  const move = (el, x, y) => {
    const w = was(el);
    if (w[0] === x && w[1] === y) return;
    w[0] = x;
    w[1] = y;
    el.style.transform = 'translate(' + x + 'px,' + y + 'px)';
  };
  const place = (el, x, y, bx, by) => move(el, snap(x - bx), snap(y - by));
  const size = (el, wd, ht) => {
    const w = was(el);
    wd = snap(Math.max(0, wd));
    ht = snap(Math.max(0, ht));
    if (w[2] !== wd) el.style.width = (w[2] = wd) + 'px';
    if (w[3] !== ht) el.style.height = (w[3] = ht) + 'px';
  };

  // Read: where each marker's element (or words) is now, in viewport pixels.
  function measure(k) {
    const el = k.el;
    if (!el || !el.isConnected || !el.getClientRects().length) return null;
    const box = el.getBoundingClientRect();
    let rects = null;
    if (k.m.kind == 'text') {
      rects = k.range && !k.range.collapsed ? lineRects(k.range) : [];
      if (!rects.length) return null;
    }
    return { box, rects, tag: k.tag ? [k.tag.offsetWidth * zoom, k.tag.offsetHeight * zoom] : null };
  }

  // Write: move the marker there.
  function paint(k, at, vw) {
    if (!!at != k.shown) {
      // Shown (again): its arrival animations play, then it settles.
      k.shown = !!at;
      clearTimeout(k.settle);
      k.g.classList.remove('still');
      k.g.classList.toggle('off', !at);
      if (at) k.settle = setTimeout(() => k.g.classList.add('still'), SETTLE_MS);
    }
    if (!at) return;
    const { box, rects } = at;
    const gx = aligned(box.left);
    const gy = aligned(box.top);
    place(k.g, gx, gy, ox, oy);
    let anchor = box;
    if (k.box) {
      const pad = k.m.kind == 'field' ? 5 : 6;
      place(k.box, box.left - pad, box.top - pad, gx, gy);
      size(k.box, box.width + 2 * pad, box.height + 2 * pad);
      anchor = { left: box.left - pad, right: box.right + pad, top: box.top - pad, bottom: box.bottom + pad };
    } else if (k.svg) {
      place(k.svg, box.left, box.top, gx, gy);
      size(k.svg, box.width, box.height);
      const wd = box.width / zoom;
      const ht = box.height / zoom;
      const key = wd.toFixed(1) + 'x' + ht.toFixed(1);
      if (k.drawn != key) {
        k.drawn = key;
        const d = k.m.points.map((p, i) => (i ? 'L' : 'M') + (p[0] * wd).toFixed(1) + ' ' + (p[1] * ht).toFixed(1)).join('');
        for (const path of k.paths) path.setAttribute('d', d);
      }
    } else if (rects) {
      while (k.rects.length < rects.length) {
        const r = h('div', { className: 'mk-h', 'aria-hidden': 'true' });
        k.rects.push(r);
        k.g.insertBefore(r, k.g.firstChild);
      }
      k.rects.forEach((r, i) => {
        const q = rects[i];
        if (r.hidden != !q) r.hidden = !q;
        if (!q) return;
        place(r, q.left - 2, q.top - 1, gx, gy);
        size(r, q.right - q.left + 4, q.bottom - q.top + 2);
      });
      anchor = rects[0];
    }
    if (k.tag && at.tag) {
      // Above the box (fields: right-aligned, clear of their label), else below it.
      const [tw, th] = at.tag;
      let y = anchor.top - th - 7;
      const below = y < 8;
      if (below) y = (k.box ? anchor.bottom : rects ? rects[rects.length - 1].bottom : box.bottom) + 7;
      const x = k.m.kind == 'field' ? anchor.right - tw : anchor.left;
      k.tag.classList.toggle('dn', below);
      place(k.tag, Math.max(8, Math.min(x, vw - tw - 8)), y, gx, gy);
    }
  }

  function findAgain(k, now) {
    const { m } = k;
    if (!k.el || !k.el.isConnected) {
      // (searching the page's text is not free: not on every frame of a busy page)
      if (now - k.tried < RETRY_MS) return;
      k.tried = now;
      const el = resolve(m.anchor, m.kind);
      // Gone for now: keep the old element, it may come back as it was.
      if (el) follow(k, el);
    }
    if (m.kind != 'text') return;
    const r = k.range;
    const still = r && k.el && !r.collapsed && k.el.contains(r.commonAncestorContainer) && norm(r.toString()) == norm(m.anchor.quote);
    if (!still) k.range = k.el && k.el.isConnected ? wordsIn(k.el, m.anchor, host) : null;
  }

  function frame() {
    raf = 0;
    const now = Date.now();
    if (dirty) {
      dirty = false;
      list.forEach((k) => findAgain(k, now));
    }
    const de = D.documentElement;
    const vw = de.clientWidth;
    const vh = de.clientHeight;
    // A page that zooms <html> or <body> with CSS zooms our layer too: draw in its units.
    zoom = host.currentCSSZoom || 1;
    // Every read first, then every write: one layout per frame.
    const origin = de.getBoundingClientRect();
    const at = list.map(measure);
    const spot = laser && laserSpot();
    // The plane follows the page's scroll.
    ox = aligned(origin.left);
    oy = aligned(origin.top);
    move(plane, snap(ox), snap(oy));
    list.forEach((k, i) => paint(k, at[i], vw));
    paintLaser(spot);
    // Off-screen when it arrived: bring it into view, once (not again when the
    // hub sends a pinned marker anew after a query change, say).
    list.forEach((k, i) => {
      const g = at[i];
      if (!g || scrolledTo.has(k.m.id) || !k.m.scroll) return;
      scrolledTo.add(k.m.id);
      if (now - k.at > SCROLL_WITHIN) return;
      const r = g.rects ? g.rects[0] : g.box;
      if (r.bottom < 0 || r.top > vh || r.right < 0 || r.left > vw) {
        const smooth = !(W.matchMedia && matchMedia('(prefers-reduced-motion: reduce)').matches);
        k.el.scrollIntoView({ behavior: smooth ? 'smooth' : 'auto', block: 'center', inline: 'nearest' });
      }
    });
  }

  // ----- the marker list ------------------------------------------------------------

  function anchorOf(a) {
    a = a && typeof a == 'object' ? a : {};
    return {
      node: Math.floor(num(a.node, -1)),
      selector: str(a.selector, 1000),
      quote: str(a.quote, 2000),
      start: Math.floor(num(a.start, -1)),
      end: Math.floor(num(a.end, -1)),
    };
  }

  function markerOf(raw) {
    if (!raw || typeof raw != 'object' || typeof raw.id != 'string' || !raw.id || KINDS.indexOf(raw.kind) < 0) return null;
    const clamp = (v) => Math.max(-1, Math.min(2, num(v, 0)));
    const points = (Array.isArray(raw.points) ? raw.points : [])
      .slice(0, MAX_POINTS)
      .filter((p) => Array.isArray(p) && p.length >= 2)
      .map((p) => [clamp(p[0]), clamp(p[1])]);
    if (raw.kind == 'draw' && points.length < 1) return null;
    return {
      id: raw.id.slice(0, 100),
      kind: raw.kind,
      anchor: anchorOf(raw.anchor),
      note: str(raw.note, MAX_NOTE).trim(),
      pinned: raw.pinned === true,
      scroll: raw.scroll !== false,
      points,
      by: norm(str(raw.by, 200)).slice(0, 80),
    };
  }

  function add(frameData) {
    const m = markerOf(frameData.marker);
    if (!m) return;
    // The same marker again (the hub restores them after a reconnect): leave it be.
    const had = list.find((k) => k.m.id == m.id);
    if (had && JSON.stringify(had.m) == JSON.stringify(m)) return;
    drop(m.id);
    if (list.length >= MAX_MARKERS) drop(list[0].m.id);
    const k = { m, el: null, range: null, at: Date.now(), tried: Date.now() };
    build(k);
    follow(k, resolve(m.anchor, m.kind));
    if (m.kind == 'text' && k.el) k.range = wordsIn(k.el, m.anchor, host);
    list.push(k);
    watch(true);
    told((m.by || 'Support') + ' marked something on this page' + (m.note ? ': ' + m.note : '.'));
    update();
  }

  function drop(id) {
    const i = list.findIndex((k) => k.m.id == id);
    if (i < 0) return;
    const [k] = list.splice(i, 1);
    clearTimeout(k.settle);
    follow(k, null);
    if (k.tag) resized.unobserve(k.tag);
    k.g.remove();
  }

  // id null: every marker. `mine`: the visitor did it, so the hub hears of it.
  function clear(id, mine) {
    if (id == null) [...list].forEach((k) => drop(k.m.id));
    else drop(id);
    if (mine) {
      w.share.send({ t: 'unmark', id });
      told(id == null ? 'Marks cleared.' : 'Mark removed.');
    }
    update();
  }

  function update() {
    if (!list.length && !laser) watch(false);
    bar.hidden = !list.length;
    if (list.length) {
      const names = [...new Set(list.map((k) => k.m.by || 'Support'))];
      const who = names.length > 2 ? 'Support' : names.join(' and ');
      barText.textContent = who + ' marked ' + (list.length == 1 ? 'something' : list.length + ' things') + ' on this page';
    }
    changed();
  }

  let toldTimer = 0;
  function told(text) {
    clearTimeout(toldTimer);
    toldTimer = setTimeout(() => (said.textContent = text), 100);
  }

  // ----- the laser pointer ------------------------------------------------------------

  function onLaser(f) {
    if (!f.anchor) {
      laser = null;
      dot.classList.remove('on');
      return update();
    }
    const a = anchorOf(f.anchor);
    const same = laser && laser.a.node == a.node && laser.a.selector == a.selector && laser.el && laser.el.isConnected;
    laser = { a, x: num(f.x, 0.5), y: num(f.y, 0.5), el: same ? laser.el : null };
    watch(true);
    schedule();
    clearTimeout(laserTimer);
    laserTimer = setTimeout(() => {
      dot.classList.remove('on');
      laser = null;
      update();
    }, LASER_IDLE);
  }

  function laserSpot() {
    if (!laser.el || !laser.el.isConnected) laser.el = resolve(laser.a, 'element');
    const el = laser.el;
    if (!el || !el.getClientRects().length) return null;
    const r = el.getBoundingClientRect();
    return [r.left + laser.x * r.width, r.top + laser.y * r.height];
  }

  function paintLaser(spot) {
    if (!laser) return;
    if (!spot) {
      dot.classList.remove('on');
      return;
    }
    const fresh = !dot.classList.contains('on');
    if (fresh) dot.classList.add('nt');
    move(dot, snap(spot[0] - 9), snap(spot[1] - 9)); // (on the layer, not the plane)
    if (fresh) {
      void dot.offsetWidth; // (our own layer only) jump there, then follow smoothly
      dot.classList.remove('nt');
      dot.classList.add('on');
    }
  }

  // ----- session events ---------------------------------------------------------------

  w.on('hub:mark', add);
  w.on('hub:unmark', (f) => clear(typeof f.id == 'string' ? f.id : null, false));
  w.on('hub:laser', onLaser);
  // A same-document navigation to another page clears what is not pinned; the
  // pinned ones are looked for again (a query or hash change is the same page).
  w.on('share:nav', () => {
    const now = location.pathname;
    if (now == path) return;
    path = now;
    [...list].forEach((k) => (k.m.pinned ? follow(k, null) : drop(k.m.id)));
    update();
  });
  w.on('share:state', (s) => {
    if (['idle', 'ended', 'failed'].indexOf(s.phase) >= 0) {
      laser = null;
      dot.classList.remove('on');
      clear(null, false);
    }
  });
}
