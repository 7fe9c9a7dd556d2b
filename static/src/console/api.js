// The console's HTTP API (cobrowse/console/app.py): login, logout, who am I
// (the chat's endpoints are in chat-api.js, through request()).
// The session is an HttpOnly cookie, so none of this sees a token; every
// request goes to our own origin (the server checks Origin on POSTs).

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// A JSON request to the console server; ApiError (with .status) when it fails.
export async function request(method, path, body) {
  return call(method, path, body);
}

async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError('The console server cannot be reached. Check your connection and try again.', 0);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON (a proxy's error page): fall through with the status
  }
  if (!response.ok) {
    const fallback = response.status >= 500
      ? `The console server had a problem (${response.status}). Try again in a moment.`
      : `Request failed (${response.status}).`;
    // {error: "what went wrong"}, or {error: code, message: "what went wrong"}
    throw new ApiError((data && (data.message || data.error)) || fallback, response.status);
  }
  return data;
}

// The logged-in agent {id, name, role}, or null when the cookie is missing or stale.
export async function me() {
  try {
    return await call('GET', '/api/me');
  } catch (e) {
    if (e.status == 401) return null;
    throw e;
  }
}

export function login(username, password) {
  return call('POST', '/api/login', { username, password });
}

export function logout() {
  return call('POST', '/api/logout');
}
