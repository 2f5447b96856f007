/* Starts Redoc on the element that names the OpenAPI document (no inline script). */
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-spec-url"), { hideDownloadButton: false }, root);
});
