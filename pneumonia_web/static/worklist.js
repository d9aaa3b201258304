// The worklist by keyboard: j or ArrowDown selects the next row, k or ArrowUp the previous
// one, Enter opens the selected result. Listens on the document, so the rows htmx swaps in
// after a filter or page change work too. Keys typed into the filters are left alone.
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("table.worklist tbody tr[data-row]"));
  }

  function select(list, index) {
    list.forEach(function (row) {
      row.classList.remove("is-current");
      row.removeAttribute("aria-selected");
    });
    var row = list[index];
    if (!row) return;
    row.classList.add("is-current");
    row.setAttribute("aria-selected", "true");
    row.focus();
    row.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest && target.closest("input, select, textarea, button, a, [contenteditable]")) return;
    var list = rows();
    if (!list.length) return;
    var index = list.findIndex(function (row) { return row.classList.contains("is-current"); });
    if (event.key === "j" || event.key === "ArrowDown") {
      select(list, Math.min(index + 1, list.length - 1));
    } else if (event.key === "k" || event.key === "ArrowUp") {
      select(list, Math.max(index - 1, 0));
    } else if (event.key === "Enter" && index >= 0) {
      list[index].querySelector("a.row-anchor").click();
    } else {
      return;
    }
    event.preventDefault();
  });
})();
