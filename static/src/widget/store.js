// What the widget keeps in the visitor's browser. Nothing is written before the
// visitor acts: the ids are made on the consent click, or when they start a
// chat or leave a message (the first connection to the hub).
//
//   localStorage   cobrowse:share    {session, resume, code, expires, seen}: the
//                                    running sharing session, for every tab of
//                                    this origin. loader.js reads it on each page
//                                    load to resume (keep the key and the "seen"
//                                    rule in step with it).
//                  cobrowse:chat     {conversation, token, read, seen}: the open
//                                    chat (read: highest seq the visitor saw), for
//                                    every tab; loader.js reopens it on page loads
//                                    (same key, CHAT_WINDOW rule)
//                  cobrowse:visitor  random id of this browser (the resume token
//                                    and the chat token are bound to it by the hub)
//   sessionStorage cobrowse:tab      random id of this tab, kept across its page loads
//                  cobrowse:seq      {s: session, n: next event seq} of this tab
//                  cobrowse:outbox   {c: conversation, m: [{id, text, at}]}: chat
//                                    messages of this tab not acknowledged yet
//                  cobrowse:banner   {viewers: ["role:name", ...]}: the "is viewing"
//                                    bar was made small while these watched
//
// Storage can be missing or throw (privacy modes, sandboxed frames, quota):
// then ids live in memory, sharing works on this page and does not resume.

export const SHARE_KEY = 'cobrowse:share';
const VISITOR_KEY = 'cobrowse:visitor';
const TAB_KEY = 'cobrowse:tab';
const SEQ_KEY = 'cobrowse:seq';
// How long after the last sign of life a stored session is still resumed (the
// loader applies the same rule): a visitor back the next day is not shared again.
export const RESUME_WINDOW = 10 * 60 * 1000;
export const CHAT_KEY = 'cobrowse:chat';
const OUTBOX_KEY = 'cobrowse:outbox';
const BANNER_KEY = 'cobrowse:banner';
// A conversation untouched for this long is not reopened on page loads (the hub
// ends idle chats long before; the loader applies the same rule).
export const CHAT_WINDOW = 24 * 3600 * 1000;

const memory = {};

function area(name) {
  try {
    return window[name] || null;
  } catch (e) {
    return null;
  }
}

function read(name, key) {
  try {
    const raw = area(name) ? area(name).getItem(key) : memory[name + key];
    return raw ? JSON.parse(raw) : null;
  } catch (e) {
    return null;
  }
}

function write(name, key, value) {
  const raw = value == null ? null : JSON.stringify(value);
  try {
    const s = area(name);
    if (s) {
      if (raw == null) s.removeItem(key);
      else s.setItem(key, raw);
      return;
    }
  } catch (e) {
    // fall back to memory
  }
  if (raw == null) delete memory[name + key];
  else memory[name + key] = raw;
}

export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => (b + 256).toString(16).slice(1)).join('');
}

function id(name, key) {
  let value = read(name, key);
  if (typeof value != 'string' || !/^[\w-]{8,64}$/.test(value)) {
    value = randomId();
    write(name, key, value);
  }
  return value;
}

export const visitorId = () => id('localStorage', VISITOR_KEY);
export const tabId = () => id('sessionStorage', TAB_KEY);

// The stored session if it is well formed and recent enough to resume.
export function storedSession() {
  const s = read('localStorage', SHARE_KEY);
  return s && typeof s.session == 'string' && typeof s.resume == 'string' && Date.now() - s.seen < RESUME_WINDOW
    ? s
    : null;
}

export function saveSession(s) {
  write('localStorage', SHARE_KEY, { ...s, seen: Date.now() });
}

// Forget the session, unless the stored one is a different (newer) session.
export function clearSession(session) {
  const s = read('localStorage', SHARE_KEY);
  if (!s || !session || s.session == session) write('localStorage', SHARE_KEY, null);
  write('sessionStorage', SEQ_KEY, null);
}

export function nextSeq(session) {
  const s = read('sessionStorage', SEQ_KEY);
  return s && s.s == session && s.n >= 0 ? s.n : 0;
}

export function saveSeq(session, n) {
  write('sessionStorage', SEQ_KEY, { s: session, n });
}

// The open conversation, if well formed and recent.
export function storedChat() {
  const c = read('localStorage', CHAT_KEY);
  return c && typeof c.token == 'string' && typeof c.conversation == 'string' && Date.now() - c.seen < CHAT_WINDOW ? c : null;
}

export const saveChat = (c) => write('localStorage', CHAT_KEY, c && { ...c, seen: Date.now() });

// Unacknowledged messages of this tab for a conversation ('' before it started).
export function storedOutbox(conversation) {
  const o = read('sessionStorage', OUTBOX_KEY);
  return o && o.c == conversation && Array.isArray(o.m) ? o.m : [];
}

export const saveOutbox = (conversation, list) => write('sessionStorage', OUTBOX_KEY, list.length ? { c: conversation, m: list } : null);

// The viewers (["role:name"]) the visitor made the banner small for, or null.
export function smallBannerFor() {
  const b = read('sessionStorage', BANNER_KEY);
  return b && Array.isArray(b.viewers) ? b.viewers : null;
}

export function saveSmallBanner(viewers) {
  write('sessionStorage', BANNER_KEY, viewers ? { viewers } : null);
}
