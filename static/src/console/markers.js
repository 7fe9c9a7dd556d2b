// Web markers in the agent's view: highlight an element (with a short note),
// highlight words, mark a form field ("fill this in"), a laser pointer, and
// freehand drawing. Frames (cobrowse/sync/protocol.py, "markers and shared
// control"):
//
//   -> mark {session, tab, marker {id, kind, anchor, note, pinned, scroll, points}}
//   -> unmark {session, tab, id|null}         (null: every marker of the tab)
//   -> laser {session, tab, anchor|null, x, y} (at most LASER_HZ a second)
//   <- mark / unmark / laser                   the same, relayed to every agent
//                                              (marker.by: who placed it)
//
// MarkerLayer (one per visitor tab) draws the markers over the replay, in the
// console's own DOM: a layer above rrweb's scaled iframe, never inside the
// visitor's page copy. Markers are anchored to elements (anchors.js): every
// animation frame the layer looks the element up again by its mirror id and
// reads its box from the replay document, so a marker follows the visitor's
// scrolling and resizing and rrweb's changes to the page (hidden while the
// element is gone, back when it returns). On a new page (a new replayer) a
// marker stays when its element is still there (a fresh snapshot of the same
// page), a pinned one is looked for by selector and quote, the rest go (the
// visitor's page dropped them too).
//
// MarkerTools is the toolbar above the replay and what the agent does with
// the pointer over it. Notes are plain text: only ever textContent.

import { h, fill, icon } from './dom.js';
import {
  anchorFor, cachedSelector, caretAt, fieldNear, isTextAnchor, mirrorId, rangeOf, resolveAnchor, snapToWords,
  strokeAnchor, textAnchor, textOf,
} from './anchors.js';

export const MAX_NOTE = 280;
const MAX_POINTS = 2000;
const LASER_HZ = 30;
const LASER_FADE = 900; // ms a still laser dot stays before it fades
const REMOTE_LASER_TTL = 1600; // ms another agent's dot stays without news
const RETRY_EVERY = 10; // frames between two searches for a marker's element not on the page (doubling)
const RETRY_MAX = 240;
const SVG_NS = 'http://www.w3.org/2000/svg';
const MINE = '#4f46e5';
const PALETTE = ['#0f766e', '#c2410c', '#be185d', '#1d4ed8', '#7c3aed', '#047857', '#b45309'];

export const TOOLS = [
  { id: 'pointer', label: 'Pointer', hint: '', icon: ['M4 3l7 17 2.5-7.5L21 10z'] },
  { id: 'element', label: 'Highlight element', hint: 'Click a part of the page to highlight it.',
    icon: ['M4 4h16v16H4z', 'M9 9h6v6H9z'] },
  { id: 'text', label: 'Highlight text', hint: 'Drag across words to highlight them (a click takes one word).',
    icon: ['M4 20h16', 'M7 16l5-12 5 12', 'M9 12h6'] },
  { id: 'field', label: 'Mark a field', hint: 'Click a form field to ask the visitor to fill it in.',
    icon: ['M3 7h18v10H3z', 'M7 12h.01', 'M11 12h6'] },
  { id: 'laser', label: 'Laser pointer', hint: 'Move over the page: the visitor sees a red dot follow you.',
    icon: ['M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z', 'M12 2v3', 'M12 19v3', 'M2 12h3', 'M19 12h3'] },
  { id: 'draw', label: 'Draw', hint: 'Draw on the page with the mouse.',
    icon: ['M3 21c3 0 4-1 5-3l9-9-3-3-9 9c-2 1-3 2-3 5z', 'M14 6l3 3', 'M17 3l4 4'] },
];

const ICON_PIN = ['M9 4h6l-1 6 3 3H7l3-3z', 'M12 13v8'];
const ICON_SCROLL = ['M12 3v18', 'M7 16l5 5 5-5', 'M7 8l5-5 5 5'];
const ICON_CLEAR = ['M3 6h18', 'M8 6V4h8v2', 'M6 6l1 14h10l1-14'];
const ICON_X = ['M18 6L6 18', 'M6 6l12 12'];

const KIND_TEXT = { element: 'Highlight', text: 'Highlighted text', field: 'Fill this in', draw: 'Drawing' };

export function colorFor(name, mine) {
  if (mine) return MINE;
  let hash = 0;
  for (const c of name || '') hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

export function newMarkerId() {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return 'm' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const k of Object.keys(attrs || {})) el.setAttribute(k, attrs[k]);
  return el;
}

// Set a style property only when it changes (the layer runs every frame).
function put(el, prop, value) {
  if (el.__s == null) el.__s = {};
  if (el.__s[prop] === value) return;
  el.__s[prop] = value;
  el.style[prop] = value;
}

function show(el, on) {
  if (el.__shown === on) return;
  el.__shown = on;
  el.hidden = !on;
}

// ---------------------------------------------------------------------------------------
// MarkerLayer: the markers of one tab, drawn over its replay
// ---------------------------------------------------------------------------------------

export class MarkerLayer {
  // host: the tab's panel (.replay-host); replay: its TabReplay;
  // me(): the agent's own name; meId(): their user id (markers from the hub carry the
  // placer's id, so two agents with one display name are still told apart);
  // onPointer(kind, event, point): pointer events while a tool is on;
  // onRemove(id): the agent clicked a marker's remove button.
  constructor(host, replay, { me, meId, onPointer, onRemove }) {
    this.host = host;
    this.replay = replay;
    this.me = me;
    this.meId = meId || (() => 0);
    this.onPointer = onPointer;
    this.onRemove = onRemove;
    this.markers = new Map(); // id -> entry
    this.lasers = new Map(); // whose (agent id or name) -> {anchor, x, y, at, dot}
    this.view = null; // the replay view (page) the markers were last matched to
    this.frameNo = 0;
    this.geometry = null;
    this.root = h('div', { className: 'mk-layer', 'aria-hidden': 'true' });
    this.clip = h('div', { className: 'mk-clip' });
    this.capture = h('div', { className: 'mk-capture' });
    this.previewBox = h('div', { className: 'mk-preview', hidden: true });
    this.previewText = h('div', { className: 'mk-preview-text', hidden: true });
    this.previewSvg = svg('svg', { class: 'mk-preview-draw' });
    this.previewLine = svg('polyline', { fill: 'none', stroke: MINE, 'stroke-width': '3', 'stroke-linecap': 'round', 'stroke-linejoin': 'round' });
    this.previewSvg.append(this.previewLine);
    this.localLaser = h('div', { className: 'mk-laser is-mine', hidden: true });
    this.clip.append(this.previewBox, this.previewText, this.previewSvg, this.localLaser, this.capture);
    this.root.append(this.clip);
    host.append(this.root);
    this.tool = 'pointer';
    for (const type of ['pointerdown', 'pointermove', 'pointerup', 'pointercancel', 'pointerleave', 'wheel', 'dblclick']) {
      this.capture.addEventListener(type, (e) => this.onPointer && this.onPointer(type, e, this.toReplay(e)),
        type == 'wheel' ? { passive: false } : undefined);
    }
  }

  destroy() {
    this.root.remove();
    this.markers.clear();
    this.lasers.clear();
  }

  setTool(tool) {
    this.tool = tool;
    this.root.dataset.tool = tool;
    this.clearPreview();
    if (tool != 'laser') show(this.localLaser, false);
  }

  get count() {
    return this.markers.size;
  }

  // The replay's current document, mirror and geometry (null while nothing is drawn).
  context() {
    const view = this.replay.current;
    if (!view || !view.replayer || !view.size) return null;
    const frame = view.replayer.iframe;
    const doc = frame && frame.contentDocument;
    if (!doc || !doc.documentElement) return null;
    return { view, doc, mirror: view.replayer.getMirror() };
  }

  // A pointer event in replay viewport coordinates.
  toReplay(e) {
    const g = this.geometry;
    if (!g) return null;
    const r = this.clip.getBoundingClientRect();
    return { x: (e.clientX - r.left) / g.scale, y: (e.clientY - r.top) / g.scale };
  }

  // ----- the markers -----------------------------------------------------------------------

  // Add or update a marker (placed here, or relayed by the hub).
  // mine: placed by this agent (its colour); trusted: placed here, on the page shown now.
  upsert(marker, { mine = false, trusted = false } = {}) {
    if (!marker || typeof marker.id != 'string' || !marker.anchor) return;
    const ctx = this.context();
    let entry = this.markers.get(marker.id);
    if (!entry) {
      // Placed here, on this page: its id is trusted. From the hub: checked once
      // against its selector and quote (it may come from another page's ids).
      entry = { id: marker.id, marker, mine, view: trusted && ctx ? ctx.view : null, node: -1, nodes: null, range: null, lastTry: -Infinity };
      this.markers.set(marker.id, entry);
      entry.node = marker.anchor.node > 0 ? marker.anchor.node : -1;
      return;
    }
    // The hub's echo of our own marker (with `by`), or a change: redraw only what differs.
    const before = entry.marker;
    entry.marker = { ...before, ...marker };
    entry.mine = entry.mine || mine;
    const looks = (m) => JSON.stringify([m.kind, m.note || '', Boolean(m.pinned), m.by || '', m.points || null]);
    if (looks(before) != looks(entry.marker) && entry.nodes) {
      entry.nodes.root.remove();
      entry.nodes = null;
    }
    if (JSON.stringify(before.anchor) != JSON.stringify(entry.marker.anchor)) {
      entry.view = ctx ? ctx.view : null;
      entry.node = entry.marker.anchor.node > 0 ? entry.marker.anchor.node : -1;
      entry.range = null;
    }
  }

  remove(id) {
    const entry = this.markers.get(id);
    if (!entry) return;
    if (entry.nodes) entry.nodes.root.remove();
    this.markers.delete(id);
  }

  clear() {
    for (const id of [...this.markers.keys()]) this.remove(id);
  }

  ids() {
    return [...this.markers.keys()];
  }

  // Another agent's laser dot (anchor null: hide it).
  // key: whose pointer (the agent's id when the hub sent it; two agents may share a name).
  laser(by, anchor, x, y, key = by) {
    let dot = this.lasers.get(key);
    if (!anchor) {
      if (dot) {
        dot.el.remove();
        this.lasers.delete(key);
      }
      return;
    }
    if (!dot) {
      const color = colorFor(by, false);
      const el = h('div', { className: 'mk-laser is-remote' }, h('span', { className: 'mk-laser-name' }, by || 'Agent'));
      el.style.setProperty('--mk-color', color);
      this.clip.insertBefore(el, this.capture);
      dot = { el };
      this.lasers.set(key, dot);
    }
    Object.assign(dot, { anchor, x, y, at: performance.now() });
  }

  // ----- drawing -------------------------------------------------------------------------------

  // Called every animation frame while the tab is shown.
  frame() {
    this.frameNo++;
    const ctx = this.context();
    const g = ctx ? this.measure(ctx.view) : null;
    this.geometry = g;
    if (!g) {
      show(this.clip, false);
      return;
    }
    show(this.clip, true);
    put(this.clip, 'transform', `translate(${g.left}px, ${g.top}px)`);
    put(this.clip, 'width', `${g.width}px`);
    put(this.clip, 'height', `${g.height}px`);
    if (ctx.view !== this.view) this.newPage(ctx);
    const now = performance.now();
    const marks = [];
    for (const entry of this.markers.values()) marks.push(this.read(entry, ctx));
    const dots = [];
    for (const [by, dot] of this.lasers) {
      if (now - dot.at > REMOTE_LASER_TTL) {
        dot.el.remove();
        this.lasers.delete(by);
        continue;
      }
      const el = resolveAnchor(ctx.doc, ctx.mirror, dot.anchor, true);
      dots.push([dot, el ? el.getBoundingClientRect() : null]);
    }
    let i = 0;
    for (const entry of this.markers.values()) this.write(entry, marks[i++], g);
    for (const [dot, r] of dots) {
      show(dot.el, Boolean(r));
      if (!r) continue;
      put(dot.el, 'transform', `translate(${(r.left + dot.x * r.width) * g.scale}px, ${(r.top + dot.y * r.height) * g.scale}px)`);
      put(dot.el, 'opacity', now - dot.at > REMOTE_LASER_TTL - 400 ? '0' : '1');
    }
  }

  // Where the replay is drawn in the host: offset and size of its visible box, and its scale.
  measure(view) {
    const mount = view.mount;
    if (!mount || !mount.isConnected) return null;
    const hostRect = this.host.getBoundingClientRect();
    const rect = mount.getBoundingClientRect();
    if (!rect.width || !rect.height) return null;
    return {
      left: rect.left - hostRect.left,
      top: rect.top - hostRect.top,
      width: rect.width,
      height: rect.height,
      scale: rect.width / view.size.width,
    };
  }

  // The replay moved to a new page (or a fresh snapshot of the same one).
  // The hub says which markers a new page keeps (unmark, then mark for the
  // pinned ones); here each one is only looked for again on the new page.
  newPage(ctx) {
    this.view = ctx.view;
    for (const entry of this.markers.values()) {
      const el = resolveAnchor(ctx.doc, ctx.mirror, entry.marker.anchor, false);
      entry.range = null;
      entry.misses = 0;
      entry.lastTry = this.frameNo;
      if (el) {
        entry.view = ctx.view;
        entry.node = mirrorId(ctx.mirror, el);
      } else {
        entry.view = null; // looked for again now and then (the page may still be building)
        entry.node = -1;
      }
    }
    for (const dot of this.lasers.values()) dot.el.remove();
    this.lasers.clear();
  }

  // The element a marker is on now, or null.
  target(entry, ctx) {
    if (entry.view === ctx.view && entry.node > 0) {
      const node = ctx.mirror.getNode(entry.node);
      return node && node.nodeType == 1 && node.isConnected ? node : null;
    }
    // Not found on this page (yet): look again, less and less often.
    if (this.frameNo - entry.lastTry < Math.min(RETRY_MAX, RETRY_EVERY * 2 ** (entry.misses || 0))) return null;
    entry.lastTry = this.frameNo;
    const el = resolveAnchor(ctx.doc, ctx.mirror, entry.marker.anchor, false);
    if (!el) {
      entry.misses = (entry.misses || 0) + 1;
      return null;
    }
    entry.misses = 0;
    entry.view = ctx.view;
    entry.node = mirrorId(ctx.mirror, el);
    entry.range = null;
    return entry.node > 0 ? el : null;
  }

  // Every read first (the replay's boxes, our tags' sizes), then every write:
  // one layout per frame however many markers there are.
  read(entry, ctx) {
    const n = entry.nodes;
    if (n && n.tagSize == null && n.root.__shown) {
      n.tagSize = { w: n.tag.offsetWidth, h: n.tag.offsetHeight };
      if (n.note) n.noteSize = { w: n.note.offsetWidth, h: n.note.offsetHeight };
    }
    const el = this.target(entry, ctx);
    if (!el) return null;
    if (entry.marker.kind == 'text') {
      const rects = this.textRects(entry, el);
      return rects.length ? { rects } : null;
    }
    const r = el.getBoundingClientRect();
    return { rect: r };
  }

  write(entry, at, g) {
    if (!entry.nodes) entry.nodes = this.build(entry);
    const n = entry.nodes;
    if (!at) {
      show(n.root, false);
      return;
    }
    show(n.root, true);
    const s = g.scale;
    const kind = entry.marker.kind;
    let box;
    if (kind == 'text') {
      const rects = at.rects;
      while (n.rects.length < rects.length) {
        const r = h('div', { className: 'mk-text-rect' });
        n.rects.push(r);
        n.body.append(r);
      }
      let minX = Infinity;
      let minY = Infinity;
      let maxX = -Infinity;
      let maxY = -Infinity;
      n.rects.forEach((div, i) => {
        const r = rects[i];
        show(div, Boolean(r));
        if (!r) return;
        put(div, 'transform', `translate(${r.left * s}px, ${r.top * s}px)`);
        put(div, 'width', `${r.width * s}px`);
        put(div, 'height', `${r.height * s}px`);
        minX = Math.min(minX, r.left);
        minY = Math.min(minY, r.top);
        maxX = Math.max(maxX, r.right);
        maxY = Math.max(maxY, r.bottom);
      });
      box = { left: minX * s, top: minY * s, right: maxX * s, bottom: maxY * s };
    } else if (kind == 'draw') {
      const r = at.rect;
      put(n.svg, 'transform', `translate(${r.left * s}px, ${r.top * s}px)`);
      put(n.svg, 'width', `${Math.max(1, r.width * s)}px`);
      put(n.svg, 'height', `${Math.max(1, r.height * s)}px`);
      const b = n.strokeBox;
      box = {
        left: (r.left + b.left * r.width) * s, top: (r.top + b.top * r.height) * s,
        right: (r.left + b.right * r.width) * s, bottom: (r.top + b.bottom * r.height) * s,
      };
    } else {
      const r = at.rect;
      const pad = kind == 'field' ? 4 : 3;
      const left = r.left * s - pad;
      const top = r.top * s - pad;
      put(n.box, 'transform', `translate(${left}px, ${top}px)`);
      put(n.box, 'width', `${r.width * s + 2 * pad}px`);
      put(n.box, 'height', `${r.height * s + 2 * pad}px`);
      box = { left, top, right: left + r.width * s + 2 * pad, bottom: top + r.height * s + 2 * pad };
    }
    this.placeTag(n, box, g);
  }

  // The tag (who, what) above the marker and its note beside it, kept inside the view.
  placeTag(n, box, g) {
    // Measured on the frame after it was made; not shown until then.
    put(n.tag, 'visibility', n.tagSize == null ? 'hidden' : '');
    if (n.note) put(n.note, 'visibility', n.tagSize == null ? 'hidden' : '');
    if (n.tagSize == null) return;
    const tw = n.tagSize.w;
    const th = n.tagSize.h;
    // Over the box's right end: the start of a line (a field's label, a heading) stays readable.
    const tx = Math.min(Math.max(0, box.right - tw), Math.max(0, g.width - tw));
    let ty = box.top - th - 4;
    if (ty < 0) ty = Math.min(box.bottom + 4, g.height - th);
    put(n.tag, 'transform', `translate(${tx}px, ${ty}px)`);
    if (!n.note) return;
    const nw = n.noteSize.w;
    const nh = n.noteSize.h;
    let nx;
    let ny = Math.min(Math.max(0, box.top), Math.max(0, g.height - nh));
    if (box.right + 10 + nw <= g.width) nx = box.right + 10;
    else if (box.left - 10 - nw >= 0) nx = box.left - 10 - nw;
    else {
      nx = Math.min(Math.max(0, box.left), Math.max(0, g.width - nw));
      ny = box.bottom + 8 + nh <= g.height ? box.bottom + 8 : Math.max(0, box.top - nh - 8 - th);
    }
    put(n.note, 'transform', `translate(${nx}px, ${ny}px)`);
  }

  textRects(entry, el) {
    const a = entry.marker.anchor;
    if (!entry.range || entry.range.el !== el) {
      const text = textOf(el);
      let start = a.start;
      let end = a.end;
      if (text.slice(start, end) != a.quote && a.quote) {
        const at = text.indexOf(a.quote);
        if (at >= 0) {
          start = at;
          end = at + a.quote.length;
        }
      }
      entry.range = { el, range: rangeOf(el, start, end) };
    }
    const range = entry.range.range;
    if (!range) return [];
    const out = [];
    for (const r of range.getClientRects()) if (r.width > 0.5 && r.height > 0.5) out.push(r);
    return mergeRects(out);
  }

  build(entry) {
    const m = entry.marker;
    const mine = entry.mine || (m.agent ? m.agent == this.meId() : Boolean(this.me && m.by && m.by == this.me()));
    const color = colorFor(m.by, mine);
    const who = mine ? 'You' : m.by || 'Another agent';
    const root = h('div', { className: `mk mk-${m.kind}`, 'data-marker': m.id, 'data-kind': m.kind });
    root.style.setProperty('--mk-color', color);
    const n = { root, rects: [] };
    if (m.kind == 'text') {
      n.body = h('div', { className: 'mk-text' });
      root.append(n.body);
    } else if (m.kind == 'draw') {
      n.svg = svg('svg', { class: 'mk-draw', viewBox: '0 0 1 1', preserveAspectRatio: 'none' });
      const line = svg('polyline', {
        fill: 'none', stroke: color, 'stroke-width': '3', 'stroke-linecap': 'round', 'stroke-linejoin': 'round',
        'vector-effect': 'non-scaling-stroke',
        points: (m.points || []).map(([x, y]) => `${x},${y}`).join(' '),
      });
      n.svg.append(line);
      root.append(n.svg);
      const pts = m.points && m.points.length ? m.points : [[0, 0], [1, 1]];
      n.strokeBox = {
        left: Math.min(...pts.map((p) => p[0])), top: Math.min(...pts.map((p) => p[1])),
        right: Math.max(...pts.map((p) => p[0])), bottom: Math.max(...pts.map((p) => p[1])),
      };
    } else {
      n.box = h('div', { className: 'mk-box' });
      root.append(n.box);
    }
    const remove = h('button', {
      // Out of the Tab order (the layer is a picture for screen readers): "Clear all" is the keyboard's way.
      type: 'button', className: 'mk-remove', title: 'Remove this marker', 'aria-label': 'Remove this marker', tabIndex: -1,
      onclick: (e) => {
        e.stopPropagation();
        if (this.onRemove) this.onRemove(m.id);
      },
    }, icon(...ICON_X));
    const tool = TOOLS.find((t) => t.id == m.kind);
    n.tag = h('div', { className: 'mk-tag', title: `${KIND_TEXT[m.kind] || 'Marker'}, placed by ${mine ? 'you' : who}` },
      h('span', { className: 'mk-tag-kind' }, tool ? icon(...tool.icon) : null, h('span', { className: 'sr-only' }, KIND_TEXT[m.kind] || 'Marker')),
      h('span', { className: 'mk-tag-who' }, who),
      m.pinned ? h('span', { className: 'mk-tag-pin', title: 'Pinned: stays across pages' }, icon(...ICON_PIN)) : null,
      remove);
    root.append(n.tag);
    if (m.note) {
      n.note = h('div', { className: 'mk-note' }, h('span', { className: 'mk-note-text' }, m.note));
      root.append(n.note);
    }
    this.clip.insertBefore(root, this.previewBox);
    return n;
  }

  // ----- previews while the agent points -----------------------------------------------------

  clearPreview() {
    show(this.previewBox, false);
    show(this.previewText, false);
    this.previewLine.setAttribute('points', '');
  }

  previewElement(el, kind) {
    const g = this.geometry;
    if (!el || !g) {
      show(this.previewBox, false);
      return;
    }
    const r = el.getBoundingClientRect();
    const s = g.scale;
    const pad = kind == 'field' ? 4 : 3;
    this.previewBox.className = `mk-preview mk-preview-${kind}`;
    show(this.previewBox, true);
    put(this.previewBox, 'transform', `translate(${r.left * s - pad}px, ${r.top * s - pad}px)`);
    put(this.previewBox, 'width', `${r.width * s + 2 * pad}px`);
    put(this.previewBox, 'height', `${r.height * s + 2 * pad}px`);
  }

  previewRange(range) {
    const g = this.geometry;
    if (!range || !g) {
      show(this.previewText, false);
      return;
    }
    const rects = mergeRects([...range.getClientRects()].filter((r) => r.width > 0.5 && r.height > 0.5));
    const s = g.scale;
    fill(this.previewText, rects.map((r) => {
      const div = h('div', { className: 'mk-text-rect' });
      div.style.transform = `translate(${r.left * s}px, ${r.top * s}px)`;
      div.style.width = `${r.width * s}px`;
      div.style.height = `${r.height * s}px`;
      return div;
    }));
    show(this.previewText, rects.length > 0);
  }

  previewStroke(points) {
    const g = this.geometry;
    if (!g) return;
    this.previewLine.setAttribute('points', points.map((p) => `${p.x * g.scale},${p.y * g.scale}`).join(' '));
  }

  laserAt(point) {
    const g = this.geometry;
    if (!point || !g) {
      show(this.localLaser, false);
      return;
    }
    show(this.localLaser, true);
    put(this.localLaser, 'transform', `translate(${point.x * g.scale}px, ${point.y * g.scale}px)`);
    this.localLaser.classList.remove('is-fading');
    clearTimeout(this.laserFade);
    this.laserFade = setTimeout(() => this.localLaser.classList.add('is-fading'), LASER_FADE);
  }
}

// One rectangle per line: getClientRects gives one per text node and inline box.
function mergeRects(rects) {
  const out = [];
  for (const r of rects) {
    const last = out[out.length - 1];
    if (last && Math.abs(last.top - r.top) < 2 && Math.abs(last.bottom - r.bottom) < 2 && r.left <= last.right + 2) {
      last.right = Math.max(last.right, r.right);
      last.width = last.right - last.left;
    } else {
      out.push({ left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// MarkerTools: the toolbar and the agent's pointer over the replay
// ---------------------------------------------------------------------------------------

export class MarkerTools {
  // bar: the toolbar's element; hint: the hint shown over the replay;
  // ctx: {send(frame) -> bool, toast(text), session() -> id|null, tab() -> {id, layer}|null, me() -> name}
  constructor(bar, hint, ctx) {
    this.bar = bar;
    this.hintEl = hint;
    this.ctx = ctx;
    this.tool = 'pointer';
    this.pinned = false;
    this.scroll = true;
    this.drag = null;
    this.hover = null;
    this.laserSent = 0;
    this.laserTimer = null;
    this.laserPending = null;
    this.laserShown = false;
    this.unconfirmed = []; // our markers the hub has not relayed back yet: {id, layer}
    this.build();
    document.addEventListener('keydown', (e) => {
      if (e.key == 'Escape' && this.tool != 'pointer' && !e.defaultPrevented && !(e.target && e.target.closest && e.target.closest('dialog'))) {
        if (this.drag) this.cancelDrag();
        else this.setTool('pointer');
      }
    });
  }

  build() {
    this.toolButtons = new Map();
    const group = h('div', { className: 'mk-tools', role: 'group', 'aria-label': 'Marker tools' });
    for (const t of TOOLS) {
      const b = h('button', {
        type: 'button', className: 'mk-tool', 'data-tool': t.id, title: t.label, 'aria-label': t.label,
        'aria-pressed': String(t.id == this.tool), onclick: () => this.setTool(t.id == this.tool && t.id != 'pointer' ? 'pointer' : t.id),
      }, icon(...t.icon));
      this.toolButtons.set(t.id, b);
      group.append(b);
    }
    this.note = h('input', {
      type: 'text', className: 'mk-note-input', id: 'marker-note', maxLength: MAX_NOTE, autocomplete: 'off',
      placeholder: 'Note (optional)', 'aria-label': 'Note shown to the visitor beside the marker (optional)',
      title: 'A short note shown to the visitor beside the next marker you place',
    });
    this.note.addEventListener('keydown', (e) => {
      if (e.key == 'Enter') {
        e.preventDefault();
        if (this.tool == 'pointer') this.setTool('element');
      }
    });
    this.pinButton = h('button', {
      type: 'button', className: 'btn btn-chip mk-toggle', id: 'marker-pin', 'aria-pressed': 'false',
      title: 'Pinned markers stay when the visitor goes to another page',
      onclick: () => this.setPinned(!this.pinned),
    }, icon(...ICON_PIN), 'Pin');
    this.scrollButton = h('button', {
      type: 'button', className: 'btn btn-chip mk-toggle', id: 'marker-scroll', 'aria-pressed': 'true',
      title: 'Scroll the visitor’s page to a new marker when it is off their screen',
      onclick: () => this.setScroll(!this.scroll),
    }, icon(...ICON_SCROLL), 'Scroll visitor to it');
    this.clearButton = h('button', {
      type: 'button', className: 'btn btn-quiet mk-clear', id: 'marker-clear', disabled: true,
      title: 'Remove every marker from the visitor’s page', onclick: () => this.clearAll(),
    }, icon(...ICON_CLEAR), h('span', { className: 'mk-clear-label' }, 'Clear all'));
    fill(this.bar, group, h('div', { className: 'mk-sep', 'aria-hidden': 'true' }), this.note, this.pinButton, this.scrollButton,
      h('div', { className: 'mk-spacer' }), this.clearButton);
  }

  setTool(tool) {
    if (this.tool == 'laser' && tool != 'laser') this.hideLaser();
    this.tool = tool;
    this.drag = null;
    this.hover = null;
    for (const [id, b] of this.toolButtons) b.setAttribute('aria-pressed', String(id == tool));
    const layer = this.layer();
    if (layer) layer.setTool(tool);
    const t = TOOLS.find((x) => x.id == tool);
    this.hintEl.hidden = !t || !t.hint;
    if (t && t.hint) this.hintEl.textContent = `${t.hint} Press Esc to stop.`;
    this.bar.dataset.tool = tool;
  }

  setPinned(on) {
    this.pinned = on;
    this.pinButton.setAttribute('aria-pressed', String(on));
  }

  setScroll(on) {
    this.scroll = on;
    this.scrollButton.setAttribute('aria-pressed', String(on));
  }

  layer() {
    const tab = this.ctx.tab();
    return tab ? tab.layer : null;
  }

  // The active tab changed (or its layer was made): give it the current tool.
  attach() {
    const layer = this.layer();
    if (layer) layer.setTool(this.tool);
    this.refresh();
  }

  refresh() {
    const layer = this.layer();
    this.clearButton.disabled = !layer || layer.count == 0;
  }

  enable(on) {
    this.bar.classList.toggle('is-disabled', !on);
    for (const el of this.bar.querySelectorAll('button, input')) el.disabled = !on;
    if (on) this.refresh();
    else this.setTool('pointer');
  }

  // ----- the agent's pointer -------------------------------------------------------------------

  pointer(type, e, point) {
    const layer = this.layer();
    if (!layer || !point) return;
    const ctx = layer.context();
    if (!ctx) return;
    const doc = ctx.doc;
    if (type == 'wheel') return; // the view follows the visitor; it never scrolls on its own
    if (this.tool == 'laser') return this.laserMove(type, layer, ctx, point);
    if (this.tool == 'draw') return this.drawEvent(type, e, layer, ctx, point);
    if (this.tool == 'text') return this.textEvent(type, e, layer, ctx, point);
    if (this.tool == 'element' || this.tool == 'field') {
      if (type == 'pointermove') {
        this.hover = this.pick(doc, point);
        layer.previewElement(this.hover, this.tool);
        layer.capture.classList.toggle('is-nothing', !this.hover);
      } else if (type == 'pointerleave') {
        this.hover = null;
        layer.previewElement(null);
      } else if (type == 'pointerdown' && e.button == 0) {
        e.preventDefault();
        const el = this.pick(doc, point);
        if (!el) {
          if (this.tool == 'field') this.ctx.toast('That is not a form field. Click a text box, list or checkbox.');
          return;
        }
        this.place(this.tool, anchorFor(el, ctx.mirror), el, layer);
        layer.previewElement(null);
      }
    }
  }

  pick(doc, point) {
    let el = doc.elementFromPoint(point.x, point.y);
    if (!el || el.localName == 'html') return null;
    if (this.tool == 'field') return fieldNear(el);
    return el;
  }

  textEvent(type, e, layer, ctx, point) {
    const doc = ctx.doc;
    if (type == 'pointerdown' && e.button == 0) {
      e.preventDefault();
      const caret = caretAt(doc, point.x, point.y);
      if (!caret) return;
      layer.capture.setPointerCapture(e.pointerId);
      this.drag = { kind: 'text', start: caret, range: null };
      this.updateTextDrag(doc, caret, layer);
    } else if (type == 'pointermove' && this.drag && this.drag.kind == 'text') {
      const caret = caretAt(doc, point.x, point.y);
      if (caret) this.updateTextDrag(doc, caret, layer);
    } else if ((type == 'pointerup' || type == 'pointercancel') && this.drag && this.drag.kind == 'text') {
      const range = this.drag.range;
      this.drag = null;
      layer.previewRange(null);
      if (type == 'pointercancel' || !range || range.collapsed) return;
      const made = textAnchor(range, ctx.mirror);
      if (!made) return;
      if (/^[*\s]+$/.test(made.anchor.quote)) {
        this.ctx.toast('That text is private on the visitor’s page (it shows as *** here), so it cannot be highlighted.');
        return;
      }
      this.place('text', made.anchor, made.el, layer);
    }
  }

  updateTextDrag(doc, caret, layer) {
    const a = this.drag.start;
    const range = doc.createRange();
    try {
      range.setStart(a.node, a.offset);
      range.setEnd(a.node, a.offset);
      const probe = doc.createRange();
      probe.setStart(caret.node, caret.offset);
      if (range.compareBoundaryPoints(Range.START_TO_START, probe) <= 0) range.setEnd(caret.node, caret.offset);
      else range.setStart(caret.node, caret.offset);
    } catch {
      return;
    }
    this.drag.range = snapToWords(range);
    layer.previewRange(this.drag.range.collapsed ? null : this.drag.range);
  }

  drawEvent(type, e, layer, ctx, point) {
    if (type == 'pointerdown' && e.button == 0) {
      e.preventDefault();
      layer.capture.setPointerCapture(e.pointerId);
      this.drag = { kind: 'draw', points: [point] };
      layer.previewStroke(this.drag.points);
    } else if (type == 'pointermove' && this.drag && this.drag.kind == 'draw') {
      const pts = this.drag.points;
      const last = pts[pts.length - 1];
      if (Math.hypot(point.x - last.x, point.y - last.y) >= 2 && pts.length < MAX_POINTS) {
        pts.push(point);
        layer.previewStroke(pts);
      }
    } else if ((type == 'pointerup' || type == 'pointercancel') && this.drag && this.drag.kind == 'draw') {
      const pts = this.drag.points;
      this.drag = null;
      layer.previewStroke([]);
      if (type == 'pointercancel' || pts.length < 2) return;
      const box = {
        left: Math.min(...pts.map((p) => p.x)), top: Math.min(...pts.map((p) => p.y)),
        right: Math.max(...pts.map((p) => p.x)), bottom: Math.max(...pts.map((p) => p.y)),
      };
      const el = strokeAnchor(ctx.doc, pts[0], box);
      if (!el) return;
      const r = el.getBoundingClientRect();
      const w = r.width || 1;
      const hgt = r.height || 1;
      const clamp = (v) => Math.min(1, Math.max(0, Math.round(v * 10000) / 10000));
      const points = pts.map((p) => [clamp((p.x - r.left) / w), clamp((p.y - r.top) / hgt)]);
      this.place('draw', anchorFor(el, ctx.mirror), el, layer, points);
    }
  }

  cancelDrag() {
    const layer = this.layer();
    this.drag = null;
    if (layer) layer.clearPreview();
  }

  // ----- laser -------------------------------------------------------------------------------

  laserMove(type, layer, ctx, point) {
    if (type == 'pointerleave' || type == 'pointercancel') {
      layer.laserAt(null);
      this.hideLaser();
      return;
    }
    if (type != 'pointermove' && type != 'pointerdown') return;
    layer.laserAt(point);
    const el = ctx.doc.elementFromPoint(point.x, point.y);
    if (!el) return;
    const r = el.getBoundingClientRect();
    const round = (v) => Math.round(v * 10000) / 10000;
    this.laserPending = {
      anchor: { node: mirrorId(ctx.mirror, el), selector: cachedSelector(el) },
      x: round(r.width ? (point.x - r.left) / r.width : 0.5),
      y: round(r.height ? (point.y - r.top) / r.height : 0.5),
    };
    this.flushLaser();
  }

  // At most LASER_HZ frames a second, the latest position last.
  flushLaser() {
    if (this.laserTimer) return;
    const wait = this.laserSent + 1000 / LASER_HZ - performance.now();
    if (wait > 0) {
      this.laserTimer = setTimeout(() => {
        this.laserTimer = null;
        this.flushLaser();
      }, wait);
      return;
    }
    const pending = this.laserPending;
    this.laserPending = null;
    if (!pending) return;
    this.laserSent = performance.now();
    this.laserShown = true;
    this.send({ t: 'laser', ...pending });
  }

  hideLaser() {
    clearTimeout(this.laserTimer);
    this.laserTimer = null;
    this.laserPending = null;
    if (!this.laserShown) return;
    this.laserShown = false;
    this.send({ t: 'laser', anchor: null, x: 0, y: 0 });
  }

  // ----- markers -----------------------------------------------------------------------------

  send(frame) {
    const session = this.ctx.session();
    const tab = this.ctx.tab();
    if (!session || !tab) return false;
    return this.ctx.send({ ...frame, session, tab: tab.id });
  }

  place(kind, anchor, el, layer, points) {
    if (anchor.node <= 0) {
      this.ctx.toast('That part of the page cannot be marked (it is not on the visitor’s page).');
      return;
    }
    const note = kind == 'draw' ? '' : this.note.value.trim().slice(0, MAX_NOTE);
    const marker = { id: newMarkerId(), kind, anchor, pinned: this.pinned, scroll: this.scroll };
    if (note) marker.note = note;
    if (points) marker.points = points;
    if (!this.send({ t: 'mark', marker })) {
      this.ctx.toast('Not connected: the marker was not sent. Try again in a moment.');
      return;
    }
    layer.upsert({ ...marker, by: this.ctx.me() }, { mine: true, trusted: true });
    this.unconfirmed.push({ id: marker.id, layer });
    if (note) this.note.value = '';
    this.refresh();
    this.ctx.placed && this.ctx.placed(marker);
  }

  // The hub relayed a marker: ours is confirmed.
  confirmed(id) {
    this.unconfirmed = this.unconfirmed.filter((p) => p.id != id);
  }

  // The hub refused a `mark` (they are answered in order): take the oldest unconfirmed one back.
  // id: the refused marker (the hub names it); without one, the oldest still unconfirmed.
  rejected(id) {
    const at = id ? this.unconfirmed.findIndex((u) => u.id == id) : 0;
    const [first] = at >= 0 ? this.unconfirmed.splice(at, 1) : [];
    if (!first) return;
    first.layer.remove(first.id);
    this.refresh();
  }

  remove(id) {
    const layer = this.layer();
    if (!layer) return;
    this.send({ t: 'unmark', id });
    layer.remove(id);
    this.refresh();
  }

  clearAll() {
    const layer = this.layer();
    if (!layer || !layer.count) return;
    this.send({ t: 'unmark', id: null });
    layer.clear();
    this.refresh();
  }
}
