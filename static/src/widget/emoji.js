// A small emoji picker for the chat input: a button that opens a grid of common
// emoji; picking one inserts it at the caret (emoji are plain text). Escape or
// a second click closes it, focus goes back to the input.
import { h, icon } from '../lib/dom.js';

const SMILE = 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM8.5 14a4 4 0 0 0 7 0M9 9.5h.01M15 9.5h.01';
const LIST = '😀 😂 😊 😍 🤔 😅 😢 😮 😡 👍 👎 👏 🙏 👋 🙌 💪 ❤️ 🎉 ✅ ❌ ⭐ 🔥 👀 💡';

export function emojiPicker(input) {
  const grid = h('div', { className: 'kj', role: 'group', 'aria-label': 'Emoji', hidden: true });
  const button = h('button', {
    type: 'button',
    className: 'kx',
    'aria-label': 'Insert an emoji',
    'aria-expanded': 'false',
    onclick: () => toggle(grid.hidden),
  }, [icon(SMILE)]);
  const toggle = (open) => {
    grid.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) grid.firstChild.focus();
  };
  for (const e of LIST.split(' '))
    grid.append(
      h('button', {
        type: 'button',
        textContent: e,
        onclick() {
          input.focus();
          input.setRangeText(e, input.selectionStart, input.selectionEnd, 'end');
          input.dispatchEvent(new Event('input'));
          toggle(false);
        },
      }),
    );
  grid.addEventListener('keydown', (e) => {
    if (e.key == 'Escape') {
      e.stopPropagation();
      toggle(false);
      button.focus();
    }
  });
  return { button, grid, close: () => toggle(false) };
}
