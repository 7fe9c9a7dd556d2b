// Styles of the chat (chat-main.js, chat-form.js, emoji.js; classes k*) and of
// the sharing strip in it: in the chat bundle, adopted when it loads. The start
// card's few rules are in styles.js PANEL_CSS.
import { FONT, ACCENT, ACCENT_TEXT } from '../lib/dom.js';

// The panel is .p.k-c during a conversation (a column: sharing strip, status,
// messages, input) and .p.k-f on a form (pre-chat, leave a message).
const FOCUS = 'outline:2px solid ' + ACCENT + ';outline-offset:1px';
export const CHAT_CSS = [
  ['.p.k-c', 'display:flex;flex-direction:column;height:min(640px,calc(100vh - 108px));overflow:hidden'],
  ['.p.k-c .bd', 'flex:1;min-height:0;display:flex;flex-direction:column;padding:0'],
  ['.p.k-c .sec', 'padding:0'],
  ['.p.k-c .intro,.p.k-f .intro,.p.k-f .share', 'display:none'],
  ['.p.k-c .chat', 'flex:1;min-height:0;display:flex;flex-direction:column'],
  // sharing, from the chat (consent.js)
  ['.p.k-c .share', 'order:-1;flex:none;max-height:62%;overflow:auto;padding:6px 16px;border-bottom:1px solid #eaecf0;background:#f9fafb'],
  // (the name field too: in a chat the agent has it already)
  ['.p.k-c .share:not(.open) .cs,.p.k-c .cs .lbl,.p.k-c .cs .in', 'display:none'],
  ['.p.k-c .share .note', 'margin:6px 0!important'],
  ['.p.k-c .share .cs', 'padding-bottom:10px'],
  ['.p.k-c .lv', 'padding:8px 0'],
  ['.p.k-c .cb', 'padding:6px 10px'],
  ['.p.k-c .sec .code', 'margin:0;font-size:22px'],
  ['.p.k-c .st', 'margin-top:6px!important'],
  ['.p.k-c .lv .btn', 'height:34px;margin-top:8px;font-size:14px'],
  // the start, forms
  ['.k-f .kh', 'padding:0;border:0'],
  ['.kfm .lbl:first-of-type', 'margin-top:12px'],
  ['.in.kta', 'height:auto;padding:8px 12px;line-height:1.4;resize:vertical'],
  ['.in[aria-invalid=true]', 'border-color:#d92d20'],
  ['.kfe', 'margin:4px 0 0!important;color:#b42318;font-size:12.5px'],
  [
    '.kn',
    'margin:0;padding:6px 8px;border:0;border-radius:8px;background:none;color:#475467;font:500 13px/1.2 ' + FONT + ';' +
      'text-decoration:underline;cursor:pointer',
  ],
  ['.kfm .kn,.kd .kn', 'display:block;margin:8px auto 0'],
  ['.kv>.kn', 'align-self:flex-start;margin:4px 8px'],
  // the conversation
  ['.kv', 'flex:1;min-height:0;display:flex;flex-direction:column'],
  ['.ks', 'display:flex;align-items:center;gap:8px;margin:0!important;padding:9px 16px;border-bottom:1px solid #eaecf0;font-size:13.5px;color:#344054'],
  ['.ks .spin', 'flex:none;width:14px;height:14px;margin:0;border-width:2px'],
  ['.ks.active', 'color:#067647;font-weight:600'],
  ['.kw', 'margin:14px 16px 0!important;color:#667085;font-size:13.5px'],
  ['.kl', 'flex:1;min-height:0;overflow-y:auto;display:flex;flex-direction:column;gap:10px;padding:12px 16px;outline:0'],
  ['.kl:focus-visible', 'box-shadow:inset 0 0 0 2px ' + ACCENT],
  ['.km', 'display:flex;flex-direction:column;align-items:flex-start;max-width:85%'],
  ['.km.me', 'align-self:flex-end;align-items:flex-end'],
  [
    '.kb',
    'padding:8px 12px;border-radius:14px 14px 14px 4px;background:#f2f4f7;color:#101828;' +
      'white-space:pre-wrap;overflow-wrap:anywhere;font-size:14px;line-height:1.45',
  ],
  ['.me .kb', 'border-radius:14px 14px 4px 14px;background:' + ACCENT + ';color:' + ACCENT_TEXT],
  ['.kb a', 'color:#1849a9;text-decoration:underline'],
  ['.me .kb a', 'color:inherit'],
  ['.kt', 'margin-top:3px;font-size:11.5px;color:#667085'],
  ['.km.ev', 'display:block;align-self:center;max-width:100%;font-size:12.5px;color:#667085;text-align:center'],
  ['.km.sy', 'align-self:stretch;max-width:100%'],
  ['.sy .kb', 'border-radius:12px;background:#eef3ff;white-space:normal'],
  ['.sy .kb p,.sy .kb ul,.sy .kb ol', 'margin:0 0 6px;padding-left:0'],
  ['.sy .kb ul,.sy .kb ol', 'padding-left:20px'],
  ['.kf', 'display:flex;align-items:center;gap:8px;margin:0;padding:0;border:0;background:none;color:inherit;font:inherit;text-align:left;cursor:pointer'],
  ['.kf svg', 'flex:none;width:20px;height:20px'],
  ['.kf span', 'text-decoration:underline;overflow-wrap:anywhere'],
  ['.kf small', 'opacity:.8;white-space:nowrap'],
  ['.kf:disabled', 'cursor:progress'],
  ['.ky', 'margin:0 16px 6px!important;font-size:12.5px;font-style:italic;color:#667085'],
  ['.kv > .ke', 'margin:0 16px 8px!important'],
  ['.kp', 'position:relative;flex:none;padding:8px 12px;border-top:1px solid #eaecf0'],
  ['.kr', 'display:flex;align-items:flex-end;gap:8px'],
  [
    '.ki',
    'flex:1;box-sizing:border-box;min-width:0;min-height:40px;max-height:140px;margin:0;padding:9px 12px;' +
      'border:1px solid #d0d5dd;border-radius:10px;background:#fff;color:#101828;font:400 14px/1.45 ' + FONT + ';resize:none;outline:0',
  ],
  ['.ki:focus', 'border-color:' + ACCENT + ';box-shadow:0 0 0 3px rgba(36,87,214,.16)'],
  [
    '.kx',
    'display:flex;align-items:center;justify-content:center;flex:none;width:34px;height:34px;margin:0;padding:0;' +
      'border:0;border-radius:8px;background:none;color:#475467;cursor:pointer',
  ],
  ['.kx svg', 'width:20px;height:20px'],
  ['.kx:hover,.kn:hover', 'background:#f2f4f7'],
  ['.ksd', 'width:40px;height:40px;border-radius:10px;background:' + ACCENT + ';color:' + ACCENT_TEXT],
  ['.ksd:hover', 'background:' + ACCENT + ';filter:brightness(1.1)'],
  ['.kx:focus-visible,.kn:focus-visible,.kf:focus-visible,.kj button:focus-visible', FOCUS],
  ['.ktl', 'display:flex;align-items:center;gap:2px;margin-top:6px;font-size:13.5px'],
  ['.kg', 'flex:1'],
  ['.kc', 'gap:8px;font-weight:600;color:#101828'],
  ['.btn.kend', 'width:auto;height:32px;margin:0;padding:0 12px;background:#d92d20;color:#fff;font-size:13.5px'],
  [
    '.kj',
    'position:absolute;left:8px;bottom:100%;display:grid;grid-template-columns:repeat(8,1fr);gap:2px;padding:6px;' +
      'border:1px solid #e4e7ec;border-radius:12px;background:#fff;box-shadow:0 8px 24px rgba(16,24,40,.18)',
  ],
  ['.kj button', 'width:36px;height:36px;margin:0;padding:0;border:0;border-radius:8px;background:none;font-size:20px;line-height:1;cursor:pointer'],
  ['.kj button:hover', 'background:#f2f4f7'],
  // the end: survey, new chat
  ['.kd', 'flex:none;max-height:70%;overflow:auto;padding:14px 16px 16px;border-top:1px solid #eaecf0'],
  ['.kd h3', 'outline:0'],
  ['.ksv fieldset', 'margin:10px 0 0;padding:0;border:0'],
  ['.ksv legend', 'padding:0;font-size:13.5px;font-weight:600;color:#344054'],
  ['.krts', 'display:flex;gap:6px;margin-top:6px'],
  ['.krt', 'position:relative;flex:1'],
  ['.krt input', 'position:absolute;width:1px;height:1px;margin:0;opacity:0'],
  [
    '.krt span[aria-hidden]',
    'display:flex;align-items:center;justify-content:center;height:38px;border:1px solid #d0d5dd;border-radius:10px;font-weight:600;cursor:pointer',
  ],
  ['.krt input:checked+span', 'background:' + ACCENT + ';border-color:' + ACCENT + ';color:' + ACCENT_TEXT],
  ['.krt input:focus-visible+span', 'outline:2px solid ' + ACCENT + ';outline-offset:2px'],
  // unread messages: a count on the launcher (the launcher's top right is the sharing mark)
  [
    '.kub',
    'position:absolute;top:-6px;left:-6px;box-sizing:border-box;min-width:22px;height:22px;padding:0 6px;border:2px solid #fff;' +
      'border-radius:11px;background:#d92d20;color:#fff;font:700 12px/18px ' + FONT + ';text-align:center',
  ],
  '@media (max-width:480px){.p.k-c{height:calc(100vh - 92px)}.km{max-width:92%}}',
];
