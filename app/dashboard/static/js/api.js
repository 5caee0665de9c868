// The API client of the dashboard: the same JSON endpoints as everyone else (/v1/...), and the
// project's error body ({detail: [{loc, msg, type}], request_id}) turned into one message.

export class ApiError extends Error {
  constructor(status, message, requestId) {
    super(message);
    this.status = status;
    this.requestId = requestId;
  }
}

function describe(status, body) {
  const items = body && Array.isArray(body.detail) ? body.detail : null;
  if (!items) return `HTTP ${status}`;
  return items
    .map((item) => {
      const where = (item.loc || []).filter((part) => part !== "body").join(".");
      return where ? `${where}: ${item.msg}` : item.msg;
    })
    .join("\n");
}

const KEY = "losscast.apiKey";

/** The API key the user gave (kept in this browser's localStorage), or "". A service with keys
 *  answers 401 without one; the page shows that message. */
export function apiKey() {
  try {
    return localStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

export function setApiKey(token) {
  if (token) localStorage.setItem(KEY, token);
  else localStorage.removeItem(KEY);
}

/** JSON of `path` (GET, or `method` with a JSON `body`); throws ApiError with the API's message.
 *  With `etag`, sends If-None-Match and answers {notModified: true} on 304. With `full`, answers
 *  {status, headers, data}, for answers whose status says what the body is (a 202's job). */
export async function api(path, { method = "GET", body, etag, signal, full = false } = {}) {
  const headers = { accept: "application/json" };
  const key = apiKey();
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (etag) headers["if-none-match"] = etag;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `the service did not answer (${error.message})`);
  }
  if (response.status === 304) return { notModified: true, etag };
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const id = parsed && parsed.request_id;
    throw new ApiError(response.status, describe(response.status, parsed), id);
  }
  if (full) return { status: response.status, headers: response.headers, data: parsed };
  if (etag !== undefined) return { data: parsed, etag: response.headers.get("etag") };
  return parsed;
}

/** A query string from an object (arrays repeat the key; empty values are left out). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, one);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
