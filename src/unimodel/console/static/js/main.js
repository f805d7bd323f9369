// The console's shell: the gateway key (asked for when the server needs one, kept in this tab's session
// storage), and the pages, one per hash route (#/playground, #/models, #/cluster, #/keys).

import { ApiError, call, session } from "./api.js";
import { append, clear, errorBox, field, h } from "./dom.js";
// Each page is loaded when first opened (the charts' library only with the pages that chart).
const PAGES = {
  playground: () => import("./playground.js"),
  models: () => import("./models.js"),
  cluster: () => import("./cluster.js"),
  keys: () => import("./keys.js"),
};
const main = document.getElementById("main");
const authBar = document.getElementById("auth");
let cleanup = null;
let refusal = null; // why the server refused the key we have (or that we have none), to show on the key form
let routes = 0; // counts visits, so a slow one the user already left does not take over the page

/** Ask the server whether our key (or no key) is let in: any answer but a 401 means yes. */
async function probe() {
  try {
    await call("GET", "/models/v2/list/tasks");
    return null;
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 401) return exc;
    return null; // other failures are shown by the page that meets them
  }
}

function renderAuthBar() {
  clear(authBar);
  if (session.key()) {
    append(authBar, 
      h("span", { class: "badge", "data-testid": "key-state" }, "Gateway key set"),
      h("button", { type: "button", class: "link", onclick: () => forgetKey() }, "Forget key"),
    );
  } else {
    append(authBar, 
      h("span", { class: "badge muted", "data-testid": "key-state" }, "No gateway key"),
      h("button", { type: "button", class: "link", onclick: () => showKeyForm(null) }, "Use a key"),
    );
  }
}

function forgetKey() {
  session.forgetKey();
  renderAuthBar();
  route();
}

/** The key form: in keys mode before anything else, or when a page needs an admin key. */
export function showKeyForm(reason, { admin = false } = {}) {
  if (cleanup) cleanup();
  cleanup = null;
  clear(main);
  const input = h("input", { type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const form = h(
    "form",
    {
      class: "card keyform",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!input.value.trim()) return;
        session.setKey(input.value);
        input.value = ""; // the secret leaves the page as soon as it is stored
        renderAuthBar();
        route();
      },
    },
    h("h1", {}, admin ? "An admin key is needed" : "Sign in with a gateway key"),
    h(
      "p",
      {},
      admin
        ? "This page uses the admin API. Enter an admin key (unimodel keys create --name NAME --admin)."
        : "This server runs with keys: every call needs a gateway key. It is kept in this browser tab only.",
    ),
    reason ? errorBox(reason) : null,
    field("Gateway key", input, "Sent as Authorization: Bearer … on each API call; never shown again."),
    h("button", { type: "submit" }, "Use this key"),
  );
  append(main, form);
  input.focus();
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const name = (location.hash.replace(/^#\/?/, "") || "playground").split("?")[0];
  const load = PAGES[name] || PAGES.playground;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const turn = ++routes;
  refusal = await probe();
  if (turn !== routes) return; // the user went elsewhere meanwhile
  if (refusal) {
    const message = session.key()
      ? new ApiError(401, refusal.code, `The server refused this key: ${refusal.message}`)
      : refusal;
    if (session.key()) session.forgetKey();
    renderAuthBar();
    showKeyForm(message);
    return;
  }
  clear(main);
  // each visit renders into its own view: one the user left while it loaded stays detached, and is cleaned up
  const view = h("div", { class: "view" });
  append(main, view);
  const context = { needAdmin: (reason) => turn === routes && showKeyForm(reason, { admin: true }) };
  try {
    const page = await load();
    const done = (await page.render(view, context)) || null;
    if (turn === routes) cleanup = done;
    else if (done) done();
  } catch (exc) {
    console.error(exc); // a bug in the page, or a failure the page did not expect
    append(view, errorBox(exc));
  }
}

window.addEventListener("hashchange", route);
renderAuthBar();
route();
