/* Agreement plots from json_script data: alpha per window of units over time, the trailing
 * baseline, and the campaign's 95% interval as a band. Rendered with the vendored uPlot.
 * x values are Unix seconds, as uPlot's time scales expect. */
(function () {
  "use strict";
  // With one x value (a single window, or windows ending in the same second) uPlot hands
  // the range function a span of 1000 days, drawing an axis over years. The range comes
  // from the data instead (x is sorted), widened to at least ten minutes.
  const MIN_SPAN_SECONDS = 600;
  function timeRange(u) {
    const xs = u.data[0];
    const min = xs[0];
    const max = xs[xs.length - 1];
    const pad = Math.max(0, MIN_SPAN_SECONDS - (max - min)) / 2;
    return [min - pad, max + pad];
  }
  const source = document.getElementById("agreement-data");
  if (!source || !window.uPlot) return;
  JSON.parse(source.textContent).forEach((s, index) => {
    const box = document.querySelector('[data-plot="' + index + '"]');
    if (!box || !s.x.length) return;
    const ok = s.headline.status === "ok";
    const low = s.x.map(() => (ok ? s.headline.low : null));
    const high = s.x.map(() => (ok ? s.headline.high : null));
    const options = {
      width: Math.max(260, box.clientWidth),
      height: 220,
      scales: { x: { time: true, range: timeRange }, y: { range: [-0.2, 1] } },
      series: [
        {},
        { label: "alpha", stroke: "#0b5cad", width: 2, points: { show: true } },
        { label: "baseline", stroke: "#4a5866", dash: [6, 4] },
        { label: "95% low", stroke: "#7fa7d1" },
        { label: "95% high", stroke: "#7fa7d1" },
      ],
      bands: [{ series: [4, 3], fill: "rgba(11, 92, 173, 0.12)" }],
      axes: [{}, { label: "alpha" }],
    };
    box.plot = new window.uPlot(options, [s.x, s.alpha, s.baseline, low, high], box);
  });
})();
