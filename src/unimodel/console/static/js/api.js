// The console's only way to the server: the public HTTP APIs, with the user's gateway key from this tab's
// session storage. Secrets never go to the console's own logs, the URL or the page after they were entered.

const KEY = "unimodel.key";
const PROVIDER = "unimodel.providerKey.";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  setKey: (value) => sessionStorage.setItem(KEY, value.trim()),
  forgetKey: () => sessionStorage.removeItem(KEY),
  providerKey: (provider) => sessionStorage.getItem(PROVIDER + provider),
  setProviderKey: (provider, value) => sessionStorage.setItem(PROVIDER + provider, value.trim()),
  forgetProviderKey: (provider) => sessionStorage.removeItem(PROVIDER + provider),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The message, status and code of any surface's error body (v2, OpenAI, Anthropic). */
export function errorFrom(status, body, fallback) {
  if (body && typeof body === "object") {
    const err = body.error;
    if (typeof err === "string") return new ApiError(status, body.code || null, err);
    if (err && typeof err === "object") {
      return new ApiError(status, err.code || err.type || null, err.message || JSON.stringify(err));
    }
  }
  return new ApiError(status, null, fallback || `The server answered ${status}.`);
}

export function headers(extra = {}, providerKey = null) {
  const out = { ...extra };
  const key = session.key();
  if (key) out.authorization = `Bearer ${key}`;
  if (providerKey) out["provider-key"] = providerKey;
  return out;
}

async function send(method, path, { body, providerKey, signal } = {}) {
  const init = { method, headers: headers({}, providerKey), signal, cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "unreachable", `The server could not be reached (${exc.message}).`);
  }
  return response;
}

/** A JSON call; resolves to the parsed body, or throws ApiError with the server's message. */
export async function call(method, path, options = {}) {
  const response = await send(method, path, options);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) throw errorFrom(response.status, body, text.slice(0, 300));
  return { body, response };
}

/** The `output` of a v2 envelope. */
export async function v2(method, path, body) {
  const { body: answer } = await call(method, path, { body });
  return answer ? answer.output : null;
}

/** A streamed call of server-sent events: each `data:` payload (parsed JSON, or the raw string for `[DONE]`)
 *  goes to onEvent. Resolves to {done}: whether the stream ended with `[DONE]` (a stream cut mid-way did not). */
export async function streamEvents(path, body, { providerKey, signal, onEvent }) {
  const response = await send("POST", path, { body, providerKey, signal });
  if (!response.ok) {
    const text = await response.text();
    let parsed = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    throw errorFrom(response.status, parsed, text.slice(0, 300));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let done = false;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (exc) {
      if (exc.name === "AbortError") throw exc;
      throw new ApiError(0, "stream_cut", `The stream was cut mid-way (${exc.message}).`);
    }
    if (chunk.done) break;
    buffer += chunk.value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") {
        done = true;
        continue;
      }
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        continue;
      }
      onEvent(event);
    }
  }
  return { done, response };
}
