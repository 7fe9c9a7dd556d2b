"""Helpers shared by the benchmarks: child processes, ports, wrk, /proc sampling.

Standard library only, so a benchmark runs on the project's venv without extras.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

# ---------------------------------------------------------------------------
# processes


class ProcessGroup:
    """Children started in their own sessions, all stopped by stop_all().

    Each child leads its own process group, so stopping it also stops what it
    started (nginx workers, for example), and a Ctrl-C in the terminal reaches
    only us: we then stop the children in order from our finally blocks.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], *, cwd: str | Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self, name: str) -> str:
        try:
            return (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop_all(self, grace: float = 5.0) -> None:
        for name, proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # The leader may be gone while group members linger: always sweep the group.
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                print(f"warning: {name} (pid {proc.pid}) did not stop", file=sys.stderr)
        self.procs.clear()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the child is its own group leader (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_on_signals() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so that finally blocks stop the children."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


# ---------------------------------------------------------------------------
# HTTP


def http_get(host: str, port: int, path: str, headers: dict[str, str] | None = None,
             timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def wait_for_http(host: str, port: int, path: str, proc: subprocess.Popen | None,
                  timeout: float = 20.0) -> None:
    """Until GET path answers 200 (raises RuntimeError if the process exits or time runs out)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before answering")
        try:
            status, _, _ = http_get(host, port, path, timeout=2.0)
            if status == 200:
                return
            last = f"status {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"not ready after {timeout:.0f} s ({last})")


# ---------------------------------------------------------------------------
# wrk

WRK_LUA = r"""
-- Prints one machine-readable line at the end of a run.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"non_2xx_3xx":%d,"timeouts":%d,' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
    latency.max, latency.mean))
end
"""


def run_wrk(wrk: str, lua_script: Path, url: str, *, duration: int, connections: int,
            headers: list[str], timeout_s: int = 10) -> dict:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", f"{timeout_s}s", "--latency",
            "-s", str(lua_script)]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk gave no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / secs if secs else 0.0
    r["errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    r["bytes_per_response"] = r["bytes"] / r["requests"] if r["requests"] else 0.0
    return r


# ---------------------------------------------------------------------------
# /proc

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pids: list[int]) -> float | None:
    """User+system CPU time of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _CLK_TCK


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the VmRSS of some processes every `interval` seconds on a thread."""

    def __init__(self, pids: list[int], interval: float = 0.02) -> None:
        self.pids = pids
        self.interval = interval
        self.baseline_kb = self._sample()
        self.max_kb = self.baseline_kb
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        return sum(rss_kb(p) or 0 for p in self.pids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            kb = self._sample()
            self.samples += 1
            if kb > self.max_kb:
                self.max_kb = kb

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        kb = self._sample()
        self.max_kb = max(self.max_kb, kb)
        self.after_kb = kb

    @property
    def growth_kb(self) -> int:
        return self.max_kb - self.baseline_kb


# ---------------------------------------------------------------------------
# facts


def _first_line(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def machine_facts(*, nginx: str | None, mitmdump: str | None, wrk: str | None, haproxy: str | None = None) -> dict:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import uvloop  # noqa: F401
        uvloop_version = uvloop.__version__
    except ImportError:
        uvloop_version = None
    facts = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_bytes": mem_total,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "uvloop": uvloop_version,
        "loadavg_start": os.getloadavg(),
        "nginx": _first_line([nginx, "-v"]) if nginx else None,
        "mitmproxy": _first_line([mitmdump, "--version"]) if mitmdump else None,
        "wrk": _first_line([wrk, "-v"]) if wrk else None,
        "haproxy": _first_line([haproxy, "-v"]) if haproxy else None,
    }
    root = Path(__file__).resolve().parent.parent
    facts["git_commit"] = _first_line(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    try:
        # Read-only: does the proxy's code differ from that commit?
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "cobrowse"],
                               capture_output=True, timeout=20).returncode
        facts["cobrowse_modified_since_commit"] = bool(dirty)
    except (OSError, subprocess.TimeoutExpired):
        facts["cobrowse_modified_since_commit"] = None
    return facts


# Servers a run may be skewed by, if some were left running (by an earlier
# run or an experiment): idle ones still wake up, hold memory and sockets.
_COMPETITORS = ("cobrowse", "nginx", "haproxy", "mitmdump", "mitmproxy", "wrk", "node", "chromium")


def competing_processes() -> list[str]:
    """Processes not of this run (nor its ancestors) that look like servers or
    load generators: each as "pid command", for the report's notes."""
    mine = set()
    pid = os.getpid()
    while pid > 1:  # this process and its ancestors (make, a shell)
        mine.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = b" ".join(a for a in argv if a).decode(errors="replace")
        if command and any(name in Path(argv[0].decode(errors="replace")).name or f" -m {name}" in command
                           for name in _COMPETITORS):
            found.append(f"{entry.name} {command[:100]}")
    return found


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
