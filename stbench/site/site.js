/* stbench report: sorting and filtering the board, per-frame and training curves (uPlot), sample pickers.
   Reads its data from inline JSON elements, so every page works from file:// as from any static host. */
(function () {
  "use strict";

  // 20 colours: matplotlib's tab10, then tab20's light shades (the board's PNG uses the same order)
  var COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#c7c7c7", "#dbdb8d", "#9edae5"];
  var DASHES = [null, [6, 3], [2, 3], [8, 3, 2, 3]];

  function colour(i) { return COLOURS[i % COLOURS.length]; }
  function dash(i) { return DASHES[Math.floor(i / COLOURS.length) % DASHES.length]; }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function make(tag, attrs, text) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // ------------------------------------------------------------ the board: sort by any column
  function sortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.querySelector("button.sort").addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var numeric = th.classList.contains("num");
        var bodies = Array.prototype.slice.call(table.tBodies);
        function key(tbody) {
          var cell = tbody.rows[0].cells[col];
          if (!numeric) return cell ? cell.textContent.trim().toLowerCase() : "";
          var v = cell ? cell.getAttribute("data-v") : null;
          return v === null ? null : parseFloat(v);
        }
        bodies.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (x === null && y === null) return 0;
          if (x === null) return 1;  // cells without a number ('–', 'n/a') stay last either way
          if (y === null) return -1;
          var order = x < y ? -1 : x > y ? 1 : 0;
          return descending ? -order : order;
        });
        bodies.forEach(function (tbody) { table.appendChild(tbody); });
      });
    });
  }

  // ------------------------------------------------------------ the board: filters
  function filters(form, table) {
    var shown = document.getElementById("shown");
    function apply() {
      var ticked = {};
      form.querySelectorAll("input[type=checkbox][data-filter]").forEach(function (box) {
        var name = box.getAttribute("data-filter");
        ticked[name] = ticked[name] || [];
        if (box.checked) ticked[name].push(box.value);
      });
      var chosen = {};
      form.querySelectorAll("select[data-filter]").forEach(function (s) { chosen[s.getAttribute("data-filter")] = s.value; });
      var text = form.querySelector("input[data-filter=label]");
      var needle = text ? text.value.trim().toLowerCase() : "";
      var count = 0;
      Array.prototype.forEach.call(table.tBodies, function (tbody) {
        var ok = Object.keys(ticked).every(function (n) { return ticked[n].indexOf(tbody.getAttribute("data-" + n)) >= 0; })
          && Object.keys(chosen).every(function (n) { return !chosen[n] || tbody.getAttribute("data-" + n) === chosen[n]; })
          && (!needle || tbody.getAttribute("data-label").toLowerCase().indexOf(needle) >= 0);
        tbody.hidden = !ok;
        if (ok) count += 1;
      });
      if (shown) shown.textContent = "showing " + count + " of " + table.tBodies.length + " rows";
    }
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    apply();
  }

  // ------------------------------------------------------------ charts
  function chartWidth(container, columns) {
    var width = container.clientWidth || 900;
    return Math.max(320, Math.min(560, Math.floor(width / columns) - 24));
  }

  function logSafe(values, floor) {
    return values.map(function (v) { return v === null || v <= 0 ? (v === null ? null : floor) : v; });
  }

  var READOUT_MAX = 12;  // values listed under a chart at the cursor, best first

  // the values at the cursor, best first, in a line under the chart: returns [element, setCursor hook]
  function readout(title, higherIsBetter) {
    var el = make("div", { "class": "readout" });
    function hook(u) {
      var idx = u.cursor.idx;
      el.textContent = "";
      if (idx === null || idx === undefined) return;
      el.appendChild(make("strong", {}, title(u.data[0][idx]) + ": "));
      var items = [];
      for (var s = 1; s < u.series.length; s++) {
        var series = u.series[s];
        if (!series.show || series.readout === false) continue;
        var v = u.data[s][idx];
        if (v === null || v === undefined) continue;
        items.push({ label: series.label, value: v, std: series.std ? series.std[idx] : null, stroke: series.colour });
      }
      items.sort(function (a, b) { return higherIsBetter ? b.value - a.value : a.value - b.value; });
      items.slice(0, READOUT_MAX).forEach(function (it) {
        var span = make("span");
        span.style.color = it.stroke;
        span.textContent = it.label + " " + it.value.toPrecision(5) + (it.std !== null && it.std !== undefined ? " ± " + it.std.toPrecision(3) : "");
        el.appendChild(span);
      });
      if (items.length > READOUT_MAX) el.appendChild(make("span", { "class": "muted" }, "… " + (items.length - READOUT_MAX) + " more"));
    }
    return [el, hook];
  }

  // one chart per metric; shown models, log scale and bands decide what is drawn (charts are rebuilt on change)
  function perFrame(payload) {
    var container = document.getElementById("curves");
    var picks = document.getElementById("model-picks");
    var logBox = document.getElementById("log-scale");
    var bandBox = document.getElementById("bands");
    var used = {};
    payload.metrics.forEach(function (m) { m.series.forEach(function (s) { used[s.model] = true; }); });
    payload.models.forEach(function (label, i) {
      if (!used[i]) return;
      var box = make("input", { type: "checkbox", "data-model": String(i) });
      box.checked = true;
      var lab = make("label");
      var swatch = make("span", { "class": "swatch" });
      swatch.style.background = colour(i);
      lab.appendChild(box);
      lab.appendChild(swatch);
      lab.appendChild(document.createTextNode(label));
      picks.appendChild(lab);
    });
    var plots = [];
    function draw() {
      plots.forEach(function (p) { p.destroy(); });
      plots = [];
      container.textContent = "";
      var visible = {};
      picks.querySelectorAll("input[data-model]").forEach(function (b) { visible[b.getAttribute("data-model")] = b.checked; });
      var log = logBox.checked, bands = bandBox.checked;
      var columns = Math.min(2, payload.metrics.length);
      payload.metrics.forEach(function (metric) {
        var box = make("div", { "class": "chart", "data-metric": metric.key });
        box.appendChild(make("h3", {}, metric.title));
        container.appendChild(box);
        var frames = 0;
        metric.series.forEach(function (s) { frames = Math.max(frames, s.mean.length); });
        var x = [];
        for (var t = 1; t <= frames; t++) x.push(t);
        var cols = [x], series = [{ label: "frame" }], bandSpecs = [];
        var positive = Infinity;
        metric.series.forEach(function (s) { s.mean.forEach(function (v) { if (v !== null && v > 0) positive = Math.min(positive, v); }); });
        var floor = isFinite(positive) ? positive / 10 : 1e-6;
        metric.series.forEach(function (s) {
          if (!visible[String(s.model)]) return;
          var c = colour(s.model);
          var mean = s.mean.slice();
          while (mean.length < frames) mean.push(null);
          cols.push(log ? logSafe(mean, floor) : mean);
          series.push({ label: payload.models[s.model], stroke: c, colour: c, width: 1.5, dash: dash(s.model),
                        std: s.std, points: { show: frames <= 24, size: 4 } });
          if (bands && s.std) {
            var hi = mean.map(function (v, k) { return v === null || s.std[k] === null ? null : v + s.std[k]; });
            var lo = mean.map(function (v, k) { return v === null || s.std[k] === null ? null : v - s.std[k]; });
            cols.push(log ? logSafe(hi, floor) : hi);
            series.push({ label: "", stroke: "transparent", width: 0, readout: false, points: { show: false } });
            cols.push(log ? logSafe(lo, floor) : lo);
            series.push({ label: "", stroke: "transparent", width: 0, readout: false, points: { show: false } });
            bandSpecs.push({ series: [cols.length - 2, cols.length - 1], fill: alpha(c, 0.15) });
          }
        });
        var drawn = series.filter(function (s, k) { return k > 0 && s.readout !== false; }).length;
        box.setAttribute("data-models", String(drawn));  // how many models this chart draws (tests read it)
        var width = chartWidth(container, columns);
        box.style.width = width + "px";
        var values = readout(function (t) { return "frame t+" + t; }, metric.higher);
        var opts = {
          width: width, height: 260,
          legend: { show: false },
          cursor: { drag: { x: true, y: false } },
          scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : { auto: true } },
          axes: [{ label: "predicted frame", values: function (u, ticks) { return ticks.map(function (t) { return Number.isInteger(t) ? "t+" + t : ""; }); } },
                 { label: metric.title, size: 64 }],
          series: series, bands: bandSpecs,
          hooks: { setCursor: [values[1]] }
        };
        plots.push(new uPlot(opts, cols, box));
        box.appendChild(values[0]);
      });
    }
    picks.addEventListener("change", draw);
    logBox.addEventListener("change", draw);
    bandBox.addEventListener("change", draw);
    document.getElementById("models-all").addEventListener("click", function () {
      picks.querySelectorAll("input").forEach(function (b) { b.checked = true; }); draw();
    });
    document.getElementById("models-none").addEventListener("click", function () {
      picks.querySelectorAll("input").forEach(function (b) { b.checked = false; }); draw();
    });
    draw();
  }

  // a run's training log: one chart, a series chosen from the log's names
  function trainingLog(series) {
    var container = document.getElementById("loss");
    var select = document.getElementById("log-series");
    var logBox = document.getElementById("log-scale");
    Object.keys(series).forEach(function (name) { select.appendChild(make("option", { value: name }, name)); });
    if (series["train/loss"]) select.value = "train/loss";
    var plot = null;
    function draw() {
      if (plot) plot.destroy();
      container.textContent = "";
      var entry = series[select.value];
      var log = logBox.checked;
      var positive = entry.value.filter(function (v) { return v > 0; });
      var floor = positive.length ? Math.min.apply(null, positive) / 10 : 1e-6;
      var box = make("div", { "class": "chart" });
      container.appendChild(box);
      var width = chartWidth(container, 1);
      box.style.width = width + "px";
      var values = readout(function (s) { return "step " + s; }, false);
      plot = new uPlot({
        width: width, height: 280, legend: { show: false },
        scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : { auto: true } },
        axes: [{ label: "step" }, { label: select.value, size: 70 }],
        series: [{ label: "step" }, { label: select.value, stroke: COLOURS[0], colour: COLOURS[0], width: 1.5,
                                      points: { show: entry.step.length <= 40, size: 4 } }],
        hooks: { setCursor: [values[1]] }
      }, [entry.step, log ? logSafe(entry.value, floor) : entry.value], box);
      box.appendChild(values[0]);
    }
    select.addEventListener("change", draw);
    logBox.addEventListener("change", draw);
    draw();
  }

  // ------------------------------------------------------------ sample clips: tick models to show them
  function samplePicks() {
    var picks = document.getElementById("sample-picks");
    if (!picks) return;
    picks.addEventListener("change", function (event) {
      var which = event.target.getAttribute("data-sample");
      var figure = document.querySelector("figure.sample[data-sample='" + which + "']");
      if (figure) figure.hidden = !event.target.checked;
    });
  }

  var board = document.getElementById("board");
  if (board) {
    sortable(board);
    var form = document.getElementById("filters");
    if (form) filters(form, board);
  }
  var curves = data("curves-data");
  if (curves && typeof uPlot !== "undefined") perFrame(curves);
  var log = data("log-data");
  if (log && typeof uPlot !== "undefined") trainingLog(log);
  samplePicks();
}());
