// Rater pages: 1:1 pixel display, viewing-condition checks, keys 1-5, one submission at a time.
// On the rating page, a score is sent with fetch and the next (already preloaded) image replaces the
// current one at once; without JavaScript the same form posts and the server answers with pages.
(function () {
  "use strict";
  var img = document.getElementById("stimulus");
  var problemBox = document.getElementById("viewing-problem");
  var problemText = document.getElementById("viewing-message");
  var shownAt = null;
  var blocked = false;   // viewing conditions not met, or the image not on screen yet
  var busy = false;      // a submission is in flight
  var preloaded = [];

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
    if (Math.abs(dpr - Math.round(dpr)) > 0.001) {
      setBlocked(true, "Your browser zoom or display scaling is " + Math.round(dpr * 100) + "%. " +
        "Images must be shown pixel for pixel: press Ctrl+0 (Cmd+0 on a Mac) to reset the zoom, " +
        "or zoom until this message disappears (about " + Math.round(100 / dpr) + "%).");
      return;
    }
    img.style.width = img.naturalWidth / dpr + "px";
    img.style.height = img.naturalHeight / dpr + "px";
    var rect = img.getBoundingClientRect();
    var fits = rect.left >= 0 && rect.top >= 0 &&
      rect.right <= document.documentElement.clientWidth + 0.5 && rect.bottom <= window.innerHeight + 0.5;
    if (!fits) {
      setBlocked(true, "The window is too small to show the whole image (" + img.naturalWidth + " x " +
        img.naturalHeight + " pixels). Please enlarge or maximise the window, or use full screen (F11).");
      return;
    }
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
    document.getElementById("progress-text").textContent = "Image " + data.number + " of " + data.total;
    var bar = document.getElementById("progress-bar");
    bar.value = data.done;
    bar.max = data.total;
    bar.textContent = data.done + " of " + data.total;
    document.title = "Image " + data.number + " of " + data.total;
    var unchanged = img.getAttribute("src") === data.image_url;
    img.src = data.image_url;
    if (unchanged || (img.complete && img.naturalWidth)) onShown();
    preload(data.next_url);
  }

  function showRefusal(message, continueUrl) {
    var main = document.getElementById("main");
    main.innerHTML = "";
    var page = document.createElement("div");
    page.className = "page";
    page.innerHTML = '<h1>Please note</h1><p class="error" role="alert" id="refusal"></p>' +
      '<p><a class="primary button" id="continue-link">Continue</a></p>';
    page.querySelector("#refusal").textContent = message;
    var link = page.querySelector("#continue-link");
    link.href = continueUrl;
    main.appendChild(page);
    link.focus();
  }

  function sendScore(form, score) {
    var ms = document.getElementById("response-ms");
    if (ms && shownAt !== null) ms.value = Math.round(performance.now() - shownAt);
    var body = new FormData(form);
    body.set("score", score);
    busy = true;
    refreshButtons();
    fetch(form.action || window.location.href, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Rating-Client": "fetch", "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (data) { return { status: response.status, data: data }; });
    }).then(function (result) {
      busy = false;
      var data = result.data;
      if (!data.ok) { showRefusal(data.message, data["continue"]); return; }
      if (data.redirect) { window.location.assign(data.redirect); return; }
      showNext(data);
    }).catch(function () {
      // Network trouble: nothing is known to be stored; reloading shows the item the server waits for
      // (a repeated score for an item already stored is recognised and stored once).
      busy = false;
      setBlocked(true, "The connection failed. Your answer may not have been saved: the page will reload.");
      setTimeout(function () { window.location.reload(); }, 1500);
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
