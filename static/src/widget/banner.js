// Banner: while anyone from support is viewing, a bar at the top of the window
// says who ("Anna (support) is viewing this page"), with a "Stop sharing"
// button, and a thin frame outlines the window. Both live in our shadow root,
// outside the panel, above the page (the host has the top z-index), and are
// never recorded. It also marks the launcher while sharing is on, and when
// sharing ends with the panel closed, says so in a short notice.
//
// The bar sits over the top of the site (its header, an announcement strip), so
// the visitor can make it small, in the bottom left corner: the pulsing dot, the
// eye and the red frame stay, so being watched never goes unnoticed. It stays small on this tab's next pages,
// and opens again by itself when someone new starts watching.
import { h, icon } from '../lib/dom.js';
import { CHEVRON_DOWN, CHEVRON_UP, CLOSE, EYE, INFO, viewingText } from './ui.js';
import { saveSmallBanner, smallBannerFor } from './store.js';

const viewerKeys = (viewers) => viewers.map((v) => (v && v.role) + ':' + (v && v.name)).sort();

// Whether `now` has someone `before` had not (counting repeats: two Annas are two).
function someoneNew(before, now) {
  const left = [...before];
  return now.some((k) => {
    const i = left.indexOf(k);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}

const ENDED = {
  visitor_stopped: 'You stopped sharing.',
  agent_ended: 'The support agent ended screen sharing.',
  idle_timeout: 'Sharing ended because nothing happened for a while.',
  chat_ended: 'The chat ended, so sharing stopped.',
  broken: 'Sharing stopped because part of it could not load.',
  gone: 'Sharing has ended.',
};

export function banner(w) {
  const { root, button } = w.ctx;
  const text = h('span', { className: 'bn-t' });
  let watching = []; // viewerKeys of who watches now
  const size = h('button', { type: 'button', className: 'tx bn-z', onclick: () => setSmall(!bar.classList.contains('sm')) });
  const bar = h('div', { className: 'bn', role: 'region', 'aria-label': 'Screen sharing', hidden: true }, [
    h('span', { className: 'live', 'aria-hidden': 'true' }),
    icon(EYE),
    h('span', { role: 'status' }, [text]),
    h('button', { type: 'button', className: 'bn-s', textContent: 'Stop sharing', onclick: () => w.emit('share:stop') }),
    size,
  ]);
  function setSmall(small, remember = true) {
    bar.classList.toggle('sm', small);
    size.replaceChildren(icon(small ? CHEVRON_UP : CHEVRON_DOWN)); // (it moves to the bottom corner)
    size.setAttribute('aria-label', small ? 'Show who is viewing' : 'Make this bar smaller');
    size.setAttribute('aria-expanded', String(!small));
    bar.title = small ? text.textContent : '';
    if (remember) saveSmallBanner(small ? watching : null);
  }
  setSmall(false, false);
  const frame = h('div', { className: 'fr', 'aria-hidden': 'true', hidden: true });
  const noticeText = h('span');
  let noticeTimer = 0;
  const hideNotice = () => {
    clearTimeout(noticeTimer);
    notice.hidden = true;
  };
  const notice = h('div', { className: 'toast', role: 'status', hidden: true }, [
    icon(INFO),
    noticeText,
    h('button', { type: 'button', className: 'tx', 'aria-label': 'Dismiss', onclick: hideNotice }, [icon(CLOSE)]),
  ]);
  // Before the panel in the shadow root, so the banner comes first for Tab and screen readers.
  root.insertBefore(bar, root.firstChild);
  root.append(frame, notice);

  let phase = 'idle';
  w.on('share:state', (s) => {
    const was = phase;
    phase = s.phase;
    const active = !['idle', 'ended', 'failed'].includes(phase);
    const watched = active && s.viewers.length > 0;
    bar.hidden = frame.hidden = !watched;
    if (watched) {
      text.textContent = viewingText(s.viewers) + (phase == 'reconnecting' ? ' (reconnecting\u2026)' : '');
      watching = viewerKeys(s.viewers);
      const madeSmallFor = smallBannerFor();
      // Small only while nobody new watches; a newcomer opens it (and forgets the choice).
      setSmall(Boolean(madeSmallFor) && !someoneNew(madeSmallFor, watching), Boolean(madeSmallFor));
    } else if (!active) saveSmallBanner(null);
    button.classList.toggle('sh', active);
    button.classList.toggle('vw', watched);
    button.setAttribute('aria-label', active ? 'Get help (sharing is on)' : 'Get help');
    if (active) hideNotice();
    else if (phase == 'ended' && was != 'ended' && w.panel.hidden) {
      noticeText.textContent = (ENDED[s.reason] || ENDED.gone) + ' Support can no longer see your pages.';
      notice.hidden = false;
      clearTimeout(noticeTimer);
      noticeTimer = setTimeout(hideNotice, 10000);
    }
  });
  w.on('open', hideNotice);
}
