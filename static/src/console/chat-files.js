// File transfer in a conversation.
//
// Upload: POST /api/chat/conversations/<id>/files with the file as the raw
// body, its name URI-encoded in X-Cobrowse-File-Name, its type as
// Content-Type and the message's client id in X-Cobrowse-Message-Id (the
// idempotency key: a retried upload with the same id stores one file). The
// server answers with the stored message ({seq, id, at, file}) and sends it
// to the conversation as a chat_msg too; the console merges both by id.
//
// Download: GET /api/chat/files/<file id>, same-origin with the login cookie
// (served as an attachment). A file's name is shown as text, never markup.

import { h, icon } from './dom.js';
import { fileUrl, uploadUrl } from './chat-api.js';

const FILE = ['M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z', 'M14 3v5h5'];
const DOWNLOAD = ['M12 4v11', 'M7 10l5 5 5-5', 'M5 20h14'];

export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// The card of a file message: its name (a download link once stored), size and type.
export function fileCard(file, { pending, progress } = {}) {
  const name = file.name || 'file';
  const stored = Boolean(file.id) && !pending;
  const label = stored
    ? h('a', { className: 'file-name', href: fileUrl(file.id), download: name, title: `Download ${name}` }, name)
    : h('span', { className: 'file-name' }, name);
  const details = [formatSize(file.size)];
  if (file.type) details.push(file.type);
  return h('div', { className: 'msg-bubble msg-file' + (pending ? ' is-pending' : '') },
    h('span', { className: 'file-icon', 'aria-hidden': 'true' }, icon(...FILE)),
    h('span', { className: 'file-text' },
      label,
      h('span', { className: 'file-meta' }, details.join(' · '))),
    pending == 'uploading'
      ? h('progress', { className: 'file-progress', max: 1, value: progress || 0, 'aria-label': `Uploading ${name}` })
      : null,
    stored
      ? h('a', { className: 'file-download', href: fileUrl(file.id), download: name, 'aria-label': `Download ${name}` }, icon(...DOWNLOAD))
      : null);
}

export class UploadError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const STATUS_TEXT = {
  413: 'the file is too large',
  415: 'this type of file is not allowed',
  403: 'you may not send files in this chat',
  404: 'the chat is gone',
};

// Upload one file as message `id`; resolves to the stored message. onProgress(0..1).
export function upload(conversation, file, id, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', uploadUrl(conversation));
    xhr.withCredentials = true;
    xhr.responseType = 'text';
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('X-Cobrowse-File-Name', encodeURIComponent(file.name || 'file'));
    xhr.setRequestHeader('X-Cobrowse-Message-Id', id);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onerror = () => reject(new UploadError('the server cannot be reached', 0));
    xhr.onabort = () => reject(new UploadError('the upload was stopped', 0));
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        const m = data && (data.message || data.m || data);
        resolve(m && typeof m == 'object' ? m : null);
        return;
      }
      const text = (data && (data.message || data.error)) || STATUS_TEXT[xhr.status] || `the upload failed (${xhr.status})`;
      reject(new UploadError(text, xhr.status));
    };
    xhr.send(file);
  });
}
