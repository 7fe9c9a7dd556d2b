// Screen sharing and voice calls as their own bundle (screenshare.js), fetched
// by the widget (widget/screenshare.js) with ctx.load() when an agent first
// asks. It registers window.__cobrowseScreenshare = {create(w)}.
import { createScreenShare } from './widget/screenshare-ui.js';

if (!window.__cobrowseScreenshare) window.__cobrowseScreenshare = { create: createScreenShare };
