// What every rater page with a stimulus shares (rater.js: one image scored; pair.js: two compared):
// the viewing-condition messages, the refusal page, and posting an answer with fetch.
(function () {
  "use strict";

  // The zoom or OS scaling is not a whole number of device pixels per image pixel: what to do.
  function zoomProblem(dpr) {
    if (Math.abs(dpr - Math.round(dpr)) <= 0.001) return null;
    return "Your browser zoom or display scaling is " + Math.round(dpr * 100) + "%. " +
      "Images must be shown pixel for pixel: press Ctrl+0 (Cmd+0 on a Mac) to reset the zoom, " +
      "or zoom until this message disappears (about " + Math.round(100 / dpr) + "%).";
  }

  function tooSmall(width, height) {
    return "The window is too small to show the whole image (" + width + " x " + height + " pixels). " +
      "Please enlarge or maximise the window, or use full screen (F11).";
  }

  function fitsWindow(el) {
    var rect = el.getBoundingClientRect();
    return rect.left >= 0 && rect.top >= 0 &&
      rect.right <= document.documentElement.clientWidth + 0.5 && rect.bottom <= window.innerHeight + 0.5;
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

  // Post the form (with ``extra`` fields set) and hand the JSON answer to ``onNext``; a refusal
  // replaces the page, a redirect is followed. On network trouble nothing is known to be stored:
  // the page reloads and shows the item the server waits for (a repeated answer is stored once).
  function post(form, extra, onNext, onFailure) {
    var body = new FormData(form);
    Object.keys(extra).forEach(function (k) { body.set(k, extra[k]); });
    fetch(form.action || window.location.href, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Rating-Client": "fetch", "Accept": "application/json" }
    }).then(function (response) {
      return response.json();
    }).then(function (data) {
      if (!data.ok) { showRefusal(data.message, data["continue"]); return; }
      if (data.redirect && !data.feedback) { window.location.assign(data.redirect); return; }
      onNext(data);
    }).catch(function () {
      onFailure("The connection failed. Your answer may not have been saved: the page will reload.");
      setTimeout(function () { window.location.reload(); }, 1500);
    });
  }

  // What the server told about the answer just given (training and practice items), shown in the
  // page's #feedback box for ``ms`` before ``then`` goes on; nothing told: on at once.
  function tell(data, ms, then) {
    var box = document.getElementById("feedback");
    if (!data.feedback || !box) { then(); return; }
    box.textContent = data.feedback;
    box.hidden = false;
    setTimeout(function () { box.hidden = true; then(); }, ms);
  }

  window.RaterPage = { zoomProblem: zoomProblem, tooSmall: tooSmall, fitsWindow: fitsWindow, post: post,
                       tell: tell };
})();
