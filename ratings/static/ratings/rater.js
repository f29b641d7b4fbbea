// Rater pages: 1:1 pixel display, viewing-condition checks, keys 1-5, one submission at a time.
// On the rating page, a score is sent with fetch and the next (already preloaded) image replaces the
// current one at once; without JavaScript the same form posts and the server answers with pages.
// After a training image the expected score is told for a moment before the next image appears.
(function () {
  "use strict";
  var img = document.getElementById("stimulus");
  var problemBox = document.getElementById("viewing-problem");
  var problemText = document.getElementById("viewing-message");
  var shownAt = null;
  var blocked = false;   // viewing conditions not met, or the image not on screen yet
  var busy = false;      // a submission is in flight
  var preloaded = [];
  var FEEDBACK_MS = 2500;

  function refreshButtons() {
    document.querySelectorAll("form[data-guard] button").forEach(function (b) {
      b.disabled = blocked || busy;
    });
  }

  function setBlocked(on, message) {
    blocked = on;
    if (problemBox) {
      problemBox.hidden = !on;
      problemText.textContent = message || "";
    }
    refreshButtons();
  }

  // Show the image at exactly one image pixel per device pixel, and say what to fix when that is
  // impossible (browser zoom, OS scaling) or when the window cannot hold the whole image.
  function checkViewing() {
    if (!img || !img.naturalWidth) return;
    var dpr = window.devicePixelRatio || 1;
    var zoom = RaterPage.zoomProblem(dpr);
    if (zoom) { setBlocked(true, zoom); return; }
    img.style.width = img.naturalWidth / dpr + "px";
    img.style.height = img.naturalHeight / dpr + "px";
    if (!RaterPage.fitsWindow(img)) { setBlocked(true, RaterPage.tooSmall(img.naturalWidth, img.naturalHeight)); return; }
    setBlocked(false);
  }

  function preload(url) {
    if (!url) return;
    var next = new Image();
    next.src = url;
    preloaded.push(next);
    if (preloaded.length > 3) preloaded.shift();
  }

  function onShown() {
    shownAt = performance.now();
    checkViewing();
  }

  function showNext(data) {
    // The next image was preloaded, so it is decoded from cache and appears at once. Buttons stay off
    // until it is on screen and the viewing conditions are checked again.
    blocked = true;
    refreshButtons();
    document.getElementById("item-token").value = data.item;
    var label = (data.training ? "Training image " : "Image ") + data.number + " of " + data.total;
    document.getElementById("progress-text").textContent = label;
    var bar = document.getElementById("progress-bar");
    bar.value = data.done;
    bar.max = data.total;
    bar.textContent = data.done + " of " + data.total;
    document.title = label;
    var unchanged = img.getAttribute("src") === data.image_url;
    img.src = data.image_url;
    if (unchanged || (img.complete && img.naturalWidth)) onShown();
    preload(data.next_url);
  }

  // The answer to a training image is told (the JSON answer's ``feedback``), then the next step shows.
  function sendScore(form, score) {
    var ms = document.getElementById("response-ms");
    if (ms && shownAt !== null) ms.value = Math.round(performance.now() - shownAt);
    busy = true;
    refreshButtons();
    RaterPage.post(form, { score: score }, function (data) {
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

  document.querySelectorAll("form[data-guard]").forEach(function (form) {
    // Browsers without SubmitEvent.submitter (Safari before 15.4) do not say which button submitted
    // the form: remember the last one clicked (mouse, keyboard or the keys 1-5, which click it).
    var clicked = null;
    form.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button") : null;
      if (button && button.type === "submit" && form.contains(button)) clicked = button;
    });
    form.addEventListener("submit", function (event) {
      var button = event.submitter || clicked;
      clicked = null;
      if (blocked || busy) { event.preventDefault(); return; }
      if (form.hasAttribute("data-fetch") && window.fetch && window.FormData) {
        event.preventDefault();
        if (button && button.value) sendScore(form, button.value);
        return;
      }
      busy = true;
      setTimeout(refreshButtons, 0);  // after the browser has read the clicked button's value
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.repeat) return;
    var form = document.getElementById("rating-form");
    if (!form || !(event.key >= "1" && event.key <= "5")) return;
    event.preventDefault();
    if (blocked || busy) return;
    var button = form.querySelector('button[value="' + event.key + '"]');
    if (button) button.click();
  });

  if (img) {
    img.addEventListener("load", onShown);
    if (img.complete && img.naturalWidth) onShown(); else setBlocked(true, "Loading the image...");
    window.addEventListener("resize", checkViewing);
    if (window.visualViewport) window.visualViewport.addEventListener("resize", checkViewing);
    preload(img.getAttribute("data-next"));
  }
  // A page restored from the back/forward cache may show an item the session has left behind.
  window.addEventListener("pageshow", function (e) { if (e.persisted) window.location.reload(); });
})();
