// Intro: says plainly what the widget is for (chat.js and consent.js add their
// own sections below it). It steps aside while sharing is on, when the sharing
// section says everything.
import { h } from '../lib/dom.js';

export function intro(w) {
  const el = w.section('intro', [
    h('p', {
      textContent:
        'Chat with our support team. You can also share this page with them; ' +
        'nothing is shared until you agree.',
    }),
  ]);
  w.on('share:state', (s) => {
    el.hidden = !['idle', 'ended', 'failed'].includes(s.phase);
  });
}
