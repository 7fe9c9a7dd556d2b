// Styles of the panel, adopted into the loader's shadow root next to the
// loader's own sheet (see lib/dom.js adopt for the rules' format).
import { FONT, ACCENT, ACCENT_TEXT } from '../lib/dom.js';

export const PANEL_CSS = [
  [
    '.p',
    'pointer-events:auto;position:fixed;right:20px;bottom:84px;box-sizing:border-box;' +
      'width:360px;max-width:calc(100vw - 40px);max-height:calc(100vh - 108px);overflow:auto;' +
      'background:#fff;color:#1d2433;border-radius:16px;' +
      'box-shadow:0 2px 6px rgba(16,24,40,.08),0 16px 48px rgba(16,24,40,.22);' +
      'font:400 14px/1.5 ' + FONT + ';text-align:left;outline:0;' +
      'animation:cb-in .18s ease-out;transform-origin:100% 100%',
  ],
  [
    '.hd',
    'display:flex;align-items:center;justify-content:space-between;gap:8px;' +
      'padding:14px 12px 14px 20px;background:' + ACCENT + ';color:' + ACCENT_TEXT,
  ],
  ['.hd h2', 'margin:0;font-size:16px;font-weight:600;line-height:1.3'],
  [
    '.x',
    'display:flex;align-items:center;justify-content:center;flex:none;width:32px;height:32px;' +
      'margin:0;padding:0;border:0;border-radius:8px;background:transparent;color:inherit;cursor:pointer',
  ],
  ['.x svg', 'width:20px;height:20px'],
  ['.x:hover', 'background:rgba(255,255,255,.18)'],
  ['.x:focus-visible', 'outline:2px solid currentColor;outline-offset:1px'],
  ['.x:focus:not(:focus-visible)', 'outline:none'],
  ['.bd', 'padding:4px 20px 20px'],
  ['.sec', 'padding-top:16px'],
  ['.sec p', 'margin:0 0 8px'],
  ['.sec p:last-child', 'margin:0'],
  '@keyframes cb-in{from{opacity:0;transform:translateY(8px) scale(.98)}}',
  '@media (max-width:480px){.p{right:16px;left:16px;width:auto;max-width:none;bottom:76px}}',
  '@media (prefers-reduced-motion:reduce){.p{animation:none}}',
];
