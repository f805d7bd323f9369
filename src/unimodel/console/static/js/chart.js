// Small time-series charts on the vendored uPlot (vendor/uplot, MIT): one place that knows its API.

import uPlot from "../vendor/uplot/uPlot.esm.js";

const COLORS = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

/** A line chart of `series` names over time, drawn into `el`; update(data) with [[xs], [ys1], …] (x in seconds). */
export function timeChart(el, title, series, { height = 180, bars = false } = {}) {
  const width = () => Math.max(260, Math.min(el.clientWidth || 600, 900));
  const opts = {
    title,
    width: width(),
    height,
    series: [
      {},
      ...series.map((label, i) => ({
        label,
        stroke: COLORS[i % COLORS.length],
        fill: bars ? COLORS[i % COLORS.length] + "55" : undefined,
        width: 2,
        paths: bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
        points: { show: false },
      })),
    ],
    axes: [{}, { size: 50 }],
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    legend: { live: false },
  };
  const empty = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, empty, el);
  const resize = () => plot.setSize({ width: width(), height });
  window.addEventListener("resize", resize);
  return {
    update: (data) => plot.setData(data),
    destroy: () => {
      window.removeEventListener("resize", resize);
      plot.destroy();
    },
    plot,
  };
}
