// Base-data statistics chart: data comes from the page (no inline script, CSP-friendly).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("stats-data").textContent);
  var el = document.getElementById("stats-chart");
  if (!window.echarts || !el || !data.labels.length) { return; }
  var chart = window.echarts.init(el);
  chart.setOption({
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 60, right: 20, bottom: 70, top: 40 },
    xAxis: { type: "category", data: data.labels, axisLabel: { rotate: data.labels.length > 10 ? 45 : 0 } },
    yAxis: { type: "log", logBase: 10, min: 1 },
    series: data.series.map(function (s) {
      return { name: s.name, type: "bar", data: s.data.map(function (v) { return v || null; }) };
    })
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
