// minivercel panel: confirmations and the live build log. Everything here is
// an enhancement: every form also works as a plain POST without script.
"use strict";

(function () {
  // --- Confirmations: forms with data-confirm ask first, in a <dialog>. ---
  var dialog = document.getElementById("confirm-dialog");
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    var typed = form.getAttribute("data-typed-confirm");
    if (typed !== null) {
      var input = form.querySelector("input[name=confirm]");
      if (input && input.value.trim() !== typed) {
        ev.preventDefault();
        input.setCustomValidity("Type " + typed + " to confirm.");
        input.reportValidity();
        return;
      }
    }
    var msg = form.getAttribute("data-confirm");
    if (msg === null || form.dataset.confirmed === "1") {
      busy(form);
      return;
    }
    ev.preventDefault();
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(msg)) { busy(form); form.submit(); }
      return;
    }
    document.getElementById("confirm-title").textContent = form.getAttribute("data-confirm-title") || "Are you sure?";
    document.getElementById("confirm-text").textContent = msg;
    var ok = document.getElementById("confirm-ok");
    ok.textContent = form.getAttribute("data-confirm-label") || "Confirm";
    ok.className = "btn " + (/delete|remove|cancel/i.test(ok.textContent) ? "btn-danger" : "btn-primary");
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue === "ok") {
        form.dataset.confirmed = "1";
        busy(form);
        form.submit(); // does not fire "submit" again
      }
    };
    dialog.showModal();
    ok.focus();
  });
  document.addEventListener("input", function (ev) {
    if (ev.target instanceof HTMLInputElement) ev.target.setCustomValidity("");
  });

  // A page restored from the back/forward cache must not keep a button
  // marked busy by the submission that left it.
  window.addEventListener("pageshow", function (ev) {
    if (!ev.persisted) return;
    document.querySelectorAll("[aria-busy]").forEach(function (b) { b.removeAttribute("aria-busy"); });
  });

  // busy marks a form's button while the request runs (an activation waits
  // for health checks), so it is not pressed twice.
  function busy(form) {
    var b = form.querySelector("button[type=submit], button:not([type])");
    if (b) { b.setAttribute("aria-busy", "true"); }
  }

  // --- Environment variables: an administrator's Reveal. ---
  // The value is fetched from the API only when asked for (the page never
  // holds it), shown as text, and put back to its masked form on a second
  // click. The session cookie authenticates the same-origin fetch.
  var envStatus = document.getElementById("env-status");
  document.querySelectorAll("button[data-reveal]").forEach(function (btn) {
    if (!window.fetch) return;
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var cell = document.getElementById(btn.getAttribute("aria-controls"));
      if (!cell) return;
      if (btn.getAttribute("aria-pressed") === "true") {
        cell.textContent = cell.getAttribute("data-masked");
        cell.classList.remove("is-revealed");
        btn.setAttribute("aria-pressed", "false");
        btn.textContent = "Reveal";
        return;
      }
      btn.setAttribute("aria-busy", "true");
      fetch(btn.getAttribute("data-reveal"), { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            if (!r.ok) throw new Error(body.error || ("the server answered " + r.status));
            return body;
          });
        })
        .then(function (body) {
          cell.textContent = body.value; // never innerHTML: values are untrusted
          cell.classList.add("is-revealed");
          btn.setAttribute("aria-pressed", "true");
          btn.textContent = "Hide";
          if (envStatus) envStatus.textContent = "";
        })
        .catch(function (err) {
          if (envStatus) envStatus.textContent = "Could not reveal the value: " + err.message;
        })
        .then(function () { btn.removeAttribute("aria-busy"); });
    });
  });
  // A revealed value must not survive in the back/forward cache.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("button[data-reveal][aria-pressed=true]").forEach(function (b) { b.click(); });
  });

  // --- The live build log. ---
  var log = document.getElementById("log");
  if (!log || log.getAttribute("data-live") !== "true") return;

  var buildID = Number(log.getAttribute("data-build-id"));
  var lastSeq = Number(log.getAttribute("data-last-seq")) || 0;
  var state = document.getElementById("log-state");
  var finished = false;
  var delay = 500; // reconnect backoff, doubled up to 15 s
  var ws = null;
  var ansi = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;

  log.scrollTop = log.scrollHeight;

  function setState(text, live) {
    state.textContent = text;
    state.classList.toggle("is-live", !!live);
  }

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 32;
  }

  // kind mirrors lineKind in pages.go.
  function kind(line) {
    if (line.indexOf("----->") === 0) return "ln ln-head";
    if (/^(error:|ERROR|npm ERR!)/.test(line)) return "ln ln-err";
    return "ln";
  }

  function append(seq, line) {
    if (seq <= lastSeq) return; // already shown: a replay after reconnecting
    var stick = atBottom();
    var div = document.createElement("div");
    line = String(line).replace(ansi, "");
    div.className = kind(line);
    div.setAttribute("data-seq", String(seq));
    div.textContent = line; // never innerHTML: log lines are untrusted
    log.appendChild(div);
    lastSeq = seq;
    log.setAttribute("data-last-seq", String(seq));
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function setStatus(status) {
    var holder = document.getElementById("build-status");
    var badge = holder && holder.querySelector(".badge");
    if (badge) {
      badge.className = "badge badge-" + status;
      badge.setAttribute("data-status", status);
      badge.querySelector(".badge-text").textContent = status.charAt(0).toUpperCase() + status.slice(1);
    }
    if (status === "succeeded" || status === "failed" || status === "canceled") {
      finished = true;
      var cancel = document.getElementById("cancel-form");
      if (cancel) cancel.hidden = true;
      setState("Finished", false);
      if (ws) ws.close();
      refreshDetails();
    }
  }

  // refreshDetails swaps in the finished build's header, details and error
  // from a fresh copy of this page (server-rendered, already escaped), so
  // its URL and duration appear without a reload that would lose the
  // reader's place in the log.
  function refreshDetails() {
    var fallback = function () { document.getElementById("log-finished").hidden = false; };
    if (!window.fetch || !window.DOMParser) { fallback(); return; }
    fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["build-head", "build-meta", "build-alert"].forEach(function (id) {
          var now = document.getElementById(id), next = doc.getElementById(id);
          if (now && next) now.replaceWith(document.importNode(next, true));
        });
      })
      .catch(fallback);
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var sock = new WebSocket(proto + "//" + location.host + "/ws");
    ws = sock;
    sock.onopen = function () {
      delay = 500;
      setState("Live", true);
      sock.send(JSON.stringify({ type: "subscribe_build", build_id: buildID, after_seq: lastSeq }));
    };
    sock.onmessage = function (ev) {
      if (sock !== ws) return;
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.build_id !== undefined && m.build_id !== buildID) return;
      switch (m.type) {
        case "log": append(m.seq, m.line); break;
        case "status": setStatus(m.status); break;
        case "dropped":
          // The server skipped lines for this slow reader: start over from
          // the last line shown, so the gap is filled from storage.
          sock.close();
          break;
        case "error": setState(m.error || "Error", false); break;
      }
    };
    sock.onclose = function () {
      if (sock !== ws || finished) return;
      ws = null;
      setState("Reconnecting…", false);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }
  connect();
})();
