/* qdqtool engine page: draws the views of #qdq-data (layers coloured by output precision, edges by tensor
   precision), segment by segment as the layout worker answers; header, legend, search, details, zoom and pan.
   body[data-state] is "ready" once every box and edge of the shown view is drawn; body[data-errors] collects
   script errors (the browser tests read both). */
(function () {
  "use strict";
  var body = document.body;
  function recordError(text) { body.dataset.errors = (body.dataset.errors || "") + text + "\n"; }
  window.addEventListener("error", function (e) { recordError("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { recordError("rejection: " + e.reason); });

  var DATA = JSON.parse(document.getElementById("qdq-data").textContent);
  var BOX = QDQ_BOX;
  // one colour per precision: box fill, text colour, edge stroke. Not-INT8 reads warm and dark at a glance.
  var PALETTE = {
    "int8": {fill: "#c8e6c9", text: "#1b3d1d", edge: "#2e7d32", label: "INT8"},
    "fp16": {fill: "#fb8c00", text: "#ffffff", edge: "#ef6c00", label: "FP16"},
    "bf16": {fill: "#ad1457", text: "#ffffff", edge: "#ad1457", label: "BF16"},
    "fp32": {fill: "#d32f2f", text: "#ffffff", edge: "#c62828", label: "FP32"},
    "float": {fill: "#e64a19", text: "#ffffff", edge: "#d84315", label: "float (FP32/FP16)"},
    "fp8": {fill: "#80cbc4", text: "#00332e", edge: "#00897b", label: "FP8"},
    "fp4": {fill: "#b2dfdb", text: "#00332e", edge: "#00897b", label: "FP4"},
    "int32": {fill: "#90caf9", text: "#0d2a4a", edge: "#1e88e5", label: "INT32"},
    "int64": {fill: "#90caf9", text: "#0d2a4a", edge: "#1e88e5", label: "INT64"},
    "bool": {fill: "#90caf9", text: "#0d2a4a", edge: "#1e88e5", label: "BOOL"},
    "unknown": {fill: "#eeeeee", text: "#424242", edge: "#9e9e9e", label: "unknown"}
  };
  var MARK_TEXT = {"qdq": "Reformat (Q/DQ)", "input-quantize": "input quantizer", "layout": "layout Reformat",
                   "convert": "type Reformat", "float-add": "float Add", "float-concat": "float Concat",
                   "diff": "differs from the prediction"};
  var BADGE = {"quantize": "Q", "dequantize": "DQ", "input-quantize": "in Q", "layout": "layout",
               "convert": "convert"};
  function colour(p) { return PALETTE[p] || PALETTE.unknown; }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; });
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- page frame: header, legend, tabs, search, details
  var header = el("header", {id: "header"});
  var main = el("div", {id: "main"});
  var stage = el("div", {id: "stage"});
  var details = el("aside", {id: "details"}, "Hover or click a box for its reason, scales and fix.");
  // the precision strip: every layer in execution order as one line of its colour (click: go there)
  var strip = el("canvas", {id: "strip", width: 18, height: 600, title: "layers in execution order, by precision"});
  main.appendChild(strip); main.appendChild(stage); main.appendChild(details);
  body.appendChild(header); body.appendChild(main);
  header.appendChild(el("h1", {}, DATA.title));
  var tabs = el("nav", {id: "tabs"});
  var stats = el("div", {id: "stats"});
  var tools = el("div", {id: "tools"});
  var search = el("input", {id: "search", type: "search", placeholder: "search node or tensor name (Enter: next)"});
  var found = el("span", {id: "found"});
  [["fit", "fit"], ["top", "top"], ["zoom-in", "+"], ["zoom-out", "\u2212"]].forEach(function (b) {
    var button = el("button", {id: b[0], type: "button"}, b[1]);
    tools.appendChild(button);
  });
  tools.insertBefore(found, tools.firstChild); tools.insertBefore(search, tools.firstChild);
  header.appendChild(tabs); header.appendChild(stats); header.appendChild(tools);
  var legend = el("div", {id: "legend"});
  header.appendChild(legend);
  var diffList = null;
  if (DATA.differences.length) {
    diffList = el("details", {id: "differences"});
    diffList.appendChild(el("summary", {}, DATA.differences.length + " ONNX nodes where the prediction and the engine differ"));
    var list = el("ol", {});
    DATA.differences.forEach(function (d) {
      var item = el("li", {"data-node": d.node}, d.node + ": " + d.what + " differs: engine " + d.expected + "; predicted " + d.predicted);
      item.addEventListener("click", function () { focusNode(d.node); });
      list.appendChild(item);
    });
    diffList.appendChild(list);
    header.appendChild(diffList);
  }

  // ---- views: one svg each, drawn when first shown
  var views = DATA.views.map(function (view, v) {
    var name = view.label === view.source ? view.label : view.label + " (" + view.source + ")";
    var tab = el("button", {type: "button", "data-view": v, "class": "tab"}, name);
    tab.addEventListener("click", function () { show(v); });
    tabs.appendChild(tab);
    return {data: view, index: v, tab: tab, svg: null, pos: [], drawn: false, k: 1, tx: 0, ty: 0, width: 0, height: 0};
  });
  var current = null;

  function statsOf(view) {
    var d = view.data, counts = {};
    d.layers.forEach(function (l) { counts[l.precision] = (counts[l.precision] || 0) + 1; });
    stats.textContent = "";
    var line = el("div", {"class": "counts"});
    line.appendChild(el("b", {}, d.layers.length + " layers"));
    Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; }).forEach(function (p) {
      var chip = el("span", {"class": "chip", "data-precision": p}, colour(p).label + " " + counts[p]);
      chip.style.background = colour(p).fill; chip.style.color = colour(p).text;
      line.appendChild(chip);
    });
    var kinds = {"qdq": 0, "input-quantize": 0, "layout": 0, "convert": 0}, reformats = 0;
    d.layers.forEach(function (l) {
      if (l.marks.indexOf("reformat") < 0) return;
      reformats += 1;
      l.marks.forEach(function (m) { if (m in kinds) kinds[m] += 1; });
    });
    var parts = Object.keys(kinds).filter(function (k) { return kinds[k]; }).map(function (k) {
      return {"qdq": "Q/DQ", "input-quantize": "input", "layout": "layout", "convert": "type"}[k] + " " + kinds[k]; });
    line.appendChild(el("span", {"class": "plain", id: "reformats", "data-count": reformats},
                        "Reformat layers " + reformats + (parts.length ? " (" + parts.join(", ") + ")" : "")));
    var cov = d.coverage[1] ? (100 * d.coverage[0] / d.coverage[1]).toFixed(1) + "%" : "n/a";
    line.appendChild(el("span", {"class": "plain", id: "coverage",
      title: "ONNX nodes in layers computing INT8, out of the nodes of every compute layer (fused or float)"},
      "INT8 coverage " + cov + " (" + d.coverage[0] + "/" + d.coverage[1] + " nodes)"));
    stats.appendChild(line);
    var gates = el("div", {"class": "gates"});
    Object.keys(d.gates).forEach(function (g) {
      var n = d.gates[g];
      gates.appendChild(el("span", {"class": "gate " + (n > 0 ? "fail" : "pass"), "data-gate": g, "data-count": n},
                           g + " " + n));
    });
    stats.appendChild(gates);
    if (d.notes.length || !d.tensors_known) {
      var notes = d.notes.slice();
      if (!d.tensors_known) notes.push("no tensor names: boxes follow the execution order");
      stats.appendChild(el("div", {"class": "notes"}, notes.join("; ")));
    }
  }

  function legendOf(view) {
    legend.textContent = "";
    var seen = {};
    view.data.layers.forEach(function (l) { seen[l.precision] = true; });
    Object.keys(PALETTE).forEach(function (p) {
      if (!seen[p] && ["int8", "fp16", "fp32", "unknown"].indexOf(p) < 0) return;
      var item = el("span", {"class": "key", "data-precision": p, "data-colour": colour(p).fill});
      var sw = el("i", {}); sw.style.background = colour(p).fill; item.appendChild(sw);
      item.appendChild(document.createTextNode(colour(p).label));
      legend.appendChild(item);
    });
    ["qdq", "input-quantize", "layout", "float-add", "diff"].forEach(function (m) {
      if (m === "diff" && !DATA.differences.length) return;
      var item = el("span", {"class": "key mark m-" + m}, m === "float-add" ? "float Add / Concat" : MARK_TEXT[m]);
      legend.appendChild(item);
    });
  }

  function show(v) {
    var view = views[v];
    views.forEach(function (other) {
      other.tab.classList.toggle("on", other === view);
      if (other.svg) other.svg.style.display = other === view ? "" : "none";
    });
    current = view;
    statsOf(view); legendOf(view); paintStrip(view);
    if (!view.svg) draw(view); else if (view.drawn) body.dataset.state = "ready";
  }
  window.qdqShowView = show;

  // ---- layout: one job per segment, answered in order by a worker (or here, in slices, if workers are refused)
  function jobsOf(view) {
    var d = view.data, chainOf = {};
    view.chainOf = chainOf;
    var jobs = d.segments.map(function (segment, s) {
      segment.forEach(function (chain, c) { chain.forEach(function (i, k) { chainOf[i] = [s, c, k]; }); });
      return {index: s, chains: segment.map(function (chain) { return chain.length; }), links: [], keys: {}};
    });
    d.edges.forEach(function (e) {
      var a = chainOf[e[0]], b = chainOf[e[1]];
      if (!a || !b || a[0] !== b[0] || a[1] === b[1]) return;
      var job = jobs[a[0]], key = a[1] + ">" + b[1];
      if (!(key in job.keys)) { job.keys[key] = job.links.length; job.links.push([a[1], b[1]]); }
    });
    return jobs;
  }

  // identical segments (repeated blocks) are laid out once; distinct ones are shared among up to 4 workers
  function startLayout(jobs, onResult) {
    var unique = [], sharing = {};
    jobs.forEach(function (j) {
      var key = JSON.stringify([j.chains, j.links]);
      if (!(key in sharing)) { sharing[key] = []; unique.push({index: unique.length, key: key, chains: j.chains, links: j.links}); }
      sharing[key].push(j.index);
    });
    function answer(r) {
      sharing[unique[r.index].key].forEach(function (index) {
        onResult({index: index, width: r.width, height: r.height, centres: r.centres, paths: r.paths});
      });
    }
    var count = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2, Math.ceil(unique.length / 8)));
    var workers = [];
    try {
      var source = document.getElementById("qdq-layout-lib").textContent + "\n" +
        document.getElementById("qdq-layout").textContent +
        "\nonmessage = function (m) { m.data.forEach(function (job) { postMessage(qdqLayout(job)); }); };";
      var url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
      for (var w = 0; w < count; w++) workers.push(new Worker(url));
    } catch (err) { workers = []; }
    var plain = unique.map(function (j) { return {index: j.index, chains: j.chains, links: j.links}; });
    function onPage(share) {   // in slices of 30 ms, so the page stays responsive
      var next = 0;
      (function slice() {
        var until = performance.now() + 30;
        while (next < share.length && performance.now() < until) answer(qdqLayout(share[next++]));
        if (next < share.length) setTimeout(slice, 0);
      })();
    }
    var distinct = unique.length + " distinct of " + jobs.length + " segments";
    if (!workers.length) { onPage(plain); return "page, " + distinct; }
    var size = Math.ceil(plain.length / workers.length);
    workers.forEach(function (worker, w) {
      var share = plain.slice(w * size, (w + 1) * size);   // contiguous: the top is laid out (and drawn) first
      worker.onmessage = function (m) { answer(m.data); };
      worker.onerror = function (e) {   // a worker that cannot start or fails: its share is laid out here
        e.preventDefault();
        recordError("layout worker: " + e.message);
        onPage(share);
      };
      worker.postMessage(share);
    });
    return "worker x" + workers.length + ", " + distinct;
  }

  var SVGNS = "http://www.w3.org/2000/svg";
  function draw(view) {
    body.dataset.state = "drawing";
    var started = performance.now();
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", "view"); svg.setAttribute("id", "view-" + view.index);
    var vp = document.createElementNS(SVGNS, "g"); vp.setAttribute("class", "viewport");
    var edgeLayer = document.createElementNS(SVGNS, "g"); edgeLayer.setAttribute("class", "edges");
    var boxLayer = document.createElementNS(SVGNS, "g"); boxLayer.setAttribute("class", "boxes");
    vp.appendChild(edgeLayer); vp.appendChild(boxLayer); svg.appendChild(vp); stage.appendChild(svg);
    view.svg = svg; view.vp = vp;
    var d = view.data, jobs = jobsOf(view), results = [], nextSegment = 0, y = 0, widest = BOX.width;
    view.pos = new Array(d.layers.length);
    view.bands = [];
    if (!jobs.length) return finish();
    view.mode = startLayout(jobs, function (result) {
      results[result.index] = result;
      while (results[nextSegment]) {
        placeSegment(results[nextSegment]);
        nextSegment += 1;
      }
      if (nextSegment === jobs.length && !view.drawn) finish();
    });

    function placeSegment(r) {
      var segment = d.segments[r.index], x0 = -r.width / 2, html = [];
      segment.forEach(function (chain, c) {
        var centre = r.centres[c], top = y + centre[1] - (chain.length * BOX.pitch - (BOX.pitch - BOX.height)) / 2;
        chain.forEach(function (i, k) {
          var px = Math.round(x0 + centre[0] - BOX.width / 2), py = Math.round(top + k * BOX.pitch);
          view.pos[i] = [px, py];
          html.push(boxMarkup(d.layers[i], i, px, py));
        });
      });
      r.x0 = x0; r.y0 = y;
      view.bands.push([y, y + r.height]);
      widest = Math.max(widest, r.width);
      y += r.height + BOX.pitch;
      boxLayer.insertAdjacentHTML("beforeend", '<g class="segment" data-s="' + r.index + '">' + html.join("") + "</g>");
    }

    function finish() {
      svg.dataset.layoutMs = Math.round(performance.now() - started);
      var bySegment = d.segments.map(function () { return []; });
      d.edges.forEach(function (e) { bySegment[view.chainOf[e[0]][0]].push(edgeMarkup(view, e, jobs, results)); });
      edgeLayer.insertAdjacentHTML("beforeend", bySegment.map(function (paths, s) {
        return '<g class="segment" data-s="' + s + '">' + paths.join("") + "</g>"; }).join(""));
      view.groups = d.segments.map(function (_, s) {
        return svg.querySelectorAll('g.segment[data-s="' + s + '"]'); });
      view.shown = d.segments.map(function () { return true; });
      view.width = widest; view.height = y;
      view.drawn = true;
      view.renderMs = Math.round(performance.now() - started);
      svg.dataset.renderMs = view.renderMs; svg.dataset.layout = view.mode || "none";
      initialView(view);
      if (current === view) body.dataset.state = "ready";
    }
  }

  // the compute nodes of a fused layer (its weight and Q/DQ nodes left out), else the layer's name
  var LABEL_CHARS = 30;   // what fits in a box at 12 px
  var QDQ_OPS = {"QuantizeLinear": 1, "DequantizeLinear": 1, "weight": 1, "": 1};
  function shortName(layer) {
    if (BADGE[layer.role]) return layer.name;
    var compute = layer.nodes.filter(function (n, k) { return !(layer.ops[k] in QDQ_OPS) && !/weight$/.test(n); });
    if (!compute.length) return layer.name;
    var label = compute.join(" + ");   // long paths: their last two parts ("/model.2/cv1/conv/Conv" -> "conv/Conv")
    return label.length <= LABEL_CHARS ? label : compute.map(function (n) { return n.split("/").slice(-2).join("/"); }).join(" + ");
  }

  function boxMarkup(layer, i, x, y) {
    var c = colour(layer.precision), marks = layer.marks.map(function (m) { return " m-" + m; }).join("");
    var badge = BADGE[layer.role] ? BADGE[layer.role] + " \u00b7 " : "";
    var flags = layer.marks.indexOf("float-add") >= 0 || layer.marks.indexOf("float-concat") >= 0 ? "\u26a0 " : "";
    var label = flags + badge + shortName(layer);
    var count = layer.nodes.length > 1 ? " (" + layer.nodes.length + ")" : "";
    if (label.length + count.length > LABEL_CHARS) label = label.slice(0, LABEL_CHARS - 1 - count.length) + "\u2026";
    return '<g class="box p-' + esc(layer.precision) + " r-" + esc(layer.role) + marks + '" data-i="' + i +
      '" data-precision="' + esc(layer.precision) + '" data-role="' + esc(layer.role) + '" data-marks="' +
      esc(layer.marks.join(" ")) + '" transform="translate(' + x + "," + y + ')">' +
      '<rect class="halo" x="-7" y="-7" width="' + (BOX.width + 14) + '" height="' + (BOX.height + 14) + '" rx="9"/>' +
      '<rect class="body" width="' + BOX.width + '" height="' + BOX.height + '" rx="' + (BADGE[layer.role] ? 17 : 4) +
      '" fill="' + c.fill + '"/><text x="10" y="22" fill="' + c.text + '">' + esc(label + count) + "</text></g>";
  }

  function edgeMarkup(view, e, jobs, results) {
    var a = view.pos[e[0]], b = view.pos[e[1]];
    if (!a || !b) return "";
    var x1 = a[0] + BOX.width / 2, y1 = a[1] + BOX.height, x2 = b[0] + BOX.width / 2, y2 = b[1], path;
    var ca = view.chainOf[e[0]], cb = view.chainOf[e[1]];
    if (ca[0] === cb[0] && ca[1] !== cb[1]) {
      var job = jobs[ca[0]], r = results[ca[0]], pts = r.paths[job.keys[ca[1] + ">" + cb[1]]] || [];
      var inner = pts.slice(1, -1).map(function (p) { return " L" + Math.round(r.x0 + p[0]) + " " + Math.round(r.y0 + p[1]); });
      path = "M" + x1 + " " + y1 + inner.join("") + " L" + x2 + " " + y2;
    } else {
      var mid = (y1 + y2) / 2;
      path = "M" + x1 + " " + y1 + " C" + x1 + " " + mid + " " + x2 + " " + mid + " " + x2 + " " + y2;
    }
    var p = e[3] || "unknown";
    return '<path class="edge e-' + esc(p) + (e[2] ? "" : " ordered") + '" data-tensor="' + esc(e[2]) +
      '" stroke="' + colour(p).edge + '" d="' + path + '"/>';
  }

  function paintStrip(view) {
    var layers = view.data.layers, h = strip.clientHeight || 600, ctx = strip.getContext("2d");
    strip.height = h;
    ctx.clearRect(0, 0, strip.width, h);
    var step = h / Math.max(1, layers.length);
    layers.forEach(function (l, i) {
      ctx.fillStyle = colour(l.precision).fill;
      ctx.fillRect(0, Math.floor(i * step), strip.width, Math.max(1, Math.ceil(step)));
    });
  }
  strip.addEventListener("click", function (e) {
    if (!current || !current.drawn) return;
    var i = Math.floor((e.offsetY / (strip.clientHeight || 1)) * current.data.layers.length);
    centreOn(Math.max(0, Math.min(current.data.layers.length - 1, i)));
  });

  // ---- zoom and pan
  function apply(view) {
    if (view.frame) return;
    view.frame = requestAnimationFrame(function () {
      view.frame = 0;
      view.vp.setAttribute("transform", "translate(" + view.tx + "," + view.ty + ") scale(" + view.k + ")");
      view.svg.classList.toggle("far", view.k < 0.45);
      cull(view);
    });
  }
  // segments more than a screen above or below the window are not drawn (display none): panning stays fluid
  function cull(view) {
    if (!view.groups) return;
    var h = stage.clientHeight || 800, top = (-view.ty - h) / view.k, bottom = (h - view.ty + h) / view.k;
    view.bands.forEach(function (band, s) {
      var shown = band[1] >= top && band[0] <= bottom;
      if (shown === view.shown[s]) return;
      view.shown[s] = shown;
      view.groups[s].forEach(function (g) { g.style.display = shown ? "" : "none"; });
    });
  }
  function fitWidth(view) {
    var w = stage.clientWidth || 1200;
    view.k = Math.min(1, (w - 40) / (view.width + 40));
    view.tx = w / 2; view.ty = 20; apply(view);
  }
  // the whole network when its boxes stay big enough to tell their colours apart, else its top at full width
  function initialView(view) {
    var w = stage.clientWidth || 1200, h = stage.clientHeight || 800;
    if (Math.min((w - 40) / (view.width + 40), (h - 40) / (view.height + 40)) >= 0.12) fitAll(view); else fitWidth(view);
  }
  function fitAll(view) {
    var w = stage.clientWidth || 1200, h = stage.clientHeight || 800;
    view.k = Math.min(1, (w - 40) / (view.width + 40), (h - 40) / (view.height + 40));
    view.tx = w / 2; view.ty = 20; apply(view);
  }
  function zoomAt(view, factor, cx, cy) {
    var k = Math.max(0.01, Math.min(4, view.k * factor));
    view.tx = cx - (cx - view.tx) * k / view.k; view.ty = cy - (cy - view.ty) * k / view.k; view.k = k;
    apply(view);
  }
  stage.addEventListener("wheel", function (e) {
    if (!current || !current.drawn) return;
    e.preventDefault();
    var rect = stage.getBoundingClientRect();
    if (e.ctrlKey || e.metaKey) zoomAt(current, Math.exp(-e.deltaY / 300), e.clientX - rect.left, e.clientY - rect.top);
    else { current.tx -= e.deltaX; current.ty -= e.deltaY; apply(current); }
  }, {passive: false});
  var drag = null;
  stage.addEventListener("mousedown", function (e) { if (current) drag = {x: e.clientX, y: e.clientY, moved: false}; });
  window.addEventListener("mousemove", function (e) {
    if (!drag || !current) return;
    current.tx += e.clientX - drag.x; current.ty += e.clientY - drag.y;
    drag.moved = drag.moved || Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 2;
    drag.x = e.clientX; drag.y = e.clientY; apply(current);
  });
  window.addEventListener("mouseup", function () { setTimeout(function () { drag = null; }, 0); });
  document.getElementById("fit").addEventListener("click", function () { if (current) fitAll(current); });
  document.getElementById("top").addEventListener("click", function () { if (current) fitWidth(current); });
  document.getElementById("zoom-in").addEventListener("click", function () { if (current) zoomAt(current, 1.4, stage.clientWidth / 2, stage.clientHeight / 2); });
  document.getElementById("zoom-out").addEventListener("click", function () { if (current) zoomAt(current, 1 / 1.4, stage.clientWidth / 2, stage.clientHeight / 2); });

  // ---- details on hover and click
  var pinned = null;
  function boxOf(target) { return target && target.closest ? target.closest("g.box") : null; }
  function describe(i) {
    var l = current.data.layers[i];
    details.textContent = "";
    details.appendChild(el("h2", {}, l.name));
    var c = colour(l.precision);
    var p = el("p", {"class": "chip"}, c.label + " \u00b7 " + l.role); p.style.background = c.fill; p.style.color = c.text;
    details.appendChild(p);
    l.marks.forEach(function (m) { if (MARK_TEXT[m]) details.appendChild(el("p", {"class": "mark-note m-" + m}, MARK_TEXT[m])); });
    function section(title, rows) {
      if (!rows.length) return;
      details.appendChild(el("h3", {}, title));
      var ul = el("ul", {});
      rows.forEach(function (r) { ul.appendChild(el("li", {}, r)); });
      details.appendChild(ul);
    }
    section("reason", l.reason ? [l.reason] : []);
    section("fix-residuals would", l.fix ? [l.fix] : []);
    section("scales", l.scales.map(function (s) { return s[0] + ": " + Number(s[1]).toPrecision(6); }));
    section("ONNX nodes", l.nodes.map(function (n, k) { return n + (l.ops[k] ? " (" + l.ops[k] + ")" : ""); }));
    section("inputs", l.inputs.map(function (t) { return (t[0] || "?") + " \u2014 " + t[1]; }));
    section("outputs", l.outputs.map(function (t) { return (t[0] || "?") + " \u2014 " + t[1]; }));
    DATA.differences.filter(function (d) { return l.nodes.indexOf(d.node) >= 0; }).forEach(function (d) {
      section("differs at " + d.node, ["engine: " + d.expected, "predicted: " + d.predicted]);
    });
  }
  stage.addEventListener("mouseover", function (e) {
    var g = boxOf(e.target);
    if (g && pinned === null) describe(+g.dataset.i);
  });
  stage.addEventListener("click", function (e) {
    if (drag && drag.moved) return;
    var g = boxOf(e.target);
    select(g ? +g.dataset.i : null);
  });
  function select(i) {
    if (!current) return;
    var old = current.svg.querySelector("g.box.selected");
    if (old) old.classList.remove("selected");
    pinned = i;
    if (i === null) return;
    var g = current.svg.querySelector('g.box[data-i="' + i + '"]');
    if (g) g.classList.add("selected");
    describe(i);
  }
  function centreOn(i) {
    var p = current.pos[i];
    if (!p) return;
    if (current.k < 0.6) current.k = 0.8;
    current.tx = stage.clientWidth / 2 - (p[0] + BOX.width / 2) * current.k;
    current.ty = stage.clientHeight / 2 - (p[1] + BOX.height / 2) * current.k;
    apply(current);
  }

  // ---- search by node, layer or tensor name
  var hits = [], hitAt = -1, lastQuery = "";
  function matches(l, q) {
    if (l.name.toLowerCase().indexOf(q) >= 0) return true;
    var names = l.nodes.concat(l.inputs.map(function (t) { return t[0]; }), l.outputs.map(function (t) { return t[0]; }));
    return names.some(function (n) { return n && n.toLowerCase().indexOf(q) >= 0; });
  }
  function runSearch(q) {
    current.svg.querySelectorAll("g.box.hit").forEach(function (g) { g.classList.remove("hit"); });
    hits = []; hitAt = -1; lastQuery = q;
    if (!q) { found.textContent = ""; return; }
    current.data.layers.forEach(function (l, i) { if (matches(l, q)) hits.push(i); });
    hits.forEach(function (i) {
      var g = current.svg.querySelector('g.box[data-i="' + i + '"]');
      if (g) g.classList.add("hit");
    });
    found.textContent = hits.length + " found";
    found.dataset.count = hits.length;
  }
  search.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !current || !current.drawn) return;
    var q = search.value.trim().toLowerCase();
    if (q !== lastQuery) runSearch(q);
    if (!hits.length) return;
    hitAt = (hitAt + 1) % hits.length;
    found.textContent = (hitAt + 1) + " / " + hits.length + " found";
    centreOn(hits[hitAt]); select(hits[hitAt]);
  });
  function focusNode(node) {
    if (!current) return;
    var i = current.data.layers.findIndex(function (l) { return l.nodes.indexOf(node) >= 0; });
    if (i >= 0) { centreOn(i); select(i); }
  }
  window.qdqMove = function (tx, ty, k) {   // for scripts and tests: the pan and zoom a drag or wheel would set
    if (!current) return;
    current.tx = tx; current.ty = ty; current.k = k; apply(current);
  };
  window.qdqSearch = function (q) { runSearch(String(q).toLowerCase()); return hits.slice(); };

  show(0);
})();
