/* What every page needs beyond htmx (session 22's browser probe):
   - a request that got no answer (a dropped connection, a timeout, a 5xx) is said so, where it is heard:
     whether it was done is unknown, and the same button is the safe way to find out (its form carries
     its key: the server answers the first result, never doing it twice), a reload and a redo are not;
   - after htmx swaps in a step, focus goes where the work continues (the PIN pad, the confirm button, the
     refusal, the result), not back to the top of the page;
   - while a form's request is out it is aria-busy, says "处理中…" and its buttons are disabled;
   - a refusal about a field is tied to it (aria-invalid, aria-describedby) and the field gets the focus;
   - a confirm step takes no Enter in its first moments (CONFIRM_PAUSE_MS), so a key pressed twice, or held,
     on the form before it does not confirm a step nobody has read (session 25's browser probe). */
(function () {
  "use strict";
  // where the focus goes after a swap into the bank's #desk or a container marked data-swap-focus (the portal's
  // loss panel): the first of these in it; [data-focus-default] is the step's own button, when nothing came
  var FOCUS = ["[autofocus]", "[data-action=confirm]", "[role=alert]", "[data-result]", "input:not([type=hidden])",
               "[data-focus-default]"];

  function box() {
    return document.getElementById("net-status");
  }

  function say(text) {
    var status = box();
    if (!status) return;
    status.className = "msg error";
    status.setAttribute("role", "alert");  // (given when shown: an alert that appears is announced)
    status.hidden = false;
    status.textContent = text;
    status.focus();
  }

  function lost(event) {
    var status = box();
    if (status) say(status.getAttribute("data-lost"));
  }

  // A 4xx that htmx does not swap (only a page of the site answers so: a stale page's token, a refusal page
  // of the frame or of a role): its message is said where a lost answer is, never nothing at all. The pages'
  // own refusals come as 2xx and are swapped in where the form is.
  function refused(xhr) {
    var page = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var alert = page.querySelector("main [role=alert]");
    var text = alert && alert.textContent.replace(/\s+/g, " ").trim();
    if (text) say(text);
  }

  document.addEventListener("htmx:sendError", lost);
  document.addEventListener("htmx:timeout", lost);
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr || xhr.status >= 500) lost(event);
    else refused(xhr);
  });
  // While a form's request is out (every htmx form): the form is aria-busy, a visible "处理中… / Working…"
  // says so next to its button, and its buttons are disabled, until the answer comes (or the lost-answer
  // alert above: then the same button is enabled again, the safe way to find out).
  function busyForm(event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.closest) return null;
    return elt.tagName === "FORM" ? elt : elt.closest("form");
  }

  function busy(form) {
    if (form.getAttribute("aria-busy") === "true") return;
    form.setAttribute("aria-busy", "true");
    var buttons = form.querySelectorAll("button, input[type=submit]");
    for (var i = 0; i < buttons.length; i++) {
      if (buttons[i].disabled) continue;
      buttons[i].setAttribute("data-busy-disabled", "");
      buttons[i].disabled = true;
    }
    var status = box();
    var note = document.createElement("span");
    note.className = "busy-note";
    // no role: the form's aria-busy says it to assistive technology; a live region added at this moment would
    // not be announced reliably, and it would stand before the answer's own role=status
    note.setAttribute("data-busy", "");
    note.textContent = (status && status.getAttribute("data-working")) || "…";
    var last = buttons.length ? buttons[buttons.length - 1] : null;
    if (last && last.parentNode) last.parentNode.insertBefore(note, last.nextSibling);
    else form.appendChild(note);
  }

  function idle(form) {
    form.removeAttribute("aria-busy");
    var buttons = form.querySelectorAll("[data-busy-disabled]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = false;
      buttons[i].removeAttribute("data-busy-disabled");
    }
    var notes = form.querySelectorAll("[data-busy]");
    for (var j = 0; j < notes.length; j++) notes[j].parentNode.removeChild(notes[j]);
  }

  document.addEventListener("htmx:beforeSend", function (event) {
    var form = busyForm(event);
    if (form) busy(form);
  });
  ["htmx:afterRequest", "htmx:sendError", "htmx:timeout", "htmx:sendAbort"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var form = busyForm(event);
      if (form) idle(form);
    });
  });

  document.addEventListener("htmx:beforeRequest", function () {
    var status = box();
    if (status) { status.hidden = true; status.textContent = ""; status.removeAttribute("role"); status.className = ""; }
  });
  // A refusal about a field (the shared refusal macro names it, pages.ERROR_FIELDS, and the form that was
  // sent): that field is marked aria-invalid, described by the message, and focused; every form of every page.
  function fieldOf(alert) {
    var names = (alert.getAttribute("data-error-for") || "").split(/\s+/).filter(Boolean);
    var sent = alert.getAttribute("data-error-form");
    var forms = Array.prototype.slice.call(document.forms), order = [];
    forms.forEach(function (f) { if (sent && f.getAttribute("action") === sent) order.push(f); });
    forms.forEach(function (f) { if (alert.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING) order.push(f); });
    order = order.concat(forms);
    for (var i = 0; i < order.length; i++) {
      for (var j = 0; j < names.length; j++) {
        var found = order[i].querySelector("[name='" + names[j] + "']:not([type=hidden])");
        if (found && !found.disabled) return found;
      }
    }
    return null;
  }

  // The refusal's words next to the field too (the alert above the form is what assistive technology reads:
  // aria-describedby; this copy is for the eye, where the clerk is looking), gone once the field is typed in.
  function atField(field, alert) {
    var next = field.nextElementSibling;
    if (next && next.hasAttribute("data-field-error")) next.parentNode.removeChild(next);
    var note = document.createElement("span");
    note.className = "field-error";
    note.setAttribute("data-field-error", "");
    note.setAttribute("aria-hidden", "true");
    note.textContent = alert.textContent.replace(/\s+/g, " ").trim();
    field.parentNode.insertBefore(note, field.nextSibling);
  }

  function tie(root) {
    var alerts = root.querySelectorAll ? root.querySelectorAll("[data-error-for]") : [];
    var first = null;
    for (var i = 0; i < alerts.length; i++) {
      var field = fieldOf(alerts[i]);
      if (!field || !alerts[i].id) continue;
      field.setAttribute("aria-invalid", "true");
      var ids = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      if (ids.indexOf(alerts[i].id) < 0) ids.unshift(alerts[i].id);
      field.setAttribute("aria-describedby", ids.join(" "));
      atField(field, alerts[i]);
      if (!first) first = field;
    }
    if (first) first.focus();
    return first;
  }

  function tieOnLoad() {
    var field = tie(document);
    if (!field) return;
    // an autofocus elsewhere on the page is applied after this script runs: the refused field keeps the focus
    window.addEventListener("load", function () { if (document.activeElement !== field) field.focus(); });
    setTimeout(function () { if (document.activeElement === document.body) field.focus(); }, 0);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", tieOnLoad);
  else tieOnLoad();
  document.addEventListener("input", function (event) {  // typed again: no longer the refused value
    var t = event.target;
    if (t && t.getAttribute && t.getAttribute("aria-invalid") === "true") {
      t.removeAttribute("aria-invalid");
      var note = t.nextElementSibling;
      if (note && note.hasAttribute("data-field-error")) note.parentNode.removeChild(note);
    }
  });

  // A form that is not htmx's (the window's forms, the logins, the portal's) is sent by the browser, which
  // leaves the page: while it is out the form is busy as an htmx form is (its buttons disabled, "处理中…"),
  // and a second Enter or click on it sends nothing (one request, however often pressed). A file it answers
  // with (a PDF, a CSV) leaves the page where it is: those forms are not held. Back to the page (the browser's
  // back-forward cache keeps it as it was left, busy) makes every form ready again.
  var SENT = "data-sent";
  function download(form) {
    return /\.(pdf|csv)(\?|$)/.test(form.getAttribute("action") || "") || form.hasAttribute("data-no-busy");
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.tagName !== "FORM" || event.defaultPrevented) return;
    if (form.hasAttribute("hx-post") || form.hasAttribute("hx-get") || download(form)) return;
    if (form.hasAttribute(SENT)) { event.preventDefault(); return; }
    form.setAttribute(SENT, "");
    // after this event: a button disabled now would not be sent with the form (its name=value)
    setTimeout(function () { if (form.hasAttribute(SENT)) busy(form); }, 0);
  });
  // What was typed, kept when a form is sent (this tab's sessionStorage, one draft), for the one case where the
  // page would lose it: the session had ended, the form was not done, and the login page came instead. After the
  // sign-in the app goes back to that page (the login's `next`), and the draft is put back into the same form,
  // once. Never a password, PIN or other secret field, never a token or a one-time key; any other page shown
  // after the form was sent (it was done) and signing out drop the draft.
  var DRAFT = "sscard:draft";
  var NEVER = /(pass|pin|secret|token|csrf|^op_key$|seal|^pan_ref$|^desk_ref$|^s$)/i;
  function keepable(el) {
    if (!el.name || el.disabled || NEVER.test(el.name) || el.hasAttribute("data-no-draft")) return false;
    if (el.tagName === "SELECT" || el.tagName === "TEXTAREA") return true;
    if (/^(password|hidden|file|submit|button|reset|image)$/i.test(el.type || "")) return false;
    return (el.getAttribute("autocomplete") || "").indexOf("password") < 0;
  }
  function store() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }
  function loginPage() { return /\/login\/?$/.test(location.pathname); }
  function keepDraft(form) {
    var s = store();
    if (!s || loginPage()) return;
    if (/\/logout$/.test(form.getAttribute("action") || "")) { s.removeItem(DRAFT); return; }
    var fields = [];
    for (var i = 0; i < form.elements.length; i++) {
      var el = form.elements[i];
      if (!keepable(el)) continue;
      if ((el.type === "checkbox" || el.type === "radio")) fields.push([el.name, el.value, el.checked]);
      else fields.push([el.name, el.value, null]);
    }
    s.setItem(DRAFT, JSON.stringify({page: location.pathname + location.search, action: form.getAttribute("action"),
                                     fields: fields, state: "sent"}));
  }
  function restoreDraft() {
    var s = store();
    var draft = null;
    try { draft = s && JSON.parse(s.getItem(DRAFT) || "null"); } catch (e) { draft = null; }
    if (!draft) return;
    if (loginPage()) {  // the form was not done: kept for the page the sign-in goes back to
      if (draft.state === "sent" && document.querySelector("[data-unsent]")) draft.state = "armed";
      if (draft.state !== "armed") { s.removeItem(DRAFT); return; }
      s.setItem(DRAFT, JSON.stringify(draft));
      return;
    }
    s.removeItem(DRAFT);  // shown once, or dropped: the form was done, or another page came
    if (draft.state !== "armed" || location.pathname + location.search !== draft.page) return;
    var form = null;
    for (var i = 0; i < document.forms.length; i++) {
      if (document.forms[i].getAttribute("action") === draft.action) { form = document.forms[i]; break; }
    }
    if (!form) return;
    var opened = form.closest && form.closest("details");
    if (opened) opened.open = true;
    draft.fields.forEach(function (f) {
      var els = form.querySelectorAll("[name='" + f[0].replace(/'/g, "") + "']");
      for (var j = 0; j < els.length; j++) {
        var el = els[j];
        if (!keepable(el)) continue;
        if (el.type === "checkbox" || el.type === "radio") { if (el.value === f[1]) el.checked = !!f[2]; }
        else if (f[2] === null) { el.value = f[1]; el.dispatchEvent(new Event("change", {bubbles: true})); }
      }
    });
    form.setAttribute("data-restored", "");
  }
  document.addEventListener("submit", function (event) {
    if (event.target && event.target.tagName === "FORM" && !event.defaultPrevented) keepDraft(event.target);
  }, true);
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = busyForm(event);
    if (form && (event.detail.requestConfig || {}).verb !== "get") keepDraft(form);
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", restoreDraft);
  else restoreDraft();

  window.addEventListener("pageshow", function () {
    var sent = document.querySelectorAll("form[" + SENT + "]");
    for (var i = 0; i < sent.length; i++) { sent[i].removeAttribute(SENT); idle(sent[i]); }
  });

  // A confirm step (last four digits, holder, amount in 大写) is there to be read: an Enter that reaches it
  // within CONFIRM_PAUSE_MS of its showing is the previous form's key pressed twice or held (the bank's
  // deposit amount: Enter, Enter made the deposit), and is dropped. A click is not: the mouse has moved.
  var CONFIRM_PAUSE_MS = 800, SHOWN = "data-shown-at", STEP = "section.confirm, [data-confirm-step]";
  function stamp(root) {
    var steps = root && root.querySelectorAll ? root.querySelectorAll(STEP) : [];
    for (var i = 0; i < steps.length; i++) if (!steps[i].hasAttribute(SHOWN)) steps[i].setAttribute(SHOWN, String(Date.now()));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { stamp(document); });
  else stamp(document);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !event.target || !event.target.closest) return;
    var step = event.target.closest(STEP);
    if (step && !step.hasAttribute(SHOWN)) step = null;
    if (step && (event.repeat || Date.now() - Number(step.getAttribute(SHOWN)) < CONFIRM_PAUSE_MS)) event.preventDefault();
  }, true);

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    // an outerHTML swap settles on the new element; the detail's target is the old one, out of the page
    if (target && !target.isConnected && event.target && event.target.isConnected) target = event.target;
    stamp(target);
    if (target && target.querySelector && tie(target)) return;
    if (!target || !target.querySelector || (target.id !== "desk" && !target.hasAttribute("data-swap-focus"))) return;
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
