// Commands: an agent sends the visitor's tab to a page, or opens one in a new tab.
//
//   <- command {kind: goto|open, url}
//   -> command_result {kind, url, ok, reason}   reason: refused | popup_blocked
//
// Only http(s) URLs, whatever the hub let through (it applies the site's
// allow-list, same-origin by default): never a javascript, data or blob URL, or
// anything with credentials in it. `goto` navigates this tab
// (location.assign; the session resumes on the next page, so the agent
// follows). `open` opens a new tab without an opener (noopener); when the
// browser blocks the pop-up (no click of the visitor's), the visitor gets
// the link to open it themselves.
const W = window;
const L = location;

export function checkedUrl(raw) {
  let u;
  try {
    u = new URL(String(raw), L.href);
  } catch (e) {
    return null;
  }
  return (u.protocol == 'http:' || u.protocol == 'https:') && !u.username && !u.password ? u : null;
}

export function commands(w) {
  w.on('hub:command', (m) => {
    const kind = m.kind;
    if (kind != 'goto' && kind != 'open') return;
    const url = String(m.url || '').slice(0, 2048);
    const reply = (ok, reason) => w.share.send({ t: 'command_result', kind, url, ok, ...(reason ? { reason } : {}) });
    const u = checkedUrl(url);
    if (!u) return reply(false, 'refused');
    if (kind == 'goto') {
      reply(true);
      // A moment for the answer (and the last recorded events) to leave first.
      setTimeout(() => L.assign(u.href), 50);
      return;
    }
    // window.open(url, '_blank', 'noopener') returns null even when it worked:
    // open a blank tab, cut its opener, then send it on its way.
    let tab = null;
    try {
      tab = W.open('', '_blank');
    } catch (e) {
      // blocked by the page's sandbox
    }
    if (!tab) {
      reply(false, 'popup_blocked');
      return w.emit('notice', { text: 'Support wants to open a page for you: ' + u.host + u.pathname, action: { label: 'Open', href: u.href } });
    }
    try {
      tab.opener = null;
      tab.location.href = u.href;
      reply(true);
    } catch (e) {
      tab.close();
      reply(false, 'refused');
    }
  });
}
