// HTTP helpers for the JSON API: CSRF token lookup and POST with JSON in and out.

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
