// The panel: a non-modal dialog above the launcher, in the loader's shadow root.
// It owns the frame (header, close button, body); feature modules fill the body.
import { h, icon, adopt } from '../lib/dom.js';
import { PANEL_CSS } from './styles.js';

const CLOSE = 'M6 6l12 12M18 6 6 18';
const ID = 'cobrowse-panel';

export function createPanel(ctx, { onClose }) {
  adopt(ctx.root, PANEL_CSS);
  const body = h('div', { className: 'bd' });
  const close = h('button', { type: 'button', className: 'x', 'aria-label': 'Close', onclick: onClose }, [icon(CLOSE)]);
  const el = h(
    'section',
    { id: ID, className: 'p', role: 'dialog', 'aria-labelledby': ID + '-title', tabIndex: -1, hidden: true },
    [h('div', { className: 'hd' }, [h('h2', { id: ID + '-title', textContent: 'Get help' }), close]), body],
  );
  ctx.button.setAttribute('aria-controls', ID);
  // Insert before the launcher so that Tab goes from the panel to the button.
  ctx.root.insertBefore(el, ctx.button);
  return { el, body };
}
