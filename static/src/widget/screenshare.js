// Screen sharing and voice calls on an agent's request (docs/screenshare.md):
// the small part that lives in the widget. The rest (prompt, bars, WebRTC:
// screenshare-ui.js) is its own bundle, fetched with ctx.load() only when an
// agent first asks, so visitors who are never asked never download it. Until
// it has arrived, this holds on to the request and the ICE servers; then it
// hands it every screen-share frame and every change of the sharing state.
//
// Frames (let through only while this tab shares the co-browse session):
//   <- ice_config, screen_request, screen_answer, screen_stop, signal
//   -> screen_answer {state: 'failed', reason: 'error'} if the bundle cannot load
const VERSION = __COBROWSE_HASH_SCREENSHARE__;
const FRAMES = ['ice_config', 'screen_request', 'screen_answer', 'screen_stop', 'signal'];
const HELD = 20; // frames kept while the bundle loads

export function screenshare(w) {
  let ui = null;
  let loading = false;
  let live = false;
  let shareState = null;
  let held = [];

  const send = (m) => (w.hub ? w.hub.send(m) : !!(w.share && w.share.send(m)));

  function load() {
    if (loading) return;
    loading = true;
    w.ctx
      .load('screenshare', VERSION)
      .then(() => {
        ui = window.__cobrowseScreenshare.create(w);
        if (shareState) ui.state(shareState);
        for (const [t, m] of held.splice(0)) ui.frame(t, m);
      })
      .catch((e) => {
        console.warn(e);
        loading = false;
        if (held.some(([t]) => t == 'screen_request')) send({ t: 'screen_answer', state: 'failed', reason: 'error' });
        held = [];
      });
  }

  if (w.hub && w.hub.gate) for (const t of FRAMES) w.hub.gate(t, () => live);
  for (const t of FRAMES) {
    w.on('hub:' + t, (m) => {
      if (!live) return;
      if (ui) return ui.frame(t, m);
      if (t == 'screen_request' || t == 'ice_config' || loading) {
        held.push([t, m]);
        if (held.length > HELD) held.shift();
      }
      if (t == 'screen_request') load();
    });
  }
  w.on('share:state', (s) => {
    shareState = s;
    live = s.phase == 'sharing';
    if (ui) ui.state(s);
    else if (!live) held = [];
  });
}
