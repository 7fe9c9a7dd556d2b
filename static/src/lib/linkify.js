// Links in plain chat text, shared by the widget and the console (and by
// lib/rich.js for LINK_REL). The JavaScript side of chat/text.py
// linkify_spans/link_href: keep the rules in step with its module docstring:
//
// 1. A link starts with http://, https://, www. or mailto: (any case), not glued
//    to what precedes it (the character before is not A-Z a-z 0-9 @ . + / : _ -).
// 2. It runs to the first whitespace or one of < > " ` or a control character.
// 3. Trailing . , : ; ! ? ' * … ’ ” » are left out, repeatedly, and so is a
//    closing ) ] } with no opening partner inside the link.
// 4. What remains needs a host: a letter or digit right after :// or www.; a
//    mailto: needs local@domain.tld. Otherwise it is text.
// 5. The target is the text itself; www. links get https:// in front.
//
// Chat text is never HTML: linkify() builds text nodes and <a> elements
// (textContent only), opening in a new tab without opener or referrer.
//
//   linkify(text) -> DocumentFragment   text nodes and links, ready to append
//   linkifySpans(text) -> [['text'|'url', s], ...];  linkHref(url) -> href

export const LINK_REL = 'noopener noreferrer nofollow';

// (No lookbehind: the widget's target includes browsers without it; rule 1 is checked by hand.)
const CANDIDATE = /(?:https?:\/\/|www\.|mailto:)[^\s<>"`\x00-\x1f\x7f]+/gi;
const GLUED = /[A-Za-z0-9@.+/:_-]/;
const TRAILING = ".,:;!?'*\u2026\u2019\u201d\u00bb";
const CLOSERS = { ')': '(', ']': '[', '}': '{' };
// (Python's \w and isalnum() are Unicode-aware: so are these.)
const MAILTO = /^mailto:[^@\s/?]+@[\p{L}\p{N}][\p{L}\p{N}\p{M}_-]*(?:\.[\p{L}\p{N}\p{M}_-]+)*\.\p{L}{2,}(?:\?.*)?$/iu;
const count = (s, c) => s.split(c).length - 1;

function trim(link) {
  for (;;) {
    const last = link.slice(-1);
    if (last && TRAILING.includes(last)) link = link.slice(0, -1);
    else if (CLOSERS[last] && count(link, last) > count(link, CLOSERS[last])) link = link.slice(0, -1);
    else return link;
  }
}

function isLink(link) {
  const lower = link.toLowerCase();
  if (lower.startsWith('mailto:')) return MAILTO.test(link);
  const prefix = ['http://', 'https://', 'www.'].find((p) => lower.startsWith(p));
  return !!prefix && /^[\p{L}\p{N}]/u.test(link.slice(prefix.length));
}

// [['text', s] | ['url', s], ...] in order; joined, they give back text.
export function linkifySpans(text) {
  text = String(text);
  const spans = [];
  let from = 0;
  for (const m of text.matchAll(CANDIDATE)) {
    if (m.index < from || (m.index > 0 && GLUED.test(text[m.index - 1]))) continue;
    const link = trim(m[0]);
    if (!isLink(link)) continue;
    if (m.index > from) spans.push(['text', text.slice(from, m.index)]);
    spans.push(['url', link]);
    from = m.index + link.length;
  }
  if (from < text.length) spans.push(['text', text.slice(from)]);
  return spans;
}

// Where a 'url' span points.
export const linkHref = (url) => (url.slice(0, 4).toLowerCase() == 'www.' ? 'https://' + url : url);

// The text as a fragment of text nodes and links.
export function linkify(text, doc = document) {
  const out = doc.createDocumentFragment();
  for (const [kind, s] of linkifySpans(text)) {
    if (kind == 'text') {
      out.append(s);
      continue;
    }
    const a = doc.createElement('a');
    a.href = linkHref(s);
    a.target = '_blank';
    a.rel = LINK_REL;
    a.textContent = s;
    out.append(a);
  }
  return out;
}
