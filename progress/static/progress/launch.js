// Launch forms: turn form fields into task params, POST them, show field errors.

import { postJSON } from "./api.js";

// Form values are strings; the API validates typed params, so convert here.
export function collectParams(form) {
  const params = {};
  for (const field of form.elements) {
    const { name, type } = field;
    if (!name || field.disabled || name === "csrfmiddlewaretoken") continue;
    if (["submit", "button", "reset", "fieldset", "file"].includes(type)) continue;
    if (type === "checkbox") params[name] = field.checked;
    else if (type === "radio") {
      if (field.checked) params[name] = field.value;
      else if (!(name in params)) params[name] = null;
    } else if (type === "number" || type === "range") params[name] = field.value === "" ? null : Number(field.value);
    else if (type === "select-multiple") params[name] = [...field.selectedOptions].map((option) => option.value);
    else params[name] = field.value;
  }
  return params;
}

function clearErrors(form) {
  for (const node of form.querySelectorAll("[data-errors-for]")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const general = form.querySelector("[data-form-error]");
  if (general) general.textContent = "";
}

function errorsFor(form, name) {
  for (const node of form.querySelectorAll("[data-errors-for]")) {
    if (node.getAttribute("data-errors-for") === name) return node;
  }
  return null;
}

function describedBy(input, id) {
  const ids = (input.getAttribute("aria-describedby") ?? "").split(/\s+/).filter(Boolean);
  if (!ids.includes(id)) input.setAttribute("aria-describedby", [...ids, id].join(" "));
}

function showErrors(form, data, fallback) {
  const general = [];
  if (data && typeof data.error === "string") general.push(data.error);
  let firstInvalid = null;
  const fields = data && typeof data.fields === "object" && data.fields ? data.fields : {};
  for (const [name, messages] of Object.entries(fields)) {
    const text = (Array.isArray(messages) ? messages : [messages]).map(String).join(" ");
    const slot = errorsFor(form, name);
    const input = form.elements.namedItem(name);
    if (!slot) {
      general.push(text);
      continue;
    }
    slot.textContent = text;
    if (input instanceof Element) {
      input.setAttribute("aria-invalid", "true");
      if (slot.id) describedBy(input, slot.id);
      firstInvalid ??= input;
    }
  }
  const node = form.querySelector("[data-form-error]");
  if (node) node.textContent = general.length ? general.join(" ") : fallback;
  firstInvalid?.focus();
}

function failureText(status) {
  if (status === 0) return "Could not reach the server. Try again.";
  if (status === 401 || status === 403) return "You are signed out. Reload the page to log in again.";
  if (status === 429) return "Too many jobs are running. Wait for one to finish.";
  if (status === 400) return "";
  return `Could not launch the job (error ${status}). Try again.`;
}

export function wireLaunchForm(form, { jobsUrl, onLaunched }) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector('[type="submit"], button:not([type])');
    if (submit?.disabled) return;
    clearErrors(form);
    if (submit) submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      const body = { task: form.getAttribute("data-task"), params: collectParams(form) };
      const { status, data } = await postJSON(jobsUrl, body);
      if (status === 201 && data && typeof data.id === "string") onLaunched(data);
      else showErrors(form, status === 401 || status === 403 ? null : data, failureText(status));
    } finally {
      if (submit) submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}
