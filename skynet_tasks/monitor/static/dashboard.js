// Live updates on change, only while the tab is visible, and operator buttons. Plain JS, no build step.
//
// A visible tab long-polls /api/changes with the last token it saw; it re-fetches its page's main
// part when the token changes (and at least every AGE_MS, for the heartbeat ages the token leaves
// out). A hidden tab sends nothing at all: the poll in flight is aborted and no timer is left.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  var notice = document.getElementById("notice");
  var tokenInput = document.getElementById("token");
  var retryMs = parseInt(document.body.getAttribute("data-poll-ms"), 10) || 2000;
  var WAIT_S = 20;       // how long the server may hold a poll
  var AGE_MS = 30000;    // re-fetch at least this often, for the ages shown
  var busy = false;
  var last = main.innerHTML;
  var fetchedAt = Date.now();
  // The change token of what the page shows: the server's, taken before it read the env for this page.
  var seen = document.body.getAttribute("data-change-token") || "";
  var poll = null;       // the AbortController of the poll in flight
  var timer = null;

  tokenInput.value = sessionStorage.getItem("skynet-token") || "";
  tokenInput.addEventListener("change", function () { sessionStorage.setItem("skynet-token", tokenInput.value); });

  function refresh() {
    // Never swap the content while a button is being pressed (the click would be lost), nor while a deploy
    // form is open (what was typed would be).
    if (busy || document.hidden || document.querySelector("button:active, details.deploy[open]")) {
      return Promise.resolve();
    }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    return fetch(url.toString(), { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        if (html !== last) { main.innerHTML = html; last = html; }
        fetchedAt = Date.now();
        live.className = "";
      })
      .catch(function () { live.className = "down"; })
      .finally(function () { busy = false; });
  }

  function schedule(ms) {
    window.clearTimeout(timer);
    timer = document.hidden ? null : window.setTimeout(watch, ms);
  }

  function watch() {
    timer = null;
    if (document.hidden || poll) { return; }
    poll = new AbortController();
    // From the origin, never relative: a page opened as http://user:token@host/ would resolve a relative
    // URL with those credentials in it, and fetch refuses such a URL (the browser sends them anyway).
    var url = new URL("/api/changes", window.location.origin);
    url.searchParams.set("wait", seen ? WAIT_S : 0);
    url.searchParams.set("since", seen);
    fetch(url.toString(), { headers: { "Accept": "application/json" }, cache: "no-store", signal: poll.signal })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (answer) {
        poll = null;
        live.className = "";
        // A page without a token of its own (rendered elsewhere) re-fetches on the first answer.
        var changed = seen === "" || answer.token !== seen;
        seen = answer.token;
        var due = changed || Date.now() - fetchedAt >= AGE_MS;
        return (due ? refresh() : Promise.resolve()).then(function () { schedule(answer.retry_ms || 0); });
      })
      .catch(function (error) {
        poll = null;
        if (error && error.name === "AbortError") { return; }
        live.className = "down";
        schedule(retryMs);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      window.clearTimeout(timer);
      timer = null;
      if (poll) { poll.abort(); poll = null; }
    } else {
      // Back in view: what changed while hidden is shown at once, then watched again.
      refresh().then(function () { schedule(0); });
    }
  });

  function say(text, ok) { notice.textContent = text; notice.className = ok ? "ok" : "bad"; }

  function actionHeaders() {
    var headers = { "X-Skynet-Request": "1" };
    var token = tokenInput.value || sessionStorage.getItem("skynet-token");
    if (token) { headers["Authorization"] = "Bearer " + token; }
    return headers;
  }

  // A group's deploy form: its fields as JSON (an empty one keeps skynet.yml's), checked by the server.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-deploy]");
    if (!form) { return; }
    event.preventDefault();
    if (!window.confirm(form.getAttribute("data-confirm"))) { return; }
    var body = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name) { return; }
      if (field.type === "checkbox") { body[field.name] = field.checked; }
      else if (field.value.trim() !== "") { body[field.name] = field.value; }
    });
    var headers = actionHeaders();
    headers["Content-Type"] = "application/json";
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    // From the origin: a page opened with credentials in its URL cannot fetch a relative one (see watch).
    var url = new URL(form.getAttribute("data-deploy"), window.location.origin);
    fetch(url.toString(), { method: "POST", headers: headers, credentials: "same-origin", body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (answer) { return [r.status, answer]; }); })
      .then(function (answer) {
        var status = answer[0], result = answer[1];
        if (status === 202) {
          say("deploy of " + result.ref + " requested by " + result.actor + ": rollout " + result.rollout_id, true);
          form.reset();
          form.closest("details").open = false;
          refresh();
        } else { say("refused (" + status + "): " + (result.error || ""), false); }
      })
      .catch(function (error) { say("request failed: " + error, false); })
      .finally(function () { button.disabled = false; });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    var question = button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { return; }
    var headers = actionHeaders();
    button.disabled = true;
    var url = new URL(button.getAttribute("data-action"), window.location.origin);
    fetch(url.toString(), { method: "POST", headers: headers, credentials: "same-origin" })
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

  schedule(0);
})();
