// The community clock in the page header keeps ticking between page loads, at the
// server clock's rate (faster in the demo, where a day passes in minutes).
(function () {
  var el = document.getElementById("clock");
  if (!el) return;
  var rate = parseFloat(el.dataset.rate || "0");
  if (!(rate > 0)) return;
  var start = parseInt(el.dataset.now, 10);
  var loaded = Date.now();
  var out = el.querySelector(".clock-time");
  var parts;
  try {
    parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: el.dataset.zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"
    });
  } catch (e) {
    return;
  }
  function tick() {
    var t = new Date(start + (Date.now() - loaded) * rate);
    var p = {};
    parts.formatToParts(t).forEach(function (x) { p[x.type] = x.value; });
    out.textContent = p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }
  setInterval(tick, rate > 30 ? 1000 : 15000);
})();
