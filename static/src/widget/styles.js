// Styles of the panel, adopted into the loader's shadow root next to the
// loader's own sheet (see lib/dom.js adopt for the rules' format).
import { FONT, ACCENT, ACCENT_TEXT } from '../lib/dom.js';

export const PANEL_CSS = [
  [
    '.p',
    'pointer-events:auto;position:fixed;right:calc(20px + var(--cb-r,0px));bottom:calc(84px + var(--cb-b,0px));' +
      'box-sizing:border-box;' +
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
  // ----- sharing: consent form, code, status (consent.js) -----
  ['[hidden]', 'display:none!important'],
  ['.sec h3', 'margin:0 0 6px;font-size:16px;font-weight:650;line-height:1.35;color:#101828'],
  ['.sec .lead', 'color:#475467'],
  ['.facts', 'display:grid;gap:10px;margin:14px 0 0;padding:0;list-style:none'],
  ['.facts li', 'display:flex;align-items:flex-start;gap:10px;margin:0;padding:0;font-size:13.5px;line-height:1.45;color:#344054'],
  ['.facts svg', 'flex:none;width:16px;height:16px;padding:5px;border-radius:8px;background:#eef3ff;color:' + ACCENT],
  ['.facts .no svg', 'background:#fdf0ef;color:#c4320a'],
  ['.facts b', 'font-weight:600;color:#101828'],
  ['.lbl', 'display:block;margin:18px 0 6px;font-size:13px;font-weight:600;color:#344054'],
  ['.opt', 'font-weight:400;color:#667085'],
  [
    '.in',
    'box-sizing:border-box;display:block;width:100%;height:40px;margin:0;padding:0 12px;' +
      'border:1px solid #d0d5dd;border-radius:10px;background:#fff;color:#101828;' +
      'font:400 14px/1.2 ' + FONT + ';outline:0;box-shadow:0 1px 2px rgba(16,24,40,.05);transition:border-color .15s,box-shadow .15s',
  ],
  ['.in::placeholder', 'color:#98a2b3'],
  ['.in:focus', 'border-color:' + ACCENT + ';box-shadow:0 0 0 4px rgba(36,87,214,.16)'],
  [
    '.btn',
    'display:flex;align-items:center;justify-content:center;gap:8px;box-sizing:border-box;width:100%;height:44px;' +
      'margin:14px 0 0;padding:0 16px;border:1px solid transparent;border-radius:10px;' +
      'font:600 15px/1 ' + FONT + ';cursor:pointer;transition:background .15s,box-shadow .15s,filter .15s',
  ],
  ['.btn svg', 'flex:none;width:18px;height:18px'],
  ['.btn:focus-visible', 'outline:3px solid ' + ACCENT + ';outline-offset:2px'],
  ['.pri', 'background:' + ACCENT + ';color:' + ACCENT_TEXT + ';box-shadow:0 1px 2px rgba(16,24,40,.12)'],
  ['.pri:hover', 'filter:brightness(1.1)'],
  ['.stop', 'background:#fff;color:#b42318;border-color:#fda29b'],
  ['.stop:hover', 'background:#fef3f2'],
  ['.stop:focus-visible', 'outline-color:#d92d20'],
  ['.lv', 'outline:0'],
  ['.cb', 'margin:0;padding:16px 14px;border:1px solid #dbe5ff;border-radius:14px;background:#f5f8ff;text-align:center'],
  ['.sec .cb-l', 'margin:0;font-size:13.5px;color:#344054'],
  [
    '.sec .code',
    'margin:6px 0 2px;color:#101828;font:700 36px/1.15 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;' +
      'letter-spacing:.06em;font-variant-numeric:tabular-nums',
  ],
  ['.sec .cb-x', 'margin:0;font-size:12.5px;color:#667085'],
  [
    '.spin',
    'display:block;width:22px;height:22px;margin:12px auto 4px;box-sizing:border-box;border:2.5px solid #c7d5fb;' +
      'border-top-color:' + ACCENT + ';border-radius:50%;animation:r .7s linear infinite',
  ],
  ['.st', 'display:flex;align-items:center;gap:10px;margin:14px 2px 0!important;font-size:13.5px;line-height:1.4;color:#344054'],
  ['.dot', 'flex:none;width:8px;height:8px;border-radius:50%;background:#98a2b3'],
  ['.st.on .dot', 'background:#12b76a;box-shadow:0 0 0 4px rgba(18,183,106,.18)'],
  ['.st.view .dot', 'background:#f04438;box-shadow:0 0 0 4px rgba(240,68,56,.18);animation:cb-pulse 1.6s ease-in-out infinite'],
  ['.st.view', 'font-weight:600;color:#101828'],
  ['.st.warn .dot', 'background:#f79009;box-shadow:0 0 0 4px rgba(247,144,9,.18)'],
  [
    '.note',
    'display:flex;align-items:flex-start;gap:10px;margin:0 0 14px!important;padding:12px;border-radius:12px;' +
      'background:#f2f4f7;color:#344054;font-size:13.5px;line-height:1.45',
  ],
  ['.note svg', 'flex:none;width:18px;height:18px;margin-top:1px'],
  ['.note.err', 'background:#fef3f2;color:#912018'],
  // ----- sharing: who is viewing, notices, launcher mark (banner.js) -----
  [
    '.bn',
    'pointer-events:auto;position:fixed;top:12px;left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'display:flex;align-items:center;gap:10px;max-width:calc(100vw - 24px);padding:6px 6px 6px 16px;' +
      'border-radius:999px;background:#101828;color:#fff;font:500 14px/1.3 ' + FONT + ';' +
      'box-shadow:0 10px 30px rgba(16,24,40,.35),0 0 0 1px rgba(255,255,255,.1) inset;animation:cb-drop .2s ease-out',
  ],
  ['.bn svg', 'flex:none;width:18px;height:18px;opacity:.85'],
  ['.bn .live', 'flex:none;width:9px;height:9px;border-radius:50%;background:#f04438;box-shadow:0 0 0 4px rgba(240,68,56,.3);animation:cb-pulse 1.6s ease-in-out infinite'],
  ['.bn-t', 'display:block;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap'],
  ['.bn [role=status]', 'min-width:0'],
  [
    '.bn-s',
    'flex:none;height:34px;margin:0 0 0 6px;padding:0 16px;border:0;border-radius:999px;background:#f04438;color:#fff;' +
      'font:600 13.5px/1 ' + FONT + ';cursor:pointer;transition:background .15s',
  ],
  ['.bn-s:hover', 'background:#d92d20'],
  ['.bn-s:focus-visible', 'outline:2px solid #fff;outline-offset:2px'],
  // made small: the dot, the eye and the button to open it again (the text stays for screen readers);
  // made small, it moves to the bottom left corner, across from the launcher
  [
    '.bn.sm',
    'top:auto;right:auto;left:16px;bottom:calc(25px + var(--cb-b,0px));transform:none;width:max-content;' +
      'padding:4px 4px 4px 14px;gap:8px',
  ],
  ['.bn.sm .bn-s', 'display:none'],
  ['.bn.sm [role=status]', 'position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap'],
  ['.bn-z', 'margin-left:-2px'],
  ['.fr', 'position:fixed;top:0;right:0;bottom:0;left:0;box-sizing:border-box;border:3px solid #f04438;pointer-events:none'],
  [
    '.toast',
    'pointer-events:auto;position:fixed;top:12px;left:50%;transform:translateX(-50%);box-sizing:border-box;' +
      'display:flex;align-items:center;gap:10px;width:max-content;max-width:calc(100vw - 24px);padding:6px 6px 6px 14px;' +
      'border-radius:12px;background:#101828;color:#fff;font:400 14px/1.4 ' + FONT + ';' +
      'box-shadow:0 10px 30px rgba(16,24,40,.35);animation:cb-drop .2s ease-out',
  ],
  ['.toast > svg', 'flex:none;width:18px;height:18px'],
  [
    '.tx',
    'display:flex;align-items:center;justify-content:center;flex:none;width:30px;height:30px;margin:0;padding:0;' +
      'border:0;border-radius:8px;background:transparent;color:inherit;cursor:pointer',
  ],
  ['.tx svg', 'width:18px;height:18px'],
  ['.tx:hover', 'background:rgba(255,255,255,.16)'],
  ['.tx:focus-visible', 'outline:2px solid #fff;outline-offset:1px'],
  [
    '.l.sh::after',
    "content:'';position:absolute;top:-2px;right:-2px;width:14px;height:14px;box-sizing:border-box;" +
      'border:2px solid #fff;border-radius:50%;background:#12b76a',
  ],
  ['.l.vw::after', 'background:#f04438'],
  '@keyframes cb-pulse{50%{opacity:.4}}',
  '@keyframes cb-drop{from{opacity:0;transform:translate(-50%,-8px)}}',
  // Narrow screens: full width, and the names may wrap rather than be cut.
  '@media (max-width:480px){.bn,.toast{top:8px;left:8px;right:calc(8px + var(--cb-r,0px));transform:none;width:auto;max-width:none;animation:none}' +
    '.bn{gap:8px;padding-left:14px;border-radius:18px;font-size:13.5px}.bn-t{white-space:normal}.bn svg{display:none}}',
  '@media (prefers-reduced-motion:reduce){.bn,.toast,.bn .live,.st.view .dot,.spin{animation:none}}',
  '@keyframes cb-in{from{opacity:0;transform:translateY(8px) scale(.98)}}',
  '@media (max-width:480px){.p{right:calc(16px + var(--cb-r,0px));left:16px;width:auto;max-width:none;' +
    'bottom:calc(76px + var(--cb-b,0px))}}',
  '@media (prefers-reduced-motion:reduce){.p{animation:none}}',
  // ----- chat: the start card (chat.js; the rest is chat-styles.js, added when the chat is installed) -----
  ['.kh', 'padding:14px;border:1px solid #e4e7ec;border-radius:14px'],
  ['.go', 'background:' + ACCENT + ';color:' + ACCENT_TEXT + ';box-shadow:0 1px 2px rgba(16,24,40,.12)'],
  ['.go:hover', 'filter:brightness(1.1)'],
  // consent.js's "Share my page with the agent", shown only in a conversation (.p.k-c)
  ['.p:not(.k-c) .shx,.p.k-e .shx', 'display:none'],
  [
    '.shx',
    'display:flex;align-items:center;gap:8px;width:100%;margin:0;padding:6px 0;border:0;background:none;color:' + ACCENT + ';' +
      'font:600 14px/1.3 ' + FONT + ';text-align:left;cursor:pointer',
  ],
  ['.shx svg', 'flex:none;width:18px;height:18px'],
  ['.shx:focus-visible', 'outline:2px solid ' + ACCENT + ';outline-offset:1px'],
  ['.ke', 'margin:10px 0 0!important;padding:8px 10px;border-radius:10px;background:#fef3f2;color:#912018;font-size:13px'],
];

