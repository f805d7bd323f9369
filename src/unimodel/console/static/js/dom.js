// Building the page. Untrusted text (model output, model ids, error messages) only ever goes in as text:
// h() sets textContent and attributes, never innerHTML, so markup in an answer is shown, not run.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "disabled" || name === "selected") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let fieldIds = 0;

/** A labelled form field: the label is tied to the control for screen readers and clicks. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = `f${++fieldIds}`;
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, labelText),
    control,
    hint ? h("small", { class: "hint" }, hint) : null,
  );
}

/** An error box: the status, the stable code and the server's message, as text. */
export function errorBox(error) {
  const parts = [];
  if (error.status) parts.push(String(error.status));
  if (error.code) parts.push(error.code);
  return h(
    "div",
    { class: "error", role: "alert" },
    h("strong", {}, parts.length ? `Error (${parts.join(", ")}): ` : "Error: "),
    error.message || String(error),
  );
}

export function notice(text) {
  return h("div", { class: "notice", role: "status" }, text);
}

export function fmtNumber(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function downloadText(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
