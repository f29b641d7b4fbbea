// Paired judgments: two versions of one image at 1:1 pixels, side by side when the window holds both,
// otherwise in one place with a toggle (Space, or the buttons); answer Left / Right (keys Left/Right
// arrow or 1/2). Both versions (and the original, when shown) are decoded before the buttons work,
// so switching never flickers. Without JavaScript the form posts and the server answers with pages.
(function () {
  "use strict";
  var stage = document.getElementById("pair-stage");
  if (!stage) return;
  var form = document.getElementById("pair-form");
  var problemBox = document.getElementById("viewing-problem");
  var problemText = document.getElementById("viewing-message");
  var toggleBar = document.getElementById("toggle-bar");
  var showing = document.getElementById("showing");
  var views = ["left", "right"];
  if (document.getElementById("img-reference")) views.unshift("reference");
  var names = { reference: "Original", left: "Left", right: "Right" };
  var current = "left";
  var shownAt = null;
  var blocked = true;
  var busy = false;
  var toggles = 0;
  var preloaded = [];
  var FEEDBACK_MS = 1800;

  function imgs() {
    return views.map(function (v) { return document.getElementById("img-" + v); });
  }

  function refreshButtons() {
    form.querySelectorAll("button").forEach(function (b) { b.disabled = blocked || busy; });
  }

  function setBlocked(on, message) {
    blocked = on;
    if (problemBox) {
      problemBox.hidden = !on || !message;
      problemText.textContent = message || "";
    }
    refreshButtons();
  }

  function show(view) {
    current = view;
    views.forEach(function (v) {
      var frame = document.getElementById("frame-" + v);
      // visibility, not display: every version keeps its decoded image and its box, so a switch is
      // one repaint of already decoded pixels
      frame.classList.toggle("hidden-version", stage.dataset.layout === "toggle" && v !== view);
    });
    if (showing) showing.textContent = names[view];
  }

  // Side by side if every version fits at one image pixel per device pixel, else one at a time.
  function layout() {
    var all = imgs();
    if (!all.every(function (i) { return i.complete && i.naturalWidth; })) return;
    var dpr = window.devicePixelRatio || 1;
    var zoom = RaterPage.zoomProblem(dpr);
    if (zoom) { setBlocked(true, zoom); return; }
    all.forEach(function (i) {
      i.style.width = i.naturalWidth / dpr + "px";
      i.style.height = i.naturalHeight / dpr + "px";
    });
    stage.dataset.layout = "side";
    show(current);
    if (!all.every(RaterPage.fitsWindow)) {
      stage.dataset.layout = "toggle";
      show(current);
      if (!RaterPage.fitsWindow(document.getElementById("img-" + current))) {
        setBlocked(true, RaterPage.tooSmall(all[0].naturalWidth, all[0].naturalHeight));
        return;
      }
    }
    toggleBar.hidden = stage.dataset.layout !== "toggle";
    document.getElementById("layout").value = stage.dataset.layout;
    if (shownAt === null) shownAt = performance.now();
    setBlocked(false);
  }

  function toggle(to) {
    if (stage.dataset.layout !== "toggle") return;
    var next = to || views[(views.indexOf(current) + 1) % views.length];
    if (next !== current) toggles += 1;
    show(next);
  }

  function preload(urls) {
    (urls || []).forEach(function (url) {
      if (!url) return;
      var i = new Image();
      i.src = url;
      preloaded.push(i);
    });
    while (preloaded.length > 6) preloaded.shift();
  }

  function whenLoaded() {
    var all = imgs();
    var pending = all.filter(function (i) { return !(i.complete && i.naturalWidth); });
    if (pending.length) setBlocked(true, "");
    layout();
  }

  function showNext(data) {
    blocked = true;
    shownAt = null;
    toggles = 0;
    refreshButtons();
    document.getElementById("item-token").value = data.item;
    var label = (data.practice ? "Practice pair " : "Pair ") + data.number + " of " + data.total;
    document.getElementById("progress-text").textContent = label;
    var bar = document.getElementById("progress-bar");
    bar.value = data.done;
    bar.max = data.total;
    bar.textContent = data.done + " of " + data.total;
    document.title = label;
    current = "left";
    views.forEach(function (v) {
      var url = data.images[v];
      if (url) document.getElementById("img-" + v).src = url;
    });
    whenLoaded();
    preload(data.next_images);
  }

  // After a practice pair the answer is told for a moment before the next pair appears.
  function send(choice) {
    document.getElementById("response-ms").value = shownAt === null ? "" : Math.round(performance.now() - shownAt);
    document.getElementById("toggles").value = toggles;
    busy = true;
    refreshButtons();
    RaterPage.post(form, { choice: choice }, function (data) {
      RaterPage.tell(data, FEEDBACK_MS, function () {
        busy = false;
        if (data.redirect) { window.location.assign(data.redirect); return; }
        showNext(data);
      });
    }, function (message) {
      busy = false;
      setBlocked(true, message);
    });
  }

  form.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (blocked || busy) { event.preventDefault(); return; }
    if (window.fetch && window.FormData && button && button.value) {
      event.preventDefault();
      send(button.value);
    }
  });
  document.querySelectorAll("[data-show]").forEach(function (b) {
    b.addEventListener("click", function () { toggle(b.getAttribute("data-show")); });
  });
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.repeat) return;
    var choice = { ArrowLeft: "left", "1": "left", ArrowRight: "right", "2": "right" }[event.key];
    if (event.key === " " || event.key === "t" || event.key === "T") {
      event.preventDefault();
      toggle();
      return;
    }
    if (!choice) return;
    event.preventDefault();
    if (blocked || busy) return;
    form.querySelector('button[value="' + choice + '"]').click();
  });
  imgs().forEach(function (i) { i.addEventListener("load", whenLoaded); });
  window.addEventListener("resize", layout);
  if (window.visualViewport) window.visualViewport.addEventListener("resize", layout);
  whenLoaded();
  preload((stage.getAttribute("data-next") || "").split(" "));
  window.addEventListener("pageshow", function (e) { if (e.persisted) window.location.reload(); });
})();
