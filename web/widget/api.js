// The JSON API, as the contract names it. Every failure becomes an ApiError carrying the
// status and the server's per-field messages, so callers show them beside the fields.
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.error) || "network");
    this.status = status;
    this.fields = (body && body.fields) || {};
    this.retryAfter = retryAfter;
  }
}

export function makeApi(base, extraHeaders = {}) {
  async function call(method, path, body, headers = {}) {
    const init = { method, headers: { Accept: "application/json", ...extraHeaders, ...headers } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(base + path, init);
    } catch {
      throw new ApiError(0, null);
    }
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch { data = null; }
    }
    if (!response.ok) throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    return data;
  }
  const q = encodeURIComponent;
  const bearer = (token) => ({ Authorization: "Bearer " + token });
  return {
    config: () => call("GET", "/api/config"),
    thread: (uri) => call("GET", "/api/comments?uri=" + q(uri)),
    page: (uri, { sort, limit, after }) => call("GET", "/api/comments?uri=" + q(uri) + "&sort=" + q(sort)
      + "&limit=" + q(limit) + (after ? "&after=" + q(after) : "")),
    voter: () => call("POST", "/api/voters"),
    vote: (id, value, who) => call("POST", "/api/comments/" + id + "/vote", { value, ...who }),
    counts: (uris) => call("GET", "/api/counts?" + uris.map((u) => "uri=" + q(u)).join("&")),
    // `key` is the submission's Idempotency-Key: the same key and body answer the first answer.
    post: (comment, key) => call("POST", "/api/comments", comment, key ? { "Idempotency-Key": key } : {}),
    edit: (id, text, token) => call("PATCH", "/api/comments/" + id, { text }, bearer(token)),
    remove: (id, token) => call("DELETE", "/api/comments/" + id, undefined, bearer(token)),
  };
}
