// Keyboard shortcuts: 1 / 2 (1-9 where a question has more options) pick a caption, 0 can't tell,
// u (or Backspace) undoes the last answer.
// A same-origin file (the page's Content-Security-Policy allows script-src 'self' only).
(function () {
  "use strict";
  var sent = false;
  var keys = { "u": "undo", "U": "undo", "Backspace": "undo" };
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    var id = /^[0-9]$/.test(e.key) ? "choice-" + e.key : keys[e.key];
    var el = id && document.getElementById(id);
    if (el && !el.disabled) { e.preventDefault(); el.click(); }
  });
  // one answer per page: a second key press before the next page arrives is ignored
  document.addEventListener("submit", function (e) {
    if (sent) { e.preventDefault(); return; }
    sent = true;
  });
}());
