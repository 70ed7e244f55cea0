"use strict";
// Tabs, sorting, per-column filters and the "needs action" view of the Connections report.
// Cell text is only ever read (textContent) and rows only reordered or hidden: nothing from
// the data is turned into markup.
(function () {
  var onlyAction = false;
  var panels = Array.prototype.slice.call(document.querySelectorAll("section[role=tabpanel]"));

  function rowsOf(table) {
    return Array.prototype.slice.call(table.tBodies[0].rows);
  }

  function select(state) {
    document.querySelectorAll("nav [role=tab]").forEach(function (tab) {
      var chosen = tab.dataset.state === state;
      tab.setAttribute("aria-selected", chosen ? "true" : "false");
      document.getElementById("panel-" + tab.dataset.state).hidden = !chosen;
    });
  }

  function apply(panel) {
    var table = panel.querySelector("table");
    var filters = Array.prototype.slice.call(panel.querySelectorAll("input.filter"))
      .map(function (input) { return { col: Number(input.dataset.col), text: input.value.trim().toLowerCase() }; })
      .filter(function (f) { return f.text !== ""; });
    var shown = 0;
    rowsOf(table).forEach(function (row) {
      var visible = (!onlyAction || row.dataset.needsAction === "true") && filters.every(function (f) {
        return row.cells[f.col].textContent.toLowerCase().indexOf(f.text) !== -1;
      });
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    panel.querySelector(".shown-count").textContent = String(shown);
  }

  function compare(a, b, kind) {
    if (a === "" || b === "") { return a === b ? 0 : (a === "" ? 1 : -1); }
    if (kind === "number") { return Number(a) - Number(b); }
    return a < b ? -1 : (a > b ? 1 : 0);
  }

  function sort(button) {
    var th = button.parentNode;
    var table = th.closest("table");
    var col = Number(button.dataset.col);
    var descending = th.getAttribute("aria-sort") === "ascending";
    table.querySelectorAll("thead th[aria-sort]").forEach(function (other) { other.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var rows = rowsOf(table).map(function (row, index) { return { row: row, index: index }; });
    rows.sort(function (x, y) {
      var a = x.row.cells[col], b = y.row.cells[col];
      var kind = a.dataset.kind === "number" || b.dataset.kind === "number" ? "number" : "text";
      var va = a.dataset.sort, vb = b.dataset.sort;
      var order = compare(va, vb, kind);
      // Blanks stay last either way; ties keep their previous order.
      if (va !== "" && vb !== "" && descending) { order = -order; }
      return order || x.index - y.index;
    });
    var body = table.tBodies[0];
    rows.forEach(function (entry) { body.appendChild(entry.row); });
  }

  function showNeedsAction(on) {
    onlyAction = on;
    document.getElementById("only-action").hidden = !on;
    panels.forEach(apply);
    if (on) {
      var link = document.getElementById("needs-action-link");
      if (link && link.dataset.state) { select(link.dataset.state); }
    }
  }

  document.querySelectorAll("nav [role=tab]").forEach(function (tab) {
    tab.addEventListener("click", function () { select(tab.dataset.state); });
  });
  document.querySelectorAll("button.sort").forEach(function (button) {
    button.addEventListener("click", function () { sort(button); });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    input.addEventListener("input", function () { apply(input.closest("section")); });
  });
  document.getElementById("show-all").addEventListener("click", function () {
    if (location.hash === "#needs-action") { history.replaceState(null, "", location.pathname + location.search); }
    showNeedsAction(false);
  });
  window.addEventListener("hashchange", function () { showNeedsAction(location.hash === "#needs-action"); });
  if (location.hash === "#needs-action") { showNeedsAction(true); }
})();
