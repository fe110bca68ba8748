// tollhouse console analytics: one uPlot chart per [data-chart] box, its series read from the
// page's #analytics-data JSON ({name: {x: [unix seconds], series: {label: [values]}, money}}).
// Money series are integer micros; the axis shows them in currency units. Each box keeps its
// chart as `box.chart` (its drawn data is `box.chart.data`).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var data = document.getElementById("analytics-data");
    if (!data || !window.uPlot) return;
    var charts = JSON.parse(data.textContent);
    var css = getComputedStyle(document.documentElement);
    var fg = css.getPropertyValue("--fg").trim();
    var line = css.getPropertyValue("--line").trim();
    var palette = [css.getPropertyValue("--accent").trim(), css.getPropertyValue("--muted").trim(),
      "#d9822b", "#2b9bd9", "#8e44ad", "#27ae60"];
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var chart = charts[box.getAttribute("data-chart")];
      if (!chart) return;
      var labels = Object.keys(chart.series);
      var values = chart.money
        ? function (u, ticks) { return ticks.map(function (v) {
          return (v / 1e6).toFixed(6).replace(/0{1,4}$/, "");
        }); }
        : undefined;
      var yAxis = { stroke: fg, grid: { stroke: line } };
      if (values) {
        yAxis.values = values;
        yAxis.size = 80; // room for "0.000125"-wide labels of small amounts
      }
      box.chart = new window.uPlot({
        width: Math.max(280, box.clientWidth),
        height: 220,
        series: [{}].concat(labels.map(function (label, i) {
          return { label: label, stroke: palette[i % palette.length], width: 2 };
        })),
        axes: [{ stroke: fg, grid: { stroke: line } }, yAxis]
      }, [chart.x].concat(labels.map(function (label) { return chart.series[label]; })), box);
    });
  });
})();
