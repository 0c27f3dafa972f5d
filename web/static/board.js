/* The today board's live updates: every few seconds, fetch the live part of the board
   (/board/tiles with the page's own filters) and swap it in. An unchanged board is a 304
   (ETag). When updates fail, say so and grey the board out, so nobody trusts a stale one. */
(function () {
  "use strict";
  var live = document.getElementById("board-live");
  if (!live || !window.fetch) { return; }
  var src = live.getAttribute("data-src");
  var etag = live.getAttribute("data-etag") || "";
  var every = parseInt(live.getAttribute("data-poll-ms"), 10) || 3000;
  var updated = document.getElementById("board-updated");
  var notice = document.getElementById("board-notice");
  var found = updated ? updated.textContent.match(/\d\d:\d\d:\d\d/) : null;
  var lastTime = found ? found[0] : "";
  var busy = false;

  function succeeded(time) {
    // The time is the server's clock (which may be simulated), not the browser's.
    if (time) {
      lastTime = time;
      updated.textContent = updated.getAttribute("data-template").replace("%(time)s", time);
    }
    live.classList.remove("stale");
    notice.hidden = true;
  }

  function failed(signedOut) {
    live.classList.add("stale");
    var text = notice.getAttribute(signedOut ? "data-signed-out" : "data-offline");
    notice.textContent = text.replace("%(time)s", lastTime || "?");
    notice.hidden = false;
  }

  function editing() {
    // Do not swap the filter form out from under someone choosing a building.
    var active = document.activeElement;
    return active && live.contains(active) &&
      (active.tagName === "SELECT" || active.tagName === "INPUT");
  }

  function poll() {
    if (busy || document.hidden) { return; }
    busy = true;
    var ctrl = window.AbortController ? new AbortController() : null;
    var timer = ctrl ? setTimeout(function () { ctrl.abort(); }, every * 3) : null;
    fetch(src + window.location.search, {
      headers: { "If-None-Match": etag },
      cache: "no-store",
      credentials: "same-origin",
      redirect: "error",
      signal: ctrl ? ctrl.signal : undefined
    }).then(function (resp) {
      if (resp.status === 401) { throw { signedOut: true }; }
      if (resp.status !== 304 && !resp.ok) { throw new Error("HTTP " + resp.status); }
      var time = resp.headers.get("X-Board-Time");
      if (resp.status === 304) { return succeeded(time); }
      return resp.text().then(function (html) {
        // Someone is choosing in the filter form: try again at the next poll.
        if (editing()) { return; }
        live.innerHTML = html;
        etag = resp.headers.get("ETag") || "";
        succeeded(time);
      });
    }).catch(function (err) {
      failed(err && err.signedOut);
    }).then(function () {
      busy = false;
      if (timer) { clearTimeout(timer); }
    });
  }

  live.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el && el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) {
      el.form.submit();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { poll(); }
  });
  setInterval(poll, every);
}());
