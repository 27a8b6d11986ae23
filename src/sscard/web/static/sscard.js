/* What every page needs beyond htmx (session 22's browser probe):
   - a request that got no answer (a dropped connection, a timeout, a 5xx) is said so, where it is heard:
     whether it was done is unknown, and the same button is the safe way to find out (its form carries
     its key: the server answers the first result, never doing it twice), a reload and a redo are not;
   - after htmx swaps in a step, focus goes where the work continues (the PIN pad, the confirm button, the
     refusal, the result), not back to the top of the page. */
(function () {
  "use strict";
  var FOCUS = ["[autofocus]", "[data-action=confirm]", "[role=alert]", "[data-result]", "input:not([type=hidden])"];

  function box() {
    return document.getElementById("net-status");
  }

  function lost(event) {
    var status = box();
    if (!status) return;
    status.className = "msg error";
    status.setAttribute("role", "alert");  // (given when shown: an alert that appears is announced)
    status.hidden = false;
    status.textContent = status.getAttribute("data-lost");
    status.focus();
  }

  document.addEventListener("htmx:sendError", lost);
  document.addEventListener("htmx:timeout", lost);
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr || xhr.status >= 500) lost(event);  // a 4xx is an answer: the page says what it was
  });
  document.addEventListener("htmx:beforeRequest", function () {
    var status = box();
    if (status) { status.hidden = true; status.textContent = ""; status.removeAttribute("role"); status.className = ""; }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || !target.querySelector || target.id !== "desk") return;
    for (var i = 0; i < FOCUS.length; i++) {
      var found = target.querySelector(FOCUS[i]);
      if (found) {
        if (!/^(INPUT|BUTTON|SELECT|TEXTAREA|A)$/.test(found.tagName)) found.setAttribute("tabindex", "-1");
        found.focus();
        return;
      }
    }
  });
})();
