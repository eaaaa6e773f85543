// HTTP helpers for the JSON API: CSRF token lookup, POST with JSON in and out, and retry.

export function csrfToken(cookie = globalThis.document?.cookie ?? "") {
  for (const part of cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "csrftoken") return decodeURIComponent(rest.join("="));
  }
  // With CSRF_COOKIE_HTTPONLY the cookie is unreadable; the page's forms still carry the token.
  return globalThis.document?.querySelector('input[name="csrfmiddlewaretoken"]')?.value ?? "";
}

// Resolves to {status, data}; status 0 means the request never got an answer,
// so callers handle every outcome in one place instead of try/catch.
export async function postJSON(url, body, { fetch: fetchImpl = globalThis.fetch, token = csrfToken() } = {}) {
  const init = {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRFToken": token },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetchImpl(url, init);
  } catch {
    return { status: 0, data: null };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { status: response.status, data };
}

function retryFailure(status, data) {
  if (status === 0) return "Could not reach the server to retry. Try again.";
  if (status === 401 || status === 403) return "You are signed out. Reload the page to log in again.";
  // A 409 names its refusal in `error` ("not_retryable") and explains it in `detail`.
  const text = typeof data?.detail === "string" ? data.detail : data?.error;
  const reason = typeof text === "string" ? ` ${text}` : "";
  return `Could not retry this job.${reason}`;
}

// Launches a failed or cancelled job again; resolves to {job} (the new one) or {error},
// a sentence for the user, so callers never need try/catch.
export async function retryJob(url, options = {}) {
  const { status, data } = await postJSON(url, undefined, options);
  if (status === 201 && typeof data?.id === "string") return { job: data };
  return { error: retryFailure(status, data) };
}
