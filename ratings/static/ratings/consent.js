// The viewing conditions stored with the consent (a file, not an inline script: the pages' CSP allows
// scripts from the site only): pixel ratio, window and screen in CSS pixels, and the signals the server
// tells the device type by (ratings.worker_checks.classify_device: a coarse primary pointer such as a
// finger, the touch points; the user agent comes with the request).
document.getElementById("dpr").value = window.devicePixelRatio || 1;
document.getElementById("viewport").value = window.innerWidth + "x" + window.innerHeight;
document.getElementById("screen").value = window.screen.width + "x" + window.screen.height;
document.getElementById("coarse-pointer").value =
  window.matchMedia && window.matchMedia("(pointer: coarse)").matches ? "1" : "0";
document.getElementById("touch-points").value = navigator.maxTouchPoints || 0;
