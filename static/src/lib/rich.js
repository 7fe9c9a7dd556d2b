// Formatted system messages (the welcome message): the sanitized node tree of
// chat/text.py (rich_tree) built into DOM nodes with createElement and
// textContent only, never by parsing HTML. Shared by the widget and the console.
//
// A tree is a list of nodes: a string is text; an element is
// {tag, attrs, children} with tag one of RICH_TAGS. Only links keep an
// attribute (href: absolute http, https or mailto). The tree comes from the
// network, so it is checked again here: an unknown tag keeps only its text,
// a link without a safe href becomes its text, and nesting deeper than
// MAX_DEPTH or more than MAX_NODES nodes is cut off.

import { LINK_REL } from './linkify.js';

export const RICH_TAGS = new Set(['b', 'strong', 'i', 'em', 'u', 'br', 'p', 'ul', 'ol', 'li', 'a', 'code']);
const MAX_DEPTH = 32;
const MAX_NODES = 2000;
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

// The href of a link when it is an absolute http(s) or mailto address, else null (chat/text.py _safe_href).
export function safeHref(href) {
  if (typeof href != 'string') return null;
  const value = href.replace(CONTROL, '').trim();
  if (!value || /\s/.test(value) || value.length > 2048) return null;
  const colon = value.indexOf(':');
  if (colon < 1) return null;
  const scheme = value.slice(0, colon).toLowerCase();
  const rest = value.slice(colon + 1);
  if (scheme == 'mailto') return rest.includes('@') ? value : null;
  if (scheme != 'http' && scheme != 'https') return null;
  return rest.startsWith('//') && rest.length > 2 ? value : null;
}

// A DocumentFragment for the tree, or null when it holds nothing to show.
export function renderRich(tree, doc = document) {
  if (!Array.isArray(tree)) return null;
  const budget = { left: MAX_NODES };
  const fragment = doc.createDocumentFragment();
  build(fragment, tree, 0, budget, doc);
  return fragment.childNodes.length ? fragment : null;
}

function build(parent, nodes, depth, budget, doc) {
  if (!Array.isArray(nodes) || depth > MAX_DEPTH) return;
  for (const node of nodes) {
    if (--budget.left < 0) return;
    if (typeof node == 'string') {
      parent.append(doc.createTextNode(node.replace(CONTROL, '')));
      continue;
    }
    if (!node || typeof node != 'object' || Array.isArray(node)) continue;
    const tag = typeof node.tag == 'string' ? node.tag.toLowerCase() : '';
    const children = Array.isArray(node.children) ? node.children : [];
    if (!RICH_TAGS.has(tag)) {
      build(parent, children, depth + 1, budget, doc);
      continue;
    }
    if (tag == 'br') {
      parent.append(doc.createElement('br'));
      continue;
    }
    let el;
    if (tag == 'a') {
      const href = safeHref(node.attrs && typeof node.attrs == 'object' ? node.attrs.href : null);
      if (!href) {
        build(parent, children, depth + 1, budget, doc);
        continue;
      }
      el = doc.createElement('a');
      el.href = href;
      el.target = '_blank';
      el.rel = LINK_REL;
    } else {
      el = doc.createElement(tag);
    }
    build(el, children, depth + 1, budget, doc);
    parent.append(el);
  }
}
