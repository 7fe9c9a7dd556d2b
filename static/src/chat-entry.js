// The chat as its own bundle (chat.js), fetched by the widget (widget/chat.js)
// with ctx.load() when the visitor starts a chat or leaves a message, or when a
// page loads during a conversation. It registers window.__cobrowseChat =
// install(w, ui) (widget/chat-main.js).
import { install } from './widget/chat-main.js';

if (!window.__cobrowseChat) window.__cobrowseChat = install;
