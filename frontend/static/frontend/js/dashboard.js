/* Agreement plots from json_script data: alpha per window of units over time, the trailing
 * baseline, and the campaign's 95% interval as a band. Rendered with the vendored uPlot. */
(function () {
  "use strict";
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
      scales: { y: { range: [-0.2, 1] } },
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
    new window.uPlot(options, [s.x, s.alpha, s.baseline, low, high], box);
  });
})();
