/* qdqtool engine page: lays out one segment with dagre (runs in a Web Worker, or on the page when workers are
   refused). A job: {index, chains: [layer count per chain], links: [[chainA, chainB], ...]}; a chain is one dagre
   node as tall as its layers stacked at PITCH. The answer: {index, width, height, centres: [[x, y]], paths}. */
var QDQ_BOX = {width: 220, height: 34, pitch: 50};

function qdqLayout(job) {
  var g = new dagre.graphlib.Graph({multigraph: false});
  g.setGraph({rankdir: "TB", nodesep: 28, ranksep: 30, marginx: 0, marginy: 0});
  g.setDefaultEdgeLabel(function () { return {}; });
  job.chains.forEach(function (count, c) {
    g.setNode(String(c), {width: QDQ_BOX.width, height: count * QDQ_BOX.pitch - (QDQ_BOX.pitch - QDQ_BOX.height)});
  });
  job.links.forEach(function (link) { g.setEdge(String(link[0]), String(link[1])); });
  dagre.layout(g);
  var centres = job.chains.map(function (_, c) { var n = g.node(String(c)); return [n.x, n.y]; });
  var paths = job.links.map(function (link) {
    var e = g.edge(String(link[0]), String(link[1]));
    return e && e.points ? e.points.map(function (p) { return [Math.round(p.x), Math.round(p.y)]; }) : [];
  });
  var graph = g.graph();
  return {index: job.index, width: graph.width || QDQ_BOX.width, height: graph.height || QDQ_BOX.height,
          centres: centres, paths: paths};
}
