// The tag the proxy puts in a page, when the page's CSP lets an inline script
// with our nonce run (no CSP, or one with nonces, hashes, 'strict-dynamic' or
// 'unsafe-inline'): it adds loader.js itself, after the page's load event.
//
// Why: an external <script async src=loader.js> in the page is one more
// request while the page loads, and the page's load event waits for it: 20-30
// ms of a first visit on our benchmark machine, the same for an empty file
// (docs/benchmarks.md, Browser). Added after `load`, it costs the page
// nothing. It is added at once when a share or a chat is to be resumed on
// this page (the same storage rules as loader.js), and at the latest 3 s after
// DOMContentLoaded on a page whose images take long.
//
// The tag carries data-src (the loader's URL), the nonce and any per-site
// attributes (data-mask-selectors), which the loader's <script> gets too.
// Built with whitespace and names minified but not syntax (static/build.mjs):
// the page's parser must find no "<" or "&" in it (XHTML pages too).
(function () {
  var d = document;
  var me = d.currentScript;
  if (!me || window.top !== window) return;
  var src = new URL(me.getAttribute('data-src'), location.href).href;
  var base = new URL('.', src).href;
  var added = false;

  function add() {
    if (added) return;
    added = true;
    var s = d.createElement('script');
    var url = src;
    var tt = window.trustedTypes;
    if (tt) {
      if (tt.createPolicy) {
        try {
          // Shared with loader.js: a policy name can be taken only once.
          window.__cobrowseTT = tt.createPolicy('cobrowse', {
            createScriptURL: function (u) {
              return u.indexOf(base) === 0 ? u : '';
            },
          });
          url = window.__cobrowseTT.createScriptURL(src);
        } catch (e) {
          // not allowed by the page's trusted-types directive: the plain URL
        }
      }
    }
    s.src = url;
    s.async = true;
    if (me.nonce) s.nonce = me.nonce;
    var masks = me.getAttribute('data-mask-selectors');
    if (masks !== null) s.setAttribute('data-mask-selectors', masks);
    (d.head || d.documentElement).appendChild(s);
  }

  function stored(key, field, window) {
    var v = JSON.parse(localStorage.getItem('cobrowse:' + key));
    if (!v) return false;
    if (!v[field]) return false;
    return window > Date.now() - v.seen;
  }

  var resume = false;
  try {
    resume = stored('share', 'resume', 6e5) || stored('chat', 'token', 864e5);
  } catch (e) {
    // no storage: nothing to resume
  }
  if (resume || d.readyState === 'complete') {
    add();
  } else {
    addEventListener('load', add);
    d.addEventListener('DOMContentLoaded', function () {
      setTimeout(add, 3000);
    });
  }
})();
