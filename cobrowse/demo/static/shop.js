// Fernwood shop: small progressive enhancements.
// Loads HTML fragments (reviews, journal teasers) with fetch() into any
// element that has a data-fragment-src attribute.
(function () {
  "use strict";

  function loadFragment(slot) {
    var src = slot.getAttribute("data-fragment-src");
    fetch(src, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        var tpl = document.createElement("template");
        tpl.innerHTML = html; // same-origin HTML, escaped server-side
        slot.replaceChildren(tpl.content);
        slot.setAttribute("data-fragment-loaded", "");
      })
      .catch(function () {
        var p = document.createElement("p");
        p.className = "muted";
        p.textContent = "This section could not be loaded. Please refresh the page.";
        slot.replaceChildren(p);
      });
  }

  document.querySelectorAll("[data-fragment-src]").forEach(loadFragment);
})();
