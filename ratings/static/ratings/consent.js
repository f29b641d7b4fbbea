// The viewing conditions stored with the consent (a file, not an inline script: the pages' CSP allows
// scripts from the site only).
document.getElementById("dpr").value = window.devicePixelRatio || 1;
document.getElementById("viewport").value = window.innerWidth + "x" + window.innerHeight;
