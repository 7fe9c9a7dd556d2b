// Anchors: how a marker (or the laser, or an action under shared control)
// names an element of the visitor's page. See "markers and shared control" in
// cobrowse/sync/protocol.py:
//
//   node      the element's rrweb mirror id: the replay's mirror gives the same
//             ids as the recorder on the visitor's page (replayer.getMirror())
//   selector  a short CSS path, the fallback once the page was loaded again
//             (ids start over on every page): the element's id when it is
//             unique, else tag:nth-of-type steps up to an element with a
//             unique id, or to body
//   quote     the element's text, whitespace collapsed, at most QUOTE_MAX
//             characters; for a text range, the highlighted words exactly
//   start/end text ranges: offsets of the highlighted words in the anchor
//             element's textContent (every Text node below it, in document
//             order), so textContent.slice(start, end) == quote
//
// Everything here reads the replay document (rrweb's sandboxed iframe, same
// origin as the console): nothing in it runs page script.

export const QUOTE_MAX = 120;
export const RANGE_MAX = 1000; // characters a text highlight may cover

const FIELD_SELECTOR = 'input:not([type=hidden]), select, textarea, [contenteditable=""], [contenteditable="true"]';
const TEXT_INPUT_TYPES = new Set(['', 'text', 'search', 'email', 'url', 'tel', 'password', 'number', 'date',
  'datetime-local', 'month', 'week', 'time']);

const isElement = (n) => n && n.nodeType == 1;

function collapse(text) {
  return (text || '').replace(/\s+/g, ' ').trim();
}

// The element's visible text for a quote (fields: nothing; their value is the visitor's).
export function quoteOf(el) {
  if (!isElement(el)) return '';
  const name = el.localName;
  if (name == 'input' || name == 'select' || name == 'textarea') return '';
  return collapse(el.textContent).slice(0, QUOTE_MAX);
}

function escapeIdent(s) {
  return typeof CSS != 'undefined' && CSS.escape ? CSS.escape(s) : s.replace(/[^\w-]/g, (c) => `\\${c}`);
}

const selectorCache = new WeakMap(); // element -> selector (cleared per element when it moves)

// A short CSS path that finds el in its document (see the top).
export function cssSelector(el) {
  if (!isElement(el)) return '';
  const doc = el.ownerDocument;
  const parts = [];
  for (let node = el; isElement(node); node = node.parentElement) {
    const name = node.localName;
    if (name == 'html') {
      parts.unshift('html');
      break;
    }
    if (name == 'body') {
      parts.unshift('body');
      break;
    }
    if (node.id) {
      const sel = `#${escapeIdent(node.id)}`;
      let unique = false;
      try {
        unique = doc.querySelectorAll(sel).length == 1;
      } catch {
        unique = false;
      }
      if (unique) {
        parts.unshift(sel);
        break;
      }
    }
    const parent = node.parentElement;
    let step = escapeIdent(name);
    if (parent) {
      let index = 0;
      let count = 0;
      for (const sib of parent.children) {
        if (sib.localName == name) {
          count++;
          if (sib === node) index = count;
        }
      }
      if (count > 1) step += `:nth-of-type(${index})`;
    }
    parts.unshift(step);
    if (!parent) break;
  }
  return parts.join(' > ');
}

// cssSelector, remembered for a moment (the laser asks many times a second).
export function cachedSelector(el) {
  const hit = selectorCache.get(el);
  const now = performance.now();
  if (hit && now - hit.at < 1000) return hit.selector;
  const selector = cssSelector(el);
  selectorCache.set(el, { selector, at: now });
  return selector;
}

export function mirrorId(mirror, node) {
  if (!mirror || !node) return -1;
  const id = mirror.getId(node);
  return typeof id == 'number' && id > 0 ? id : -1;
}

// {node, selector, quote} of an element.
export function anchorFor(el, mirror, { quote = true } = {}) {
  const anchor = { node: mirrorId(mirror, el), selector: cssSelector(el) };
  if (quote) {
    const q = quoteOf(el);
    if (q) anchor.quote = q;
  }
  return anchor;
}

// ----- finding an anchor's element again ---------------------------------------------

// Does el look like the element this anchor names? (ids start over on every
// page, so an id alone may name another element): it fits the selector, or
// else holds the quote. The visitor's page judges the same way.
function agrees(el, anchor) {
  if (!isElement(el) || !el.isConnected) return false;
  if (anchor.selector) {
    try {
      if (el.matches(anchor.selector)) return true;
    } catch {
      // a selector this browser cannot parse: judge by the quote alone
    }
  }
  if (anchor.quote) return collapse(textOf(el)).includes(collapse(anchor.quote));
  return !anchor.selector;
}

export const isTextAnchor = (anchor) => anchor != null && anchor.start >= 0 && anchor.end > anchor.start;

// The element of an anchor in the replay document, or null.
//   trustId: the anchor was made on this very replay (same page), so its id
//   alone decides; otherwise the id must agree with the selector and quote,
//   and the selector, then the quote, are tried next.
export function resolveAnchor(doc, mirror, anchor, trustId) {
  if (!doc || !anchor) return null;
  if (anchor.node > 0 && mirror) {
    const node = mirror.getNode(anchor.node);
    const ok = isElement(node) && node.ownerDocument === doc && node.isConnected;
    if (trustId) return ok ? node : null;
    if (ok && agrees(node, anchor)) return node;
  }
  if (anchor.selector) {
    let el = null;
    try {
      el = doc.querySelector(anchor.selector);
    } catch {
      el = null;
    }
    if (el && agrees(el, anchor)) return el;
  }
  if (anchor.quote && !isTextAnchor(anchor)) return findByQuote(doc, anchor.quote);
  if (anchor.quote) return findByQuote(doc, anchor.quote.slice(0, QUOTE_MAX));
  return null;
}

// The smallest element whose text holds the quote.
function findByQuote(doc, quote) {
  const body = doc.body;
  if (!body) return null;
  const needle = collapse(quote).slice(0, 60);
  if (!needle) return null;
  const walker = doc.createTreeWalker(body, NodeFilter.SHOW_TEXT);
  let node;
  let seen = 0;
  while ((node = walker.nextNode()) && seen++ < 20000) {
    if (!node.data.includes(needle.split(' ')[0])) continue;
    for (let el = node.parentElement; el && el !== body.parentElement; el = el.parentElement) {
      if (collapse(el.textContent).includes(needle)) return el;
      if (el === body) break;
    }
  }
  return null;
}

// ----- text ranges ---------------------------------------------------------------------
//
// "An element's text" is its Text nodes in document order, minus those in
// script, style, noscript and template (the replay turns the page's scripts
// into noscript elements; the visitor's page counts the same way).

const NOT_TEXT = /^(script|style|noscript|template)$/i;

function textWalker(el) {
  return el.ownerDocument.createTreeWalker(el, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => (n.parentNode && NOT_TEXT.test(n.parentNode.nodeName) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
}

// The element's text (see above).
export function textOf(el) {
  const walker = textWalker(el);
  let s = '';
  for (let n; (n = walker.nextNode()); ) s += n.data;
  return s;
}

// A Range over [start, end) of el's text, or null.
export function rangeOf(el, start, end) {
  if (!isElement(el) || !(end > start) || start < 0) return null;
  const walker = textWalker(el);
  const range = el.ownerDocument.createRange();
  let at = 0;
  let started = false;
  for (let node; (node = walker.nextNode()); ) {
    const len = node.data.length;
    if (!started && start < at + len) {
      range.setStart(node, start - at);
      started = true;
    }
    if (started && end <= at + len) {
      range.setEnd(node, end - at);
      return range;
    }
    at += len;
  }
  return null;
}

// Offset of a boundary point in el's text.
function offsetIn(el, container, offset) {
  const point = el.ownerDocument.createRange();
  point.setStart(container, offset);
  point.collapse(true);
  const walker = textWalker(el);
  let at = 0;
  for (let n; (n = walker.nextNode()); ) {
    if (n === container) return at + offset;
    if (point.comparePoint(n, 0) >= 0) return at; // this text starts at or after the point
    at += n.data.length;
  }
  return at;
}

const WORD = /[\p{L}\p{N}\p{M}_'’-]/u;

// Grow a range to whole words at both ends (the agent drags roughly).
export function snapToWords(range) {
  const r = range.cloneRange();
  const sc = r.startContainer;
  if (sc.nodeType == 3) {
    let o = r.startOffset;
    while (o > 0 && WORD.test(sc.data[o - 1])) o--;
    while (o < sc.data.length && /\s/.test(sc.data[o]) && o < (sc === r.endContainer ? r.endOffset : sc.data.length)) o++;
    r.setStart(sc, o);
  }
  const ec = r.endContainer;
  if (ec.nodeType == 3) {
    let o = r.endOffset;
    while (o < ec.data.length && WORD.test(ec.data[o])) o++;
    while (o > 0 && /\s/.test(ec.data[o - 1]) && (ec !== r.startContainer || o > r.startOffset)) o--;
    r.setEnd(ec, o);
  }
  return r;
}

// The anchor of a text range: its element (the nearest element holding both
// ends), the offsets in that element's text and the words themselves.
export function textAnchor(range, mirror) {
  let el = range.commonAncestorContainer;
  if (!isElement(el)) el = el.parentElement;
  // Skip inline wrappers (a highlight across a <b> belongs to the paragraph).
  while (el && el.parentElement && /^(b|i|em|strong|span|a|code|mark|small|sup|sub|u|s|abbr|time|label)$/.test(el.localName)
    && el.localName != 'body') {
    el = el.parentElement;
  }
  if (!el) return null;
  const start = offsetIn(el, range.startContainer, range.startOffset);
  let end = offsetIn(el, range.endContainer, range.endOffset);
  if (end - start > RANGE_MAX) end = start + RANGE_MAX;
  const quote = textOf(el).slice(start, end);
  if (!quote.trim()) return null;
  return { el, anchor: { node: mirrorId(mirror, el), selector: cssSelector(el), quote, start, end } };
}

// The caret position under a point of the replay's viewport.
export function caretAt(doc, x, y) {
  if (doc.caretRangeFromPoint) {
    const r = doc.caretRangeFromPoint(x, y);
    return r ? { node: r.startContainer, offset: r.startOffset } : null;
  }
  if (doc.caretPositionFromPoint) {
    const p = doc.caretPositionFromPoint(x, y);
    return p ? { node: p.offsetNode, offset: p.offset } : null;
  }
  return null;
}

// ----- fields -----------------------------------------------------------------------------

export function isField(el) {
  return isElement(el) && el.matches(FIELD_SELECTOR);
}

// Text-like fields (typed into) as opposed to checkboxes, radios, buttons, selects.
export function isTextField(el) {
  if (!isElement(el)) return false;
  if (el.localName == 'textarea') return true;
  if (el.isContentEditable) return true;
  return el.localName == 'input' && TEXT_INPUT_TYPES.has((el.getAttribute('type') || '').toLowerCase());
}

// The form field an agent points at: the field itself, a label's field, or
// the one field inside a small wrapper.
export function fieldNear(el) {
  if (!isElement(el)) return null;
  const direct = el.closest(FIELD_SELECTOR);
  if (direct) return direct;
  const label = el.closest('label');
  if (label) {
    const control = label.control || label.querySelector(FIELD_SELECTOR);
    if (control) return control;
  }
  for (let box = el, hops = 0; box && hops < 3 && box.localName != 'body' && box.localName != 'form'; box = box.parentElement, hops++) {
    const inner = box.querySelectorAll(FIELD_SELECTOR);
    if (inner.length == 1) return inner[0];
    if (inner.length > 1) break;
  }
  return null;
}

// The element to draw a stroke on: the smallest element under its first
// point whose box holds the whole stroke (else body, else html).
export function strokeAnchor(doc, first, box) {
  let el = doc.elementFromPoint(first.x, first.y);
  const fits = (r) => r.width > 0 && r.height > 0 && r.left <= box.left + 1 && r.top <= box.top + 1
    && r.right >= box.right - 1 && r.bottom >= box.bottom - 1;
  for (; el; el = el.parentElement) {
    if (el.localName == 'body' || el.localName == 'html') break;
    if (fits(el.getBoundingClientRect())) return el;
  }
  const body = doc.body;
  if (body && fits(body.getBoundingClientRect())) return body;
  return doc.documentElement;
}
