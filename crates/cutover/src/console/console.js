// cutover console: keeps the live part of a page current. The server
// pushes a change (server-sent events); this fetches the page's live part
// again and swaps it in. EventSource reconnects by itself and sends
// Last-Event-ID, so the server replays what was missed. Nothing else here:
// every action is a plain form.
"use strict";
(function () {
  var live = document.getElementById("live");
  var banner = document.getElementById("conn");
  if (!live || !window.EventSource) { return; }
  var asOf = new Date();
  var pending = false;
  function refresh() {
    if (pending) { return; }
    pending = true;
    fetch(location.href, { headers: { "X-Console-Fragment": "live" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (t) { live.innerHTML = t; asOf = new Date(); live.dataset.asOf = asOf.toISOString(); })
      .catch(function () { down(); })
      .then(function () { pending = false; });
  }
  function down() {
    banner.textContent = "disconnected, data as of " + asOf.toISOString().replace("T", " ").slice(0, 19) + " UTC";
    banner.hidden = false;
  }
  var es = new EventSource(live.dataset.events);
  es.onopen = function () { banner.hidden = true; };
  es.onerror = down;
  es.addEventListener("change", refresh);
  es.addEventListener("reset", refresh);
})();
