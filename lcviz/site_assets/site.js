// lcviz course site: plotly figures, the code toggle and the search box. Runs offline.
"use strict";

function drawPlotlyFigures() {
  for (const div of document.querySelectorAll(".lcviz-plotly")) {
    const figure = JSON.parse(div.nextElementSibling.textContent);
    // no button that would send the figure to a plotly server: the site talks to no other host
    const config = Object.assign({}, figure.config || {}, {
      responsive: true, displaylogo: false, showLink: false, showSendToCloud: false,
      showEditInChartStudio: false});
    delete config.plotlyServerURL;
    window.Plotly.newPlot(div, figure.data || [], figure.layout || {}, config);
  }
}

function setUpCodeToggle() {
  const button = document.getElementById("lcviz-toggle-code");
  if (!button) return;
  button.addEventListener("click", () => {
    const blocks = [...document.querySelectorAll("details.lcviz-code")];
    const open = !blocks.every((block) => block.open);
    blocks.forEach((block) => { block.open = open; });
    button.textContent = open ? "Hide all code" : "Show all code";
  });
}

function setUpSearch() {
  const input = document.getElementById("lcviz-search");
  const list = document.getElementById("lcviz-search-results");
  const entries = (window.LCVIZ_SEARCH || []).map((e) => ({...e, lower: (e.h + " " + e.t).toLowerCase()}));
  const show = () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    list.replaceChildren();
    if (!words.length) return;
    const hits = entries.filter((e) => words.every((w) => e.lower.includes(w))).slice(0, 20);
    if (!hits.length) {
      list.append(Object.assign(document.createElement("li"), {className: "none", textContent: "no match"}));
      return;
    }
    for (const hit of hits) {
      const item = document.createElement("li");
      const link = Object.assign(document.createElement("a"), {href: hit.u, textContent: hit.h});
      const at = Math.max(0, hit.t.toLowerCase().indexOf(words[0]) - 40);
      const snippet = Object.assign(document.createElement("span"), {className: "snippet",
        textContent: (at ? "…" : "") + hit.t.slice(at, at + 110) + "…"});
      item.append(link, snippet);
      list.append(item);
    }
  };
  input.addEventListener("input", show);
}

window.addEventListener("DOMContentLoaded", () => {
  if (window.Plotly) drawPlotlyFigures();
  setUpCodeToggle();
  setUpSearch();
});
