// Where the model looked: show or hide the Grad-CAM layer over the X-ray and set its opacity
// (pneumonia_web/templates/_partials/heatmap.html), and the report's Print button.
// Delegated handlers: htmx swaps the controls in once the heatmap is ready. No inline scripts:
// the page's CSP allows only our own files.
(function () {
  "use strict";

  function layer() { return document.getElementById("heatmap-layer"); }

  function applyOpacity(range) {
    var img = layer();
    // A data attribute that app.css maps to an opacity: the page carries no style attributes
    // at all, whatever the CSP (style-src 'self') makes of them.
    if (img) { img.setAttribute("data-opacity", range.value); }
    var out = document.getElementById("heatmap-opacity-value");
    if (out) { out.textContent = range.value + " %"; }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "heatmap-toggle") {
      var img = layer();
      if (img) { img.hidden = !target.checked; }
      var range = document.getElementById("heatmap-opacity");
      if (range) { applyOpacity(range); }
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.id === "heatmap-opacity") { applyOpacity(event.target); }
  });

  document.addEventListener("click", function (event) {
    if (event.target.id === "print-button") { window.print(); }
  });
})();
