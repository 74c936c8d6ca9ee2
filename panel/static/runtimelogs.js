// Live follow of an app's runtime log: asks the API for the lines after the
// last one shown, every second, and appends them as text.
(function () {
  "use strict";
  var log = document.getElementById("runtime-log");
  if (!log) return;
  var state = document.getElementById("log-state");
  var project = log.getAttribute("data-project");
  var deployment = log.getAttribute("data-deployment");
  var after = parseInt(log.getAttribute("data-after"), 10) || 0;
  var limit = parseInt(log.getAttribute("data-limit"), 10) || 200;
  var maxShown = 5000; // lines kept on the page; older ones are removed

  function setState(text, live) {
    state.textContent = text;
    state.classList.toggle("is-live", live);
  }

  function append(lines) {
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    for (var i = 0; i < lines.length; i++) {
      var div = document.createElement("div");
      div.className = "ln";
      div.setAttribute("data-seq", String(lines[i].seq));
      div.textContent = lines[i].line.replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]/g, ""); // never innerHTML: app output is untrusted
      log.appendChild(div);
    }
    while (log.childElementCount > maxShown) log.removeChild(log.firstElementChild);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function notice(text) {
    var div = document.createElement("div");
    div.className = "ln notice";
    div.textContent = text;
    log.appendChild(div);
  }

  // Asked without a deployment: the answer is the live one's log (or the
  // newest's). When another deployment went live, its log follows from
  // its first line.
  function poll() {
    var url = "/api/projects/" + encodeURIComponent(project) + "/runtime-logs?after=" + after + "&limit=" + limit;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.json();
      })
      .then(function (body) {
        if (String(body.deployment_id) !== String(deployment)) {
          deployment = String(body.deployment_id);
          after = 0;
          notice("deployment " + deployment + " (build #" + body.build_id + ") is live now");
          setTimeout(poll, 0);
          return;
        }
        append(body.lines);
        after = body.next;
        setState("Live", true);
        // A full page means more is waiting: ask again at once.
        setTimeout(poll, body.lines.length >= limit ? 0 : 1000);
      })
      .catch(function (err) {
        setState("Reconnecting… (" + err.message + ")", false);
        setTimeout(poll, 3000);
      });
  }
  log.scrollTop = log.scrollHeight;
  poll();
})();
