// Keys and usage (the admin API): create a key (its secret shown once), set its limits and stored provider keys,
// revoke it; usage per key and per model over time as charts, the raw records, and a CSV export.

import { ApiError, call, v2 } from "./api.js";
import { timeChart } from "./chart.js";
import { append, clear, downloadText, errorBox, field, fmtNumber, h, notice } from "./dom.js";

const RECORD_FIELDS = [ // the usage records' fields, in the order of the server's own CSV (store/views.py)
  "time",
  "requestId",
  "keyId",
  "model",
  "kind",
  "provider",
  "status",
  "inputTokens",
  "outputTokens",
  "inferenceSeconds",
  "costUsd",
  "latencyMs",
  "units",
  "unit",
];
const RANGES = { "15m": 15 * 60, "1h": 3600, "24h": 86400, "7d": 7 * 86400 };

export async function render(main, context) {
  let keys;
  try {
    keys = await v2("GET", "/models/v2/admin/keys");
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 401 || exc.status === 403)) {
      context.needAdmin(exc);
      return null;
    }
    throw exc;
  }
  const created = h("div", { class: "created", "aria-live": "polite" });
  const keyMessage = h("div", { "aria-live": "polite" });
  const keyTable = h("div", { class: "table-wrap" });
  const usage = h("section", { class: "card usage", "aria-label": "Usage" });
  const charts = [];

  async function reloadKeys() {
    try {
      keys = await v2("GET", "/models/v2/admin/keys");
      renderKeys();
    } catch (exc) {
      clear(keyMessage).append(errorBox(exc));
    }
  }

  async function act(label, method, path, body) {
    clear(keyMessage);
    try {
      await call(method, path, { body });
      await reloadKeys();
      append(keyMessage, notice(`${label}: done.`)); // after the table is new, so what it says is on screen
      return true;
    } catch (exc) {
      append(keyMessage, errorBox(exc));
      return false;
    }
  }

  const name = h("input", { type: "text", required: true, maxlength: 200, "data-testid": "new-key-name" });
  const rps = h("input", { type: "number", min: 0, step: "any", placeholder: "default", class: "narrow" });
  const concurrency = h("input", { type: "number", min: 0, step: 1, placeholder: "default", class: "narrow" });
  const admin = h("input", { type: "checkbox" });
  const createForm = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        clear(created);
        const body = { name: name.value.trim(), admin: admin.checked };
        if (rps.value !== "") body.rps = Number(rps.value);
        if (concurrency.value !== "") body.concurrency = Number(concurrency.value);
        try {
          const out = await v2("POST", "/models/v2/admin/keys", body);
          const secret = h("code", { class: "secret", "data-testid": "new-secret", tabindex: 0 }, out.key);
          const box = h(
            "div",
            { class: "notice secret-box", role: "status" },
            h("strong", {}, `Key ${out.id} created. `),
            "Copy its secret now: it is shown once, and only its hash is stored. ",
            secret,
            " ",
            h("button", { type: "button", class: "link", onclick: () => navigator.clipboard?.writeText(out.key) }, "Copy"),
            h("button", { type: "button", class: "link", onclick: () => clear(created) }, "Done, hide it"),
          );
          append(created, box);
          name.value = "";
          await reloadKeys();
        } catch (exc) {
          append(created, errorBox(exc));
        }
      },
    },
    h("h2", {}, "Create a key"),
    h(
      "div",
      { class: "row" },
      field("Name", name),
      field("Requests per second", rps),
      field("Concurrency", concurrency),
      h("label", { class: "check" }, admin, " Admin key"),
      h("button", { type: "submit" }, "Create"),
    ),
  );

  function renderKeys() {
    clear(keyTable);
    const rows = keys.map((key) => {
      const revoked = !!key.revokedAt;
      const keyRps = h("input", { type: "number", min: 0, step: "any", value: key.rps ?? "", placeholder: "default", class: "narrow", "aria-label": `rps of ${key.name}` });
      const keyConc = h("input", { type: "number", min: 0, step: 1, value: key.concurrency ?? "", placeholder: "default", class: "narrow", "aria-label": `concurrency of ${key.name}` });
      const provider = h("input", { type: "text", placeholder: "openai", class: "narrow", "aria-label": `provider for ${key.name}` });
      const secret = h("input", { type: "password", autocomplete: "off", placeholder: "provider key", "aria-label": `provider key for ${key.name}` });
      return h(
        "tr",
        { "data-key-id": key.id, class: revoked ? "revoked" : "" },
        h("td", {}, key.name, key.admin ? h("span", { class: "badge" }, " admin") : null),
        h("td", {}, h("code", {}, key.id)),
        h("td", {}, h("code", {}, `${key.prefix}…`)),
        h(
          "td",
          {},
          revoked
            ? fmtLimits(key)
            : h(
                "form",
                {
                  class: "inline",
                  onsubmit: (event) => {
                    event.preventDefault();
                    act(`Limits of ${key.name}`, "PATCH", `/models/v2/admin/keys/${key.id}`, {
                      rps: keyRps.value === "" ? null : Number(keyRps.value),
                      concurrency: keyConc.value === "" ? null : Number(keyConc.value),
                    });
                  },
                },
                keyRps,
                keyConc,
                h("button", { type: "submit", class: "secondary" }, "Set limits"),
              ),
        ),
        h(
          "td",
          {},
          key.providers.map((p) => h("span", { class: "badge", "data-testid": "stored-provider" }, `${p}: set`)),
          revoked
            ? null
            : h(
                "form",
                {
                  class: "inline",
                  onsubmit: async (event) => {
                    event.preventDefault();
                    const value = secret.value;
                    secret.value = ""; // never kept in the page
                    if (!provider.value.trim() || !value) return;
                    await act(`${provider.value.trim()} key of ${key.name}`, "PUT", `/models/v2/admin/keys/${key.id}/providers/${encodeURIComponent(provider.value.trim())}`, { key: value });
                  },
                },
                provider,
                secret,
                h("button", { type: "submit", class: "secondary" }, "Store"),
              ),
        ),
        h("td", { "data-testid": "key-state" }, revoked ? `revoked ${key.revokedAt}` : "active"),
        h(
          "td",
          {},
          revoked
            ? null
            : h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  onclick: () => {
                    if (confirm(`Revoke ${key.name} (${key.id})? Calls with it fail at once.`)) {
                      act(`Revoke ${key.name}`, "DELETE", `/models/v2/admin/keys/${key.id}`);
                    }
                  },
                },
                "Revoke",
              ),
        ),
      );
    });
    append(keyTable, 
      h(
        "table",
        { class: "data keys", "data-testid": "keys" },
        h("thead", {}, h("tr", {}, ["name", "id", "prefix", "limits (rps, concurrency)", "provider keys", "state", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows),
      ),
    );
  }

  const range = h("select", {}, Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === "1h" }, r)));
  const keyFilter = h("input", { type: "text", placeholder: "any key id", class: "narrow" });
  const modelFilter = h("input", { type: "text", placeholder: "any model" });
  const usageBody = h("div", {});
  let records = [];

  async function loadUsage() {
    for (const chart of charts.splice(0)) chart.destroy();
    clear(usageBody);
    const from = new Date(Date.now() - RANGES[range.value] * 1000).toISOString();
    const query = new URLSearchParams({ from, limit: "10000" });
    if (keyFilter.value.trim()) query.set("key", keyFilter.value.trim());
    if (modelFilter.value.trim()) query.set("model", modelFilter.value.trim());
    let out;
    try {
      out = await v2("GET", `/models/v2/admin/usage?${query}`);
    } catch (exc) {
      append(usageBody, errorBox(exc));
      return;
    }
    records = out.records;
    const t = out.totals;
    append(usageBody, 
      h(
        "dl",
        { class: "stats", "data-testid": "usage-totals" },
        [
          ["requests", fmtNumber(t.requests)],
          ["errors", fmtNumber(t.errors)],
          ["input tokens", fmtNumber(t.inputTokens)],
          ["output tokens", fmtNumber(t.outputTokens)],
          ["inference seconds", fmtNumber(t.inferenceSeconds, 3)],
          ["cost (USD)", fmtNumber(t.costUsd, 6)],
        ].map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", { "data-testid": `total-${label.replace(/\W+/g, "-")}` }, value))),
      ),
      out.truncated ? notice("Only the latest 10,000 records are shown; narrow the range.") : null,
    );
    const bucket = bucketSize(RANGES[range.value]);
    const span = [Date.parse(from) / 1000, Date.now() / 1000];
    for (const [title, groupBy, measure] of [
      ["Requests per key", "keyId", () => 1],
      ["Requests per model", "model", () => 1],
      ["Tokens per model", "model", (r) => (r.inputTokens || 0) + (r.outputTokens || 0)],
      ["Inference seconds per model", "model", (r) => r.inferenceSeconds || 0],
      ["Cost (USD) per key", "keyId", (r) => r.costUsd || 0],
    ]) {
      const { names, data } = series(records, groupBy, measure, bucket, span);
      const el = h("div", { class: "chart", "data-testid": `chart-${title.replace(/\W+/g, "-").toLowerCase()}` });
      append(usageBody, el);
      if (!names.length) {
        append(el, h("p", { class: "muted" }, `${title}: no records in this range.`));
        continue;
      }
      const nameOf = new Map(keys.map((k) => [k.id, `${k.name} (${k.id})`]));
      const labels = groupBy === "keyId" ? names.map((n) => nameOf.get(n) || n) : names;
      const chart = timeChart(el, title, labels, { bars: true, height: 160 });
      chart.update(data);
      charts.push(chart);
    }
    append(usageBody, 
      h(
        "div",
        { class: "row" },
        h("h3", {}, `Records (${fmtNumber(records.length)})`),
        h("button", { type: "button", class: "secondary", onclick: () => downloadText("unimodel-usage.csv", toCsv(records)) }, "Export CSV"),
      ),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data records", "data-testid": "records" },
          h("thead", {}, h("tr", {}, RECORD_FIELDS.map((f) => h("th", { scope: "col" }, f)))),
          h("tbody", {}, records.slice(0, 200).map((r) => h("tr", {}, RECORD_FIELDS.map((f) => h("td", {}, r[f] ?? ""))))),
        ),
      ),
      records.length > 200 ? h("p", { class: "muted" }, "The table shows the latest 200; the CSV has them all.") : null,
    );
  }

  append(usage, [
    h("h2", {}, "Usage"),
    h(
      "form",
      {
        class: "row",
        onsubmit: (event) => {
          event.preventDefault();
          loadUsage();
        },
      },
      field("Range", range),
      field("Key id", keyFilter),
      field("Model", modelFilter),
      h("button", { type: "submit" }, "Refresh"),
    ),
    usageBody,
  ]);

  append(main, h("h1", {}, "Keys and usage"), createForm, created, h("section", { class: "card" }, h("h2", {}, "Keys"), keyMessage, keyTable), usage);
  renderKeys();
  await loadUsage();
  return () => {
    for (const chart of charts) chart.destroy();
  };
}

function fmtLimits(key) {
  return `${key.rps ?? "default"} rps, ${key.concurrency ?? "default"} concurrent`;
}

function bucketSize(rangeSeconds) {
  if (rangeSeconds <= 3600) return 60;
  if (rangeSeconds <= 86400) return 900;
  return 3600 * 6;
}

/** Records grouped by `groupBy` and summed into time buckets: uPlot's [[xs], [ys per name]…]. */
export function series(records, groupBy, measure, bucket, [start, end]) {
  const names = [...new Set(records.map((r) => String(r[groupBy] ?? "anonymous")))].sort();
  const buckets = new Map();
  for (let t = Math.floor(start / bucket) * bucket; t <= end; t += bucket) buckets.set(t, new Map()); // empty ones too
  for (const r of records) {
    const t = Math.floor(Date.parse(r.time) / 1000 / bucket) * bucket;
    if (!buckets.has(t)) buckets.set(t, new Map());
    const name = String(r[groupBy] ?? "anonymous");
    const row = buckets.get(t);
    row.set(name, (row.get(name) || 0) + measure(r));
  }
  const xs = [...buckets.keys()].sort((a, b) => a - b);
  return { names, data: [xs, ...names.map((n) => xs.map((x) => buckets.get(x).get(n) || 0))] };
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  // a cell a spreadsheet would run as a formula is quoted with a leading apostrophe (CSV injection)
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function toCsv(records) {
  return [RECORD_FIELDS.join(","), ...records.map((r) => RECORD_FIELDS.map((f) => csvCell(r[f])).join(","))].join("\n") + "\n";
}
