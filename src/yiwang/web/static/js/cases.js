// Case queues: live updates by server-sent events; a new or overdue case reloads the queue.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status || !window.EventSource) { return; }
  var source = new EventSource(status.getAttribute("data-stream"));
  var pending = null;
  source.addEventListener("case", function () {
    status.classList.add("changed");
    if (pending) { return; }
    pending = setTimeout(function () { window.location.reload(); }, 1500);
  });
})();
