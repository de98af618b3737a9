// The control API from the browser. The key lives in sessionStorage only (gone when the
// tab closes) and travels in the X-API-Key header, never in a URL, so it stays out of
// history, logs and Referer headers.

const KEY = 'mutt.apiKey';

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

// A refusal of the API in MUTT's shape: {"error":{"code","message"},"correlation_id",
// "field"?}. `field` names the input at fault on some 400s; the views put the message
// next to that input.
export class ApiError extends Error {
  constructor(status, code, message, field, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.body = body;
  }
}

// Builds a query string from an object, leaving out empty values so that a blank filter
// means "no filter" rather than "equals the empty string".
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Calls the API: `path` is below /api/v2. Resolves to the parsed JSON (or null for an
// empty body); rejects with an ApiError. A 401 also tells the shell (event
// `mutt:unauthorized`) so it can send the user back to the sign-in form.
export async function api(method, path, { body, params, key } = {}) {
  const headers = { Accept: 'application/json' };
  const k = key ?? getKey();
  if (k) headers['X-API-Key'] = k;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(`/api/v2${path}${query(params)}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `The control plane did not answer (${e.message}).`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const err = data && typeof data.error === 'object' && data.error ? data.error : {};
    const field = (data && data.field) || (err.details && err.details.field) || undefined;
    const message = err.message || `${resp.status} ${resp.statusText || 'error'}`;
    const e = new ApiError(resp.status, err.code || String(resp.status), message, field, data);
    if (resp.status === 401 && key === undefined) {
      window.dispatchEvent(new CustomEvent('mutt:unauthorized', { detail: message }));
    }
    throw e;
  }
  return data;
}

// An error as a sentence for the page: the API's message with its status and code.
export function errorText(e) {
  if (e instanceof ApiError) return e.status ? `${e.message} (${e.status} ${e.code})` : e.message;
  return String(e && e.message ? e.message : e);
}
