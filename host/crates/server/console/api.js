// Calls to the API on this origin with the token held in memory by the page (docs/CONSOLE.md).

/** An error answer of the API: its status, stable code, message and the whole body. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.body = body;
  }
}

export class Api {
  constructor(token) {
    // Never written to storage, a cookie or the URL: it lives as long as this tab's page.
    this.token = token;
  }

  headers(extra) {
    return Object.assign({ Authorization: `Bearer ${this.token}` }, extra || {});
  }

  /** `method path` with an optional JSON body; resolves to `{ body, etag }`, rejects with ApiError. */
  async call(method, path, { body, headers } = {}) {
    const init = { method, headers: this.headers(headers), cache: "no-store" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = { error: { code: "not_json", message: text.slice(0, 200) } };
    }
    if (!response.ok) throw new ApiError(response.status, json);
    return { body: json, etag: response.headers.get("ETag") };
  }

  get(path) {
    return this.call("GET", path).then((answer) => answer.body);
  }

  /**
   * Follows a Server-Sent Events stream with the token in a header (EventSource cannot send one):
   * calls `onEvent(name, data)` for each event until `signal` aborts. Resolves when the stream ends.
   */
  async stream(path, onEvent, signal) {
    const response = await fetch(path, { headers: this.headers({ Accept: "text/event-stream" }), signal, cache: "no-store" });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) {
          let parsed = data.join("\n");
          try { parsed = JSON.parse(parsed); } catch (_) { /* plain text event */ }
          onEvent(name, parsed);
        }
      }
    }
  }
}

/** `?service=&user=` of a view (empty parts left out). */
export function viewQuery(view) {
  const query = new URLSearchParams();
  if (view.service) query.set("service", view.service);
  if (view.user) query.set("user", view.user);
  const text = query.toString();
  return text ? `?${text}` : "";
}

export const enc = encodeURIComponent;

/** A value as one line of text (strings quoted, like JSON), never as markup. */
export function showValue(value) {
  return JSON.stringify(value);
}

/**
 * A record's changed keys as one line: those of the environment's own view, then how many more
 * changed only in its service or user views (recorded qualified: `api_service:api.timeout`).
 */
export function changedKeys(record) {
  const own = record.keys.filter((key) => !key.includes(":"));
  const others = record.keys.length - own.length;
  return own.join(", ") + (others ? ` (+${others} in service/user views)` : "");
}
