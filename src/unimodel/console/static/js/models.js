// Models: everything this server can run or reach (the catalog: open models and the providers' listed models,
// with each open model's cluster status), and a Hugging Face model pulled by id with a live progress bar
// (PUT /models/v2/{id} starts the pull; its cluster status says "downloading" with bytesDone/bytesTotal).

import { ApiError, call, v2 } from "./api.js";
import { append, clear, errorBox, field, fmtNumber, h, notice } from "./dom.js";

export async function render(main) {
  const [catalog, clusters] = await Promise.all([
    v2("GET", "/models/v2/list/models"),
    v2("GET", "/models/v2/list/clusters").catch(() => []),
  ]);
  const statusOf = new Map((clusters || []).map((c) => [c.modelId, c.status]));
  const filter = h("input", { type: "search", placeholder: "filter by id or task" });
  const body = h("tbody", {});
  const count = h("span", { class: "muted" });
  let timer = null;
  let stopped = false;

  function renderRows() {
    const q = filter.value.trim().toLowerCase();
    clear(body);
    const shown = catalog.filter((e) => !q || e.modelId.toLowerCase().includes(q) || e.task.includes(q));
    for (const entry of shown) {
      const open = entry.meter !== null;
      append(body, 
        h(
          "tr",
          { "data-model": entry.modelId },
          h("td", {}, h("code", {}, entry.modelId)),
          h("td", {}, entry.task),
          h("td", {}, open ? "open (runs here)" : `closed · ${entry.modelId.split("/")[0]}`),
          h("td", {}, open ? statusOf.get(entry.modelId) || "idle" : "–"),
          h("td", {}, h("a", { href: "#/playground", onclick: () => sessionStorage.setItem("unimodel.pg.modelA", entry.modelId) }, "Try it")),
        ),
      );
    }
    count.textContent = `${shown.length} of ${catalog.length}`;
  }
  filter.addEventListener("input", renderRows);

  const hubId = h("input", { type: "text", required: true, placeholder: "Qwen/Qwen2.5-0.5B-Instruct-GGUF", spellcheck: "false", "data-testid": "hub-id" });
  const progressArea = h("div", { class: "pull", "aria-live": "polite" });

  async function watch(modelId) {
    const label = h("span", { "data-testid": "pull-state" }, "Asking the Hub…");
    const bar = h("progress", { max: 1, "data-testid": "pull-progress", "aria-label": `Download of ${modelId}` });
    clear(progressArea).append(h("div", {}, h("code", {}, modelId), " ", label), bar);
    const tick = async () => {
      if (stopped) return;
      let cluster;
      try {
        cluster = await v2("GET", `/models/v2/${modelId}`);
      } catch (exc) {
        append(progressArea, errorBox(exc));
        return;
      }
      const d = cluster.download;
      if (d) {
        bar.max = d.bytesTotal || 1;
        bar.value = d.bytesDone || 0;
        const pct = d.bytesTotal ? ` (${((100 * d.bytesDone) / d.bytesTotal).toFixed(0)} %)` : "";
        label.textContent = `Downloading ${fmtNumber(d.bytesDone)} of ${fmtNumber(d.bytesTotal)} bytes${pct}`;
      } else if (cluster.status === "failed") {
        label.textContent = "Failed";
        append(progressArea, errorBox(new ApiError(0, "pull_failed", cluster.error || "The pull failed.")));
        return;
      } else if (cluster.status !== "downloading") {
        bar.max = 1;
        bar.value = 1;
        label.textContent = `Pulled: ${cluster.status}`;
        return;
      }
      timer = setTimeout(tick, 300);
    };
    await tick();
  }

  const pullForm = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const modelId = hubId.value.trim();
        if (!modelId) return;
        clearTimeout(timer);
        clear(progressArea);
        try {
          await call("PUT", `/models/v2/${modelId}`, { body: {} });
        } catch (exc) {
          append(progressArea, errorBox(exc));
          return;
        }
        await watch(modelId);
      },
    },
    h("h2", {}, "Pull a Hugging Face model"),
    h("p", { class: "muted" }, "Fetches the files its engine loads into the Hugging Face cache (with keys on, an admin key is needed unless [hub] pull = \"any\")."),
    h("div", { class: "row" }, field("Model id", hubId), h("button", { type: "submit" }, "Pull")),
    progressArea,
  );

  append(main, 
    h("h1", {}, "Models"),
    pullForm,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Everything this server can run or reach"),
      h("div", { class: "row" }, field("Filter", filter), count),
      catalog.length ? null : notice("No model is listed."),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data", "data-testid": "catalog" },
          h("thead", {}, h("tr", {}, ["model", "task", "kind", "status", ""].map((c) => h("th", { scope: "col" }, c)))),
          body,
        ),
      ),
    ),
  );
  renderRows();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
