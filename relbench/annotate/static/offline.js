// The offline page: answers live in localStorage (survive a reload) and leave only as a
// downloaded JSON file. Captions are set with textContent, never parsed as HTML. The page is
// one annotator's (the name is signed into its token) and holds no answer key: an item is an
// opaque id, an image and two captions.
(function () {
  "use strict";
  var P = JSON.parse(document.getElementById("plan").textContent);
  var KEY = "relbench-annotate-" + P.plan + "-" + P.export;
  var state = JSON.parse(localStorage.getItem(KEY) || "null") || { answers: [] };
  state.annotator = P.annotator;
  var $ = function (id) { return document.getElementById(id); };

  function save() { localStorage.setItem(KEY, JSON.stringify(state)); }
  function submission() {
    return { format: "relbench-annotations/2", plan: P.plan, export: P.export, token: P.token,
             annotator: state.annotator, answers: state.answers };
  }
  function show() {
    var n = state.answers.length, total = P.items.length;
    $("who").textContent = state.annotator;
    $("progress").textContent = n + " / " + total + " answered";
    $("bar").value = n;
    $("task").className = n < total ? "show" : "";
    $("finish").className = n >= total ? "show" : "";
    $("undo").disabled = n === 0;
    if (n < total) {
      var it = P.items[n];
      $("image").src = it.image;
      $("prompt").textContent = it.prompt || "Which caption matches the image?";
      var box = $("options");
      while (box.firstChild) box.removeChild(box.firstChild);
      it.captions.forEach(function (text, i) {  // textContent only: a caption is never HTML
        var b = document.createElement("button"), k = document.createElement("kbd"), t = document.createElement("span");
        b.type = "button"; b.id = "choice-" + (i + 1); b.className = "caption";
        k.textContent = String(i + 1); t.className = "text"; t.textContent = text;
        if (i < 9) { b.appendChild(k); b.appendChild(document.createTextNode(" ")); }
        b.appendChild(t);
        b.addEventListener("click", function () { answer(i + 1); });
        box.appendChild(b);
      });
    }
    var a = $("download");
    a.href = "data:application/json;charset=utf-8," + encodeURIComponent(JSON.stringify(submission()));
    a.download = "relbench-answers-" + P.plan + "-" + state.annotator + ".json";
  }
  function answer(choice) {
    var n = state.answers.length;
    if (n >= P.items.length) return;
    state.answers.push({ item: P.items[n].id, choice: choice, time: new Date().toISOString() });
    save(); show();
  }
  function undo() { if (state.answers.length) { state.answers.pop(); save(); show(); } }
  $("choice-0").addEventListener("click", function () { answer(0); });
  $("undo").addEventListener("click", undo);
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    var n = state.answers.length;
    if (/^[0-9]$/.test(e.key) && n < P.items.length && Number(e.key) <= P.items[n].captions.length) {
      e.preventDefault(); answer(Number(e.key));
    }
    else if (e.key === "u" || e.key === "U" || e.key === "Backspace") { e.preventDefault(); undo(); }
  });
  show();
}());
