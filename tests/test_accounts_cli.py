"""`cobrowse user ...` and `cobrowse migrate`: end to end in subprocesses, error paths in-process."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from cobrowse import cli
from cobrowse.config import Config, ServerOptions
from cobrowse.storage import Database, accounts, head_revision

ROOT = Path(__file__).resolve().parents[1]

# The real CLI, with argon2's cheapest parameters (the real ones cost up to a second per hash
# on a busy CI machine). `migrate` below runs the unmodified `python -m cobrowse`.
CHEAP_CLI = """
import sys
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from cobrowse.storage import accounts
accounts.set_password_hasher(PasswordHasher.from_parameters(CHEAPEST))
from cobrowse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COBROWSE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run(*args: str, stdin: str | None = None, cheap: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", CHEAP_CLI] if cheap else [sys.executable, "-m", "cobrowse"]
    return subprocess.run(
        [*command, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=clean_env(),
    )


def authenticate(data_dir: Path, username: str, password: str):
    async def check():
        async with Database.from_config(Config(server=ServerOptions(data_dir=str(data_dir)))) as db:
            return await accounts.authenticate(db, username, password)

    return asyncio.run(check())


def table(stdout: str) -> dict[str, list[str]]:
    """`user list` output -> {username: [role, status, last login, display name]}."""
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["USERNAME", "ROLE", "STATUS"]
    starts = [lines[0].index(h) for h in ("ROLE", "STATUS", "LAST LOGIN", "DISPLAY NAME")]
    rows = {}
    for line in lines[1:]:
        bounds = [0, *starts, len(line)]
        cells = [line[a:b].strip() for a, b in zip(bounds, bounds[1:])]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(autouse=True)
def cheap_hashes():
    previous = accounts.set_password_hasher(PasswordHasher.from_parameters(CHEAPEST))
    yield
    accounts.set_password_hasher(previous)


def test_user_commands_end_to_end(tmp_path, capsys, monkeypatch):
    """Each step in a subprocess, as a shell would run it; checks in-process."""
    data = tmp_path / "data"
    d = ("--data-dir", str(data))

    result = run("migrate", *d, cheap=False)
    assert result.returncode == 0, result.stderr
    assert f"revision: {head_revision()} (head)" in result.stdout
    assert f"upgraded: (empty) -> {head_revision()}" in result.stdout
    assert str(data / "cobrowse.db") in result.stdout

    result = run("user", "add", "Alice", "--role", "supervisor", "--display-name", "Alice Martin",
                 "--password-stdin", *d, stdin="password one\r\n")
    assert result.returncode == 0, result.stderr
    assert "created supervisor 'alice'" in result.stdout
    assert "password one" not in result.stdout + result.stderr
    monkeypatch.setattr(sys, "stdin", io.StringIO("bob-password\n"))
    assert cli.main(["user", "add", "bob", "--password-stdin", *d]) == 0

    result = run("user", "list", *d)
    assert result.returncode == 0, result.stderr
    assert table(result.stdout) == {
        "alice": ["supervisor", "enabled", "never", "Alice Martin"],
        "bob": ["agent", "enabled", "never", "bob"],
    }

    assert authenticate(data, "alice", "password one") is not None  # "\r\n" stripped
    assert authenticate(data, "bob", "bob-password") is not None
    result = run("user", "disable", "BOB", *d)
    assert result.returncode == 0, result.stderr
    assert "disabled 'bob'" in result.stdout
    assert authenticate(data, "bob", "bob-password") is None

    result = run("user", "passwd", "alice", "--password-stdin", *d, stdin="password two\n")
    assert result.returncode == 0, result.stderr
    assert "changed the password of 'alice'" in result.stdout
    assert authenticate(data, "alice", "password one") is None
    assert authenticate(data, "alice", "password two") is not None

    assert cli.main(["user", "enable", "bob", *d]) == 0
    assert authenticate(data, "bob", "bob-password") is not None
    capsys.readouterr()
    assert cli.main(["user", "list", *d]) == 0
    rows = table(capsys.readouterr().out)
    assert rows["bob"][:2] == ["agent", "enabled"]
    assert rows["alice"][2].endswith(" UTC")  # last login recorded

    assert cli.main(["migrate", *d]) == 0  # already at head: nothing to do
    out = capsys.readouterr().out
    assert "upgraded" not in out and f"revision: {head_revision()} (head)" in out


# --- in-process: errors and prompts ------------------------------------------------


def main(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_password_needs_a_terminal_or_password_stdin(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
    status, out, err = main(capsys, "user", "add", "alice", "--data-dir", str(tmp_path))
    assert status == 2
    assert "not a terminal" in err and "--password-stdin" in err

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status, out, err = main(capsys, "user", "add", "alice", "--password-stdin", "--data-dir", str(tmp_path))
    assert (status, err) == (2, "cobrowse: error: --password-stdin: no password on standard input\n")

    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    status, out, err = main(capsys, "user", "add", "alice", "--password-stdin", "--data-dir", str(tmp_path))
    assert status == 2 and "at least 8 characters" in err


def test_password_prompt(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeTTY())
    answers = iter(["password1", "password2", "password1", "password1"])
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: (prompts.append(prompt), next(answers))[1])

    status, out, err = main(capsys, "user", "add", "alice", "--data-dir", str(tmp_path))
    assert (status, err) == (2, "cobrowse: error: the passwords do not match\n")
    status, out, err = main(capsys, "user", "add", "alice", "--data-dir", str(tmp_path))
    assert status == 0, err
    assert prompts[0] == "New password for alice: "
    assert authenticate(tmp_path, "alice", "password1") is not None

    def cancelled(prompt):
        raise KeyboardInterrupt

    monkeypatch.setattr("getpass.getpass", cancelled)
    status, out, err = main(capsys, "user", "passwd", "alice", "--data-dir", str(tmp_path))
    assert status == 130 and "cancelled" in err

    # passwd checks the user exists before asking for a password
    status, out, err = main(capsys, "user", "passwd", "nobody", "--data-dir", str(tmp_path))
    assert (status, err) == (2, "cobrowse: error: no user named 'nobody'\n")


def test_user_errors(tmp_path, capsys, monkeypatch):
    d = ("--data-dir", str(tmp_path / "data"))
    status, out, err = main(capsys, "user", "list", *d)
    assert status == 0 and out == "" and "no users yet" in err

    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\npassword1\n"))
    assert main(capsys, "user", "add", "alice", "--password-stdin", *d)[0] == 0
    status, out, err = main(capsys, "user", "add", "ALICE", "--password-stdin", *d)
    assert (status, err) == (2, "cobrowse: error: user 'alice' already exists\n")

    status, out, err = main(capsys, "user", "add", "no spaces", "--password-stdin", *d)
    assert status == 2 and "invalid username 'no spaces'" in err
    for action in ("disable", "enable"):
        status, out, err = main(capsys, "user", action, "carol", *d)
        assert (status, err) == (2, "cobrowse: error: no user named 'carol'\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
    status, out, err = main(capsys, "user", "passwd", "carol", "--password-stdin", *d)
    assert (status, err) == (2, "cobrowse: error: no user named 'carol'\n")

    with pytest.raises(SystemExit) as exc:
        cli.main(["user", "add", "bob", "--role", "boss"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["user"])
    assert exc.value.code == 2


def test_config_file_without_sites_and_storage_errors(tmp_path, capsys):
    config = tmp_path / "cobrowse.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "from-config"}"\n')
    status, out, err = main(capsys, "migrate", "--config", str(config))
    assert status == 0, err
    assert (tmp_path / "from-config" / "cobrowse.db").exists()

    (tmp_path / "a-file").write_text("")
    status, out, err = main(capsys, "user", "list", "--data-dir", str(tmp_path / "a-file" / "data"))
    assert status == 1 and "cannot create the database" in err

    status, out, err = main(capsys, "migrate", "--config", str(tmp_path / "missing.toml"))
    assert status == 2 and "cannot read config file" in err


# --- chat settings: --email, --transcripts, --department, `user set` -----------------


def chat_profile(data_dir: Path, username: str) -> tuple[str | None, bool, list[str]]:
    async def read():
        async with Database.from_config(Config(server=ServerOptions(data_dir=str(data_dir)))) as db:
            user = await accounts.get_user(db, username)
            return user.email, user.transcripts, await accounts.user_departments(db, user.id)

    return asyncio.run(read())


def test_user_add_with_chat_settings(tmp_path, capsys, monkeypatch):
    d = ("--data-dir", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
    status, out, err = main(capsys, "user", "add", "carol", "--password-stdin", "--email", "carol@example.com",
                            "--transcripts", "--department", "Sales", "--department", "support",
                            "--department", "sales", *d)
    assert status == 0, err
    assert out == "created agent 'carol', email carol@example.com, transcripts on, departments sales, support\n"
    assert chat_profile(tmp_path, "carol") == ("carol@example.com", True, ["sales", "support"])

    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
    assert main(capsys, "user", "add", "dan", "--password-stdin", *d)[:2] == (0, "created agent 'dan'\n")
    assert chat_profile(tmp_path, "dan") == (None, False, [])

    for argv, message in (
        (("--transcripts",), "--transcripts needs --email"),
        (("--email", "not-an-address"), "invalid email address 'not-an-address'"),
        (("--department", "no spaces"), "invalid department 'no spaces'"),
    ):
        monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
        status, out, err = main(capsys, "user", "add", "erin", "--password-stdin", *argv, *d)
        assert status == 2 and message in err, err


def test_departments_must_be_configured_ones_when_there_are_any(tmp_path, capsys, monkeypatch):
    config = tmp_path / "cobrowse.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n\n[[department]]\nid = "sales"\n\n'
                      '[[department]]\nid = "support"\n')
    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
    status, out, err = main(capsys, "user", "add", "carol", "--password-stdin", "--department", "billing",
                            "--config", str(config))
    assert (status, err) == (2, "cobrowse: error: no department 'billing' in the config "
                                "(its departments: sales, support)\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
    assert main(capsys, "user", "add", "carol", "--password-stdin", "--department", "sales",
                "--config", str(config))[0] == 0
    status, out, err = main(capsys, "user", "set", "carol", "--department", "billing", "--config", str(config))
    assert status == 2 and "no department 'billing'" in err


def test_user_set(tmp_path, capsys, monkeypatch):
    d = ("--data-dir", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.StringIO("password1\n"))
    assert main(capsys, "user", "add", "bob", "--password-stdin", *d)[0] == 0

    status, out, err = main(capsys, "user", "set", "bob", "--transcripts", *d)
    assert (status, err) == (2, "cobrowse: error: 'bob' has no email address: set one first (--email)\n")
    status, out, err = main(capsys, "user", "set", "BOB", "--email", "bob@example.com", "--transcripts",
                            "--department", "sales", *d)
    assert status == 0, err
    assert out == "updated 'bob': email bob@example.com, transcripts on, departments sales\n"
    assert chat_profile(tmp_path, "bob") == ("bob@example.com", True, ["sales"])

    status, out, err = main(capsys, "user", "set", "bob", "--no-transcripts", "--department", "support",
                            "--department", "billing", *d)
    assert out == "updated 'bob': email bob@example.com, transcripts off, departments billing, support\n"
    status, out, err = main(capsys, "user", "set", "bob", "--no-departments", *d)
    assert out == "updated 'bob': email bob@example.com, transcripts off, departments (all)\n"
    main(capsys, "user", "set", "bob", "--transcripts", *d)
    status, out, err = main(capsys, "user", "set", "bob", "--email", "", *d)  # no address: no transcripts
    assert out == "updated 'bob': email (none), transcripts off, departments (all)\n"
    assert chat_profile(tmp_path, "bob") == (None, False, [])

    for argv, message in (
        ((), "nothing to change"),
        (("--email", "", "--transcripts"), "--transcripts needs an email address"),
        (("--email", "bob at example"), "invalid email address"),
    ):
        status, out, err = main(capsys, "user", "set", "bob", *argv, *d)
        assert status == 2 and message in err, err
    status, out, err = main(capsys, "user", "set", "nobody", "--email", "x@example.com", *d)
    assert (status, err) == (2, "cobrowse: error: no user named 'nobody'\n")
    with pytest.raises(SystemExit):  # argparse: the two are exclusive
        cli.main(["user", "set", "bob", "--transcripts", "--no-transcripts", *d])
