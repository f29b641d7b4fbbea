// Rater pages: 1:1 pixel display, viewing-condition checks, keys 1-5, one submission per page.
(function () {
  "use strict";
  var img = document.getElementById("stimulus");
  var problemBox = document.getElementById("viewing-problem");
  var problemText = document.getElementById("viewing-message");
  var forms = document.querySelectorAll("form[data-guard]");
  var shownAt = null;
  var blocked = false;
  var submitted = false;

  function setBlocked(on, message) {
    blocked = on;
    if (problemBox) {
      problemBox.hidden = !on;
      problemText.textContent = message || "";
    }
    document.querySelectorAll("form[data-guard] button").forEach(function (b) {
      b.disabled = on || submitted;
    });
  }

  // Show the image at exactly one image pixel per device pixel, and say what to fix when that is
  // impossible (browser zoom, OS scaling) or when the window cannot hold the whole image.
  function checkViewing() {
    if (!img || !img.naturalWidth) return;
    var dpr = window.devicePixelRatio || 1;
    var integral = Math.abs(dpr - Math.round(dpr)) < 0.001;
    if (!integral) {
      var percent = Math.round(100 / dpr * 100) / 100;
      setBlocked(true, "Your browser zoom or display scaling is " + Math.round(dpr * 100) + "%. " +
        "Images must be shown pixel for pixel: press Ctrl+0 (Cmd+0 on a Mac) to reset the zoom, " +
        "or zoom until this message disappears (about " + Math.round(percent) + "%).");
      return;
    }
    var cssWidth = img.naturalWidth / dpr;
    var cssHeight = img.naturalHeight / dpr;
    img.style.width = cssWidth + "px";
    img.style.height = cssHeight + "px";
    var rect = img.getBoundingClientRect();
    var fitsWidth = rect.left >= 0 && rect.right <= document.documentElement.clientWidth + 0.5;
    var fitsHeight = rect.top >= 0 && rect.bottom <= window.innerHeight + 0.5;
    if (!fitsWidth || !fitsHeight) {
      setBlocked(true, "The window is too small to show the whole image (" + img.naturalWidth + " x " +
        img.naturalHeight + " pixels). Please enlarge or maximise the window, or use full screen (F11).");
      return;
    }
    setBlocked(false);
  }

  function submitScore(value) {
    var form = document.getElementById("rating-form");
    if (!form || blocked || submitted) return;
    var button = form.querySelector('button[value="' + value + '"]');
    if (button) button.click();
  }

  forms.forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (blocked || submitted) { event.preventDefault(); return; }
      var ms = document.getElementById("response-ms");
      if (ms && shownAt !== null) ms.value = Math.round(performance.now() - shownAt);
      submitted = true;
      // Disable after the browser has collected the clicked button's value.
      setTimeout(function () { setBlocked(blocked); }, 0);
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key >= "1" && event.key <= "5") {
      event.preventDefault();
      submitScore(event.key);
    }
  });

  if (img) {
    var onShown = function () { shownAt = performance.now(); checkViewing(); };
    if (img.complete && img.naturalWidth) onShown(); else img.addEventListener("load", onShown);
    window.addEventListener("resize", checkViewing);
    if (window.visualViewport) window.visualViewport.addEventListener("resize", checkViewing);
    // Buttons stay disabled until the image is on screen and the conditions are checked.
    if (!(img.complete && img.naturalWidth)) setBlocked(true, "Loading the image...");
  }
  // A page restored from the back/forward cache must not keep a half-submitted state.
  window.addEventListener("pageshow", function (e) { if (e.persisted) window.location.reload(); });
})();
