// Optional: filter the evidence gallery and the flagged table by kind or name, sort tables by a
// column. The page is complete without it.
(function () {
  "use strict";
  var controls = document.getElementById("gallery-controls");
  if (controls) { controls.hidden = false; }
  var kind = document.getElementById("filter-kind");
  var text = document.getElementById("filter-text");
  function apply() {
    var k = kind ? kind.value : "";
    var t = text ? text.value.toLowerCase() : "";
    document.querySelectorAll("[data-kind]").forEach(function (el) {
      var ok = (!k || el.getAttribute("data-kind") === k) &&
               (!t || (el.getAttribute("data-name") || "").toLowerCase().indexOf(t) >= 0);
      el.hidden = !ok;
    });
  }
  if (kind) { kind.addEventListener("change", apply); }
  if (text) { text.addEventListener("input", apply); }
  document.querySelectorAll("table.sortable th").forEach(function (th, col) {
    th.tabIndex = 0;
    th.title = "sort by this column";
    function sort() {
      var table = th.closest("table"), body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      rows.sort(function (a, b) {
        var x = a.cells[index].getAttribute("data-sort") || a.cells[index].textContent;
        var y = b.cells[index].getAttribute("data-sort") || b.cells[index].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
})();
