/* Agreement plots: alpha over time per criterion with its 95% interval, from json_script data. */
(function () {
  "use strict";
  const source = document.getElementById("agreement-data");
  if (!source || !window.uPlot) return;
  const series = JSON.parse(source.textContent);
  series.forEach((s, index) => {
    const box = document.querySelector('[data-plot="agreement-' + (index + 1) + '"]');
    if (!box) return;
    const width = Math.max(260, box.clientWidth);
    const options = {
      width: width,
      height: 220,
      scales: { y: { range: [-0.2, 1] } },
      series: [
        {},
        { label: "alpha", stroke: "#0b5cad", width: 2 },
        { label: "low", stroke: "#7fa7d1", dash: [4, 4] },
        { label: "high", stroke: "#7fa7d1", dash: [4, 4] },
      ],
      bands: [{ series: [3, 2], fill: "rgba(11, 92, 173, 0.12)" }],
      axes: [{}, { label: "alpha" }],
    };
    new window.uPlot(options, [s.x, s.alpha, s.low, s.high], box);
  });
})();
