// The composer's emoji picker: a small grid of common emoji in a popover.
// Arrow keys move through the grid, Enter or Space picks, Escape closes and
// gives the focus back to the button.

import { h, fill } from './dom.js';

const EMOJI = [
  ['😀', 'grinning face'], ['😊', 'smiling face'], ['🙂', 'slightly smiling face'], ['😉', 'winking face'],
  ['😂', 'face with tears of joy'], ['😅', 'grinning face with sweat'], ['🤔', 'thinking face'], ['😮', 'surprised face'],
  ['😕', 'confused face'], ['😢', 'crying face'], ['🙏', 'folded hands'], ['👍', 'thumbs up'],
  ['👎', 'thumbs down'], ['👋', 'waving hand'], ['👏', 'clapping hands'], ['🙌', 'raised hands'],
  ['👉', 'pointing right'], ['👀', 'eyes'], ['✅', 'check mark'], ['❌', 'cross mark'],
  ['⚠️', 'warning'], ['❓', 'question mark'], ['💡', 'light bulb'], ['🎉', 'party popper'],
  ['❤️', 'red heart'], ['⭐', 'star'], ['🔥', 'fire'], ['⏳', 'hourglass'],
  ['📦', 'package'], ['🛒', 'shopping cart'], ['💳', 'credit card'], ['📧', 'e-mail'],
];
const COLUMNS = 8;

export class EmojiPicker {
  // button: toggles the picker; pop: its (hidden) container; onPick(emoji)
  constructor(button, pop, onPick) {
    this.button = button;
    this.pop = pop;
    this.onPick = onPick;
    this.items = [];
    pop.setAttribute('role', 'dialog');
    pop.setAttribute('aria-label', 'Emoji');
    button.setAttribute('aria-haspopup', 'dialog');
    button.setAttribute('aria-expanded', 'false');
    button.addEventListener('click', () => (this.isOpen() ? this.close(true) : this.open()));
    pop.addEventListener('keydown', (e) => this.keys(e));
    document.addEventListener('pointerdown', (e) => {
      if (this.isOpen() && !pop.contains(e.target) && !button.contains(e.target)) this.close(false);
    });
  }

  isOpen() {
    return !this.pop.hidden;
  }

  open() {
    if (!this.items.length) {
      const grid = h('div', { className: 'emoji-grid', role: 'grid', 'aria-label': 'Emoji' });
      let row = null;
      EMOJI.forEach(([char, name], i) => {
        if (i % COLUMNS == 0) {
          row = h('div', { role: 'row', className: 'emoji-row' });
          grid.append(row);
        }
        const item = h('button', {
          type: 'button', className: 'emoji', tabIndex: -1, 'aria-label': name, title: name,
          onclick: () => this.pick(char),
        }, char);
        this.items.push(item);
        row.append(h('span', { role: 'gridcell' }, item));
      });
      fill(this.pop, grid);
    }
    this.pop.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.focus(0);
  }

  close(refocus) {
    this.pop.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
    if (refocus) this.button.focus();
  }

  pick(char) {
    this.close(false);
    this.onPick(char);
  }

  focus(i) {
    const n = this.items.length;
    const at = ((i % n) + n) % n;
    this.items.forEach((item, j) => {
      item.tabIndex = j == at ? 0 : -1;
    });
    this.items[at].focus();
    this.at = at;
  }

  keys(e) {
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: COLUMNS, ArrowUp: -COLUMNS };
    if (e.key in moves) {
      e.preventDefault();
      this.focus((this.at || 0) + moves[e.key]);
    } else if (e.key == 'Home') {
      e.preventDefault();
      this.focus(0);
    } else if (e.key == 'End') {
      e.preventDefault();
      this.focus(this.items.length - 1);
    } else if (e.key == 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.close(true);
    } else if (e.key == 'Tab') {
      this.close(false);
    }
  }
}
