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
//     because rrweb would record their chosen option as it is,
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

// The rrweb options that decide what is masked (exported for tests and reuse).
export function maskingOptions(extra) {
  const masked = [MARK, ...extra].join(',');
  const isMasked = (el) => {
    if (!el || !el.getAttribute) return false;
    const ac = (el.getAttribute('autocomplete') || '').toLowerCase();
    return (
      (el.type || '').toLowerCase() == 'password' ||
      el.hasAttribute('data-rr-is-password') ||
      CARD.test(ac) ||
      SECRET.test(ac) ||
      !!(el.closest && el.closest(masked))
    );
  };
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
const INCREMENTAL = 3;
const MUTATION = 0;
const ADOPTED_STYLESHEET = 15;

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
        stopFn =
          record({
            emit: (event) => wanted && notOurs(event, hostId()) && emit(event),
            ...maskingOptions(siteSelectors(ctx.base)),
            slimDOMOptions: { script: true, comment: true, headFavicon: true },
            sampling: { mousemove: 50, scroll: 100, media: 800 },
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
  };
}
