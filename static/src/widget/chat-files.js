// Chat files and the transcript over HTTP, on the site's origin under the prefix
// (docs/chat.md "HTTP endpoints"). The chat token goes in the X-Cobrowse-Chat
// header, never in a URL: downloads are fetched, then saved from a Blob.
//
//   POST <base>chat/files            raw body; X-Cobrowse-File-Name (URI-encoded),
//                                    Content-Type, X-Cobrowse-Message-Id -> the stored message
//   GET  <base>chat/files/<id>       a file of the conversation
//   GET  <base>chat/transcript.txt   the visitor's transcript
//
// What chat/config allows (max_file_size, file_types: extensions, content
// types, "image/*" or "*") is checked before uploading; the server checks again.

export const fileSize = (n) =>
  n < 1024 ? n + ' B' : n < 1048576 ? Math.round(n / 1024) + ' KB' : (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + ' MB';

const ext = (name) => (/\.([^./]+)$/.exec(name) || ['', ''])[1].toLowerCase();

// Why this file cannot be sent, in plain words, or ''.
export function fileProblem(file, cfg) {
  const types = (cfg.file_types || []).map((t) => String(t).toLowerCase().replace(/^\./, ''));
  const type = (file.type || '').toLowerCase();
  if (!file.size) return file.name + ' is empty.';
  if (cfg.max_file_size && file.size > cfg.max_file_size)
    return file.name + ' is too large (' + fileSize(file.size) + '). Files can be up to ' + fileSize(cfg.max_file_size) + '.';
  const ok = types.some((t) => t == '*' || t == ext(file.name) || t == type || (t.endsWith('/*') && type.startsWith(t.slice(0, -1))));
  return ok ? '' : 'Files of this type cannot be sent. You can send: ' + types.join(', ') + '.';
}

const SERVER = {
  too_large: 'The file is too large.',
  bad_type: 'Files of this type cannot be sent.',
  empty: 'The file is empty.',
  bad_name: 'The file name cannot be used.',
  ended: 'This chat has ended.',
};

async function call(url, token, init) {
  let r;
  try {
    r = await fetch(url, { ...init, credentials: 'omit', headers: { 'X-Cobrowse-Chat': token, ...(init && init.headers) } });
  } catch (e) {
    throw new Error('We could not reach our support service. Check your connection and try again.');
  }
  if (r.ok) return r;
  let j = {};
  try {
    j = await r.json();
  } catch (e) {
    // not JSON
  }
  const code = j.code || j.error;
  throw new Error(SERVER[code] || (r.status == 413 ? SERVER.too_large : j.message || 'The support service said no (' + r.status + ').'));
}

export async function upload(base, token, file, id) {
  const r = await call(base + 'chat/files', token, {
    method: 'POST',
    body: file,
    headers: {
      'Content-Type': file.type || 'application/octet-stream',
      'X-Cobrowse-File-Name': encodeURIComponent(file.name),
      'X-Cobrowse-Message-Id': id,
    },
  });
  const j = await r.json();
  return j.m || j.message || j;
}

// Fetch and save as a file named `name` (the anchor lives in our shadow root for a moment).
export async function download(root, url, token, name) {
  const blob = await (await call(url, token)).blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.hidden = true;
  root.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}
