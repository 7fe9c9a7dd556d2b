// Intro: says plainly what the widget is for. It promises nothing that is not
// built yet; chat.js and consent.js will add their own sections below it.
import { h } from '../lib/dom.js';

export function intro(w) {
  w.section('intro', [
    h('p', {
      textContent:
        'Chat with our support team. You can also share this page with them; ' +
        'nothing is shared until you agree.',
    }),
  ]);
}
