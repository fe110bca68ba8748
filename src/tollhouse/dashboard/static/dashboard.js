// tollhouse dashboard: the theme toggle (remembered in this browser), copy buttons, the usage
// chart and the sessions page's live list.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = localStorage.getItem("tollhouse-theme");
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);
  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var dark = root.getAttribute("data-theme") === "dark" ||
          (!root.getAttribute("data-theme") && matchMedia("(prefers-color-scheme: dark)").matches);
        var next = dark ? "light" : "dark";
        root.setAttribute("data-theme", next);
        localStorage.setItem("tollhouse-theme", next);
      });
    }
    drawUsage();
    followSessions();
    document.querySelectorAll("button.copy").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = document.getElementById(button.getAttribute("data-copy")).textContent;
        navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
      });
    });
  });

  // The sessions page: while sessions run, fetch the page again every `data-refresh-seconds`
  // and swap in its list of active sessions (time and tokens left, running cost: all figures
  // come from the server). Skipped while the keyboard focus is inside the list.
  function followSessions() {
    var live = document.getElementById("live-sessions");
    if (!live) return;
    function schedule() {
      var every = Number(live.getAttribute("data-refresh-seconds"));
      if (every > 0) setTimeout(reload, every * 1000);
    }
    function reload() {
      if (live.contains(document.activeElement)) { schedule(); return; }
      fetch(location.pathname, { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.text() : null; })
        .then(function (html) {
          var fresh = html && new DOMParser().parseFromString(html, "text/html")
            .getElementById("live-sessions");
          if (!fresh) return;
          live.innerHTML = fresh.innerHTML;
          live.setAttribute("data-refresh-seconds", fresh.getAttribute("data-refresh-seconds"));
          schedule();
        });
    }
    schedule();
  }

  // The overview's usage chart (uPlot, vendored): requests and tokens per day; the chart is
  // kept as `box.chart` (its drawn data is `box.chart.data`).
  function drawUsage() {
    var data = document.getElementById("usage-data");
    var box = document.getElementById("usage-chart");
    if (!data || !box || !window.uPlot) return;
    var series = JSON.parse(data.textContent);
    var css = getComputedStyle(root);
    var fg = css.getPropertyValue("--fg").trim();
    var accent = css.getPropertyValue("--accent").trim();
    var muted = css.getPropertyValue("--muted").trim();
    var axis = { stroke: fg, grid: { stroke: css.getPropertyValue("--line").trim() } };
    box.chart = new window.uPlot({
      width: Math.max(280, box.clientWidth),
      height: 240,
      series: [
        {},
        { label: "Requests", stroke: accent, width: 2, scale: "requests" },
        { label: "Tokens", stroke: muted, width: 2, dash: [6, 4], scale: "tokens" }
      ],
      axes: [
        axis,
        Object.assign({ scale: "requests" }, axis),
        Object.assign({ scale: "tokens", side: 1 }, axis)
      ]
    }, [series.days, series.requests, series.tokens], box);
  }
})();
