// Progressive enhancement only: every page works without this file.
// A region marked data-live="URL" is refreshed from URL (the same page's fragment) every
// few seconds while the tab is visible, so a person's click appears without a reload.
"use strict";
(function () {
  function refresh(region) {
    if (document.hidden) { return; }
    fetch(region.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        // A session that ended answers with the sign-in page: go there, do not embed it.
        if (r.redirected) { window.location.assign(r.url); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== region.dataset.last) {
          region.dataset.last = html;
          region.innerHTML = html;
        }
      })
      .catch(function () {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (region) {
      var every = parseInt(region.dataset.every || "5", 10) * 1000;
      window.setInterval(function () { refresh(region); }, every);
    });
  });
})();
