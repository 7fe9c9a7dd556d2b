// DOM helpers shared by the loader and the widget (each bundle gets its own
// copy). Everything here builds nodes one by one and styles them through CSSOM,
// so it runs under strict CSPs (no 'unsafe-inline', no 'unsafe-eval') and under
// Trusted Types: no HTML parsing, no string-to-code, no style attributes.

const D = document;
const SVG_NS = 'http://www.w3.org/2000/svg';

// h('button', {type: 'button', className: 'x', 'aria-label': 'Close', onclick: f}, [kids])
// Keys that are element properties are assigned, "on<event>" keys become
// listeners, everything else (aria-*, role) is set as an attribute.
export function h(tag, props, kids) {
  const el = D.createElement(tag);
  for (const k in props) {
    const v = props[k];
    if (k[0] == 'o' && k[1] == 'n') el.addEventListener(k.slice(2), v);
    else if (k in el) el[k] = v;
    else el.setAttribute(k, v);
  }
  if (kids) el.append(...kids);
  return el;
}

// A 24x24 stroked icon from one path; decorative (hidden from screen readers).
export function icon(d) {
  const svg = D.createElementNS(SVG_NS, 'svg');
  const path = D.createElementNS(SVG_NS, 'path');
  const attrs = {
    viewBox: '0 0 24 24',
    fill: 'none',
    stroke: 'currentColor',
    'stroke-width': 2,
    'stroke-linecap': 'round',
    'stroke-linejoin': 'round',
    'aria-hidden': 'true',
    focusable: 'false',
  };
  for (const k in attrs) svg.setAttribute(k, attrs[k]);
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

// Styles a shadow root from a list of rules: [selector, declarations] pairs,
// or plain strings for at-rules (@media, @keyframes).
//
// Current browsers get one constructable stylesheet in adoptedStyleSheets, which
// CSP's style-src does not restrict. Browsers without constructable stylesheets
// get the declarations of the simple rules (no pseudo-class, no attribute
// selector, no at-rule) set property by property through CSSOM on the matching
// elements, now and whenever nodes are added later; hover, focus and motion
// styles are then missing but the layout holds.
export function adopt(root, rules) {
  if ('adoptedStyleSheets' in root) {
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(rules.map((r) => (r.pop ? r[0] + '{' + r[1] + '}' : r)).join(''));
      root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
      return;
    } catch (e) {
      // fall through to CSSOM properties
    }
  }
  const simple = rules.filter((r) => r.pop && !/[[@]|:(?!host)/.test(r[0]));
  const paint = (node) => {
    if (!node.querySelectorAll) return;
    for (const [sel, decls] of simple) {
      const host = sel == ':host';
      const els = host ? (node == root ? [root.host] : []) : [...node.querySelectorAll(sel)];
      if (!host && node.matches && node.matches(sel)) els.push(node);
      for (const el of els) {
        for (const decl of decls.split(';')) {
          const i = decl.indexOf(':');
          if (i > 0) {
            const value = decl.slice(i + 1).replace('!important', '');
            // Only the host lives in the page's light DOM, where page rules reach it.
            el.style.setProperty(decl.slice(0, i).trim(), value.trim(), host ? 'important' : '');
          }
        }
      }
    }
  };
  paint(root);
  new MutationObserver((records) => {
    for (const r of records) r.addedNodes.forEach(paint);
  }).observe(root, { childList: true, subtree: true });
}

// The system font stack used by every part of the UI.
export const FONT = 'system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif';
// Site owners can theme the UI from their own CSS:
//   #cobrowse-root { --cobrowse-accent: #0a7d4f; --cobrowse-accent-text: #fff }
export const ACCENT = 'var(--cobrowse-accent,#2457d6)';
export const ACCENT_TEXT = 'var(--cobrowse-accent-text,#fff)';

// A non-modal prompt in our shadow root: shown, it takes focus (the dialog itself,
// so a stray Enter answers nothing); hidden, it gives focus back to what the
// visitor had (a field they were typing in, say) if it still held focus.
export function promptFocus(root, host) {
  let back = null;
  return {
    show(prompt) {
      const wasHidden = prompt.hidden;
      prompt.hidden = false;
      if (wasHidden) {
        back = document.activeElement;
        prompt.focus({ preventScroll: true });
      }
    },
    hide(prompt) {
      const hadFocus = prompt.contains(root.activeElement);
      prompt.hidden = true;
      if (hadFocus) {
        if (back && back != host && back.isConnected && back.focus) back.focus({ preventScroll: true });
        else if (root.activeElement) root.activeElement.blur();
      }
      back = null;
    },
  };
}

