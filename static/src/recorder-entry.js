// The rrweb recorder as its own bundle (recorder.js), fetched by the widget
// (widget/recorder.js) with ctx.load() only after the visitor agreed to share,
// or by the loader when a page loads during a sharing session. It registers
// window.__cobrowseRecorder = {record}; the options are set by the widget.
import { record } from '@rrweb/record';

if (!window.__cobrowseRecorder) window.__cobrowseRecorder = { record };
