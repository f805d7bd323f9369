// The cluster view: every open model's cluster (GET /models/v2/list/clusters, polled each second), a chart of
// its instances and load over the last minutes, and the cluster API's buttons (PATCH capacity, on/off; DELETE).

import { ApiError, call, v2 } from "./api.js";
import { timeChart } from "./chart.js";
import { append, clear, errorBox, field, fmtNumber, h, notice } from "./dom.js";

const POLL_MS = 1000;
const WINDOW_S = 600; // the charts show the last ten minutes

export async function render(main) {
  const status = h("div", { class: "status-line", role: "status" });
  const list = h("div", { class: "clusters" });
  append(main, 
    h("h1", {}, "Cluster"),
    h("p", { class: "muted" }, "Open models run by this server: instances by state, load and capacity, live. Changing a cluster needs an admin key when keys are on."),
    status,
    list,
  );
  const cards = new Map(); // modelId → card
  let timer = null;
  let stopped = false;

  let backfilled = false; // the first poll asks for the last minutes, so the charts start full

  async function poll() {
    try {
      const clusters = (await v2("GET", `/models/v2/list/clusters${backfilled ? "" : "?history=1"}`)) || [];
      backfilled = true;
      status.textContent = `Updated ${new Date().toLocaleTimeString()} · ${clusters.length} open model${clusters.length === 1 ? "" : "s"}`;
      if (!clusters.length && !cards.size) {
        clear(list);
        append(list, notice("No open model is configured or pulled yet."));
      }
      for (const cluster of clusters) {
        let card = cards.get(cluster.modelId);
        if (!card) {
          if (!cards.size) clear(list);
          card = makeCard(cluster.modelId);
          cards.set(cluster.modelId, card);
          append(list, card.el);
        }
        card.update(cluster);
      }
    } catch (exc) {
      clear(status);
      append(status, errorBox(exc));
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }
  await poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
    for (const card of cards.values()) card.destroy();
  };
}

function makeCard(modelId) {
  const history = { t: [], ready: [], starting: [], draining: [], inFlight: [], queued: [] };
  const badge = h("span", { class: "badge", "data-testid": "cluster-status" });
  const stats = h("dl", { class: "stats" });
  const instances = h("div", { class: "instances" });
  const chartEl = h("div", { class: "chart", "data-testid": "cluster-chart" });
  const decisions = h("div", { class: "decisions-wrap" });
  const message = h("div", { class: "cluster-message", "aria-live": "polite" });
  const min = h("input", { type: "number", min: 0, step: 1, class: "narrow" });
  const desired = h("input", { type: "number", min: 0, step: 1, class: "narrow" });
  const max = h("input", { type: "number", min: 1, step: 1, class: "narrow" });
  const timeout = h("input", { type: "number", min: 0, step: "any", class: "narrow" });
  let seeded = false;

  async function act(label, method, body) {
    clear(message);
    try {
      const { body: answer } = await call(method, `/models/v2/${modelId}`, { body });
      append(message, notice(`${label}: done${answer && typeof answer.output === "string" ? ` (${answer.output})` : ""}.`));
    } catch (exc) {
      append(message, errorBox(exc instanceof ApiError ? exc : new ApiError(0, null, String(exc))));
    }
  }

  const capacityForm = h(
    "form",
    {
      class: "row controls",
      onsubmit: (event) => {
        event.preventDefault();
        const capacity = {};
        if (min.value !== "") capacity.min = Number(min.value);
        if (desired.value !== "") capacity.desired = Number(desired.value);
        if (max.value !== "") capacity.max = Number(max.value);
        const body = { capacity };
        if (timeout.value !== "") body.timeout = Number(timeout.value);
        act("Set capacity", "PATCH", body);
      },
    },
    field("min", min),
    field("desired", desired),
    field("max", max),
    field("idle timeout (min)", timeout),
    h("button", { type: "submit" }, "Set capacity"),
    h("button", { type: "button", class: "secondary", onclick: () => act("Turn on", "PATCH", { status: "on" }) }, "Turn on"),
    h("button", { type: "button", class: "secondary", onclick: () => act("Turn off", "PATCH", { status: "off" }) }, "Turn off"),
    h(
      "button",
      {
        type: "button",
        class: "danger",
        onclick: () => {
          if (confirm(`Stop every instance of ${modelId}?`)) act("Stop", "DELETE");
        },
      },
      "Stop instances",
    ),
  );

  const el = h(
    "section",
    { class: "card cluster", "data-model": modelId, "aria-label": `Cluster of ${modelId}` },
    h("h2", {}, h("span", { class: "model-id" }, modelId), " ", badge),
    stats,
    instances,
    chartEl,
    decisions,
    h("details", {}, h("summary", {}, "Change this cluster"), capacityForm),
    message,
  );
  const chart = timeChart(chartEl, "Instances and load", ["ready", "starting", "draining", "in flight", "queued"]);

  function update(cluster) {
    const now = Date.now() / 1000;
    if (cluster.history && !history.t.length) {
      const at = Object.fromEntries(cluster.history.fields.map((name, i) => [name, i]));
      for (const row of cluster.history.rows) {
        history.t.push(row[at.time]);
        history.ready.push(row[at.ready]);
        history.starting.push(row[at.starting]);
        history.draining.push(row[at.draining]);
        history.inFlight.push(row[at.inFlight]);
        history.queued.push(row[at.queueDepth]);
      }
    }
    const byState = cluster.instancesByState || {};
    history.t.push(now);
    history.ready.push(byState.ready || 0);
    history.starting.push(byState.starting || 0);
    history.draining.push(byState.draining || 0);
    history.inFlight.push(cluster.inFlight ?? null);
    history.queued.push(cluster.queueDepth ?? null);
    while (history.t.length && history.t[0] < now - WINDOW_S) for (const series of Object.values(history)) series.shift();
    chart.update([history.t, history.ready, history.starting, history.draining, history.inFlight, history.queued]);
    chartEl.dataset.points = String(history.t.length);

    badge.textContent = cluster.status;
    badge.className = `badge state-${cluster.status}`;
    const cap = cluster.capacity || {};
    if (!seeded) {
      min.value = cap.min ?? "";
      max.value = cap.max ?? "";
      timeout.value = cluster.timeout ?? "";
      seeded = true;
    }
    const lat = cluster.latency || {};
    const rows = [
      ["ready", byState.ready ?? 0, "ready"],
      ["starting", byState.starting ?? 0, "starting"],
      ["draining", byState.draining ?? 0, "draining"],
      ["desired / min / max", `${cap.desired ?? "–"} / ${cap.min ?? "–"} / ${cap.max ?? "–"}`, "capacity"],
      ["in flight", cluster.inFlight ?? "–", "in-flight"],
      ["queued", cluster.queueDepth ?? "–", "queued"],
      ["inferences", fmtNumber(cluster.inferences), "inferences"],
      ["instance-seconds", fmtNumber(cluster.instanceSeconds, 1), "instance-seconds"],
      ["last start", cluster.lastStartS == null ? "–" : `${Number(cluster.lastStartS).toFixed(2)} s`, "last-start"],
      ["cold starts", cluster.coldStarts ?? "–", "cold-starts"],
      ["on instance p50 / p99", pair(lat.serviceP50S, lat.serviceP99S), "service"],
      ["wait p50 / p99", pair(lat.waitP50S, lat.waitP99S), "wait"],
      ["crashes / OOM kills", `${cluster.crashes ?? 0} / ${cluster.oomKills ?? 0}`, "crashes"],
      ["idle timeout", cluster.timeout < 1 ? `${Math.round(cluster.timeout * 60)} s` : `${fmtNumber(cluster.timeout, 1)} min`, "timeout"],
      ["last inference", cluster.lastInference || "–", "last-inference"],
    ];
    clear(stats);
    for (const [label, value, id] of rows) append(stats, h("div", {}, h("dt", {}, label), h("dd", { "data-testid": `stat-${id}` }, String(value))));

    clear(instances);
    if (cluster.download) {
      const d = cluster.download;
      append(instances, 
        field(
          `Downloading ${fmtNumber(d.bytesDone)} of ${fmtNumber(d.bytesTotal)} bytes`,
          h("progress", { max: d.bytesTotal || 1, value: d.bytesDone || 0 }),
        ),
      );
    }
    if (cluster.error) append(instances, errorBox(new ApiError(0, "start_failed", cluster.error)));
    if (cluster.pending) append(instances, notice(`Waiting for a place to run: ${cluster.pending}`));
    const placements = new Map((cluster.placements || []).map((p) => [p.instance, p]));
    const replicas = cluster.replicas || [];
    if (replicas.length) {
      append(
        instances,
        h(
          "table",
          { class: "data", "data-testid": "replicas" },
          h("thead", {}, h("tr", {}, ["instance", "state", "where", "in flight", "served"].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            {},
            replicas.map((r) => {
              const placed = placements.get(r.id);
              return h(
                "tr",
                {},
                h("td", {}, r.id),
                h("td", {}, r.state),
                h("td", {}, placed && placed.node ? `${placed.node}` : r.where || "–"),
                h("td", {}, r.inFlight ?? "–"),
                h("td", {}, r.served ?? "–"),
              );
            }),
          ),
        ),
      );
    }
    clear(decisions);
    const recent = (cluster.decisions || []).slice(-8).reverse();
    if (recent.length) {
      append(
        decisions,
        h("h3", {}, "Recent scaling decisions"),
        h(
          "ol",
          { class: "decisions", "data-testid": "decisions" },
          recent.map((d) => h("li", {}, `${d.time.replace("T", " ").replace("Z", " UTC")}: ${d.from} → ${d.to} (${d.reason})`)),
        ),
      );
    }
  }

  return { el, update, destroy: () => chart.destroy() };
}

/** Two durations in seconds, "–" for none (no request in the window). */
function pair(a, b) {
  const fmt = (x) => (x == null ? "–" : `${Number(x).toFixed(2)} s`);
  return a == null && b == null ? "–" : `${fmt(a)} / ${fmt(b)}`;
}
