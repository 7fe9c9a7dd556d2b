// The message composer under the selected conversation: the text box (Enter
// sends, Shift+Enter starts a new line), the Note switch (a private note only
// agents see), the emoji picker, "/" for canned replies and the file button.
// Each conversation keeps its own draft while another one is selected.
//
// Typing: `chat_typing {on: true}` at most every 2 s while the agent types,
// `on: false` when the box empties, after 5 s without a key, on send and when
// another conversation is selected. Writing a note never tells the visitor.

import { CannedSuggest } from './canned.js';
import { EmojiPicker } from './emoji.js';

const TYPING_EVERY = 2000;
const TYPING_IDLE = 5000;
const MAX_TEXT = 4000; // MAX_CHAT_TEXT in cobrowse/sync/protocol.py

export class Composer {
  // els: {form, input, send, note, emojiButton, emojiPop, cannedPop, attach, file, hint, count}
  // ctx: {send(text, {note}) -> bool, typing(conversation, on), attach(files), canned (CannedReplies)}
  constructor(els, ctx) {
    this.els = els;
    this.ctx = ctx;
    this.conv = null;
    this.typingOn = false;
    this.typingSent = 0;
    this.idleTimer = null;
    this.note = false;
    this.suggest = new CannedSuggest(els.input, els.cannedPop, ctx.canned, (reply, range) => this.insertCanned(reply, range));
    this.emoji = new EmojiPicker(els.emojiButton, els.emojiPop, (char) => this.insert(char));
    els.input.maxLength = MAX_TEXT;
    els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    els.input.addEventListener('keydown', (e) => {
      if (this.suggest.key(e)) return;
      if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    els.input.addEventListener('input', () => this.changed());
    els.note.addEventListener('click', () => this.setNote(!this.note));
    els.attach.addEventListener('click', () => els.file.click());
    els.file.addEventListener('change', () => {
      const files = [...els.file.files];
      els.file.value = '';
      if (files.length) this.ctx.attach(files);
    });
  }

  // Show `conv`'s draft (saving the previous one's).
  bind(conv) {
    if (this.conv && this.conv !== conv) {
      this.conv.draft = { text: this.els.input.value, note: this.note };
      this.stopTyping();
    }
    this.conv = conv;
    const draft = (conv && conv.draft) || { text: '', note: false };
    this.els.input.value = draft.text;
    this.setNote(draft.note, true);
    this.suggest.close();
    this.emoji.close(false);
    this.autosize();
    this.renderCount();
  }

  setEnabled(on, why) {
    const { input, send, note, emojiButton, attach } = this.els;
    for (const el of [input, send, note, emojiButton, attach]) el.disabled = !on;
    input.placeholder = on ? this.placeholder() : why || 'This chat is closed.';
  }

  placeholder() {
    return this.note ? 'Private note: only agents see this' : 'Write a message… (/ for canned replies)';
  }

  setNote(on, quiet) {
    this.note = Boolean(on);
    const { note, form, input } = this.els;
    note.setAttribute('aria-pressed', String(this.note));
    form.classList.toggle('is-note', this.note);
    if (!input.disabled) input.placeholder = this.placeholder();
    this.els.send.textContent = this.note ? 'Add note' : 'Send';
    // Files always reach the visitor: none can be attached to a private note.
    this.els.attach.disabled = this.note || input.disabled;
    this.els.attach.title = this.note ? 'Files cannot be private notes' : 'Attach a file';
    if (this.note) this.stopTyping();
    else if (!quiet && input.value.trim()) this.changed();
    if (!quiet) input.focus();
  }

  focus() {
    if (!this.els.input.disabled) this.els.input.focus();
  }

  insert(text) {
    const input = this.els.input;
    const start = input.selectionStart != null ? input.selectionStart : input.value.length;
    const end = input.selectionEnd != null ? input.selectionEnd : start;
    input.setRangeText(text, start, end, 'end');
    input.focus();
    this.changed();
  }

  insertCanned(reply, range) {
    const input = this.els.input;
    input.setRangeText(reply.body, range.start, range.end, 'end');
    input.focus();
    this.changed();
  }

  changed() {
    this.autosize();
    this.renderCount();
    const conv = this.conv;
    if (!conv || this.note) return;
    const text = this.els.input.value.trim();
    if (!text) {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (!this.typingOn || now - this.typingSent >= TYPING_EVERY) {
      this.typingOn = true;
      this.typingSent = now;
      this.ctx.typing(conv, true);
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE);
  }

  stopTyping() {
    clearTimeout(this.idleTimer);
    if (this.typingOn && this.conv) this.ctx.typing(this.conv, false);
    this.typingOn = false;
  }

  autosize() {
    const input = this.els.input;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight + 2, 180)}px`;
  }

  renderCount() {
    const left = MAX_TEXT - this.els.input.value.length;
    const { count } = this.els;
    count.hidden = left > 300;
    count.textContent = `${left} characters left`;
  }

  submit() {
    const input = this.els.input;
    const text = input.value.trim();
    if (!text || !this.conv || input.disabled) return;
    this.suggest.close();
    this.stopTyping();
    if (this.ctx.send(text, { note: this.note }) === false) return;
    input.value = '';
    this.autosize();
    this.renderCount();
    input.focus();
  }
}
