// The chat's HTTP endpoints on the console server (docs/chat.md, "HTTP
// endpoints", console side). Same origin, login cookie; the server checks
// Origin on writes. Answers are read leniently (a list, or an object holding
// one), so a field added on the server never breaks the console.

import { request } from './api.js';

const enc = encodeURIComponent;

// The first array among data[keys...], or data itself when it is one.
export function listOf(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const k of keys) if (data && Array.isArray(data[k])) return data[k];
  return [];
}

// ----- conversations ---------------------------------------------------------------

export async function conversations(state) {
  const data = await request('GET', `/api/chat/conversations${state ? `?state=${enc(state)}` : ''}`);
  return listOf(data, 'conversations', 'items');
}

export function transcriptUrl(conversation, format) {
  return `/api/chat/conversations/${enc(conversation)}/transcript.${format}`;
}

// ----- files -----------------------------------------------------------------------

export function fileUrl(fileId) {
  return `/api/chat/files/${enc(fileId)}`;
}

export function uploadUrl(conversation) {
  return `/api/chat/conversations/${enc(conversation)}/files`;
}

// ----- canned replies ----------------------------------------------------------------

// [{id, scope: agent|department|site, name, body, department, site, ...}]
export async function canned() {
  return listOf(await request('GET', '/api/chat/canned'), 'canned', 'replies', 'items').map(normalizeCanned);
}

export async function createCanned(reply) {
  return normalizeCanned(unwrap(await request('POST', '/api/chat/canned', cannedBody(reply)), 'canned', 'reply'));
}

export async function updateCanned(id, reply) {
  return normalizeCanned(unwrap(await request('PUT', `/api/chat/canned/${enc(id)}`, cannedBody(reply)), 'canned', 'reply'));
}

export function deleteCanned(id) {
  return request('DELETE', `/api/chat/canned/${enc(id)}`);
}

function cannedBody(reply) {
  const body = { scope: reply.scope, name: reply.name, body: reply.body };
  if (reply.scope == 'department') body.department = reply.department || '';
  return body;
}

function normalizeCanned(r) {
  if (!r || typeof r != 'object') return null;
  return {
    ...r,
    id: r.id,
    name: String(r.name || r.shortcut || r.title || ''),
    body: String(r.body != null ? r.body : r.text || ''),
    scope: String(r.scope || (r.user_id ? 'agent' : r.department ? 'department' : 'site')),
    department: String(r.department || ''),
  };
}

// ----- offline messages --------------------------------------------------------------

export async function offline(state = 'open') {
  return listOf(await request('GET', `/api/chat/offline?state=${enc(state)}`), 'messages', 'offline', 'items');
}

export function resolveOffline(id) {
  return request('POST', `/api/chat/offline/${enc(id)}/resolve`);
}

// ----- transfer ----------------------------------------------------------------------

// Who a chat can be handed to: {agents: [{id, name, role, status}], departments: [{id, name}]};
// status: available | away | offline (no console open).
// Null when the server has no such list (the dialog then asks for a department by name).
export async function transferTargets() {
  try {
    const data = await request('GET', '/api/chat/agents');
    const departments = listOf(data, 'departments').map((d) => (typeof d == 'string' ? { id: d, name: d } : d));
    return { agents: listOf(data, 'agents', 'users'), departments };
  } catch (e) {
    if (e.status == 404 || e.status == 405) return null;
    throw e;
  }
}

// ----- the team (supervisors and admins) ------------------------------------------------

// {agents: [{id, name, role, status, chats, departments}], chats: [conversation + {agent}]}
export async function team() {
  const data = await request('GET', '/api/chat/team');
  return { agents: listOf(data, 'agents'), chats: listOf(data, 'chats') };
}

function unwrap(data, ...keys) {
  for (const k of keys) if (data && data[k] && typeof data[k] == 'object') return data[k];
  return data;
}
