// The sync hub benchmark's load generator: one Node process, `ws` clients, the same for every target.
//
//   node bench/node/loadgen.mjs CONFIG.json
//
// bench/hub.py writes CONFIG.json and reads what this prints on stdout, one JSON
// object a line: {"event": "ready" | "round_start" | "round_end" | "idle_ready" |
// "result" | "error", ...}. Progress goes to stderr.
//
// Pairs mode (config.pairs = N, config.targets = [...]): N visitor/agent pairs are
// set up on every target, then the targets take turns streaming, in rounds
// (A B B A A B ...), so that whatever else the machine does falls on both alike:
//   "cobrowse": visitors speak protocol v1 to <visitor_url> (hello, share, a small
//     full snapshot), then their agent connects to <agent_url> with the console
//     cookie, says agent_hello and joins the visitor's session by id; the agent's
//     replay (tab_rr, reset) ends the set-up.
//   "relay": visitor and agent of pair i connect to <relay_url>/room/<i>?role=...,
//     the visitor sends the same snapshot frame, the agent receives it.
// While its target streams, every visitor sends `rate` frames a second of one
// incremental event each,
//   {"t":"rr","seq":N,"ev":[{"type":3,"timestamp":...,"data":{"source":5,"text":"...","id":7,"sent":<ns>}}]}
// at evenly staggered phases (open loop: a late send is sent at once, never skipped).
// `sent` is this process's monotonic clock in ns; the agent's receive time minus it
// is the relay latency. Each agent checks that frames arrive in seq order, none
// missing, none twice; each visitor that every frame is acked.
//
// Idle mode (config.idle = N, one target): N visitors say hello and share (and,
// with idle_snapshot, send the snapshot) and then only hold their connections,
// until a line "stop" arrives on stdin (or stdin closes). No new connection is
// started after idle_timeout_s.

import fs from "node:fs";
import readline from "node:readline";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import WebSocket from "ws";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const T0 = process.hrtime.bigint();
const nowNs = () => Number(process.hrtime.bigint() - T0);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}
function progress(msg) {
  process.stderr.write(`loadgen: ${msg}\n`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// connections

class Conn {
  constructor(ws) {
    this.ws = ws;
    this.inbox = []; // parsed frames during set-up
    this.waiter = null;
    this.onFrame = null; // set when streaming starts
    this.closed = false;
    this.closeCode = null;
    this.other = {}; // frame type -> count, frames not expected while streaming
    ws.on("message", (data) => {
      if (this.onFrame !== null) {
        this.onFrame(data);
        return;
      }
      let frame;
      try {
        frame = JSON.parse(data);
      } catch {
        frame = { t: "<not json>" };
      }
      this.inbox.push(frame);
      if (this.waiter) this.waiter();
    });
    ws.on("close", (code) => {
      this.closed = true;
      this.closeCode = code;
      if (this.waiter) this.waiter();
    });
    ws.on("error", () => {});
  }

  // The first frame matching `pred` (frames before it stay in the inbox).
  next(pred, what, timeoutMs = 20000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.inbox.findIndex(pred);
        if (i >= 0) {
          const [frame] = this.inbox.splice(i, 1);
          cleanup();
          resolve(frame);
          return true;
        }
        const err = this.inbox.find((f) => f.t === "error");
        if (err) {
          cleanup();
          reject(new Error(`waiting for ${what}: error frame ${JSON.stringify(err)}`));
          return true;
        }
        if (this.closed) {
          cleanup();
          reject(new Error(`waiting for ${what}: closed (${this.closeCode})`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`waiting for ${what}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiter = null;
      };
      if (!check()) this.waiter = check;
    });
  }

  send(obj) {
    this.ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
  }

  countOther(frame) {
    const t = typeof frame.t === "string" ? frame.t : "<other>";
    this.other[t] = (this.other[t] || 0) + 1;
  }
}

function connect(url, headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers,
      perMessageDeflate: Boolean(config.deflate),
      handshakeTimeout: 20000,
      maxPayload: 64 * 1024 * 1024,
    });
    const conn = new Conn(ws);
    ws.once("open", () => resolve(conn));
    ws.once("unexpected-response", (req, res) => {
      reject(new Error(`handshake answered ${res.statusCode}`));
      ws.terminate();
    });
    ws.once("error", (e) => reject(new Error(`connect: ${e.code || e.message}`)));
  });
}

// ---------------------------------------------------------------------------
// frames

const SNAPSHOT_DOM = {
  node: {
    type: 0, id: 1, childNodes: [
      { type: 1, name: "html", publicId: "", systemId: "", id: 2 },
      { type: 2, tagName: "html", attributes: { lang: "en" }, id: 3, childNodes: [
        { type: 2, tagName: "head", attributes: {}, id: 4, childNodes: [
          { type: 2, tagName: "title", attributes: {}, id: 5, childNodes: [{ type: 3, textContent: "Bench", id: 6 }] },
        ] },
        { type: 2, tagName: "body", attributes: {}, id: 8, childNodes: [
          { type: 2, tagName: "input", attributes: { type: "text", name: "q", value: "" }, id: 7, childNodes: [] },
        ] },
      ] },
    ],
  },
  initialOffset: { left: 0, top: 0 },
};

function snapshotFrame(url) {
  const ts = Date.now();
  return JSON.stringify({
    t: "rr", seq: 0, ev: [
      { type: 4, timestamp: ts, data: { href: url, width: 1280, height: 800 } },
      { type: 2, timestamp: ts, data: SNAPSHOT_DOM },
    ],
  });
}

const TEXT = "typed into the search box";

function eventFrame(seq) {
  // Hand-built: one JSON.stringify per frame would be much of the generator's own cost.
  return `{"t":"rr","seq":${seq},"ev":[{"type":3,"timestamp":${Date.now()},"data":{"source":5,` +
    `"text":"${TEXT} ${seq}","isChecked":false,"id":7,"sent":${nowNs()}}}]}`;
}

// ---------------------------------------------------------------------------
// targets and pairs

const FIRST_SEQ = 2; // the snapshot is seq 0 (Meta) and 1 (FullSnapshot)
const LOOP_RESOLUTION_MS = 10;
const SLOW_MS = 20; // frames slower than this are grouped into stalls

class Target {
  constructor(spec) {
    Object.assign(this, spec); // name, kind, urls, headers
    this.pairs = [];
    this.windows = []; // [startNs, endNs) of the measured parts of its rounds
    this.latencies = []; // ms: frames sent inside a window, at their agent
    this.slow = []; // [receiveNs, ms] of those that took longer than SLOW_MS
    this.ackLatencies = []; // ms: frames sent inside a window, acked to their visitor
    this.sendLag = []; // ms: how late the generator sent each frame of a window
    this.windowSent = 0;
    this.windowReceived = 0; // receipts that happened inside a window
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.setupS = 0;
  }

  inWindow(t) {
    const w = this.windows;
    for (let i = w.length - 1; i >= 0; i--) if (t >= w[i][0] && t < w[i][1]) return true;
    return false;
  }
}

class Pair {
  constructor(target, i) {
    this.target = target;
    this.i = i;
    this.visitor = null;
    this.agent = null;
    this.session = null;
    this.seq = FIRST_SEQ; // next seq to send
    this.sent = 0;
    this.expect = FIRST_SEQ; // next seq the agent should receive
    this.received = 0;
    this.outOfOrder = 0; // frames past the one expected (some went missing)
    this.duplicates = 0; // frames before it (seen already)
    this.acked = FIRST_SEQ - 1; // highest seq acked
    this.pendingAcks = []; // [seq, sentNs] of frames not yet acked, oldest first
    this.ready = false;
    this.error = null;
    this.timer = null;
  }
}

function room(base, i, role) {
  return `${base}/room/${i}?role=${role}`;
}

async function setUpPair(p, idle) {
  const t = p.target;
  const url = `http://bench.example/page/${p.i}`;
  const hello = { t: "hello", v: 1, visitor: `bench-visitor-${p.i}`, tab: `bench-tab-${p.i}`, url, title: "Bench" };
  if (t.kind === "cobrowse") {
    p.visitor = await connect(t.visitor_url, t.visitor_headers || {});
    const v = p.visitor;
    v.send(hello);
    await v.next((f) => f.t === "welcome", "welcome");
    v.send({ t: "share", name: `bench ${p.i}` });
    const shared = await v.next((f) => f.t === "shared", "shared");
    p.session = shared.session;
    if (idle && !config.idle_snapshot) return; // idle visitors: hello and share, then nothing
    v.send(snapshotFrame(url));
    await v.next((f) => f.t === "ack" && f.seq === 1, "snapshot ack");
    if (idle) return;
    p.agent = await connect(t.agent_url, t.agent_headers || {});
    const a = p.agent;
    a.send({ t: "agent_hello", v: 1 });
    await a.next((f) => f.t === "welcome", "agent welcome");
    a.send({ t: "join", session: p.session });
    await a.next((f) => f.t === "joined", "joined");
    const replay = await a.next((f) => f.t === "tab_rr", "replay");
    if (!replay.reset || replay.seq !== 0 || replay.ev.length !== 2) {
      throw new Error(`unexpected replay: seq ${replay.seq}, ${replay.ev.length} events, reset ${replay.reset}`);
    }
    return;
  }
  p.visitor = await connect(room(t.relay_url, p.i, "visitor"), {});
  const v = p.visitor;
  await v.next((f) => f.t === "welcome", "welcome");
  if (idle) {
    // The same first frames as a cobrowse visitor; the relay forwards them to nobody.
    v.send(hello);
    v.send({ t: "share", name: `bench ${p.i}` });
    if (!config.idle_snapshot) return;
    v.send(snapshotFrame(url));
    await v.next((f) => f.t === "ack" && f.seq === 1, "snapshot ack");
    return;
  }
  p.agent = await connect(room(t.relay_url, p.i, "agent"), {});
  await p.agent.next((f) => f.t === "joined", "joined");
  v.send(snapshotFrame(url));
  await v.next((f) => f.t === "ack" && f.seq === 1, "snapshot ack");
  const replay = await p.agent.next((f) => f.t === "rr", "snapshot");
  if (replay.seq !== 0 || replay.ev.length !== 2) throw new Error("unexpected snapshot frame at the agent");
}

// Sets up the pairs, `concurrency` at a time; none is started after `deadline` (performance.now() ms).
async function setUpAll(pairs, concurrency, idle, deadline = Infinity) {
  let next = 0;
  let done = 0;
  const started = performance.now();
  let lastReport = started;
  async function worker() {
    while (next < pairs.length && performance.now() < deadline) {
      const p = pairs[next++];
      try {
        await setUpPair(p, idle);
        p.ready = true;
      } catch (e) {
        p.error = String(e.message || e);
      }
      done++;
      const now = performance.now();
      if (now - lastReport > 5000) {
        lastReport = now;
        progress(`set up ${done}/${pairs.length}`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, pairs.length) }, worker));
  return { seconds: (performance.now() - started) / 1000, notStarted: pairs.length - next };
}

function summarizeErrors(pairs) {
  const counts = {};
  for (const p of pairs) if (!p.ready && p.error) counts[p.error] = (counts[p.error] || 0) + 1;
  return counts;
}

// ---------------------------------------------------------------------------
// streaming

function streamHandlers(p) {
  const t = p.target;
  const dataType = t.kind === "cobrowse" ? "tab_rr" : "rr";
  p.agent.onFrame = (data) => {
    const now = nowNs();
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      p.agent.countOther({ t: "<not json>" });
      return;
    }
    if (f.t !== dataType) {
      p.agent.countOther(f);
      return;
    }
    const n = f.ev.length;
    if (f.seq !== p.expect) {
      if (f.seq < p.expect) p.duplicates++;
      else p.outOfOrder++;
    }
    p.expect = Math.max(p.expect, f.seq + n);
    p.received += n;
    if (t.inWindow(now)) t.windowReceived += n;
    for (let k = 0; k < n; k++) {
      const sent = f.ev[k].data && f.ev[k].data.sent;
      if (typeof sent === "number" && t.inWindow(sent)) {
        const ms = (now - sent) / 1e6;
        t.latencies.push(ms);
        if (ms > SLOW_MS) t.slow.push([now, ms]);
      }
    }
  };
  p.visitor.onFrame = (data) => {
    const now = nowNs();
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      p.visitor.countOther({ t: "<not json>" });
      return;
    }
    if (f.t !== "ack") {
      p.visitor.countOther(f);
      return;
    }
    p.acked = Math.max(p.acked, f.seq);
    const q = p.pendingAcks;
    let k = 0;
    while (k < q.length && q[k][0] <= f.seq) {
      if (t.inWindow(q[k][1])) t.ackLatencies.push((now - q[k][1]) / 1e6);
      k++;
    }
    if (k) q.splice(0, k);
  };
}

let measuring = null; // the target whose window is open

function startSending(target, rate) {
  const interval = 1000 / rate;
  const live = target.pairs.filter((p) => p.ready);
  const start = performance.now() + 20;
  live.forEach((p, idx) => {
    const phase = (idx / live.length) * interval;
    let k = 0;
    const tick = () => {
      if (p.timer === null) return;
      const planned = start + phase + k * interval;
      const lag = performance.now() - planned;
      const seq = p.seq++;
      const frame = eventFrame(seq);
      const sentNs = nowNs();
      p.visitor.ws.send(frame);
      p.sent++;
      p.pendingAcks.push([seq, sentNs]);
      if (measuring === target) {
        target.windowSent++;
        target.sendLag.push(lag);
      }
      k++;
      p.timer = setTimeout(tick, Math.max(0, start + phase + k * interval - performance.now()));
    };
    p.timer = setTimeout(tick, Math.max(0, start + phase - performance.now()));
  });
  return live.length;
}

function stopSending(target) {
  for (const p of target.pairs) {
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
  }
}

function settled(target) {
  return target.pairs.every((p) => !p.ready || (p.received >= p.sent && p.acked >= p.seq - 1));
}

async function drain(target, seconds) {
  const start = performance.now();
  while (!settled(target) && performance.now() - start < seconds * 1000) await sleep(20);
  return (performance.now() - start) / 1000;
}

function percentiles(values) {
  if (!values.length) return null;
  const a = Float64Array.from(values).sort();
  const q = (x) => a[Math.min(a.length - 1, Math.max(0, Math.ceil(x * a.length) - 1))];
  let sum = 0;
  for (const v of a) sum += v;
  return { n: a.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: a[a.length - 1], mean: sum / a.length };
}

async function closeAll(pairs) {
  const closing = [];
  for (const p of pairs) {
    for (const c of [p.agent, p.visitor]) {
      if (!c || c.closed) continue;
      if (c === p.visitor && p.session) {
        try {
          c.send('{"t":"stop"}'); // ends the session at the hub, as the visitor's "Stop sharing" does
        } catch {}
      }
      closing.push(new Promise((resolve) => {
        c.ws.once("close", resolve);
        try {
          c.ws.close(1000);
        } catch {
          resolve();
        }
      }));
    }
  }
  await Promise.race([Promise.all(closing), sleep(5000)]);
  for (const p of pairs) for (const c of [p.agent, p.visitor]) if (c && !c.closed) c.ws.terminate();
}

// Slow frames received within 100 ms of each other are one stall: when, how long, how many frames.
function stalls(t) {
  const groups = [];
  let g = null;
  for (const [at, ms] of t.slow.sort((a, b) => a[0] - b[0])) {
    if (g === null || at - g.last > 100e6) {
      g = { at, last: at, max_ms: 0, frames: 0 };
      groups.push(g);
    }
    g.last = at;
    g.frames++;
    if (ms > g.max_ms) g.max_ms = ms;
  }
  const origin = t.windows.length ? t.windows[0][0] : 0;
  const list = groups.map((x) => ({ at_s: (x.at - origin) / 1e9, max_ms: x.max_ms, frames: x.frames }));
  return {
    threshold_ms: SLOW_MS,
    origin_unix_ms: t.firstWindowUnixMs || null, // at_s counts from here (the start of its first round)
    count: list.length,
    frames: t.slow.length,
    longest: [...list].sort((a, b) => b.max_ms - a.max_ms).slice(0, 10),
  };
}

function mergeCounts(into, from) {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] || 0) + v;
}

function targetResult(t) {
  const ready = t.pairs.filter((p) => p.ready);
  const perPair = ready.map((p) => ({
    pair: p.i, sent: p.sent, received: p.received, out_of_order: p.outOfOrder, duplicates: p.duplicates,
    acked_all: p.acked >= p.seq - 1, closed: p.visitor.closed || p.agent.closed,
  }));
  const bad = (x) => x.sent !== x.received || x.out_of_order || x.duplicates || !x.acked_all || x.closed;
  const otherAgent = {};
  const otherVisitor = {};
  for (const p of ready) {
    mergeCounts(otherAgent, p.agent.other);
    mergeCounts(otherVisitor, p.visitor.other);
  }
  const sum = (k) => perPair.reduce((s, x) => s + x[k], 0);
  const windowS = t.windows.reduce((s, w) => s + (w[1] - w[0]), 0) / 1e9;
  const ld = t.loopDelay;
  // The histogram holds the timer's whole period: what is past the resolution is the delay.
  const past = (v) => Math.max(0, v / 1e6 - LOOP_RESOLUTION_MS);
  return {
    target: t.name,
    pairs: t.pairs.length,
    ready: ready.length,
    setup_s: t.setupS,
    setup_errors: summarizeErrors(t.pairs),
    rate_per_pair: config.rate,
    rounds: t.windows.length,
    window_s: windowS,
    sent: sum("sent"),
    received: sum("received"),
    out_of_order: sum("out_of_order"),
    duplicates: sum("duplicates"),
    pairs_all_delivered_in_order: perPair.filter((x) => !bad(x)).length,
    pairs_not_acked_fully: perPair.filter((x) => !x.acked_all).length,
    pairs_closed_early: perPair.filter((x) => x.closed).length,
    worst_pairs: perPair.filter(bad).slice(0, 5),
    window_sent: t.windowSent,
    window_received: t.windowReceived,
    sent_per_s: windowS ? t.windowSent / windowS : null,
    received_per_s: windowS ? t.windowReceived / windowS : null,
    latency_ms: percentiles(t.latencies),
    stalls: stalls(t),
    ack_latency_ms: percentiles(t.ackLatencies),
    send_lag_ms: percentiles(t.sendLag),
    loadgen_event_loop_delay_ms: ld.count ? { p50: past(ld.percentile(50)), p99: past(ld.percentile(99)), max: past(ld.max) } : null,
    other_frames_agent: otherAgent,
    other_frames_visitor: otherVisitor,
    extensions: ready.length ? { visitor: ready[0].visitor.ws.extensions, agent: ready[0].agent.ws.extensions } : null,
  };
}

// ---------------------------------------------------------------------------
// main

async function runPairs() {
  const targets = config.targets.map((spec) => new Target(spec));
  for (const t of targets) {
    t.pairs = Array.from({ length: config.pairs }, (_, i) => new Pair(t, i));
    progress(`${t.name}: setting up ${config.pairs} pairs`);
    const { seconds } = await setUpAll(t.pairs, config.connect_concurrency || 50, false);
    t.setupS = seconds;
    const ready = t.pairs.filter((p) => p.ready).length;
    emit({ event: "ready", target: t.name, pairs: config.pairs, ready, setup_s: seconds,
      setup_errors: summarizeErrors(t.pairs) });
    progress(`${t.name}: ${ready}/${config.pairs} pairs ready in ${seconds.toFixed(1)} s`);
    for (const p of t.pairs) if (p.ready) streamHandlers(p);
  }
  // The driver may first let the servers finish what set-up left them (records
  // written to a database, say): the rounds measure relaying, not set-up.
  if (config.wait_go) await waitForLine("go");

  // A B B A A B ...: each target's first turn starts with the warm-up.
  const warmed = new Set();
  for (let r = 0; r < config.rounds; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const ramp = warmed.has(t) ? config.ramp_s : config.warmup_s;
      warmed.add(t);
      startSending(t, config.rate);
      await sleep(ramp * 1000 + 20);
      const start = nowNs();
      if (!t.windows.length) t.firstWindowUnixMs = Date.now();
      t.windows.push([start, Infinity]);
      measuring = t;
      t.loopDelay.enable();
      const cpu0 = process.cpuUsage();
      emit({ event: "round_start", target: t.name, round: r });
      await sleep(config.round_s * 1000);
      const cpu = process.cpuUsage(cpu0);
      t.windows[t.windows.length - 1][1] = nowNs();
      measuring = null;
      t.loopDelay.disable();
      emit({ event: "round_end", target: t.name, round: r, loadgen_cpu_s: (cpu.user + cpu.system) / 1e6 });
      stopSending(t);
      const drained = await drain(t, config.drain_s);
      if (!settled(t)) progress(`${t.name}: round ${r} not drained after ${drained.toFixed(1)} s`);
      await sleep(200);
    }
  }
  for (const t of targets) await drain(t, config.drain_s);
  const results = targets.map(targetResult);
  for (const t of targets) await closeAll(t.pairs);
  emit({ event: "result", mode: "pairs", targets: results });
}

function waitForLine(word) {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    const done = () => { rl.close(); resolve(); };
    rl.on("line", (line) => line.trim() === word && done());
    rl.on("close", resolve);
  });
}

async function runIdle() {
  const n = config.idle;
  const t = new Target(config.targets[0]);
  t.pairs = Array.from({ length: n }, (_, i) => new Pair(t, i));
  progress(`${t.name}: opening ${n} idle visitor connections`);
  const deadline = performance.now() + (config.idle_timeout_s || Infinity) * 1000;
  const { seconds, notStarted } = await setUpAll(t.pairs, config.connect_concurrency || 100, true, deadline);
  const ready = t.pairs.filter((p) => p.ready).length;
  emit({ event: "idle_ready", target: t.name, connections: n, ready, setup_s: seconds, not_started: notStarted,
    setup_errors: summarizeErrors(t.pairs) });
  progress(`${t.name}: ${ready}/${n} idle visitors connected in ${seconds.toFixed(1)} s` +
    (notStarted ? ` (${notStarted} not tried: time limit)` : "") + "; holding");
  await waitForLine("stop");
  const alive = t.pairs.filter((p) => p.ready && !p.visitor.closed).length;
  await closeAll(t.pairs);
  emit({ event: "result", mode: "idle", target: t.name, connections: n, ready, still_open_at_end: alive,
    setup_s: seconds, not_started: notStarted, setup_errors: summarizeErrors(t.pairs) });
}

(config.idle ? runIdle() : runPairs()).then(
  () => process.exit(0),
  (e) => {
    progress(`failed: ${e.stack || e}`);
    emit({ event: "error", error: String(e.message || e) });
    process.exit(1);
  },
);
