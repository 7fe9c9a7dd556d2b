// A minimal websocket room relay with `ws`: the baseline bench/hub.py compares the sync hub against.
//
//   node bench/node/relay.mjs --port 9000 [--host 127.0.0.1] [--deflate]
//
// Visitors and agents connect to /room/<id>?role=visitor|agent. The message
// pattern matches the hub's: every frame a visitor sends goes, unchanged, to
// every agent of its room, and the visitor gets {"t":"ack","seq":N} back, N
// being the seq of the frame's last event (the frame is parsed as JSON for
// that, as the hub decodes it). On connecting, a visitor gets {"t":"welcome"}
// and an agent {"t":"joined"}, so a client knows it is in the room. Nothing
// else: no authentication, no buffer for late joiners, no validation.
//
// --deflate accepts permessage-deflate when a client offers it, with ws's
// default settings (frames under 1 KiB are still sent uncompressed).
// GET /health answers "ok".

import http from "node:http";
import { WebSocketServer } from "ws";

const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "9000"));
const deflate = args.includes("--deflate");

const rooms = new Map(); // id -> {agents: Set<WebSocket>, visitors: number}
const WELCOME = Buffer.from('{"t":"welcome"}');
const JOINED = Buffer.from('{"t":"joined"}');

function room(id) {
  let r = rooms.get(id);
  if (r === undefined) {
    r = { agents: new Set(), visitors: 0 };
    rooms.set(id, r);
  }
  return r;
}

function forget(id, r) {
  if (r.agents.size === 0 && r.visitors === 0) rooms.delete(id);
}

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
  } else {
    res.writeHead(404).end();
  }
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024, perMessageDeflate: deflate });

server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://relay");
  const m = /^\/room\/([^/]+)$/.exec(url.pathname);
  const role = url.searchParams.get("role");
  if (!m || (role !== "visitor" && role !== "agent")) {
    socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => (role === "visitor" ? visitor(ws, m[1]) : agent(ws, m[1])));
});

function visitor(ws, id) {
  const r = room(id);
  r.visitors += 1;
  ws.send(WELCOME);
  ws.on("message", (data, isBinary) => {
    for (const a of r.agents) a.send(data, { binary: isBinary });
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof frame.seq === "number" && Array.isArray(frame.ev)) {
      ws.send(`{"t":"ack","seq":${frame.seq + frame.ev.length - 1}}`);
    }
  });
  ws.on("close", () => {
    r.visitors -= 1;
    forget(id, r);
  });
  ws.on("error", () => {});
}

function agent(ws, id) {
  const r = room(id);
  r.agents.add(ws);
  ws.send(JOINED);
  ws.on("close", () => {
    r.agents.delete(ws);
    forget(id, r);
  });
  ws.on("error", () => {});
}

server.listen({ host, port, backlog: 4096 }, () => {
  console.error(`relay listening on ${host}:${port} (ws, permessage-deflate ${deflate ? "accepted" : "off"})`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    for (const ws of wss.clients) ws.terminate();
    server.close();
    process.exit(0);
  });
}
