/* Training curves from the json_script series, then new steps from the job's API while it
 * runs (GET /api/training-jobs/{id}/?after_step=N). Rendered with the vendored uPlot. */
(function () {
  "use strict";
  const root = document.querySelector("[data-training-job]");
  const source = document.getElementById("training-series");
  if (!root || !source || !window.uPlot) return;
  const series = JSON.parse(source.textContent);
  const POLL_MS = 5000;
  const ACTIVE = ["queued", "running"];
  const CHARTS = {
    loss: { lines: [["loss", "loss", "#0b5cad"]], reference: Math.LN2, referenceLabel: "ln 2" },
    accuracy: { lines: [["implicit_acc", "implicit accuracy", "#1d6b3a"]], reference: 0.5, range: [0, 1] },
    margin: { lines: [["reward_margin", "reward margin", "#0b5cad"]], reference: 0 },
    mse: {
      lines: [
        ["mse_w", "model, winners", "#1d6b3a"],
        ["mse_l", "model, losers", "#a3261b"],
        ["ref_mse_w", "reference, winners", "#7fb592", [6, 4]],
        ["ref_mse_l", "reference, losers", "#d98b84", [6, 4]],
      ],
    },
  };
  const plots = {};

  function columns(chart) {
    const data = [series.step].concat(chart.lines.map((line) => series[line[0]]));
    if (chart.reference !== undefined) data.push(series.step.map(() => chart.reference));
    return data;
  }

  function build(name, box) {
    const chart = CHARTS[name];
    const lines = chart.lines.map((line) => ({
      label: line[1], stroke: line[2], width: 2, dash: line[3], spanGaps: true,
    }));
    if (chart.reference !== undefined) {
      lines.push({ label: chart.referenceLabel || String(chart.reference), stroke: "#4a5866", dash: [2, 4] });
    }
    const options = {
      width: Math.max(260, box.clientWidth),
      height: 200,
      scales: chart.range ? { x: { time: false }, y: { range: chart.range } } : { x: { time: false } },
      series: [{ label: "step" }].concat(lines),
      axes: [{ label: "step" }, {}],
    };
    return new window.uPlot(options, columns(chart), box);
  }

  function draw() {
    document.querySelectorAll("[data-chart]").forEach((box) => {
      const name = box.dataset.chart;
      if (!series.step.length) return;
      if (plots[name]) plots[name].setData(columns(CHARTS[name]));
      else plots[name] = build(name, box);
    });
    root.dataset.steps = String(series.step.length); // what is drawn, for people and tests
    const note = root.querySelector("[data-empty-note]");
    if (note && series.step.length) note.remove();
  }

  function append(fresh) {
    Object.keys(series).forEach((key) => {
      if (fresh[key]) series[key] = series[key].concat(fresh[key]);
    });
  }

  async function poll() {
    const last = series.step.length ? series.step[series.step.length - 1] : 0;
    try {
      const response = await fetch(root.dataset.api + "?after_step=" + last, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return; // logged out or gone: keep what is drawn
      const job = await response.json();
      if (job.series && job.series.step.length) {
        append(job.series);
        draw();
      }
      if (ACTIVE.indexOf(job.status) < 0) root.dataset.active = "false";
    } catch (error) {
      // Offline for a moment: the next poll catches up from the last step drawn.
    }
    if (root.dataset.active === "true") window.setTimeout(poll, POLL_MS);
  }

  draw();
  if (root.dataset.active === "true") window.setTimeout(poll, POLL_MS);
})();
