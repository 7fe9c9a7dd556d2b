"""Tests for the cobrowse command line (subprocesses for the real entry point)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import threading
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

import cobrowse
from cobrowse import cli
from cobrowse.config import Config, Site

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COBROWSE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cobrowse", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or ROOT,
        env=clean_env(**env),
    )


# --- help and version ------------------------------------------------------


def test_help():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for word in ("serve", "demo", "check-config", "--version"):
        assert word in result.stdout


def test_serve_help():
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--config", "--upstream", "--listen", "--prefix", "--log-level"):
        assert option in result.stdout


def test_demo_help():
    result = run_cli("demo", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--listen", "--shop-listen", "--data-dir"):
        assert option in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cobrowse {cobrowse.__version__}"


def test_no_command_is_a_usage_error():
    result = run_cli()
    assert result.returncode == 2
    assert "usage: cobrowse" in result.stderr


# --- check-config ----------------------------------------------------------


def test_check_config_bad_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlisten = "0.0.0.0:8080"\n\n[proxy]\nread_timeout = "fast"\n')
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f'cobrowse: error: {path}:5: proxy.read_timeout must be a positive number, got "fast"\n'
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_check_config_syntax_error(tmp_path):
    path = tmp_path / "syntax.toml"
    path.write_text("[server]\nlisten = \n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"cobrowse: error: {path}:2: invalid TOML")
    assert "Traceback" not in result.stderr


def test_check_config_missing_file(tmp_path):
    result = run_cli("check-config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_good_file(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [server]
            database_url = "postgresql+asyncpg://cb:hunter2@db/cobrowse"
            [[site]]
            host = "shop.example.com"
            aliases = ["www.shop.example.com"]
            upstream = "https://backend.internal:8443/"
            """
        )
    )
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "shop.example.com + www.shop.example.com -> https://backend.internal:8443" in result.stdout
    assert "hunter2" not in result.stdout  # passwords are redacted
    assert result.stdout.rstrip().endswith(f"{path}: OK")


def test_check_config_applies_env_unless_ignored(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text('[[site]]\nhost = "*"\nupstream = "http://a"\n')
    result = run_cli("check-config", str(path), COBROWSE_PROXY_POOL_SIZE="zero")
    assert result.returncode == 2
    assert result.stderr.startswith("cobrowse: error: environment variable COBROWSE_PROXY_POOL_SIZE: ")
    result = run_cli("check-config", "--ignore-env", "-q", str(path), COBROWSE_PROXY_POOL_SIZE="zero")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_check_config_requires_a_site(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("[server]\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert f"{path}: no sites configured" in result.stderr


# --- serve -----------------------------------------------------------------


def test_serve_without_upstream_exits_2(tmp_path):
    result = run_cli("serve", cwd=tmp_path)
    assert result.returncode == 2
    assert "cobrowse: error: nothing to proxy" in result.stderr
    assert "--upstream" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_bad_flag_value_names_the_flag():
    result = run_cli("serve", "--upstream", "http://127.0.0.1:3000", "--listen", "nowhere")
    assert result.returncode == 2
    assert result.stderr.startswith("cobrowse: error: --listen must be host:port")
    result = run_cli("serve", "--upstream", "ftp://files")
    assert result.returncode == 2
    assert result.stderr.startswith("cobrowse: error: --upstream must be an http:// or https:// URL")


def test_serve_bad_config_file_exits_2(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[site]]\nhost = "*"\nupstream = "http://a"\n[proxy]\nread_timout = 1\n')
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"cobrowse: error: {path}:5: unknown key 'read_timout' in [proxy]; did you mean 'read_timeout'?\n"
    )


@pytest.fixture
def fake_server(monkeypatch):
    """Replace cobrowse.server with a stub that records how run() was called."""
    calls: list[tuple[Config, dict]] = []
    stub = types.ModuleType("cobrowse.server")

    async def run(config, **kwargs):
        calls.append((config, kwargs))

    stub.run = run
    monkeypatch.setitem(sys.modules, "cobrowse.server", stub)
    monkeypatch.setattr(cobrowse, "server", stub, raising=False)
    for name in list(os.environ):
        if name.startswith("COBROWSE_"):
            monkeypatch.delenv(name)
    return calls


def test_serve_builds_config_and_runs_server(fake_server, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:9000"\n[[site]]\nhost = "a.com"\nupstream = "http://a"\n')
    status = cli.main(
        ["serve", "--config", str(path), "--upstream", "http://default:1/", "--prefix", "/cb/", "--log-level", "debug",
         "--access-log", "-"]
    )
    assert status == 0
    [(config, kwargs)] = fake_server
    assert kwargs == {}
    assert config.source == str(path)
    assert config.server.listen == "127.0.0.1:9000"
    assert config.server.prefix == "/cb/"
    assert config.server.log_level == "debug"
    assert config.server.access_log == "-"
    assert config.sites == (Site("a.com", "http://a"), Site("*", "http://default:1"))


def test_serve_uses_env(fake_server, monkeypatch):
    monkeypatch.setenv("COBROWSE_UPSTREAM", "http://from-env:3000")
    monkeypatch.setenv("COBROWSE_SERVER_LISTEN", "127.0.0.1:9001")
    assert cli.main(["serve"]) == 0
    [(config, _)] = fake_server
    assert config.server.listen == "127.0.0.1:9001"
    assert config.sites == (Site("*", "http://from-env:3000"),)


def test_demo_builds_config(fake_server, monkeypatch, tmp_path):
    monkeypatch.setenv("COBROWSE_CONFIG", str(tmp_path / "ignored.toml"))  # demo does not read it
    status = cli.main(["demo", "--listen", "127.0.0.1:9100", "--shop-listen", "0.0.0.0:9101", "--data-dir", str(tmp_path),
                       "--access-log", str(tmp_path / "access.log")])
    assert status == 0
    [(config, kwargs)] = fake_server
    assert kwargs == {"demo_shop_listen": "0.0.0.0:9101"}
    assert config.server.listen == "127.0.0.1:9100"
    assert config.server.data_dir == str(tmp_path)
    assert config.server.access_log == str(tmp_path / "access.log")
    assert config.sites == (Site("*", "http://127.0.0.1:9101"),)


def test_demo_defaults_and_errors(fake_server, capsys):
    assert cli.main(["demo"]) == 0
    [(config, kwargs)] = fake_server
    assert config.server.listen == "127.0.0.1:8080"
    assert kwargs == {"demo_shop_listen": "127.0.0.1:8081"}
    assert config.sites == (Site("*", "http://127.0.0.1:8081"),)
    assert cli.main(["demo", "--shop-listen", "[::1]:9"]) == 0
    assert fake_server[-1][0].sites[0].upstream == "http://[::1]:9"
    assert cli.main(["demo", "--shop-listen", "nope"]) == 2
    assert "cobrowse: error: --shop-listen must be host:port" in capsys.readouterr().err
    assert cli.main(["demo", "--listen", "127.0.0.1:8081"]) == 2
    assert "need different ports" in capsys.readouterr().err


def test_keyboard_interrupt_exits_0(monkeypatch, fake_server):
    def interrupted(main):
        main().close()
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_async", interrupted)
    assert cli.main(["serve", "--upstream", "http://a"]) == 0


STUB_SCRIPT = """
import asyncio, sys, types
stub = types.ModuleType("cobrowse.server")
async def run(config, *, demo_shop_listen=None):
    print("READY", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        print("CLEANUP", flush=True)
stub.run = run
sys.modules["cobrowse.server"] = stub
import cobrowse
cobrowse.server = stub
from cobrowse.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_cleanly(signum):
    proc = subprocess.Popen(
        [sys.executable, "-c", STUB_SCRIPT, "serve", "--upstream", "http://127.0.0.1:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.1)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "CLEANUP" in out
    assert "Traceback" not in err


def test_subcommand_registry_is_extensible(monkeypatch):
    monkeypatch.setattr(cli, "SUBCOMMANDS", dict(cli.SUBCOMMANDS))
    seen = []

    def arguments(parser):
        parser.add_argument("name")

    @cli.subcommand("hello", help="say hello", arguments=arguments)
    def cmd_hello(args):
        seen.append(args.name)
        return 3

    assert cli.main(["hello", "world"]) == 3
    assert seen == ["world"]
    assert "serve" in cli.SUBCOMMANDS and "hello" in cli.SUBCOMMANDS


def test_a_port_in_use_is_a_short_error_naming_the_listener(tmp_path):
    # The real entry point and real listeners: the console's port is taken, the proxy's is free.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--upstream", "http://127.0.0.1:9", "--listen", "127.0.0.1:0",
                         "--console-listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"cobrowse: error: cannot listen on 127.0.0.1:{port} (the agent console): Address already in use")


# --- the open-file limit -------------------------------------------------------


def _serve_with_file_limit(tmp_path: Path, soft: int, hard: int) -> tuple[str, str]:
    """Starts `cobrowse serve` with this RLIMIT_NOFILE; returns its limits as
    /proc says once it listens, and what it logged."""
    import resource

    server = subprocess.Popen(
        [sys.executable, "-m", "cobrowse", "serve", "--upstream", "http://127.0.0.1:9", "--listen", "127.0.0.1:0",
         "--console-listen", "127.0.0.1:0", "--data-dir", str(tmp_path), "--log-level", "info"],
        cwd=ROOT, env=clean_env(PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    watchdog = threading.Timer(60, server.kill)  # a server that never says it listens fails the test, not the run
    watchdog.start()
    logged = []
    try:
        for line in server.stderr:
            logged.append(line)
            if line.startswith("Listening on"):
                break
        else:
            raise AssertionError(f"cobrowse serve did not start: {''.join(logged)[-2000:]}")
        limits = next(line for line in Path(f"/proc/{server.pid}/limits").read_text().splitlines()
                      if line.startswith("Max open files"))
    finally:
        server.terminate()
        logged.append(server.communicate(timeout=30)[1])
        watchdog.cancel()
    return limits, "".join(logged)


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc")
def test_serve_raises_its_open_file_limit_to_the_hard_one(tmp_path):
    limits, logged = _serve_with_file_limit(tmp_path, 256, 8192)
    assert limits.split()[3:5] == ["8192", "8192"], limits
    assert "open files: up to 8192 (raised from 256)" in logged
    assert "WARNING" not in logged
    # A hard limit that is itself low is said at start, not found out from silently dropped visitors.
    limits, logged = _serve_with_file_limit(tmp_path, 256, 1024)
    assert limits.split()[3:5] == ["1024", "1024"], limits
    assert "only 1024 open files are allowed (ulimit -n), about 341 visitors at once" in logged
