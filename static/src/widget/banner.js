// Banner: while anyone from support is viewing, a bar at the top of the window
// says who ("Anna (support) is viewing this page"), with a "Stop sharing"
// button, and a thin frame outlines the window. Both live in our shadow root,
// outside the panel, above the page (the host has the top z-index), and are
// never recorded. It also marks the launcher while sharing is on, and when
// sharing ends with the panel closed, says so in a short notice.
import { h, icon } from '../lib/dom.js';
import { CLOSE, EYE, INFO, viewingText } from './ui.js';

const ENDED = {
  visitor_stopped: 'You stopped sharing.',
  agent_ended: 'The support agent ended screen sharing.',
  idle_timeout: 'Sharing ended because nothing happened for a while.',
  broken: 'Sharing stopped because part of it could not load.',
  gone: 'Sharing has ended.',
};

export function banner(w) {
  const { root, button } = w.ctx;
  const text = h('span', { className: 'bn-t' });
  const bar = h('div', { className: 'bn', role: 'region', 'aria-label': 'Screen sharing', hidden: true }, [
    h('span', { className: 'live', 'aria-hidden': 'true' }),
    icon(EYE),
    h('span', { role: 'status' }, [text]),
    h('button', { type: 'button', className: 'bn-s', textContent: 'Stop sharing', onclick: () => w.emit('share:stop') }),
  ]);
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
    if (watched) text.textContent = viewingText(s.viewers) + (phase == 'reconnecting' ? ' (reconnecting\u2026)' : '');
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
