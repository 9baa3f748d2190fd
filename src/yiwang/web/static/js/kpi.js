// Case KPI charts: the figures come from the page (no inline script, CSP-friendly).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("kpi-data").textContent);
  if (!window.echarts || !data.labels.length) { return; }
  function draw(id, series, options) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    var chart = window.echarts.init(el);
    chart.setOption(Object.assign({
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 60, right: 20, bottom: 70, top: 40 },
      xAxis: { type: "category", data: data.labels,
               axisLabel: { rotate: data.labels.length > 8 ? 45 : 0 } }
    }, options, { series: series }));
    window.addEventListener("resize", function () { chart.resize(); });
    return chart;
  }
  draw("kpi-counts", data.counts.map(function (s) {
    return { name: s.name, type: "bar", data: s.data };
  }), { yAxis: { type: "value" } });
  draw("kpi-rates", data.rates.map(function (s) {
    return { name: s.name, type: "line", data: s.data.map(function (v) {
      return v === null ? null : Math.round(v * 1000) / 10;
    }) };
  }), { yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } } });
})();
