// The playground: pick a model, chat with it (streamed through /v1/chat/completions), run an embedding model
// (/v1/embeddings) or any other task (the v2 run), compare two models on one prompt, and show the code.
// Provider keys typed here stay in this tab's session storage and show as "set", never as their value.

import { ApiError, call, session, streamEvents, v2 } from "./api.js";
import { chatSnippets, embeddingSnippets, runSnippets } from "./code.js";
import { append, clear, errorBox, field, h, notice } from "./dom.js";
import { inputsOf, outputView, runBody } from "./tasks.js";

const CHAT_TASKS = new Set(["chat", "text-generation"]);
const EMBEDDING_TASKS = new Set(["feature-extraction", "sentence-similarity"]);

export async function render(main) {
  let catalog = [];
  let catalogError = null;
  try {
    catalog = (await v2("GET", "/models/v2/list/models")) || [];
  } catch (exc) {
    catalogError = exc;
  }
  const byId = new Map(catalog.map((entry) => [entry.modelId, entry]));
  const providers = new Set(catalog.filter((e) => e.meter === null).map((e) => e.modelId.split("/")[0]));
  const describe = (id) => {
    const entry = byId.get(id);
    const prefix = id.split("/")[0];
    const closed = entry ? entry.meter === null : providers.has(prefix);
    const task = entry ? entry.task : closed ? "chat" : unlistedTask.value; // a Hub id: the user says what it does
    return { id, task, closed, provider: closed ? prefix : null, listed: !!entry };
  };

  const stopFns = [];
  const tasks = [...new Set(["chat", "feature-extraction", ...catalog.map((e) => e.task)])].sort();
  const unlistedTask = h(
    "select",
    { "data-testid": "unlisted-task" },
    tasks.map((t) => h("option", { value: t, selected: t === "chat" }, t)),
  );
  const unlistedField = field("Task of a model not listed (a Hugging Face id)", unlistedTask);
  const datalist = h(
    "datalist",
    { id: "model-options" },
    catalog.map((entry) => h("option", { value: entry.modelId }, `${entry.task}${entry.meter ? " · open" : ""}`)),
  );
  const firstChat = catalog.find((e) => CHAT_TASKS.has(e.task) && e.meter !== null) || catalog[0];
  const modelA = h("input", {
    list: "model-options",
    value: sessionStorage.getItem("unimodel.pg.modelA") || (firstChat ? firstChat.modelId : ""),
    placeholder: "provider/model or a Hugging Face id",
    autocomplete: "off",
    spellcheck: "false",
    "data-testid": "model-a",
  });
  const modelB = h("input", {
    list: "model-options",
    value: sessionStorage.getItem("unimodel.pg.modelB") || "",
    placeholder: "a second model to compare",
    autocomplete: "off",
    spellcheck: "false",
    "data-testid": "model-b",
  });
  const compare = h("input", { type: "checkbox", "data-testid": "compare" });
  const taskBadge = h("span", { class: "badge", "data-testid": "task" });
  const providerKeys = h("div", { class: "provider-keys" });
  const system = h("textarea", { rows: 2, placeholder: "You are a helpful assistant." });
  const maxTokens = h("input", { type: "number", min: 1, step: 1, value: 256 });
  const temperature = h("input", { type: "number", min: 0, max: 2, step: "any", placeholder: "default" });
  const topP = h("input", { type: "number", min: 0, max: 1, step: "any", placeholder: "default" });
  const tools = h("textarea", {
    rows: 3,
    placeholder: '[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]',
  });
  const prompt = h("textarea", { rows: 3, placeholder: "Type a message (Ctrl+Enter sends)", "data-testid": "prompt" });
  const image = h("input", { type: "file", accept: "image/*" });
  const labels = h("input", { type: "text", placeholder: "cat, dog, bird" });
  const media = h("input", { type: "file", "data-testid": "media" });
  const mediaField = field("Image", media);
  const labelsField = field("Candidate labels (comma-separated)", labels);
  const sendButton = h("button", { type: "submit", "data-testid": "send" }, "Send");
  const stopButton = h("button", { type: "button", class: "secondary", disabled: true }, "Stop");
  const resetButton = h("button", { type: "button", class: "secondary" }, "New conversation");
  const codeButton = h("button", { type: "button", class: "secondary", "aria-expanded": "false" }, "Show code");
  const codePanel = h("section", { class: "code-panel", hidden: true, "aria-label": "Code for this call" });
  const columns = h("div", { class: "columns" });
  const chatOnly = h("div", { class: "chat-only" });
  const taskOnly = h("div", { class: "task-only row" });
  const attachField = field("Attach an image", image);

  let panes = [];
  let controller = null;

  function chosen() {
    const list = [describe(modelA.value.trim())];
    if (compare.checked && modelB.value.trim()) list.push(describe(modelB.value.trim()));
    return list.filter((m) => m.id);
  }

  function params() {
    const out = {};
    if (maxTokens.value) out.max_tokens = Number(maxTokens.value);
    if (temperature.value !== "") out.temperature = Number(temperature.value);
    if (topP.value !== "") out.top_p = Number(topP.value);
    if (tools.value.trim()) out.tools = JSON.parse(tools.value); // a SyntaxError is shown by send()
    return out;
  }

  let shownProviders = null;

  function renderProviderKeys(force = false) {
    const needed = [...new Set(chosen().filter((m) => m.closed).map((m) => m.provider))];
    const signature = needed.map((p) => `${p}:${session.providerKey(p) ? 1 : 0}`).join(",");
    if (!force && signature === shownProviders) return; // keep a half-typed key where it is
    shownProviders = signature;
    clear(providerKeys);
    for (const provider of needed) {
      if (session.providerKey(provider)) {
        append(providerKeys, 
          h(
            "div",
            { class: "provider-key" },
            h("span", { "data-testid": `provider-key-${provider}` }, `${provider} key: set (this tab only)`),
            h(
              "button",
              {
                type: "button",
                class: "link",
                onclick: () => {
                  session.forgetProviderKey(provider);
                  renderProviderKeys();
                },
              },
              "Forget",
            ),
          ),
        );
      } else {
        const input = h("input", { type: "password", autocomplete: "off", spellcheck: "false" });
        append(providerKeys, 
          h(
            "form",
            {
              class: "provider-key inline",
              onsubmit: (event) => {
                event.preventDefault();
                if (!input.value.trim()) return;
                session.setProviderKey(provider, input.value);
                input.value = "";
                renderProviderKeys();
              },
            },
            field(
              `${provider} provider key`,
              input,
              "Optional when your gateway key or the server holds one. Kept in this tab; sent as provider-key. " +
                "To keep it on a gateway key instead, store it there under Keys & usage (an admin key).",
            ),
            h("button", { type: "submit", class: "secondary" }, "Set"),
          ),
        );
      }
    }
  }

  function newPane(model) {
    const log = h("div", { class: "transcript", role: "log", "aria-live": "polite", "data-testid": "transcript" });
    const meta = h("div", { class: "meta", "data-testid": "meta" });
    const el = h(
      "section",
      { class: "pane card", "aria-label": `Answers of ${model.id}` },
      h("h2", { class: "model-id" }, model.id),
      log,
      meta,
    );
    return { model, el, log, meta, history: [] };
  }

  function layout() {
    const models = chosen();
    const same =
      panes.length === models.length && panes.every((p, i) => p.model.id === models[i].id && p.model.task === models[i].task);
    if (!same) {
      panes = models.map(newPane);
      clear(columns);
      append(columns, panes.map((p) => p.el));
    }
    const task = models[0] ? models[0].task : "chat";
    taskBadge.textContent = models[0] ? `${task}${models[0].closed ? ` · ${models[0].provider}` : " · open"}` : "";
    const isChat = CHAT_TASKS.has(task);
    const inputs = inputsOf(task);
    unlistedField.hidden = !models[0] || models[0].listed || models[0].closed;
    chatOnly.hidden = !isChat;
    attachField.hidden = !isChat;
    taskOnly.hidden = isChat || EMBEDDING_TASKS.has(task);
    mediaField.hidden = !inputs.media;
    mediaField.querySelector("label").textContent = inputs.media === "audio" ? "Audio file" : "Image";
    media.accept = inputs.media === "audio" ? "audio/*" : "image/*";
    labelsField.hidden = !inputs.labels;
    prompt.required = !inputs.media;
    prompt.placeholder = isChat
      ? "Type a message (Ctrl+Enter sends)"
      : EMBEDDING_TASKS.has(task)
        ? "One text per line: each gets a vector"
        : task === "question-answering"
          ? "The question on the first line, the context below it"
          : inputs.media
            ? inputs.question
              ? "The question about it"
              : "(no text needed)"
            : "The input text";
    sendButton.textContent = isChat ? "Send" : "Run";
    renderProviderKeys();
    modelB.disabled = !compare.checked;
    sessionStorage.setItem("unimodel.pg.modelA", modelA.value.trim());
    sessionStorage.setItem("unimodel.pg.modelB", modelB.value.trim());
  }

  function messageView(message) {
    const el = h("div", { class: `msg ${message.role}`, "data-role": message.role });
    append(el, h("div", { class: "role" }, message.role));
    const body = h("div", { class: "content" });
    const content = message.content;
    if (Array.isArray(content)) {
      for (const part of content) {
        if (part.type === "text") append(body, h("div", { class: "text" }, part.text));
        else if (part.type === "image_url") append(body, h("img", { src: part.image_url.url, alt: "attached image", class: "thumb" }));
      }
    } else if (content) {
      append(body, h("div", { class: "text" }, content));
    }
    append(el, body);
    return { el, body };
  }

  async function streamInto(pane, outgoing, signal) {
    const provider = pane.model.closed ? session.providerKey(pane.model.provider) : null;
    const messages = [...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []), ...pane.history, outgoing];
    const { el, body } = messageView({ role: "assistant", content: "" });
    el.classList.add("streaming");
    append(pane.log, el);
    const text = h("div", { class: "text", "data-testid": "answer" });
    const reasoning = h("div", { class: "reasoning", hidden: true });
    append(body, reasoning, text);
    const calls = [];
    let usage = null;
    let streamError = null;
    const started = performance.now();
    let firstToken = null;
    try {
      const { done } = await streamEvents(
        "/v1/chat/completions",
        { model: pane.model.id, messages, ...params(), stream: true, stream_options: { include_usage: true } },
        {
          providerKey: provider,
          signal,
          onEvent: (event) => {
            if (event.error) {
              const err = event.error;
              streamError = new ApiError(err.status || 0, err.code || err.type || null, err.message || JSON.stringify(err));
              return;
            }
            if (event.usage) usage = event.usage;
            for (const choice of event.choices || []) {
              const delta = choice.delta || {};
              if (delta.content) {
                if (firstToken === null) firstToken = performance.now();
                text.textContent += delta.content;
              }
              const thought = delta.reasoning_content || delta.reasoning;
              if (typeof thought === "string" && thought) {
                reasoning.hidden = false;
                reasoning.textContent += thought;
              }
              for (const tc of delta.tool_calls || []) {
                const slot = (calls[tc.index ?? calls.length] ||= { id: "", name: "", arguments: "" });
                if (tc.id) slot.id = tc.id;
                if (tc.function?.name) slot.name += tc.function.name;
                if (tc.function?.arguments) slot.arguments += tc.function.arguments;
              }
            }
          },
        },
      );
      if (!streamError && !done) {
        streamError = new ApiError(0, "stream_cut", "The stream ended before the answer was complete (no [DONE]).");
      }
    } catch (exc) {
      if (exc.name === "AbortError") streamError = new ApiError(0, "stopped", "Stopped.");
      else streamError = exc;
    }
    el.classList.remove("streaming");
    for (const tc of calls.filter(Boolean)) {
      append(body, 
        h(
          "div",
          { class: "tool-call", "data-testid": "tool-call" },
          h("span", { class: "badge" }, "tool call"),
          h("code", {}, tc.name),
          h("pre", {}, prettyJson(tc.arguments)),
        ),
      );
    }
    if (streamError) append(body, errorBox(streamError));
    const seconds = (performance.now() - started) / 1000;
    const bits = [`${seconds.toFixed(2)} s`];
    if (firstToken !== null) bits.push(`first token ${((firstToken - started) / 1000).toFixed(2)} s`);
    if (usage) bits.push(`${usage.prompt_tokens} in · ${usage.completion_tokens} out tokens`);
    pane.meta.textContent = bits.join(" · ");
    if (!streamError || text.textContent || calls.length) {
      const answer = { role: "assistant", content: text.textContent || null };
      if (calls.length) {
        answer.tool_calls = calls.filter(Boolean).map((tc) => ({ id: tc.id, type: "function", function: { name: tc.name, arguments: tc.arguments } }));
      }
      pane.history.push(outgoing, answer);
    }
  }

  async function embedInto(pane, lines, signal) {
    const provider = pane.model.closed ? session.providerKey(pane.model.provider) : null;
    const box = h("div", { class: "msg assistant" });
    append(pane.log, box);
    try {
      const { body } = await call("POST", "/v1/embeddings", { body: { model: pane.model.id, input: lines }, providerKey: provider, signal });
      const vectors = body.data.map((d) => d.embedding);
      const table = h(
        "table",
        { class: "data", "data-testid": "embeddings" },
        h("thead", {}, h("tr", {}, h("th", {}, "text"), h("th", {}, "dimensions"), h("th", {}, "first values"))),
        h(
          "tbody",
          {},
          vectors.map((vector, i) =>
            h("tr", {}, h("td", {}, lines[i]), h("td", {}, String(vector.length)), h("td", {}, vector.slice(0, 4).map((x) => x.toFixed(4)).join(", ") + " …")),
          ),
        ),
      );
      append(box, table);
      if (vectors.length > 1) {
        append(box, 
          h("h3", {}, "Cosine similarity"),
          h(
            "table",
            { class: "data sim", "data-testid": "similarity" },
            h("tbody", {}, vectors.map((a, i) => h("tr", {}, h("th", {}, `#${i + 1}`), vectors.map((b) => h("td", {}, cosine(a, b).toFixed(3)))))),
          ),
        );
      }
      if (body.usage) pane.meta.textContent = `${body.usage.prompt_tokens ?? "?"} tokens`;
    } catch (exc) {
      append(box, errorBox(exc));
    }
  }

  async function runTaskInto(pane, text, mediaUrl, signal) {
    const box = h("div", { class: "msg assistant" });
    append(pane.log, box);
    const candidates = labels.value.split(",").map((s) => s.trim()).filter(Boolean);
    try {
      const { body } = await call("POST", `/models/v2/${pane.model.id}`, {
        body: runBody(pane.model.task, { text, mediaUrl, labels: candidates }),
        providerKey: pane.model.closed ? session.providerKey(pane.model.provider) : null,
        signal,
      });
      append(box, outputView(body.output, mediaUrl));
    } catch (exc) {
      append(box, errorBox(exc));
    }
  }

  async function readFile(input) {
    const file = input.files && input.files[0];
    if (!file) return null;
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  async function send(event) {
    event.preventDefault();
    layout();
    if (!panes.length || controller) return;
    const text = prompt.value;
    const task = panes[0].model.task;
    const needsMedia = inputsOf(task).media && !CHAT_TASKS.has(task);
    if (!text.trim() && !(needsMedia && media.files && media.files[0])) return;
    try {
      params();
    } catch (exc) {
      panes[0].append(log, errorBox(new ApiError(0, "invalid_tools", `Tools are not valid JSON: ${exc.message}`)));
      return;
    }
    controller = new AbortController();
    sendButton.disabled = true;
    stopButton.disabled = false;
    prompt.value = "";
    try {
      if (CHAT_TASKS.has(task)) {
        const url = await readFile(image);
        const outgoing = url
          ? { role: "user", content: [{ type: "text", text }, { type: "image_url", image_url: { url } }] }
          : { role: "user", content: text };
        image.value = "";
        for (const pane of panes) append(pane.log, messageView(outgoing).el);
        await Promise.all(panes.map((pane) => streamInto(pane, outgoing, controller.signal)));
      } else if (EMBEDDING_TASKS.has(task)) {
        const lines = text.split("\n").map((s) => s.trim()).filter(Boolean);
        for (const pane of panes) append(pane.log, messageView({ role: "user", content: lines.join("\n") }).el);
        await Promise.all(panes.map((pane) => embedInto(pane, lines, controller.signal)));
      } else {
        const mediaUrl = needsMedia ? await readFile(media) : null;
        for (const pane of panes) {
          const sent = messageView({ role: "user", content: text });
          if (mediaUrl && mediaUrl.startsWith("data:image/")) append(sent.body, h("img", { src: mediaUrl, alt: "the image sent", class: "thumb" }));
          else if (mediaUrl) append(sent.body, h("audio", { src: mediaUrl, controls: true }));
          append(pane.log, sent.el);
        }
        await Promise.all(panes.map((pane) => runTaskInto(pane, text.trim(), mediaUrl, controller.signal)));
      }
    } finally {
      controller = null;
      sendButton.disabled = false;
      stopButton.disabled = true;
      if (!codePanel.hidden) showCode(text);
    }
  }

  function showCode(pendingText) {
    clear(codePanel);
    const model = chosen()[0];
    if (!model) return;
    const text = pendingText || prompt.value || "Hello!";
    let snippets;
    try {
      if (EMBEDDING_TASKS.has(model.task)) {
        snippets = embeddingSnippets(location.origin, { model: model.id, input: text.split("\n").filter(Boolean), closed: model.closed });
      } else if (!CHAT_TASKS.has(model.task)) {
        const labelled = labels.value.split(",").map((s) => s.trim()).filter(Boolean);
        const mediaUrl = inputsOf(model.task).media ? "data:" : null; // the file itself is not put in the code
        const body = runBody(model.task, { text, mediaUrl, labels: labelled });
        snippets = runSnippets(location.origin, { model: model.id, task: model.task, body, closed: model.closed });
      } else {
        const history = panes[0] ? panes[0].history : [];
        const messages = [
          ...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []),
          ...history.filter((m) => typeof m.content === "string"),
          { role: "user", content: text },
        ];
        snippets = chatSnippets(location.origin, { model: model.id, messages, params: params(), closed: model.closed });
      }
    } catch (exc) {
      append(codePanel, errorBox(exc));
      return;
    }
    for (const [name, label] of [["curl", "curl"], ["bytez", "Bytez Python SDK"], ["openai", "OpenAI Python SDK"]]) {
      const pre = h("pre", { "data-testid": `code-${name}`, tabindex: 0 }, snippets[name]);
      append(codePanel, 
        h(
          "details",
          { open: name === "curl" },
          h("summary", {}, label),
          pre,
          h("button", { type: "button", class: "link", onclick: () => navigator.clipboard?.writeText(snippets[name]) }, "Copy"),
        ),
      );
    }
  }

  codeButton.addEventListener("click", () => {
    codePanel.hidden = !codePanel.hidden;
    codeButton.setAttribute("aria-expanded", String(!codePanel.hidden));
    if (!codePanel.hidden) showCode();
  });
  stopButton.addEventListener("click", () => controller && controller.abort());
  resetButton.addEventListener("click", () => {
    panes = [];
    layout();
  });
  for (const input of [modelA, modelB, compare, unlistedTask]) input.addEventListener("change", layout);
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  const form = h(
    "form",
    { class: "composer card", onsubmit: send },
    field("Message", prompt),
    h("div", { class: "row" }, attachField, taskOnly),
    h("div", { class: "row buttons" }, sendButton, stopButton, resetButton, codeButton),
  );
  append(taskOnly, mediaField, labelsField);

  append(
    chatOnly,
    h(
      "details",
      { class: "params" },
      h("summary", {}, "System prompt and parameters"),
      field("System prompt", system),
      h("div", { class: "row" }, field("max_tokens", maxTokens), field("temperature", temperature), field("top_p", topP)),
      field("Tools (JSON, OpenAI's format)", tools, "Tool calls in the answer are shown as such."),
    ),
  );

  append(main, 
    h("h1", {}, "Playground"),
    catalogError ? errorBox(catalogError) : null,
    datalist,
    h(
      "section",
      { class: "card pickers" },
      h(
        "div",
        { class: "row" },
        field("Model", modelA),
        taskBadge,
        unlistedField,
        h("label", { class: "check" }, compare, " Compare side by side with"),
        field("Second model", modelB),
      ),
      providerKeys,
      chatOnly,
    ),
    columns,
    form,
    codePanel,
    catalog.length ? null : notice("The catalog is empty: type a model id (provider/model, or a Hugging Face id)."),
  );
  layout();
  return () => {
    if (controller) controller.abort();
    for (const stop of stopFns) stop();
  };
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}
