// Keeps "my exceptions" current without a reload: polls the page's JSON and, when the list
// changed, swaps in the server-rendered list. Never while the person is typing or has a form open.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch) { return; }
  var every = 15000;

  function busy() {
    return live.querySelector("details[open]") !== null ||
      (document.activeElement && live.contains(document.activeElement) &&
       /^(TEXTAREA|INPUT|SELECT)$/.test(document.activeElement.tagName));
  }

  function poll() {
    if (document.hidden || busy()) { return; }
    fetch(live.getAttribute("data-json"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        if (!doc || doc.version === live.getAttribute("data-version")) { return null; }
        return fetch(live.getAttribute("data-fragment"), {credentials: "same-origin",
                                                           headers: {"Accept": "text/html"}})
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (html === null || busy()) { return; }
            live.innerHTML = html;
            live.setAttribute("data-version", doc.version);
            var total = document.getElementById("total");
            if (total) { total.textContent = String(doc.total); }
          });
      })
      .catch(function () { /* the next poll tries again */ });
  }

  setInterval(poll, every);
  document.addEventListener("visibilitychange", poll);
}());
