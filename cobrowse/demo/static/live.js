// Fernwood shop: live "people browsing" counter and stock ticker.
// Talks to the /live websocket: sends {"type":"subscribe"} and then receives
// "hello", "presence" and "stock" messages. Reconnects with backoff.
(function () {
  "use strict";

  var FEED_MAX = 4;
  var retry = 0;
  var pingTimer = null;

  function stockLabel(n) {
    if (n <= 0) return ["Sold out", "stock stock-out"];
    if (n <= 5) return ["Only " + n + " left", "stock stock-low"];
    return [n + " in stock", "stock"];
  }

  function setStock(id, n, flash) {
    var label = stockLabel(n);
    document.querySelectorAll('[data-stock-for="' + id + '"]').forEach(function (el) {
      if (el.textContent === label[0]) return;
      el.textContent = label[0];
      el.className = label[1] + (flash ? " is-changed" : "");
      if (flash) setTimeout(function () { el.classList.remove("is-changed"); }, 1500);
    });
  }

  function setBrowsing(n) {
    n = Math.max(1, n);
    document.querySelectorAll("[data-live-browsing]").forEach(function (el) { el.textContent = String(n); });
    document.querySelectorAll("[data-live-people]").forEach(function (el) {
      el.textContent = n === 1 ? "person" : "people";
    });
  }

  function setLive(on) {
    document.querySelectorAll("[data-live-dot]").forEach(function (el) { el.classList.toggle("is-live", on); });
  }

  function addFeedItem(msg) {
    var feed = document.querySelector("[data-live-feed]");
    if (!feed) return;
    var empty = feed.querySelector(".live-feed-empty");
    if (empty) empty.remove();
    var li = document.createElement("li");
    li.className = "is-new";
    var img = document.createElement("img");
    img.src = msg.image;
    img.alt = "";
    var text = document.createElement("span");
    text.textContent = msg.event === "restocked"
      ? msg.name + " is back in stock"
      : "Someone just bought the " + msg.name;
    var time = document.createElement("time");
    var now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    li.append(img, text, time);
    feed.prepend(li);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(proto + "//" + location.host + "/live");
    ws.addEventListener("open", function () {
      retry = 0;
      setLive(true);
      ws.send(JSON.stringify({ type: "subscribe" }));
      pingTimer = setInterval(function () {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping", t: Date.now() }));
      }, 25000);
    });
    ws.addEventListener("message", function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "hello") {
        setBrowsing(msg.browsing);
        Object.keys(msg.stock || {}).forEach(function (id) { setStock(id, msg.stock[id], false); });
      } else if (msg.type === "presence") {
        setBrowsing(msg.browsing);
      } else if (msg.type === "stock") {
        setStock(msg.id, msg.stock, true);
        addFeedItem(msg);
      }
    });
    ws.addEventListener("close", function () {
      setLive(false);
      clearInterval(pingTimer);
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 1000 * Math.pow(2, retry - 1));
    });
  }

  if ("WebSocket" in window) connect();
})();
