// The recorder: loads the rrweb recorder bundle (recorder.js, built from
// ../recorder-entry.js) only once the visitor has agreed to share, and starts
// it with everything private masked IN THE BROWSER, so masked values never
// leave the page:
//   - password fields (also after a "show password" toggle turned them into
//     text fields: rrweb marks those data-rr-is-password),
//   - card fields: any field whose autocomplete has a cc-* token (cc-number,
//     cc-csc, cc-exp, cc-name, "billing cc-number", ...),
//   - everything inside [data-cobrowse-mask] and inside the site owner's own
//     selectors (Site.mask_selectors): text is replaced by "*" and field values
//     too; <select> elements there (and card selects) are blocked entirely,
//     because rrweb would record their chosen option as it is; boxes and radio
//     buttons there never say they are ticked; attributes other than layout
//     ones (data-*, href, src...) are left out,
//   - our own UI (#cobrowse-root and everything in its shadow root) is never
//     recorded at all.
//
// The site owner's selectors come, for now, from a JSON array in the
// data-mask-selectors attribute of the loader's <script> tag (the server adds
// it); invalid selectors are dropped with a warning, since one bad selector
// would otherwise stop rrweb.
//
// Option names checked against @rrweb/record 2.1.6 (rrweb recordOptions):
// rrweb only calls maskInputFn(text, element) for fields whose tag or type is
// set in maskInputOptions, so every input and textarea is listed there and
// maskInputFn itself decides, returning the text unchanged for ordinary fields.

const RECORDER_VERSION = __COBROWSE_HASH_RECORDER__;
const D = document;

const MARK = '[data-cobrowse-mask]';
const CARD = /(^|\s)cc-/;
const SECRET = /(^|\s)(current|new|one-time)-(password|code)/;

function valid(selector) {
  try {
    D.createDocumentFragment().querySelector(selector);
    return true;
  } catch (e) {
    return false;
  }
}

export function siteSelectors(base) {
  const tag = [...D.scripts].find((s) => s.src.indexOf(base + 'loader.js') == 0 && s.hasAttribute('data-mask-selectors'));
  let list = [];
  try {
    list = tag ? JSON.parse(tag.getAttribute('data-mask-selectors')) : [];
  } catch (e) {
    // not JSON: nothing extra
  }
  return (Array.isArray(list) ? list : []).filter((s) => {
    const ok = typeof s == 'string' && s.trim() && valid(s);
    if (!ok) console.warn('cobrowse: ignoring mask selector', s);
    return ok;
  });
}

// Whether a node is inside an element matching selector, looking through
// shadow roots (to their host) and same-origin frames (to the <iframe>).
// rrweb asks el.closest(), which stops at both: a field in a web component or
// a frame under a masked element would go out as it is.
export function inside(node, selector) {
  while (node) {
    const el = node.nodeType == 1 ? node : node.parentElement;
    if (el && el.closest(selector)) return true;
    const root = node.getRootNode ? node.getRootNode() : null;
    if (!root) return false;
    if (root.host) node = root.host;
    else {
      try {
        node = root.defaultView ? root.defaultView.frameElement : null;
      } catch (e) {
        node = null; // a frame of another origin: its own page, not ours to record
      }
    }
  }
  return false;
}

// Whether an element is private (its value and text are masked): the one
// predicate behind the recorder's masking, also used by control.js to refuse
// an agent's typing into such fields.
export function maskPredicate(extra) {
  const masked = [MARK, ...extra].join(',');
  return (el) => {
    if (!el || !el.getAttribute) return false;
    const ac = (el.getAttribute('autocomplete') || '').toLowerCase();
    return (
      (el.type || '').toLowerCase() == 'password' ||
      el.hasAttribute('data-rr-is-password') ||
      CARD.test(ac) ||
      SECRET.test(ac) ||
      inside(el, masked)
    );
  };
}

// The rrweb options that decide what is masked (exported for tests and reuse).
export function maskingOptions(extra) {
  const masked = [MARK, ...extra].join(',');
  const isMasked = maskPredicate(extra);
  const blocked = [
    '#cobrowse-root',
    // rrweb still watches an open shadow root under a blocked host: block every
    // element in ours too (the selector only matches inside our shadow tree).
    ':host(#cobrowse-root) *',
    'select[autocomplete*="cc-" i]',
    ...[MARK, ...extra].flatMap((s) => [':is(' + s + ') select', 'select:is(' + s + ')']),
  ].filter(valid);
  return {
    maskAllInputs: false,
    maskInputOptions: { input: true, textarea: true, password: true },
    maskInputFn: (text, el) => (isMasked(el) ? '*'.repeat(text.length) : text),
    maskTextSelector: masked,
    blockSelector: blocked.join(','),
  };
}

// rrweb serialises a blocked host as an empty placeholder but still follows an
// open shadow root under it: it reports the stylesheets adopted there, nodes
// added at its top level, and interactions with nodes it never serialised
// (id -1). None of that is the page: drop it here, whatever the selectors say.
const FULL_SNAPSHOT_EVENT = 2;
const INCREMENTAL = 3;
const MUTATION = 0;
const ADOPTED_STYLESHEET = 15;

// rrweb's own text masking (maskTextSelector) stops at shadow roots and frames
// too, for text that changes or appears after the first snapshot, and it keeps
// a field's value attribute as written when the field is empty (a cleared
// password's default). Every event is checked again here, against the page's
// nodes, before it leaves: masked text becomes "*", masked values too.
const SOURCE_INPUT = 5;
const stars = (text) => text.replace(/\S/g, '*');
// Attributes of a masked element that show its words (sent as stars: the shape stays).
const WORDS = ['title', 'alt', 'placeholder', 'aria-label', 'value'];
// Attributes a masked element keeps as they are: how it looks and is laid out
// (SVG shapes too), nothing of what it says. Any other (data-*, href, src...,
// checked) can carry the private part (an order number in a link, a choice, a
// photo): left out. (rr_*: rrweb's own, e.g. a blocked element's size.)
const LAYOUT =
  /^(class|style|id|type|role|dir|lang|hidden|width|height|colspan|rowspan|rows|cols|size|disabled|readonly|tabindex|for|name|open|rel|_cssText|aria-(hidden|expanded|disabled|haspopup|controls|labelledby|describedby)|xmlns|viewBox|d|fill|stroke|stroke-width|stroke-linecap|stroke-linejoin|fill-rule|clip-rule|points|transform|cx|cy|r|rx|ry|x|y|x1|x2|y1|y2|rr_(?!dataURL).*)$/;

// removed: undefined in a snapshot (the attribute is left out), null in a mutation (it is removed).
function maskAttributes(a, removed) {
  for (const name of Object.keys(a)) {
    if (WORDS.includes(name)) {
      if (typeof a[name] == 'string' && a[name]) a[name] = stars(a[name]);
    } else if (!LAYOUT.test(name)) {
      if (removed === undefined) delete a[name];
      else a[name] = removed;
    }
  }
}

// A <style> or <script>: its text is CSS or a placeholder, never the page's words.
const isCode = (node) => !!node && /^(style|script)$/i.test(node.nodeName);

function masker(selector, isMasked, mirror) {
  const walk = (sn, masked) => {
    if (!sn) return;
    if (sn.type == 3 || sn.type == 4 || sn.type == 5) {
      if (masked && sn.textContent) sn.textContent = stars(sn.textContent);
      return;
    }
    if (sn.type == 2) {
      const el = mirror.getNode(sn.id);
      const tag = sn.tagName;
      masked = masked || !!(el && el.matches && el.matches(selector));
      if (tag == 'style' || tag == 'script') return; // CSS and placeholders, not the page's words
      const a = sn.attributes || {};
      if (masked) maskAttributes(a);
      if (tag == 'input' || tag == 'textarea' || tag == 'select' || tag == 'option') {
        masked = masked || isMasked(el);
        if (masked && typeof a.value == 'string' && a.value) a.value = '*'.repeat(a.value.length);
        if (masked) {
          delete a.selected;
          delete a.checked;
        }
      }
    }
    for (const child of sn.childNodes || []) walk(child, masked);
  };
  return (event) => {
    const d = event.data;
    if (!d) return;
    if (event.type == FULL_SNAPSHOT_EVENT) walk(d.node, false);
    if (event.type != INCREMENTAL) return;
    if (d.source == MUTATION) {
      for (const add of d.adds || []) {
        const parent = mirror.getNode(add.parentId);
        if (!isCode(parent)) walk(add.node, inside(parent, selector));
      }
      for (const t of d.texts || []) {
        const node = mirror.getNode(t.id);
        if (t.value && node && !isCode(node.parentNode) && inside(node, selector)) t.value = stars(t.value);
      }
      for (const at of d.attributes || []) {
        const el = mirror.getNode(at.id);
        const a = at.attributes || {};
        if (inside(el, selector)) maskAttributes(a, null);
        if (typeof a.value == 'string' && a.value && isMasked(el)) a.value = '*'.repeat(a.value.length);
      }
    } else if (d.source == SOURCE_INPUT && isMasked(mirror.getNode(d.id))) {
      if (typeof d.text == 'string') d.text = '*'.repeat(d.text.length);
      if (d.isChecked) d.isChecked = false; // which box or option was picked is the private part
    }
  };
}

function notOurs(event, hostId) {
  if (event.type != INCREMENTAL) return true;
  const d = event.data || {};
  if (d.id === -1 || (d.source == ADOPTED_STYLESHEET && d.id == hostId)) return false;
  if (d.source == MUTATION && hostId != -1) {
    d.adds = (d.adds || []).filter((a) => a.parentId != hostId);
    d.removes = (d.removes || []).filter((r) => r.parentId != hostId);
    return d.adds.length + d.removes.length + (d.texts || []).length + (d.attributes || []).length > 0;
  }
  return true;
}

// start() resolves once recording runs; every rrweb event goes to emit(event).
export function createRecorder(ctx, emit) {
  let lib = null;
  let stopFn = null;
  let wanted = false;
  const hostId = () => lib.record.mirror.getId(ctx.host);

  const load = () =>
    ctx.load('recorder', RECORDER_VERSION).then(() => {
      lib = window.__cobrowseRecorder;
      if (!lib) throw new Error('cobrowse: the recorder did not register');
      return lib;
    });

  return {
    // Fetch the bundle ahead of time (after consent only).
    preload: () => load().catch(() => {}),
    start() {
      wanted = true;
      if (stopFn) return Promise.resolve();
      return load().then(({ record }) => {
        if (!wanted || stopFn) return;
        const extra = siteSelectors(ctx.base);
        const options = maskingOptions(extra);
        const mask = masker(options.maskTextSelector, maskPredicate(extra), record.mirror);
        stopFn =
          record({
            emit: (event) => {
              if (!wanted || !notOurs(event, hostId())) return;
              try {
                mask(event);
              } catch (e) {
                console.warn('cobrowse: an event could not be checked for masking; not sent', e);
                return;
              }
              emit(event);
            },
            ...options,
            slimDOMOptions: { script: true, comment: true, headFavicon: true },
            sampling: { mousemove: 50, scroll: 100, media: 800 },
            // Never on: static/build.mjs leaves rrweb's canvas and font observers out.
            recordCanvas: false,
            collectFonts: false,
            inlineImages: false,
          }) || null;
        if (!stopFn) throw new Error('cobrowse: the recorder did not start');
      });
    },
    snapshot() {
      if (stopFn && lib) lib.record.takeFullSnapshot();
    },
    stop() {
      wanted = false;
      if (stopFn) {
        try {
          stopFn();
        } catch (e) {
          // already torn down
        }
      }
      stopFn = null;
    },
    running: () => !!stopFn,
    // The page's element with this rrweb node id (the id agents see), or null.
    node: (id) => (stopFn && lib && id >= 0 ? lib.record.mirror.getNode(id) : null),
  };
}
