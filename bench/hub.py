#!/usr/bin/env python3
"""Sync hub benchmark: the hub and a minimal Node `ws` relay, side by side, loaded by the same generator.

For each level (``--pairs``), both targets get N visitor/agent pairs:

* **cobrowse**: ``cobrowse serve`` as deployed, one process. Visitors connect through
  the proxy (``ws://<proxy>/__cobrowse/ws``) and speak protocol v1: hello, share, a
  small full snapshot (Meta + FullSnapshot). Their agents connect to the console
  (``ws://<console>/ws``) with the login cookie of one agent account, say
  agent_hello and join the visitor's session by id.
* **relay**: ``bench/node/relay.mjs``, a minimal room relay with ``ws``, one process:
  each visitor frame goes unchanged to the room's agents, and an ack goes back.

The targets then stream in turns (``--rounds``, A B B A ...), so that the rest of
the machine's load falls on both alike: every visitor of the streaming target
sends ``--rate`` frames a second, one incremental event each, with its send time
in the event data. The load generator (``bench/node/loadgen.mjs``, one Node
process holding the pairs of both targets) measures relay latency (visitor send
-> agent receive), checks that each agent gets every frame once and in order and
that each visitor gets every ack (streaming starts once both servers are quiet after
set-up: cobrowse writes each new session and participant to its database); this script measures the servers' CPU and RSS,
the generator's CPU and the rest of the machine's CPU over the measured rounds.
``--idle N`` then opens N visitor connections to a fresh server of each target,
which say hello and share and go quiet, and reads the server's RSS with all of
them open. ``--profile`` records cobrowse with py-spy during its rounds.

It reports, it does not assert. Compare the two targets within one run.

    .venv/bin/python bench/hub.py                           # 500 pairs x 10/s, then 10,000 idle: < 3 min
    .venv/bin/python bench/hub.py --pairs 50 --pairs 200 --idle 0
    .venv/bin/python bench/hub.py --pairs 0 --idle 10000 --idle-no-deflate --idle-timeout 120

The report (Markdown) goes to stdout, progress to stderr, the data to
bench/results/hub-<timestamp>.json. Needs Node and ``npm ci --prefix bench/node``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import queue
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (  # noqa: E402
    ProcessGroup, RssSampler, competing_processes, cpu_seconds, free_port, machine_facts, rss_kb, terminate_on_signals,
    wait_for_http,
)

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
HOST = "127.0.0.1"
PREFIX = "/__cobrowse/"
AGENT_USER = "bench-agent"
AGENT_PASSWORD = "bench-password-1"
MiB = 1024 * 1024

GOALS = {
    "p99_vs_relay": 1.5,  # at 500 pairs x 10 events/s: cobrowse p99 <= 1.5x the relay's
    "idle_connections": 10_000,  # idle visitors in one process ...
    "idle_rss_bytes": 1_000_000_000,  # ... under 1 GB of RSS
    "loadgen_cpu_pct": 70.0,  # the generator is not the bottleneck: under 70% of one core
}
GOAL_LEVEL = (500, 10.0)
STALL_MS = 10.0  # load generator event-loop delay p99 above this: latencies measure the machine, not the servers

TARGETS = {
    "cobrowse": "cobrowse serve",
    "relay": "Node ws relay",
}


# ---------------------------------------------------------------------------
# helpers


_T0 = time.monotonic()


def progress(msg: str) -> None:
    elapsed = time.monotonic() - _T0
    print(f"[{int(elapsed // 60)}:{int(elapsed % 60):02d}] {msg}", file=sys.stderr, flush=True)


def raise_nofile(want: int) -> tuple[int, int]:
    """Raise our soft open-files limit (children inherit it) as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def with_nofile(argv: list[str], limit: int) -> list[str]:
    """Run argv with this open-files limit (prlimit execs the command: same pid)."""
    prlimit = shutil.which("prlimit")
    if prlimit:
        return [prlimit, f"--nofile={limit}:", "--", *argv]
    return ["sh", "-c", 'ulimit -n "$0" && exec "$@"', str(limit), *argv]


def proc_nofile(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def login(console_port: int) -> str:
    """POST /api/login as the bench agent; returns the Cookie header value."""
    origin = f"http://{HOST}:{console_port}"
    conn = http.client.HTTPConnection(HOST, console_port, timeout=30)
    try:
        body = json.dumps({"username": AGENT_USER, "password": AGENT_PASSWORD})
        conn.request("POST", "/api/login", body=body, headers={"Content-Type": "application/json", "Origin": origin})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"login answered {resp.status}: {data[:200]!r}")
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                return value.split(";", 1)[0]
        raise RuntimeError("login set no cookie")
    finally:
        conn.close()


def machine_busy_s() -> float | None:
    """CPU seconds all processes of the machine have used (all CPUs), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def percent(cpu: float | None, wall: float) -> float | None:
    return None if cpu is None or wall <= 0 else cpu / wall * 100


# ---------------------------------------------------------------------------
# servers


class Servers:
    """Starts a fresh server of a target for each measurement, and stops it after."""

    def __init__(self, procs: ProcessGroup, tmp: Path, args: argparse.Namespace, nofile: int) -> None:
        self.procs = procs
        self.tmp = tmp
        self.args = args
        self.nofile = nofile
        self.data_dir = tmp / "cobrowse-data"
        self.count = 0
        self.logs: list[str] = []

    def create_agent(self) -> None:
        out = subprocess.run([sys.executable, "-m", "cobrowse", "user", "add", AGENT_USER, "--password-stdin",
                              "--data-dir", str(self.data_dir)], input=AGENT_PASSWORD + "\n", capture_output=True,
                             text=True, cwd=ROOT, env=self.env(), timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"cobrowse user add failed: {out.stderr.strip()}")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COBROWSE_")}
        # Every simulated visitor comes from 127.0.0.1: no cap on sockets per address.
        env["COBROWSE_SESSIONS_MAX_VISITOR_SOCKETS_PER_ADDRESS"] = "0"
        return env

    def start(self, target: str) -> dict:
        self.count += 1
        name = f"{target}-{self.count}"
        self.logs.append(name)
        if target == "cobrowse":
            port, console = free_port(), free_port()
            dead = free_port()  # the site's upstream: never asked, the benchmark stays under the prefix
            argv = [sys.executable, "-m", "cobrowse", "serve", "--upstream", f"http://{HOST}:{dead}",
                    "--listen", f"{HOST}:{port}", "--console-listen", f"{HOST}:{console}",
                    "--data-dir", str(self.data_dir), "--log-level", "warning"]
            proc = self.procs.start(name, with_nofile(argv, self.nofile), cwd=ROOT, env=self.env())
            wait_for_http(HOST, port, PREFIX + "health", proc, timeout=60)
            return {"name": name, "proc": proc, "pid": proc.pid, "port": port, "console_port": console}
        port = free_port()
        # It accepts permessage-deflate when a client offers it, as the hub does (compress=True).
        argv = ["node", str(NODE_DIR / "relay.mjs"), "--host", HOST, "--port", str(port), "--deflate"]
        proc = self.procs.start(name, with_nofile(argv, self.nofile), cwd=ROOT)
        wait_for_http(HOST, port, "/health", proc, timeout=30)
        return {"name": name, "proc": proc, "pid": proc.pid, "port": port}

    def stop(self, server: dict) -> None:
        proc = server["proc"]
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=5)
        # ProcessGroup.stop_all sweeps it again at the end (harmless once it is gone).


def target_spec(target: str, server: dict, cookie: str | None = None) -> dict:
    """How the load generator reaches a running server."""
    if target == "cobrowse":
        site = f"http://{HOST}:{server['port']}"
        console = f"http://{HOST}:{server['console_port']}"
        return {"name": target, "kind": "cobrowse", "visitor_url": f"ws://{HOST}:{server['port']}{PREFIX}ws",
                "visitor_headers": {"Origin": site}, "agent_url": f"ws://{HOST}:{server['console_port']}/ws",
                "agent_headers": {"Origin": console, "Cookie": cookie or ""}}
    return {"name": target, "kind": "relay", "relay_url": f"ws://{HOST}:{server['port']}"}


class LoadGen:
    """The Node load generator: JSON lines on stdout, read by a thread into a queue."""

    def __init__(self, procs: ProcessGroup, tmp: Path, name: str, config: dict) -> None:
        cfg_path = tmp / f"{name}.json"
        cfg_path.write_text(json.dumps(config))
        log = open(tmp / "logs" / f"{name}.log", "wb")
        try:
            self.proc = subprocess.Popen(["node", str(NODE_DIR / "loadgen.mjs"), str(cfg_path)], cwd=ROOT,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         start_new_session=True)
        finally:
            log.close()
        procs.procs.append((name, self.proc))  # stopped with the rest, whatever happens
        self.name = name
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass
        self.lines.put(None)

    def next_event(self, deadline: float) -> dict:
        while True:
            try:
                item = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("the load generator did not answer in time") from None
            if item is None:
                self.proc.wait(timeout=10)
                raise RuntimeError(f"the load generator exited with status {self.proc.returncode}")
            if item.get("event") == "error":
                raise RuntimeError(f"the load generator failed: {item.get('error')}")
            return item

    def say(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def wait(self) -> None:
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------
# measurements


def measure_level(servers: Servers, procs: ProcessGroup, tmp: Path, pairs: int, order: list[str],
                  args: argparse.Namespace) -> dict:
    """Both targets at one level: fresh servers, one load generator, rounds taken in turn."""
    runs: dict[str, dict] = {}
    started: dict[str, dict] = {}
    lg = None
    samplers: dict[str, RssSampler] = {}
    profiles: list[dict] = []
    try:
        specs = []
        for target in order:
            server = started[target] = servers.start(target)
            pid = server["pid"]
            runs[target] = {"target": target, "pairs": pairs, "rate": args.rate, "server_pid": pid,
                            "server_nofile": proc_nofile(pid), "server_cpu_s": 0.0, "loadgen_cpu_s": 0.0,
                            "machine_cpu_s": 0.0, "window_wall_s": 0.0, "rss_max_kib": 0}
            cookie = login(server["console_port"]) if target == "cobrowse" else None
            runs[target]["rss_idle_kib"] = rss_kb(pid)
            specs.append(target_spec(target, server, cookie))
        config = {"targets": specs, "pairs": pairs, "rate": args.rate, "deflate": args.deflate,
                  "warmup_s": args.warmup, "ramp_s": args.ramp, "rounds": args.rounds,
                  "round_s": args.duration / args.rounds, "drain_s": args.drain,
                  "connect_concurrency": args.connect_concurrency, "wait_go": True}
        lg = LoadGen(procs, tmp, f"loadgen-{pairs}", config)
        turns = len(order) * args.rounds
        deadline = (time.monotonic() + 60 + len(order) * pairs / 10 + len(order) * args.warmup
                    + turns * (args.ramp + args.duration / args.rounds + args.drain + 1))
        marks: dict[str, tuple] = {}
        while True:
            ev = lg.next_event(deadline)
            kind = ev["event"]
            target = ev.get("target")
            if kind == "ready":
                r = runs[target]
                r["ready"] = ev
                r["rss_ready_kib"] = rss_kb(r["server_pid"])
                progress(f"  {TARGETS[target]}: {ev['ready']}/{pairs} pairs ready in {ev['setup_s']:.1f} s"
                         + (f"; set-up errors: {ev['setup_errors']}" if ev["setup_errors"] else ""))
                if all("ready" in runs[t] for t in order):
                    for t in order:
                        runs[t]["settle_s"] = settle(runs[t]["server_pid"])
                        progress(f"  {TARGETS[t]}: quiet after set-up in {runs[t]['settle_s']:.1f} s")
                    lg.say("go")
            elif kind == "round_start":
                pid = runs[target]["server_pid"]
                marks[target] = (time.monotonic(), cpu_seconds([pid]), cpu_seconds([lg.proc.pid]), machine_busy_s())
                samplers[target] = RssSampler([pid], interval=0.25).__enter__()
                runs[target].setdefault("fds_during", open_fds(pid))
                if args.profile and target == "cobrowse":
                    profiles.append(start_profile(procs, tmp, started[target], args.duration / args.rounds,
                                                  ev["round"]))
            elif kind == "round_end":
                r = runs[target]
                t0, cpu0, lg0, m0 = marks.pop(target)
                cpu1, lg1, m1 = cpu_seconds([r["server_pid"]]), cpu_seconds([lg.proc.pid]), machine_busy_s()
                if m0 is not None and m1 is not None:
                    r["machine_cpu_s"] += m1 - m0
                r["window_wall_s"] += time.monotonic() - t0
                if cpu0 is not None and cpu1 is not None:
                    r["server_cpu_s"] += cpu1 - cpu0
                if lg0 is not None and lg1 is not None:
                    r["loadgen_cpu_s"] += lg1 - lg0
                sampler = samplers.pop(target)
                sampler.__exit__(None, None, None)
                r["rss_max_kib"] = max(r["rss_max_kib"], sampler.max_kb)
            elif kind == "result":
                for res in ev["targets"]:
                    runs[res["target"]]["result"] = res
                break
        lg.wait()
    except (RuntimeError, TimeoutError, OSError) as exc:
        progress(f"  ERROR {exc}")
        for r in runs.values():
            r.setdefault("error", str(exc))
    finally:
        for sampler in samplers.values():
            sampler.__exit__(None, None, None)
        if lg is not None and lg.proc.poll() is None:
            os.killpg(lg.proc.pid, signal.SIGKILL)
        for server in started.values():
            servers.stop(server)
    if profiles and "cobrowse" in runs:
        runs["cobrowse"]["profile"] = finish_profiles(profiles, pairs)
    for target, r in runs.items():
        wall = r["window_wall_s"]
        r["server_cpu_pct"] = percent(r["server_cpu_s"], wall)
        r["loadgen_cpu_pct"] = percent(r["loadgen_cpu_s"], wall)
        # Whatever else ran on the machine meanwhile (other people's work, this script), in % of one core.
        r["other_cpu_pct"] = percent(max(0.0, r["machine_cpu_s"] - r["server_cpu_s"] - r["loadgen_cpu_s"]), wall)
        res = r.get("result")
        if not res:
            continue
        msgs = res["window_received"]
        r["server_cpu_us_per_msg"] = r["server_cpu_s"] / msgs * 1e6 if msgs else None
        lat = res["latency_ms"] or {}
        progress(f"  {TARGETS[target]}: {res['received_per_s'] or 0:,.0f} msgs/s relayed, latency p50 "
                 f"{fmt_ms(lat.get('p50'))} p99 {fmt_ms(lat.get('p99'))}, delivered in order "
                 f"{res['pairs_all_delivered_in_order']}/{pairs} pairs, server CPU {fmt_pct(r['server_cpu_pct'])}"
                 f", load generator CPU {fmt_pct(r['loadgen_cpu_pct'])}")
    return {"pairs": pairs, "rate": args.rate, "order": order, "runs": runs}


def measure_idle(servers: Servers, procs: ProcessGroup, tmp: Path, target: str, n: int,
                 args: argparse.Namespace) -> dict:
    server = servers.start(target)
    pid = server["pid"]
    r: dict = {"target": target, "connections": n, "server_pid": pid, "server_nofile": proc_nofile(pid)}
    lg = None
    try:
        time.sleep(1.0)
        r["rss_before_kib"] = rss_kb(pid)
        r["fds_before"] = open_fds(pid)
        config = {"targets": [target_spec(target, server)], "idle": n, "deflate": args.idle_deflate,
                  "idle_snapshot": args.idle_snapshot, "idle_timeout_s": args.idle_timeout,
                  "connect_concurrency": args.idle_concurrency}
        lg = LoadGen(procs, tmp, f"loadgen-{server['name']}-idle", config)
        deadline = time.monotonic() + args.idle_timeout + 60
        with RssSampler([pid], interval=0.25) as sampler:
            ev = lg.next_event(deadline)
            r["ready"] = ev
            progress(f"  {TARGETS[target]}: {ev['ready']:,}/{n:,} idle visitors connected in {ev['setup_s']:.1f} s"
                     + (f"; errors: {ev['setup_errors']}" if ev["setup_errors"] else ""))
            time.sleep(args.idle_hold)
            r["rss_with_idle_kib"] = rss_kb(pid)
            r["fds_with_idle"] = open_fds(pid)
            r["loadgen_rss_kib"] = rss_kb(lg.proc.pid)
            lg.say("stop")
            r["result"] = lg.next_event(time.monotonic() + 60)
        r["rss_max_kib"] = sampler.max_kb
        lg.wait()
    except (RuntimeError, TimeoutError, OSError) as exc:
        r["error"] = str(exc)
        progress(f"  {TARGETS[target]}: ERROR {exc}")
    finally:
        if lg is not None and lg.proc.poll() is None:
            os.killpg(lg.proc.pid, signal.SIGKILL)
        servers.stop(server)
    if "rss_with_idle_kib" in r and r["rss_with_idle_kib"] and r.get("rss_before_kib"):
        ready = r["ready"]["ready"]
        r["kib_per_connection"] = (r["rss_with_idle_kib"] - r["rss_before_kib"]) / ready if ready else None
        progress(f"  {TARGETS[target]}: RSS {r['rss_before_kib'] / 1024:.0f} MiB -> "
                 f"{r['rss_with_idle_kib'] / 1024:.0f} MiB with {ready:,} idle visitors, "
                 f"{r['fds_with_idle']} open fds")
    return r


# ---------------------------------------------------------------------------
# profiling (py-spy, cobrowse only)


def settle(pid: int, *, below: float = 0.05, window: float = 0.5, limit: float = 60.0) -> float:
    """Wait until a server is done with what set-up left it, before the rounds measure relaying.

    Set-up is not what the rounds measure: cobrowse records each new session and
    participant in its database (500 sessions: ~1,500 small transactions), and a
    first round that overlaps that writing measures both. Quiet here means under
    ``below`` of a core over ``window`` seconds (nothing streams yet). Returns the
    seconds waited.
    """
    start = time.monotonic()
    before = cpu_seconds([pid])
    while time.monotonic() - start < limit:
        time.sleep(window)
        now = cpu_seconds([pid])
        if before is None or now is None or (now - before) / window < below:
            break
        before = now
    return time.monotonic() - start


def start_profile(procs: ProcessGroup, tmp: Path, server: dict, seconds: float, round_: int) -> dict:
    """py-spy on cobrowse for one round: only samples holding the GIL (Python work, not waits)."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = tmp / f"profile-{server['name']}-{round_}.txt"
    name = f"py-spy-{server['name']}-{round_}"
    proc = procs.start(name, [pyspy, "record", "-p", str(server["pid"]), "-d", str(max(1, int(seconds))),
                              "-r", "100", "--gil", "-f", "raw", "-o", str(out)])
    return {"proc": proc, "out": out, "seconds": seconds}


def finish_profiles(profiles: list[dict], pairs: int) -> dict:
    texts = []
    for p in profiles:
        try:
            p["proc"].wait(timeout=p["seconds"] + 30)
            texts.append(p["out"].read_text())
        except (subprocess.TimeoutExpired, OSError):
            pass
    if not texts:
        return {"error": "py-spy gave no profile"}
    text = "".join(t if t.endswith("\n") else t + "\n" for t in texts)
    saved = ROOT / "bench" / "results" / f"hub-profile-cobrowse-{pairs}-{dt.datetime.now():%Y%m%d-%H%M%S}.txt"
    return summarize_profile(text) | {"raw": text, "saved_as": str(saved.relative_to(ROOT))}


def summarize_profile(text: str, top: int = 25) -> dict:
    """Self and inclusive sample counts per function from py-spy's raw (collapsed) output."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    roots: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \((.*?):\d+\)$", lambda m: f" ({_short(m.group(1))})", f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
        root = "worker threads" if frames[0].startswith("Thread._bootstrap") else "main thread"
        roots[root] = roots.get(root, 0) + n
    def rank(d):
        return [{"function": k, "samples": v, "pct": v / total * 100 if total else 0}
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    # Frames on (nearly) every stack of the main thread are the way into the event loop: no news.
    top = max(incl.values(), default=0)
    incl = {k: v for k, v in incl.items() if v < 0.98 * top}
    return {"samples": total, "self": rank(own), "inclusive": rank(incl),
            "threads": {k: v / total * 100 for k, v in roots.items()} if total else {}}


def _short(path: str) -> str:
    for marker in ("site-packages/", "/cobrowse/", "/lib/python"):
        i = path.find(marker)
        if i >= 0:
            return path[i + len(marker):] if marker != "/cobrowse/" else "cobrowse/" + path[i + len(marker):]
    return path


# ---------------------------------------------------------------------------
# formatting


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    if v < 1:
        return f"{v * 1000:.0f} µs"
    return f"{v:.3g} ms" if v < 1000 else f"{v / 1000:.3g} s"


def fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}%"


def fmt_mib(kib: float | None) -> str:
    return "—" if kib is None else f"{kib / 1024:,.0f} MiB"


def fmt_ratio(v: float | None) -> str:
    return "—" if v is None else (f"{v:.3g}×" if v < 10 else f"{v:.0f}×")


# ---------------------------------------------------------------------------
# the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, action="append",
                   help="visitor/agent pairs; give it more than once for several levels (default 500)")
    p.add_argument("--rate", type=float, default=10.0, help="frames (of one event) per visitor per second (default 10)")
    p.add_argument("--duration", type=float, default=20.0,
                   help="measured seconds per target and level, split into the rounds (default 20)")
    p.add_argument("--rounds", type=int, default=4,
                   help="turns each target takes, alternating A B B A ... (default 4)")
    p.add_argument("--warmup", type=float, default=3.0,
                   help="unmeasured streaming before a target's first round (default 3)")
    p.add_argument("--ramp", type=float, default=1.0,
                   help="unmeasured streaming before each later round (default 1)")
    p.add_argument("--drain", type=float, default=10.0,
                   help="at most this many seconds after a round for its last frames and acks (default 10)")
    p.add_argument("--idle", type=int, default=10_000,
                   help="idle visitor connections for the memory measurement (default 10000, 0 to skip)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="no new idle connection is started after this many seconds (default 30; the default run "
                        "stays under 3 minutes)")
    p.add_argument("--idle-hold", type=float, default=2.0,
                   help="seconds the idle connections stay open before the RSS is read (default 2)")
    p.add_argument("--idle-snapshot", action="store_true",
                   help="idle visitors also send the small full snapshot (default: hello and share only)")
    p.add_argument("--deflate", action="store_true",
                   help="the streaming pairs offer permessage-deflate too, as browsers do (default: they do not; "
                        "the load generator then inflates every frame, which it cannot do at 500 pairs on 2 cores)")
    p.add_argument("--idle-no-deflate", dest="idle_deflate", action="store_false",
                   help="idle visitors do not offer permessage-deflate (default: they offer it, as browsers do)")
    p.add_argument("--only", action="append", choices=sorted(TARGETS), help="measure only this target")
    p.add_argument("--connect-concurrency", type=int, default=50,
                   help="pairs set up at the same time (default 50)")
    p.add_argument("--idle-concurrency", type=int, default=200,
                   help="idle connections opened at the same time (default 200)")
    p.add_argument("--nofile", type=int, default=65536,
                   help="open-files limit for the servers and the generator, capped at the hard limit (default 65536)")
    p.add_argument("--profile", action="store_true",
                   help="record cobrowse with py-spy (--gil) during its rounds; perturbs the measurement")
    p.add_argument("--json", type=Path, help="where to write the JSON results (default bench/results/hub-<ts>.json)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    args = p.parse_args(argv)
    args.pairs = [n for n in (args.pairs or [500]) if n]  # --pairs 0: no streaming, idle only
    args.only = [t for t in TARGETS if t in (args.only or TARGETS)]
    if (any(n < 0 for n in args.pairs) or args.rate <= 0 or args.duration <= 0 or args.rounds < 1
            or args.warmup < 0 or args.ramp < 0 or args.idle < 0):
        p.error("--pairs, --rate, --duration and --rounds must be positive, --warmup, --ramp and --idle at least 0")
    return args


def node_facts() -> dict:
    node = shutil.which("node")
    facts = {"node": None, "ws": None}
    if node:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20)
        facts["node"] = out.stdout.strip() or None
    try:
        facts["ws"] = json.loads((NODE_DIR / "node_modules" / "ws" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        pass
    return facts


def python_facts() -> dict:
    out = {}
    for mod in ("aiohttp", "msgspec"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_signals()
    nf = node_facts()
    if not nf["node"]:
        print("error: node not found on PATH", file=sys.stderr)
        return 2
    if not nf["ws"]:
        print("error: bench/node/node_modules missing: run `npm ci --prefix bench/node`", file=sys.stderr)
        return 2
    soft, hard = raise_nofile(args.nofile)  # the load generator inherits it
    nofile = min(args.nofile, hard) if hard != resource.RLIM_INFINITY else args.nofile

    started = dt.datetime.now(dt.timezone.utc)
    facts = machine_facts(nginx=None, mitmdump=None, wrk=None)
    for k in ("nginx", "mitmproxy", "wrk"):
        facts.pop(k, None)
    facts.update(nf)
    facts.update(python_facts())
    facts["nofile_soft_hard"] = (soft, hard)
    command = shlex.join([os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(ROOT))
                          else sys.executable, *sys.argv])
    notes: list[str] = []
    others = competing_processes()
    if others:
        # Found before this run starts anything: left over from something else.
        notes.append(f"{len(others)} other server or load-generator process(es) were running, which can skew "
                     f"this run: " + "; ".join(others[:6]))
    if nofile < args.nofile:
        notes.append(f"open-files limit capped at the hard limit {hard} (asked for {args.nofile}).")
    tmp = Path(tempfile.mkdtemp(prefix="cobrowse-bench-hub-"))
    (tmp / "logs").mkdir()
    procs = ProcessGroup(tmp / "logs")
    servers = Servers(procs, tmp, args, nofile)
    result: dict = {"command": command, "argv": sys.argv, "started": started.isoformat(), "machine": facts,
                    "settings": {"pairs": args.pairs, "rate": args.rate, "duration_s": args.duration,
                                 "rounds": args.rounds, "warmup_s": args.warmup, "ramp_s": args.ramp,
                                 "drain_s": args.drain, "idle": args.idle, "idle_timeout_s": args.idle_timeout,
                                 "idle_hold_s": args.idle_hold, "idle_snapshot": args.idle_snapshot,
                                 "deflate_offered": args.deflate, "idle_deflate_offered": args.idle_deflate,
                                 "targets": args.only, "nofile": nofile,
                                 "connect_concurrency": args.connect_concurrency,
                                 "idle_concurrency": args.idle_concurrency, "profile": args.profile},
                    "notes": notes, "levels": [], "idle": []}
    interrupted = False
    try:
        if "cobrowse" in args.only:
            servers.create_agent()
        for li, pairs in enumerate(args.pairs):
            order = args.only[li % len(args.only):] + args.only[:li % len(args.only)]  # alternate who goes first
            progress(f"{pairs} pairs × {args.rate:g} events/s: {' and '.join(TARGETS[t] for t in order)} in turns, "
                     f"{args.rounds} rounds of {args.duration / args.rounds:g} s each")
            result["levels"].append(measure_level(servers, procs, tmp, pairs, order, args))
        if args.idle:
            progress(f"{args.idle:,} idle visitors")
            for target in args.only:
                result["idle"].append(measure_idle(servers, procs, tmp, target, args.idle, args))
        result["goals"] = goals(result, args)
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: stopping everything")
    except RuntimeError as exc:
        notes.append(f"stopped early: {exc}")
        progress(f"error: {exc}")
    finally:
        for name in servers.logs:
            text = procs.log_text(name)
            bad = [ln for ln in text.splitlines() if re.search(r"Traceback|\b(ERROR|CRITICAL|Error)\b", ln)]
            if bad:
                notes.append(f"{name} logged {len(bad)} error line(s), e.g.: {bad[0].strip()[:200]}")
        procs.stop_all()
        facts["loadavg_end"] = os.getloadavg()
        result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        for level in result["levels"]:  # keep the raw profiles next to the JSON
            for r in level["runs"].values():
                prof = r.get("profile")
                if prof and prof.get("raw"):
                    (ROOT / prof["saved_as"]).write_text(prof.pop("raw"))
        if args.keep_tmp:
            progress(f"temporary files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if interrupted:
        return 130
    out = args.json or ROOT / "bench" / "results" / f"hub-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(render(result, args))
    progress(f"results: {out}")
    return 0


def goals(result: dict, args: argparse.Namespace) -> list[dict]:
    rows = []
    for level in result["levels"]:
        cob, rel = level["runs"].get("cobrowse"), level["runs"].get("relay")
        official = (level["pairs"], level["rate"]) == GOAL_LEVEL
        tag = f"{level['pairs']} pairs × {level['rate']:g}/s"
        if cob and rel and cob.get("result") and rel.get("result"):
            a, b = (cob["result"]["latency_ms"] or {}).get("p99"), (rel["result"]["latency_ms"] or {}).get("p99")
            ratio = a / b if a is not None and b else None
            held = [loadgen_held_ms(x["result"]) for x in (cob, rel)]
            met = None if ratio is None else ratio <= GOALS["p99_vs_relay"]
            source = f"{fmt_ms(a)} vs {fmt_ms(b)}"
            if max(held) > STALL_MS:
                # The generator itself was held up: its delays are in the latencies it measured.
                source += (f"; the load generator was held up (p99 {fmt_ms(held[0])} while cobrowse streamed, "
                           f"{fmt_ms(held[1])} while the relay did)")
                met = None if met is None else ("inconclusive", met)
            rows.append({"key": "p99_vs_relay", "goal": f"{tag}: cobrowse p99 ≤ 1.5× relay p99",
                         "measured": fmt_ratio(ratio), "from": source, "met": met, "official": official})
        if cob and cob.get("result"):
            c = cob["result"]
            complete = (c["pairs_all_delivered_in_order"] == level["pairs"] and c["ready"] == level["pairs"])
            rows.append({"key": "delivered", "goal": f"{tag}: every message delivered, in order (cobrowse)",
                         "measured": f"{c['pairs_all_delivered_in_order']}/{level['pairs']} pairs",
                         "from": f"{c['sent']:,} sent, {c['received']:,} received, {c['out_of_order']} out of order, "
                                 f"{c['duplicates']} twice, {c['pairs_not_acked_fully']} pairs not fully acked",
                         "met": complete, "official": official})
        elif cob:
            rows.append({"key": "delivered", "goal": f"{tag}: every message delivered, in order (cobrowse)",
                         "measured": "not measured", "from": cob.get("error", ""), "met": False, "official": official})
        for t, r in level["runs"].items():
            if r.get("loadgen_cpu_pct") is not None:
                rows.append({"key": "loadgen", "goal": f"{tag}: load generator < 70% of a core ({TARGETS[t]})",
                             "measured": fmt_pct(r["loadgen_cpu_pct"]),
                             "from": f"{r['loadgen_cpu_s']:.1f} s CPU in {r['window_wall_s']:.1f} s",
                             "met": r["loadgen_cpu_pct"] < GOALS["loadgen_cpu_pct"], "official": True})
    for r in result["idle"]:
        if r["target"] != "cobrowse":
            continue
        ready = (r.get("ready") or {}).get("ready", 0)
        rss = r.get("rss_with_idle_kib")
        want = GOALS["idle_connections"]
        met = None if rss is None else (ready >= want and rss * 1024 < GOALS["idle_rss_bytes"])
        source = f"{ready:,} connected" + (f", {r['kib_per_connection']:.0f} KiB each" if r.get("kib_per_connection")
                                           else "")
        if rss is not None and ready < want and r.get("kib_per_connection"):
            # Not all connected in time: what the measured cost per connection says about 10,000.
            estimate = (r["rss_before_kib"] + r["kib_per_connection"] * want) * 1024
            source += f"; at that rate 10,000 would take {estimate / 1e9:.2f} GB"
            # Already over with fewer connections: that is a no; under: only an estimate.
            over = rss * 1024 >= GOALS["idle_rss_bytes"]
            met = False if over else ("inconclusive", estimate < GOALS["idle_rss_bytes"])
        rows.append({"key": "idle", "goal": "10,000 idle visitors in one process, RSS < 1 GB (cobrowse)",
                     "measured": "—" if rss is None else f"{rss * 1024 / 1e9:.2f} GB ({fmt_mib(rss)})",
                     "from": source, "met": met, "official": r["connections"] >= want})
    return rows


def loadgen_held_ms(res: dict) -> float:
    """How late the load generator ran (p99 of its event-loop delay and of its send lag, the larger)."""
    loop = (res.get("loadgen_event_loop_delay_ms") or {}).get("p99") or 0.0
    lag = (res.get("send_lag_ms") or {}).get("p99") or 0.0
    return max(loop, lag)


def render(result: dict, args: argparse.Namespace) -> str:
    f = result["machine"]
    s = result["settings"]
    lines = ["## Sync hub benchmark", ""]
    lines.append(f"- command: `{result['command']}`")
    lines.append(f"- date: {result['started'][:16].replace('T', ' ')} UTC, commit {f.get('git_commit')}"
                 + (" (cobrowse/ modified since)" if f.get("cobrowse_modified_since_commit") else ""))
    mem = f"{f['mem_total_bytes'] / 2**30:.0f} GiB RAM" if f.get("mem_total_bytes") else ""
    lines.append(f"- machine: {f['nproc']} CPUs ({f.get('cpu_model')}), {mem}, {f['kernel']}; load average "
                 f"{f['loadavg_start'][0]:.2f} at start, {f['loadavg_end'][0]:.2f} at end; open files "
                 f"{s['nofile']}")
    lines.append(f"- software: Python {f['python']} (uvloop {f.get('uvloop')}, aiohttp {f.get('aiohttp')}, "
                 f"msgspec {f.get('msgspec')}), Node {f.get('node')}, ws {f.get('ws')}")
    if not result["levels"]:
        lines.append("- load: one Node process (`bench/node/loadgen.mjs`, ws clients); no streaming (`--pairs 0`); "
                     "idle visitors " + ("offer" if s["idle_deflate_offered"] else "do not offer")
                     + " permessage-deflate; both servers accept it when offered")
    else:
        settled = ", ".join(f"{TARGETS[t]} {r['settle_s']:.1f} s" for level in result["levels"]
                            for t, r in level["runs"].items() if r.get("settle_s") is not None)
        lines.append("- load: one Node process (`bench/node/loadgen.mjs`, ws clients) holds the pairs of both targets; "
                     "after set-up, streaming waits until each server is quiet (under 5% of a core: "
                     f"{settled or 'n/a'}); the targets stream in turns ({s['rounds']} rounds of {s['duration_s'] / s['rounds']:g} s each, "
                     f"A B B A …; {s['warmup_s']:g} s unmeasured before a target's first round, {s['ramp_s']:g} s "
                     f"before the others); each visitor sends {s['rate']:g} frames/s of 1 incremental event; "
                     "permessage-deflate "
                     + ("offered by the streaming clients (as browsers do)" if s["deflate_offered"]
                        else "not offered by the streaming clients")
                     + (", offered by the idle visitors" if s["idle_deflate_offered"] else ", nor by the idle visitors")
                     + "; both servers accept it when offered")
    lines.append("")
    if result["levels"]:
        lines += ["### Relay: visitor → server → agent", "",
                  "| pairs × rate | target | delivered in order | msgs/s relayed | latency p50 | p90 | p99 | max "
                  "| ack p99 | server CPU | CPU per msg | server RSS | load generator CPU | other load |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for level in result["levels"]:
            for t in result["settings"]["targets"]:
                r = level["runs"].get(t)
                if r is None:
                    continue
                tag = f"{level['pairs']} × {level['rate']:g}/s"
                res = r.get("result")
                if not res:
                    lines.append(f"| {tag} | {TARGETS[t]} | not measured: {r.get('error', 'failed')} "
                                 "| | | | | | | | | | | |")
                    continue
                lat, ack = res["latency_ms"] or {}, res["ack_latency_ms"] or {}
                cpu_msg = r.get("server_cpu_us_per_msg")
                lines.append(
                    f"| {tag} | {TARGETS[t]} | {res['pairs_all_delivered_in_order']}/{level['pairs']} "
                    f"| {res['received_per_s']:,.0f} | {fmt_ms(lat.get('p50'))} | {fmt_ms(lat.get('p90'))} "
                    f"| {fmt_ms(lat.get('p99'))} | {fmt_ms(lat.get('max'))} | {fmt_ms(ack.get('p99'))} "
                    f"| {fmt_pct(r.get('server_cpu_pct'))} | {'—' if cpu_msg is None else f'{cpu_msg:.0f} µs'} "
                    f"| {fmt_mib(r.get('rss_max_kib'))} | {fmt_pct(r.get('loadgen_cpu_pct'))} "
                    f"| {fmt_pct(r.get('other_cpu_pct'))} |")
        lines += ["", "*msgs/s relayed*: events the agents received per second in the measured window (the "
                  "server also receives as many frames and sends as many acks). *latency*: visitor send → agent "
                  "receive, every frame sent in the window. *server CPU*: user+system time of the server process "
                  "over the window, in % of one core; *CPU per msg* divides it by the messages relayed. "
                  "*server RSS*: the largest sample in the window. *other load*: CPU time the rest of the machine "
                  "used meanwhile (from /proc/stat, less the server and the generator), in % of one core, out of "
                  f"{result['machine']['nproc'] * 100}%.", ""]
    if result["idle"]:
        lines += [f"### Idle visitors ({s['idle']:,}, " + ("hello, share and a small snapshot"
                                                           if s["idle_snapshot"] else "hello and share")
                  + ", then nothing; permessage-deflate "
                  + ("offered" if s["idle_deflate_offered"] else "not offered") + ")", "",
                  "| target | connected | RSS before | RSS with them open | per connection | open fds | set-up time |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in result["idle"]:
            ready = r.get("ready")
            if not ready:
                lines.append(f"| {TARGETS[r['target']]} | not measured: {r.get('error', 'failed')} | | | | | |")
                continue
            per = r.get("kib_per_connection")
            cut = f" (time limit {s['idle_timeout_s']:g} s)" if ready.get("not_started") else ""
            lines.append(f"| {TARGETS[r['target']]} | {ready['ready']:,}/{r['connections']:,}{cut} "
                         f"| {fmt_mib(r.get('rss_before_kib'))} | {fmt_mib(r.get('rss_with_idle_kib'))} "
                         f"| {'—' if per is None else f'{per:.1f} KiB'} | {r.get('fds_with_idle')} "
                         f"| {ready['setup_s']:.1f} s |")
        lines.append("")
    rows = result.get("goals", [])
    if rows:
        lines += ["### Goals", "", "| goal | measured | from | met |", "|---|---:|---|---|"]
        for g in rows:
            if isinstance(g["met"], (tuple, list)):
                met = f"inconclusive (would be {'yes' if g['met'][1] else 'no'})"
            else:
                met = "—" if g["met"] is None else ("yes" if g["met"] else "**no**")
            if not g["official"]:
                met += " (not the goal's load)"
            lines.append(f"| {g['goal']} | {g['measured']} | {g['from']} | {met} |")
        lines.append("")
    notes = list(result["notes"])
    for level in result["levels"]:
        for t, r in level["runs"].items():
            res = r.get("result") or {}
            tag = f"{TARGETS[t]}, {level['pairs']} pairs"
            if r.get("ready", {}).get("setup_errors"):
                notes.append(f"{tag}: set-up errors {r['ready']['setup_errors']}")
            for side in ("agent", "visitor"):
                # `viewers` and `tab` are the hub telling who watches and what the tab shows: expected.
                other = {k: v for k, v in (res.get(f"other_frames_{side}") or {}).items()
                         if k not in ("viewers", "tab")}
                if other:
                    notes.append(f"{tag}: other frames the {side}s got: "
                                 + ", ".join(f"{k} ×{v}" for k, v in sorted(other.items())))
            st = res.get("stalls")
            if st and st["count"]:
                longest = ", ".join(f"{x['max_ms']:.0f} ms at {x['at_s']:.1f} s" for x in st["longest"][:3])
                notes.append(f"{tag}: {st['count']} stall(s) (frames slower than {st['threshold_ms']} ms within "
                             f"100 ms of each other), {st['frames']} frames in all; longest: {longest} "
                             "(seconds since its first round began)")
            if res.get("worst_pairs"):
                notes.append(f"{tag}: incomplete pairs, e.g. {res['worst_pairs'][:2]}")
            if res.get("extensions") is not None:
                ext = res["extensions"]
                notes.append(f"{tag}: negotiated extensions: visitor `{ext['visitor'] or 'none'}`, "
                             f"agent `{ext['agent'] or 'none'}`; load generator event-loop delay p99 "
                             f"{fmt_ms(res['loadgen_event_loop_delay_ms']['p99'])}, send lag p99 "
                             f"{fmt_ms((res['send_lag_ms'] or {}).get('p99'))}")
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    for level in result["levels"]:
        prof = (level["runs"].get("cobrowse") or {}).get("profile")
        if prof and prof.get("self"):
            threads = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(prof.get("threads", {}).items()))
            lines += [f"### py-spy profile of cobrowse, {level['pairs']} pairs ({prof['samples']} samples holding "
                      f"the GIL: {threads}; raw: `{prof['saved_as']}`)", "",
                      "| self % | function | | inclusive % | function |", "|---:|---|---|---:|---|"]
            for a, b in zip(prof["self"][:15], prof["inclusive"][:15]):
                lines.append(f"| {a['pct']:.1f} | `{a['function']}` | | {b['pct']:.1f} | `{b['function']}` |")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
