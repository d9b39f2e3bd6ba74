// Live updates by short polling, and operator buttons. Plain JS, no build step.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  var notice = document.getElementById("notice");
  var tokenInput = document.getElementById("token");
  var pollMs = parseInt(document.body.getAttribute("data-poll-ms"), 10) || 2000;
  var busy = false;
  var last = main.innerHTML;

  tokenInput.value = sessionStorage.getItem("skynet-token") || "";
  tokenInput.addEventListener("change", function () { sessionStorage.setItem("skynet-token", tokenInput.value); });

  function refresh() {
    // Never swap the content while a button is being pressed: the click would be lost.
    if (busy || document.querySelector("button:active")) { return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    fetch(url.toString(), { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        if (html !== last) { main.innerHTML = html; last = html; }
        live.className = "";
      })
      .catch(function () { live.className = "down"; })
      .finally(function () { busy = false; });
  }

  function say(text, ok) { notice.textContent = text; notice.className = ok ? "ok" : "bad"; }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    var question = button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { return; }
    var headers = { "X-Skynet-Request": "1" };
    var token = tokenInput.value || sessionStorage.getItem("skynet-token");
    if (token) { headers["Authorization"] = "Bearer " + token; }
    button.disabled = true;
    fetch(button.getAttribute("data-action"), { method: "POST", headers: headers, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return [r.status, body]; }); })
      .then(function (answer) {
        var status = answer[0], body = answer[1];
        if (status === 202) { say((body.action || "action") + " requested by " + (body.actor || "you"), true); }
        else { say("refused (" + status + "): " + (body.error || ""), false); }
        refresh();
      })
      .catch(function (error) { say("request failed: " + error, false); })
      .finally(function () { button.disabled = false; });
  });

  window.setInterval(refresh, pollMs);
})();
