"""The ``cobrowse`` command line.

Subcommands live in a registry: each is a pair of plain functions, one that adds
its arguments to an argparse parser and one that runs it, registered with
:func:`subcommand`. A later command (``cobrowse user add|list|...``,
``cobrowse migrate``) is one more decorated function; nothing else changes::

    def _user_arguments(parser):
        sub = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="create an agent account")
        add.add_argument("email")
        add.set_defaults(run=_user_add)        # nested actions override `run`
        add_config_option(add)

    @subcommand("user", help="manage agent accounts", arguments=_user_arguments)
    def cmd_user(args): ...

Errors: a :class:`~cobrowse.config.ConfigError` or :class:`CliError` prints
``cobrowse: error: <message>`` on stderr and exits 2, without a traceback.
Ctrl-C and SIGTERM stop the server cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cobrowse import __version__
from cobrowse.config import (
    ENV_PREFIX,
    LOG_LEVELS,
    Config,
    ConfigError,
    load_config,
    parse_listen,
)

__all__ = [
    "main",
    "build_parser",
    "subcommand",
    "Subcommand",
    "SUBCOMMANDS",
    "CliError",
    "add_config_option",
    "config_from_args",
    "setup_logging",
    "run_async",
    "describe_config",
]

PROG = "cobrowse"
DEFAULT_SHOP_LISTEN = "127.0.0.1:8081"


class CliError(Exception):
    """A usage problem found by a command: printed as ``cobrowse: error: ...``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------
# Subcommand registry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str  # one line, shown in `cobrowse --help`
    description: str  # shown in `cobrowse NAME --help`
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    epilog: str | None = None


SUBCOMMANDS: dict[str, Subcommand] = {}  # in registration order = order in --help


def subcommand(
    name: str,
    *,
    help: str,
    description: str | None = None,
    epilog: str | None = None,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Callable[[Callable[[argparse.Namespace], int | None]], Callable[[argparse.Namespace], int | None]]:
    """Register ``cobrowse NAME``; decorates the function that runs it (returns an exit code)."""

    def register(run: Callable[[argparse.Namespace], int | None]):
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        SUBCOMMANDS[name] = Subcommand(
            name=name,
            help=help,
            description=description or help,
            arguments=arguments or (lambda parser: None),
            run=run,
            epilog=epilog,
        )
        return run

    return register


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=_HelpFormatter,
        description=(
            "Self-hosted co-browsing and live support. A reverse proxy in front of your\n"
            "site injects a small script into every HTML page; visitors click \"Get help\"\n"
            "and share their page with an agent."
        ),
        epilog=textwrap.dedent(
            f"""\
            examples:
              {PROG} demo                                    try it with the bundled demo shop
              {PROG} serve --upstream http://127.0.0.1:3000  proxy one site
              {PROG} serve --config cobrowse.toml            proxy the sites in a config file
              {PROG} check-config cobrowse.toml              validate a config file

            Run '{PROG} COMMAND --help' for a command's options.
            Configuration reference: docs/configuration.md"""
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    commands.required = True
    for cmd in SUBCOMMANDS.values():
        sub = commands.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.description,
            epilog=cmd.epilog,
            formatter_class=_HelpFormatter,
        )
        cmd.arguments(sub)
        sub.set_defaults(run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cobrowse`` and ``python -m cobrowse``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
    except (ConfigError, CliError) as exc:
        _print_error(str(exc))
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # e.g. `cobrowse check-config x | head -1`
        _silence_stdout()
        return 0
    return 0 if status is None else int(status)


def _print_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------
# Shared helpers for commands
# ---------------------------------------------------------------------------


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"TOML config file (default: ${ENV_PREFIX}CONFIG if set)",
    )


def config_from_args(
    args: argparse.Namespace,
    overrides: Mapping[str, object] | None = None,
    *,
    allow_no_sites: bool = True,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load the config for a command that has :func:`add_config_option`.

    Errors in ``overrides`` name the flag (``--listen must be host:port ...``).
    """
    try:
        return load_config(getattr(args, "config", None), env, overrides, allow_no_sites=allow_no_sites)
    except ConfigError as exc:
        if exc.origin == "command line":
            for key, flag in _FLAGS.items():
                if exc.message.startswith(key + " "):
                    raise ConfigError(flag + exc.message[len(key) :]) from None
        raise


# Override keys -> the flags that set them, for error messages.
_FLAGS = {
    "upstream": "--upstream",
    "server.listen": "--listen",
    "server.prefix": "--prefix",
    "server.data_dir": "--data-dir",
    "server.log_level": "--log-level",
    "console.listen": "--console-listen",
}


def setup_logging(level: str) -> None:
    """Concise logging to stderr at ``level`` (debug|info|warning|error)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )


# Descriptors one visitor may hold at once: its page's connection, the
# upstream's, its co-browse websocket (and a kernel relay's pipe for a moment).
_FILES_PER_VISITOR = 3
_FEW_FILES = 4096


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one, as nginx's
    ``worker_rlimit_nofile`` and Go's runtime do, and warn when even that is low.

    Many systems start services with a soft limit of 1024, which would turn
    visitors away at a few hundred at once, and silently: libuv accepts and
    at once closes a connection it has no descriptor left to keep.
    """
    try:
        import resource
    except ImportError:  # (not on Windows)
        return
    log = logging.getLogger("cobrowse")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    want = hard if hard != infinite else 1 << 20  # (Linux's default fs.nr_open)
    if soft != infinite and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            log.info("open files: up to %d (raised from %d)", want, soft)
            soft = want
        except (ValueError, OSError) as exc:
            log.info("open files: up to %d (could not raise it to %d: %s)", soft, want, exc)
    if soft != infinite and soft < _FEW_FILES:
        log.warning("only %d open files are allowed (ulimit -n), about %d visitors at once; raise the hard limit "
                    "(LimitNOFILE= in a systemd unit, --ulimit nofile= for Docker)", soft, soft // _FILES_PER_VISITOR)


def run_async(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` on uvloop when available (else asyncio) until it returns.

    Ctrl-C raises KeyboardInterrupt out of here (``main`` handles it); SIGTERM
    cancels the coroutine and returns normally, so a service manager's stop is clean.
    """
    try:
        import uvloop
    except ImportError:
        uvloop = None

    async def until_stopped() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        terminated = False

        def on_sigterm() -> None:
            nonlocal terminated
            # Logged now: the graceful stop that follows may take a while.
            logging.getLogger("cobrowse").info("stopping (SIGTERM)" if not terminated
                                               else "stopping now (SIGTERM again)")
            terminated = True
            if task is not None:
                task.cancel()  # a second time cuts the wait for requests in progress

        try:
            loop.add_signal_handler(signal.SIGTERM, on_sigterm)
            handler_installed = True
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            handler_installed = False
        try:
            return await main()
        except asyncio.CancelledError:
            if not terminated:
                raise
            return None
        finally:
            if handler_installed:
                loop.remove_signal_handler(signal.SIGTERM)

    if uvloop is not None and hasattr(uvloop, "run"):
        return uvloop.run(until_stopped())
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(until_stopped())


def _redact_url(url: str) -> str:
    """Hide the password in a database URL."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url


def _describe_chat(config: Config) -> list[str]:
    c, m = config.chat, config.mail
    if not c.enabled:
        return ["chat:         off"]
    files = (f"files up to {c.max_file_size} B ({', '.join(c.file_types)}) in {config.chat_files_dir}/"
             if c.file_types else "no files")
    extras = [name for name, on in (("pre-chat form", c.prechat), ("offline messages", c.offline_enabled),
                                    ("survey", c.survey), ("transcripts to visitors", c.email_visitor)) if on]
    departments = ", ".join(d.id for d in config.departments) or "(none)"
    # Never the password: this summary is printed by check-config.
    port = m.port or {"none": 25, "starttls": 587, "tls": 465}.get(m.security, 25)  # 0: the usual one
    mail = f"{m.host}:{port} ({m.security}), from {m.sender}" if m.enabled else "off (no [mail] host)"
    return [
        "chat:         on" + (f", {', '.join(extras)}" if extras else "") + f"; {files}",
        f"departments:  {departments}",
        f"mail:         {mail}",
    ]


def describe_config(config: Config) -> str:
    """A short human-readable summary (used by ``check-config``)."""
    s, p = config.server, config.proxy

    def onoff(flag: bool) -> str:
        return "on" if flag else "off"

    database = _redact_url(s.database_url) if s.database_url else f"SQLite in {s.data_dir}/ (default)"
    lines = [
        f"config file:  {config.source or '(none)'}",
        f"listen:       {s.listen}",
        f"prefix:       {s.prefix}",
        f"data dir:     {s.data_dir}",
        f"database:     {database}",
        f"log level:    {s.log_level}",
        f"forwarded:    {'trusted' if s.trust_forwarded else 'not trusted'} (X-Forwarded-*)",
        f"access log:   {'standard error' if s.access_log == '-' else s.access_log or 'none'}",
        f"shutdown:     {f'up to {s.shutdown_timeout:g}s for requests in progress' if s.shutdown_timeout else 'cut at once'}",
        (
            f"proxy:        connect {p.connect_timeout:g}s, read {p.read_timeout:g}s, pool {p.pool_size}, "
            f"max header {p.max_header_size} B, "
            f"max body {'unlimited' if p.max_body_size == 0 else f'{p.max_body_size} B'}"
        ),
        f"              inject {onoff(p.inject)}, recompress {onoff(p.recompress)}, websocket {onoff(p.websocket)}, "
        f"splice {onoff(p.splice)}",
        "              https upstreams: " + (
            "certificates NOT verified" if not p.upstream_tls_verify
            else f"CAs from {p.upstream_ca_file}" if p.upstream_ca_file else "the system's CAs"),
        *_describe_chat(config),
        f"sites ({len(config.sites)}):",
    ]
    for site in config.sites:
        names = site.host if site.host != "*" else "* (any other host)"
        if site.aliases:
            names += " + " + ", ".join(site.aliases)
        extras = []
        if site.mask_selectors:
            extras.append(f"{len(site.mask_selectors)} masked selector(s)")
        if site.navigation_origins:
            extras.append("may navigate to " + ", ".join(site.navigation_origins))
        if site.pass_host_header:
            extras.append("passes the public Host")
        if site.tls_server_name:
            extras.append(f"certificate checked for {site.tls_server_name}")
        lines.append(f"  {names} -> {site.upstream}" + (f"  [{'; '.join(extras)}]" if extras else ""))
    return "\n".join(lines)


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"{'|'.join(LOG_LEVELS)} (default: info)",
    )


# ---------------------------------------------------------------------------
# cobrowse serve
# ---------------------------------------------------------------------------


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "-u",
        "--upstream",
        metavar="URL",
        help='the site to proxy for any Host ("*" site), e.g. http://127.0.0.1:3000; '
        'replaces a "*" site from the config file',
    )
    parser.add_argument("-l", "--listen", metavar="HOST:PORT", help="address to listen on (default: 127.0.0.1:8080)")
    parser.add_argument("--console-listen", metavar="HOST:PORT",
                        help="address of the agent console, on its own origin (default: 127.0.0.1:8090)")
    parser.add_argument(
        "--prefix", metavar="PATH", help="reserved path prefix for cobrowse itself (default: /__cobrowse/)"
    )
    parser.add_argument("--data-dir", metavar="DIR", help="directory for the database and uploads (default: data)")
    _add_access_log(parser)
    _add_log_level(parser)


def _add_access_log(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--access-log", metavar="FILE",
                        help='write one line per proxied request to FILE ("-": standard error; default: none)')


@subcommand(
    "serve",
    help="run the proxy in front of your site(s)",
    description=(
        "Run the co-browsing proxy. Every request is forwarded to the site chosen by its\n"
        "Host header; HTML pages get the cobrowse script injected. Settings come from\n"
        "defaults < config file < COBROWSE_* environment variables < these options."
    ),
    epilog=textwrap.dedent(
        f"""\
        examples:
          {PROG} serve --upstream http://127.0.0.1:3000
          {PROG} serve --config /etc/cobrowse.toml --listen 0.0.0.0:8080
          {ENV_PREFIX}UPSTREAM=http://app:3000 {PROG} serve"""
    ),
    arguments=_serve_arguments,
)
def cmd_serve(args: argparse.Namespace) -> int:
    env = os.environ
    if not (
        args.config
        or args.upstream
        or env.get(f"{ENV_PREFIX}CONFIG", "").strip()
        or env.get(f"{ENV_PREFIX}UPSTREAM", "").strip()
    ):
        raise CliError(
            "nothing to proxy: pass --upstream URL (e.g. http://127.0.0.1:3000) or --config FILE, "
            f"or set {ENV_PREFIX}UPSTREAM or {ENV_PREFIX}CONFIG (try '{PROG} demo' for a quick look)"
        )
    overrides = {
        "upstream": args.upstream,
        "server.listen": args.listen,
        "console.listen": args.console_listen,
        "server.prefix": args.prefix,
        "server.data_dir": args.data_dir,
        "server.access_log": args.access_log,
        "server.log_level": args.log_level,
    }
    config = config_from_args(args, overrides, allow_no_sites=False, env=env)
    setup_logging(config.server.log_level)
    raise_open_file_limit()

    from cobrowse import server  # lazily: config and CLI work without the server's dependencies

    _run_server(lambda: server.run(config), config)
    return 0


def _run_server(start: Callable[[], Awaitable[Any]], config: Config) -> None:
    """run_async(start) with a one-line message when a listening socket cannot be bound."""
    try:
        run_async(start)
    except OSError as exc:
        what = getattr(exc, "what", None)  # server.ListenError (not imported: see cmd_serve)
        if what is None:
            raise
        raise CliError(f"cannot listen on {exc.listen} ({what}): {exc.strerror}", exit_code=1) from None


# ---------------------------------------------------------------------------
# cobrowse demo
# ---------------------------------------------------------------------------


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-l", "--listen", metavar="HOST:PORT", help="address of the proxy, open this one (default: 127.0.0.1:8080)"
    )
    parser.add_argument(
        "--shop-listen",
        metavar="HOST:PORT",
        default=DEFAULT_SHOP_LISTEN,
        help=f"address of the demo shop behind the proxy (default: {DEFAULT_SHOP_LISTEN})",
    )
    parser.add_argument("--console-listen", metavar="HOST:PORT",
                        help="address of the agent console, on its own origin (default: 127.0.0.1:8090)")
    parser.add_argument("--data-dir", metavar="DIR", help="directory for the database and uploads (default: data)")
    _add_access_log(parser)
    _add_log_level(parser)


def _connect_address(listen: str) -> str:
    """host:port to connect to something listening on ``listen`` (wildcards -> loopback)."""
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _demo_chat(config):
    """The demo shows the whole chat: a pre-chat form with departments and a question
    of the shop's own, a formatted welcome, and the survey at the end."""
    import dataclasses

    from .config import ChatField, Department

    chat = dataclasses.replace(
        config.chat, prechat=True, survey=True,
        welcome_message="<p>Hi, thanks for waiting! <b>How can I help?</b></p>",
        fields=(ChatField(name="order", label="Order number (if you have one)"),
                ChatField(name="topic", label="What is it about?", type="select",
                          options=("An order", "A product", "Something else"))),
    )
    departments = (Department(id="sales", name="Sales"), Department(id="support", name="Support"))
    return dataclasses.replace(config, chat=chat, departments=departments)


@subcommand(
    "demo",
    help="run the bundled demo shop behind the proxy",
    description=(
        "Start the bundled demo shop and the co-browsing proxy in front of it, then print\n"
        "the URLs to open: the shop (as a visitor) and the agent console. The config file\n"
        "is not read; COBROWSE_<SECTION>_<KEY> variables (e.g. COBROWSE_CHAT_ENABLED) still apply."
    ),
    arguments=_demo_arguments,
)
def cmd_demo(args: argparse.Namespace) -> int:
    try:
        shop = _connect_address(args.shop_listen)
    except ValueError as exc:  # "listen must be host:port ..."
        raise CliError("--shop-" + str(exc)) from None
    env = {
        k: v for k, v in os.environ.items() if k not in (f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}UPSTREAM")
    }
    overrides = {
        "upstream": f"http://{shop}",
        "server.listen": args.listen,
        "console.listen": args.console_listen,
        "server.data_dir": args.data_dir,
        "server.access_log": args.access_log,
        "server.log_level": args.log_level,
    }
    config = config_from_args(argparse.Namespace(config=None), overrides, allow_no_sites=False, env=env)
    config = _demo_chat(config)
    if parse_listen(config.server.listen)[1] == parse_listen(args.shop_listen)[1] != 0:
        raise CliError(
            f"the proxy ({config.server.listen}) and the demo shop ({args.shop_listen}) need different ports"
        )
    setup_logging(config.server.log_level)
    raise_open_file_limit()

    from cobrowse import server  # lazily, see cmd_serve

    _run_server(lambda: server.run(config, demo_shop_listen=args.shop_listen), config)
    return 0


# ---------------------------------------------------------------------------
# cobrowse check-config
# ---------------------------------------------------------------------------


def _check_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the TOML config file to check")
    parser.add_argument(
        "--ignore-env",
        action="store_true",
        help="check the file alone, without applying COBROWSE_* environment variables",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing when the config is valid")


@subcommand(
    "check-config",
    help="validate a config file and print a summary",
    description=(
        "Load and validate a config file the way 'serve' would (including COBROWSE_*\n"
        "environment variables unless --ignore-env), then print the effective settings.\n"
        "Exit status: 0 when valid, 2 with 'FILE:LINE: problem' on stderr when not."
    ),
    arguments=_check_config_arguments,
)
def cmd_check_config(args: argparse.Namespace) -> int:
    env = {} if args.ignore_env else os.environ
    config = load_config(args.file, env)
    if not args.quiet:
        print(describe_config(config))
        print(f"{args.file}: OK")
    return 0


# ---------------------------------------------------------------------------
# cobrowse user / cobrowse migrate (the database; see cobrowse/storage)
# ---------------------------------------------------------------------------

_ROLES = ("agent", "supervisor", "admin")


def _add_database_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--data-dir", metavar="DIR", help="directory for the database and uploads (default: data)")


def _with_database(args: argparse.Namespace, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Open (and migrate) the configured database, run ``await work(db)``, close it.

    AccountError -> exit 2 (the user can fix it); StorageError -> exit 1.
    """
    config = config_from_args(args, {"server.data_dir": args.data_dir}, allow_no_sites=True)
    from cobrowse.storage import AccountError, Database, StorageError

    async def main() -> Any:
        async with Database.from_config(config) as db:
            return await work(db)

    try:
        return run_async(main)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    except StorageError as exc:
        raise CliError(str(exc), exit_code=1) from None


def _new_password(args: argparse.Namespace, username: str) -> str:
    """The new password: one line from stdin with --password-stdin, else typed twice."""
    from cobrowse.storage.accounts import AccountError, validate_password

    if args.password_stdin:
        password = sys.stdin.readline()
        if password.endswith("\n"):
            password = password[:-1]
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise CliError("--password-stdin: no password on standard input")
    else:
        if not sys.stdin.isatty():
            raise CliError(
                "standard input is not a terminal, so the password cannot be asked for: "
                f"pass it with --password-stdin (e.g. printf '%s\\n' \"$PASSWORD\" | {PROG} user "
                f"{args.user_command} {username} --password-stdin)"
            )
        import getpass

        try:
            password = getpass.getpass(f"New password for {username}: ")
            validate_password(password)
            if getpass.getpass("Repeat the password: ") != password:
                raise CliError("the passwords do not match")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            raise CliError("cancelled", exit_code=130) from None
        except AccountError as exc:
            raise CliError(str(exc)) from None
    try:
        validate_password(password)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    return password


def _username(raw: str) -> str:
    from cobrowse.storage.accounts import AccountError, normalize_username

    try:
        return normalize_username(raw)
    except AccountError as exc:
        raise CliError(str(exc)) from None


def _departments(args: argparse.Namespace) -> list[str] | None:
    """The --department values, checked (before any password is asked for): valid ids,
    and ids of the config's [[department]] tables when it has any."""
    from cobrowse.storage.accounts import AccountError, normalize_departments

    if args.departments is None:
        return None
    try:
        departments = normalize_departments(args.departments)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    config = config_from_args(args, {"server.data_dir": args.data_dir}, allow_no_sites=True)
    known = [d.id for d in config.departments]
    unknown = [d for d in departments if known and d not in known]
    if unknown:
        raise CliError(f"no department {unknown[0]!r} in the config (its departments: {', '.join(known)})")
    return departments


def _chat_profile(user: Any, departments: list[str]) -> str:
    """", email x, transcripts on, departments a, b": the chat settings worth echoing."""
    parts = []
    if user.email:
        parts.append(f"email {user.email}")
    if user.transcripts:
        parts.append("transcripts on")
    if departments:
        parts.append("departments " + ", ".join(departments))
    return "".join(f", {part}" for part in parts)


def _user_add(args: argparse.Namespace) -> int:
    from cobrowse.storage import accounts
    from cobrowse.storage.accounts import AccountError, normalize_email

    username = _username(args.username)
    departments = _departments(args) or []
    try:  # before asking for a password
        if args.transcripts and normalize_email(args.email) is None:
            raise CliError("--transcripts needs --email (the address transcripts are mailed to)")
    except AccountError as exc:
        raise CliError(str(exc)) from None
    password = _new_password(args, username)

    async def work(db: Any) -> Any:
        return await accounts.create_user(db, username, password, args.role, args.display_name,
                                          email=args.email, transcripts=args.transcripts, departments=departments)

    user = _with_database(args, work)
    print(f"created {user.role.value} {user.username!r}" + (
        f" ({user.display_name})" if user.display_name != user.username else "") + _chat_profile(user, departments))
    return 0


def _user_set(args: argparse.Namespace) -> int:
    from cobrowse.storage import accounts

    username = _username(args.username)
    if args.email is None and args.transcripts is None and args.departments is None:
        raise CliError("nothing to change: give --email, --transcripts/--no-transcripts or --department")
    departments = _departments(args)
    try:  # refuse what would fail halfway, before changing anything
        if args.email is not None and accounts.normalize_email(args.email) is None and args.transcripts:
            raise CliError("--transcripts needs an email address")
    except accounts.AccountError as exc:
        raise CliError(str(exc)) from None

    async def work(db: Any) -> Any:
        user = await accounts.get_user(db, username)
        if user is None:
            raise accounts.AccountError(f"no user named {username!r}")
        # Email first: --email x --transcripts on an account without one must work.
        if args.email is not None:
            user = await accounts.set_email(db, username, args.email)
        if args.transcripts is not None:
            user = await accounts.set_transcripts(db, username, args.transcripts)
        if departments is not None:
            await accounts.set_departments(db, username, departments)
        return user, await accounts.user_departments(db, user.id)

    user, current = _with_database(args, work)
    print(f"updated {user.username!r}: email {user.email or '(none)'}, "
          f"transcripts {'on' if user.transcripts else 'off'}, "
          f"departments {', '.join(current) if current else '(all)'}")
    return 0


def _format_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


def _user_list(args: argparse.Namespace) -> int:
    from cobrowse.storage import accounts

    users = _with_database(args, accounts.list_users)
    if not users:
        print(f"no users yet; add one with '{PROG} user add USERNAME'", file=sys.stderr)
        return 0
    rows = [("USERNAME", "ROLE", "STATUS", "LAST LOGIN", "DISPLAY NAME")]
    for user in users:
        status = "disabled" if user.disabled else "enabled"
        rows.append((user.username, user.role.value, status, _format_time(user.last_login_at), user.display_name))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def _user_set_disabled(disabled: bool) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from cobrowse.storage import accounts

        username = _username(args.username)

        async def work(db: Any) -> Any:
            return await accounts.set_disabled(db, username, disabled)

        user = _with_database(args, work)
        print(f"{'disabled' if disabled else 'enabled'} {user.username!r}")
        return 0

    return run


def _user_passwd(args: argparse.Namespace) -> int:
    from cobrowse.storage import accounts

    username = _username(args.username)

    async def check(db: Any) -> Any:
        return await accounts.get_user(db, username)

    if not args.password_stdin and _with_database(args, check) is None:  # before asking for a password
        raise CliError(f"no user named {username!r}")
    password = _new_password(args, username)

    async def work(db: Any) -> Any:
        return await accounts.set_password(db, username, password)

    user = _with_database(args, work)
    print(f"changed the password of {user.username!r}")
    return 0


def _user_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="user_command", metavar="ACTION", title="actions", required=True)

    def action(name: str, help: str, run: Callable[[argparse.Namespace], int], description: str = "") -> Any:
        sub = actions.add_parser(name, help=help, description=description or help, formatter_class=_HelpFormatter)
        sub.set_defaults(run=run)
        return sub

    password_help = "read the password from the first line of standard input instead of asking for it"
    add = action(
        "add",
        "create an account",
        _user_add,
        "Create an account. The password is asked for twice, or read from standard input\n"
        "with --password-stdin (at least 8 characters). Usernames are 2 to 64 characters\n"
        "a-z, 0-9, '.', '_' and '-', case-insensitive.",
    )
    add.add_argument("username", metavar="USERNAME")
    add.add_argument("--role", choices=_ROLES, default="agent", help="agent (default), supervisor or admin")
    add.add_argument("--display-name", metavar="NAME", help="the name visitors and colleagues see (default: USERNAME)")
    add.add_argument("--password-stdin", action="store_true", help=password_help)
    add.add_argument("--email", metavar="ADDRESS", help="where chat transcripts are mailed (with --transcripts)")
    add.add_argument("--transcripts", action="store_true",
                     help="mail this account a transcript of every chat it takes part in")
    add.add_argument("--department", metavar="ID", action="append", dest="departments",
                     help="a [[department]] whose chats this account takes (repeatable; default: all)")
    _add_database_options(add)

    update = action(
        "set",
        "change an account's chat settings",
        _user_set,
        "Change an account's chat settings: its email, whether transcripts of its chats\n"
        "are mailed to it, and the departments whose chats it takes. Options not given\n"
        "are left as they are.",
    )
    update.add_argument("username", metavar="USERNAME")
    update.add_argument("--email", metavar="ADDRESS", help="where transcripts are mailed ('' removes it)")
    transcripts = update.add_mutually_exclusive_group()
    transcripts.add_argument("--transcripts", action="store_true", default=None,
                             help="mail it a transcript of every chat it takes part in")
    transcripts.add_argument("--no-transcripts", action="store_false", dest="transcripts",
                             help="stop mailing it transcripts")
    departments = update.add_mutually_exclusive_group()
    departments.add_argument("--department", metavar="ID", action="append", dest="departments",
                             help="replace its departments with these (repeatable)")
    departments.add_argument("--no-departments", action="store_const", const=[], dest="departments",
                             help="no departments: it takes every department's chats")
    _add_database_options(update)

    listing = action("list", "list the accounts", _user_list)
    _add_database_options(listing)

    for name, disabled, help in (
        ("disable", True, "disable an account (it can no longer log in)"),
        ("enable", False, "enable a disabled account again"),
    ):
        sub = action(name, help, _user_set_disabled(disabled))
        sub.add_argument("username", metavar="USERNAME")
        _add_database_options(sub)

    passwd = action("passwd", "set a new password", _user_passwd)
    passwd.add_argument("username", metavar="USERNAME")
    passwd.add_argument("--password-stdin", action="store_true", help=password_help)
    _add_database_options(passwd)


@subcommand(
    "user",
    help="manage accounts (agents, supervisors, admins)",
    description=(
        "Manage the accounts stored in the database: agents, supervisors and admins.\n"
        "The database is the one 'serve' uses (--config / --data-dir / COBROWSE_*);\n"
        "it is created and migrated when needed."
    ),
    epilog=textwrap.dedent(
        f"""\
        examples:
          {PROG} user add alice --role supervisor --display-name "Alice Martin"
          {PROG} user add carol --email carol@example.com --transcripts --department sales
          {PROG} user set carol --department sales --department support --no-transcripts
          printf '%s\\n' "$PASSWORD" | {PROG} user add bob --password-stdin
          {PROG} user list --data-dir /var/lib/cobrowse
          {PROG} user disable bob
          {PROG} user passwd alice"""
    ),
    arguments=_user_arguments,
)
def cmd_user(args: argparse.Namespace) -> int:  # pragma: no cover - each action sets its own `run`
    raise CliError(f"choose an action: {PROG} user add|set|list|disable|enable|passwd")


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_database_options(parser)


@subcommand(
    "migrate",
    help="create or upgrade the database schema",
    description=(
        "Apply the database migrations up to the newest and print the schema revision.\n"
        "'serve' and 'demo' do this by themselves on start; run it to upgrade ahead of\n"
        "time or to check which database a config points at."
    ),
    arguments=_migrate_arguments,
)
def cmd_migrate(args: argparse.Namespace) -> int:
    async def work(db: Any) -> Any:
        return db.display_url, db.previous_revision, db.revision

    url, before, after = _with_database(args, work)
    print(f"database: {url}")
    if before != after:
        print(f"upgraded: {before or '(empty)'} -> {after}")
    print(f"revision: {after} (head)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
