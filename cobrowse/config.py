"""Configuration: immutable dataclasses, a TOML loader and precise error messages.

Precedence, lowest to highest: dataclass defaults < TOML file < environment
variables (``COBROWSE_*``) < ``overrides`` (command-line flags).

Every error found in a file names the file and the line (``cobrowse.toml:7: ...``);
errors from the environment name the variable, errors from the command line say so.
tomllib reports positions only for syntax errors, so :class:`_Locator` scans the
file's text once to map key paths such as ``("site", 1, "upstream")`` to lines.

Dependency-free on purpose: stdlib ``tomllib``, ``dataclasses`` and ``difflib`` only.
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import email.utils
import json
import math
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

__all__ = [
    "Site",
    "ServerOptions",
    "ProxyOptions",
    "ConsoleOptions",
    "SessionOptions",
    "ChatOptions",
    "ChatField",
    "Department",
    "MailOptions",
    "IceServerOption",
    "ScreenShareOptions",
    "CHAT_FILE_TYPES",
    "Config",
    "ConfigError",
    "load_config",
    "parse_listen",
    "ENV_PREFIX",
    "LOG_LEVELS",
]

ENV_PREFIX = "COBROWSE_"
LOG_LEVELS = ("debug", "info", "warning", "error")


# ---------------------------------------------------------------------------
# The dataclasses (imported by the rest of the project)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Site:
    host: str  # public host as in the Host header, lowercased, optional ":port"; "*" = any host
    upstream: str  # "http(s)://host[:port][/base-path]", no query/fragment, no trailing "/"
    aliases: tuple[str, ...] = ()  # more public host names for the same site
    mask_selectors: tuple[str, ...] = ()  # CSS selectors masked in the visitor's browser
    navigation_origins: tuple[str, ...] = ()  # extra origins agents may send the visitor to
    contact_email: str = ""  # offline messages ("Leave a message") are mailed here
    transcripts_to: tuple[str, ...] = ()  # every chat transcript of this site is mailed here
    pass_host_header: bool = False  # send the public Host upstream instead of the upstream URL's
    tls_server_name: str = ""  # SNI and certificate name for an https upstream; "" = the upstream URL's host


@dataclass(frozen=True, slots=True)
class ServerOptions:
    listen: str = "127.0.0.1:8080"  # host:port; "[::1]:8080" for IPv6
    prefix: str = "/__cobrowse/"  # reserved path prefix for our own assets and endpoints
    data_dir: str = "data"  # database file, uploads
    database_url: str = ""  # empty = sqlite+aiosqlite file in data_dir
    log_level: str = "info"  # debug|info|warning|error
    trust_forwarded: bool = False  # trust X-Forwarded-For/Proto/Host from a TLS terminator
    access_log: str = ""  # the proxy's access log: "" none, "-" standard error, else a file path
    # On SIGTERM, requests in progress get this long to finish before they are cut.
    shutdown_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    # The agent console has its own listener, so its origin differs from every
    # site's: console code can never read a site's cookies, and site scripts
    # can never reach into the console.
    listen: str = "127.0.0.1:8090"  # host:port of the console listener
    public_url: str = ""  # how agents reach it (e.g. https://support.example.com); default http://<listen>


@dataclass(frozen=True, slots=True)
class SessionOptions:
    idle_timeout: float = 1800.0  # seconds without activity before a co-browse session ends
    # Visitor websockets open at once from one address (help, chat, sharing); 0 = unlimited.
    max_visitor_sockets_per_address: int = 64


# Extensions a chat file may have unless [chat] file_types says otherwise: images,
# documents and archives people send to support, nothing a browser would run.
CHAT_FILE_TYPES = ("png", "jpg", "jpeg", "gif", "webp", "pdf", "txt", "csv", "log", "json", "zip", "docx", "xlsx")
CHAT_FIELD_TYPES = ("text", "textarea", "select")
MAIL_SECURITY = ("none", "starttls", "tls")


@dataclass(frozen=True, slots=True)
class ChatField:
    """One question of the pre-chat form (``[[chat.field]]``); answers are stored by ``name``."""

    name: str  # [a-z0-9_-]{1,32}
    label: str  # what the visitor reads
    type: str = "text"  # text | textarea | select
    options: tuple[str, ...] = ()  # the choices of a select
    required: bool = False


@dataclass(frozen=True, slots=True)
class ChatOptions:
    enabled: bool = True  # offer chat in the widget
    prechat: bool = False  # ask name, email, department and the fields before the chat starts
    welcome_message: str = ""  # sent when an agent accepts; simple formatting HTML, sanitized
    offline_enabled: bool = True  # "Leave a message" when no agent is available
    survey: bool = False  # ask the visitor for a rating when the chat ends
    email_visitor: bool = False  # mail the visitor their transcript (when they gave an address)
    typing: bool = True  # relay typing indicators
    idle_timeout: float = 1800.0  # seconds without a message before a chat ends (idle); 0 = never
    files_dir: str = ""  # where chat files are stored; "" = <data_dir>/files
    max_file_size: int = 10 * 1024 * 1024  # bytes per file
    max_visitor_files: int = 20  # files a visitor may send in one chat
    max_starts_per_address: int = 30  # new chats + messages left, per visitor address per hour; 0 = no limit
    file_types: tuple[str, ...] = CHAT_FILE_TYPES  # allowed extensions, lowercase, no dot; () = no files
    fields: tuple[ChatField, ...] = ()  # [[chat.field]]: the pre-chat form's own questions


@dataclass(frozen=True, slots=True)
class Department:
    """A ``[[department]]``: chats and offline messages can be routed to its agents."""

    id: str  # [a-z0-9_-]{1,32}; what `cobrowse user add --department` refers to
    name: str  # shown to visitors
    email: str = ""  # offline messages for this department go here (instead of the site's contact_email)
    transcripts_to: tuple[str, ...] = ()  # every transcript of this department's chats is mailed here


@dataclass(frozen=True, slots=True)
class MailOptions:
    host: str = ""  # SMTP server; "" = no mail is sent
    port: int = 0  # 0 = the usual port for the security setting: 25, 587 (starttls) or 465 (tls)
    security: str = "none"  # none | starttls | tls (implicit TLS, usually port 465)
    username: str = ""  # "" = no authentication
    password: str = field(default="", repr=False)
    sender: str = ""  # From: "support@example.com" or "Support <support@example.com>"
    timeout: float = 30.0  # seconds for connecting and each SMTP command

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True, slots=True)
class IceServerOption:
    urls: tuple[str, ...]  # stun:host[:port], turn:host[:port][?transport=udp|tcp], turns:host[:port]
    username: str = ""
    credential: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class ScreenShareOptions:
    # Escalation to screen sharing and voice calls over WebRTC (docs/screenshare.md).
    enabled: bool = True
    ice_servers: tuple[IceServerOption, ...] = ()  # none: direct connections only (loopback, a LAN)
    ice_transport_policy: str = "all"  # all | relay (TURN only)
    turn_secret: str = field(default="", repr=False)  # a TURN server's static-auth-secret (time-limited logins)
    turn_ttl: float = 3600.0  # seconds those logins last


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    connect_timeout: float = 5.0  # seconds to connect upstream -> 502/504
    read_timeout: float = 30.0  # seconds for upstream headers or the next body chunk -> 504
    pool_size: int = 100  # max pooled connections per upstream
    max_header_size: int = 8190  # bytes for one request header line / total -> 431
    max_body_size: int = 0  # 0 = unlimited request bodies (they stream)
    inject: bool = True  # inject the script into HTML navigations
    recompress: bool = True  # re-encode injected pages with the upstream's Content-Encoding
    websocket: bool = True  # proxy the site's own websockets
    upstream_ca_file: str = ""  # PEM CA bundle trusted for https upstreams instead of the system's
    upstream_tls_verify: bool = True  # False: accept any certificate from https upstreams
    splice: bool = True  # relay long identity bodies inside the kernel (Linux splice(2))


def _split_port(host: str) -> tuple[str, str | None]:
    """Split "name:port" / "[v6]:port" into (name, port-or-None); lowercases the name."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end != -1 and host[end + 1 : end + 2] == ":":
            return host[: end + 1], host[end + 2 :]
        return host, None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, port
    return host, None


def _build_host_index(sites: tuple[Site, ...]) -> tuple[dict[str, Site], Site | None]:
    index: dict[str, Site] = {}
    default: Site | None = None
    for site in sites:
        for name in (site.host, *site.aliases):
            key = name.strip().lower()
            if key == "*":
                if default is None:
                    default = site
            else:
                index.setdefault(key, site)
    return index, default


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerOptions = ServerOptions()
    proxy: ProxyOptions = ProxyOptions()
    console: ConsoleOptions = ConsoleOptions()
    sessions: SessionOptions = SessionOptions()
    chat: ChatOptions = ChatOptions()
    mail: MailOptions = MailOptions()
    screenshare: ScreenShareOptions = ScreenShareOptions()
    sites: tuple[Site, ...] = ()
    departments: tuple[Department, ...] = ()
    source: str | None = None  # path of the config file, if any
    # Host -> Site lookup table, built once in __post_init__ (not part of equality/repr).
    _host_index: Any = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sites, tuple):  # e.g. a list: keep the Config hashable
            object.__setattr__(self, "sites", tuple(self.sites))
        if not isinstance(self.departments, tuple):
            object.__setattr__(self, "departments", tuple(self.departments))
        object.__setattr__(self, "_host_index", _build_host_index(self.sites))

    def department(self, department_id: str) -> Department | None:
        """The ``[[department]]`` with this id, or None."""
        return next((d for d in self.departments if d.id == department_id), None)

    @property
    def chat_files_dir(self) -> str:
        """Where chat files are stored: ``chat.files_dir``, else ``<data_dir>/files``."""
        return self.chat.files_dir or os.path.join(self.server.data_dir, "files")

    def site_for_host(self, host: str) -> Site | None:
        """The site for a Host header value.

        Exact match on host or alias first (case-insensitive; a name configured with a
        port matches only that port, a name configured without one matches any port),
        then the "*" site, else None.
        """
        index, default = self._host_index
        if host:
            key = host.strip().lower()
            site = index.get(key)
            if site is not None:
                return site
            name, port = _split_port(key)
            if name.endswith("."):  # "shop.example.com." is the same host
                name = name.rstrip(".")
                site = index.get(name if port is None else f"{name}:{port}")
                if site is not None:
                    return site
            if port is not None:
                site = index.get(name)
                if site is not None:
                    return site
        return default


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration problem, with where it was found.

    ``str(err)`` is ``"<path>:<line>: <message>"`` for a file (``"<path>: <message>"``
    when no line applies), ``"<origin>: <message>"`` for the environment or the
    command line (origin e.g. ``"environment variable COBROWSE_PROXY_READ_TIMEOUT"``),
    else just the message.
    """

    def __init__(
        self,
        message: str,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        *,
        origin: str | None = None,
    ) -> None:
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        self.origin = origin
        super().__init__(message)

    def __str__(self) -> str:
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            return f"{where}: {self.message}"
        if self.origin:
            return f"{self.origin}: {self.message}"
        return self.message

    def __reduce__(self):  # keep pickling (e.g. across processes) working
        return (_rebuild_config_error, (self.message, self.path, self.line, self.origin))


def _rebuild_config_error(message, path, line, origin):
    return ConfigError(message, path, line, origin=origin)


class _Invalid(Exception):
    """Raised by validators; the caller adds where the value came from.

    ``at``: where inside the value the fault is (an array index, then keys),
    so that an error in a file can name the element's own line.
    """

    def __init__(self, message: str, at: tuple = ()) -> None:
        super().__init__(message)
        self.at = at


def _show(value: object) -> str:
    """A value the way the user wrote it (TOML-ish)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _did_you_mean(name: str, valid: list[str] | tuple[str, ...], fmt: str = "'{}'") -> str:
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {fmt.format(match[0])}?" if match else ""


# ---------------------------------------------------------------------------
# Value validators. Each takes (value, name, from_text) and returns the normalised
# value or raises _Invalid. from_text=True means the value is a string from the
# environment or the command line and must be parsed to the field's type.
# ---------------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _v_bool(value: object, name: str, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Invalid(f"{name} must be true or false (or 1/0, yes/no, on/off), got {_show(value)}")
    raise _Invalid(f"{name} must be true or false, got {_show(value)}")


def _to_number(value: object, from_text: bool, integer: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if from_text and isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            if integer:
                return None
        try:
            return float(text)
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and not integer:
        return value
    return None


def _v_positive_number(value: object, name: str, from_text: bool) -> float:
    number = _to_number(value, from_text, integer=False)
    if number is None or not math.isfinite(number) or number <= 0:
        raise _Invalid(f"{name} must be a positive number, got {_show(value)}")
    return float(number)


def _v_positive_int(value: object, name: str, from_text: bool) -> int:
    number = _to_number(value, from_text, integer=True)
    if number is None or number <= 0:
        raise _Invalid(f"{name} must be a positive integer, got {_show(value)}")
    return int(number)


def _v_size_or_zero(value: object, name: str, from_text: bool) -> int:
    number = _to_number(value, from_text, integer=True)
    if number is None or number < 0:
        raise _Invalid(f"{name} must be a non-negative integer (0 = unlimited), got {_show(value)}")
    return int(number)


def _v_nonempty_str(value: object, name: str, from_text: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{name} must be a non-empty string, got {_show(value)}")
    return value.strip()


_HOSTNAME_RE = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")
_IPV6_RE = re.compile(r"^[0-9a-f:.]+(%[a-z0-9_.-]+)?$")


def parse_listen(listen: str) -> tuple[str, int]:
    """Split a validated ``listen`` value into a (host, port) pair for binding.

    ``"0.0.0.0:8080"`` -> ``("0.0.0.0", 8080)``; ``"[::1]:8080"`` -> ``("::1", 8080)``.
    Raises ValueError on a malformed value.
    """
    try:
        return _parse_listen(listen, "listen")
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


def _parse_listen(value: str, name: str) -> tuple[str, int]:
    example = '(e.g. "127.0.0.1:8080", "0.0.0.0:8080" or "[::1]:8080")'
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :] if end != -1 else ""
        if end == -1 or not rest.startswith(":") or not host or not _IPV6_RE.match(host.lower()):
            raise _Invalid(f"{name} must be host:port {example}, got {_show(value)}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise _Invalid(f"{name} must be host:port {example}, got {_show(value)}")
        if ":" in host:
            raise _Invalid(f"{name}: put an IPv6 address in brackets, like \"[::1]:8080\", got {_show(value)}")
        if not _HOSTNAME_RE.match(host.lower()):
            raise _Invalid(f"{name} must be host:port {example}, got {_show(value)}")
    if not port_text.isdigit():
        raise _Invalid(f"{name} must be host:port {example}, got {_show(value)}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise _Invalid(f"{name} port must be between 0 and 65535, got {_show(value)}")
    return host, port


def _v_listen(value: object, name: str, from_text: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f'{name} must be a string "host:port", got {_show(value)}')
    _parse_listen(value, name)
    return value.strip()


_PREFIX_BAD_CHARS = re.compile(r"[\s?#%\\\"'<>]")


def _v_prefix(value: object, name: str, from_text: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_show(value)}")
    text = value.strip()
    if not (text.startswith("/") and text.endswith("/")) or len(text) < 3:
        raise _Invalid(f'{name} must start and end with "/" (e.g. "/__cobrowse/"), got {_show(value)}')
    if _PREFIX_BAD_CHARS.search(text) or "//" in text:
        raise _Invalid(f"{name} must be a plain path without spaces, quotes, ?, # or %, got {_show(value)}")
    return text


def _v_database_url(value: object, name: str, from_text: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_show(value)}")
    text = value.strip()
    if text and "://" not in text:
        raise _Invalid(
            f'{name} must be a database URL like "postgresql+asyncpg://user:pass@host/db" '
            f"(or empty for SQLite in data_dir), got {_show(value)}"
        )
    return text


def _v_log_level(value: object, name: str, from_text: bool) -> str:
    if isinstance(value, str) and value.strip().lower() in LOG_LEVELS:
        return value.strip().lower()
    raise _Invalid(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {_show(value)}")


def _v_public_url(value: object, name: str, from_text: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_show(value)}")
    text = value.strip().rstrip("/")
    if text and not re.match(r"^https?://[^/\s?#]+$", text):
        raise _Invalid(f'{name} must be an origin like "https://support.example.com", got {_show(value)}')
    return text


def _v_str(value: object, name: str, from_text: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_show(value)}")
    return value.strip()


def _v_ca_file(value: object, name: str, from_text: bool) -> str:
    path = _v_str(value, name, from_text)
    if not path:
        return ""
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:  # (an OSError too)
        raise _Invalid(f"{name}: {path!r} holds no PEM certificate") from None
    except OSError as exc:
        raise _Invalid(f"{name}: cannot read {path!r} ({exc.strerror or exc})") from None
    return path


def _v_access_log(value: object, name: str, from_text: bool) -> str:
    path = _v_str(value, name, from_text)
    if path in ("", "-"):
        return path
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise _Invalid(f"{name}: {path!r} is a directory, not a file")
    if not os.path.isdir(directory):
        raise _Invalid(f"{name}: the directory {directory!r} does not exist")
    if not os.access(path if os.path.exists(path) else directory, os.W_OK):
        raise _Invalid(f"{name}: cannot write {path!r}")
    return path


def _v_secret(value: object, name: str, from_text: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_show(value)}")
    return value  # as written: leading or trailing spaces may be part of a password


def _v_grace_seconds(value: object, name: str, from_text: bool) -> float:
    number = _to_number(value, from_text, integer=False)
    if number is None or not math.isfinite(number) or number < 0:
        raise _Invalid(f"{name} must be a number of seconds >= 0 (0 = do not wait), got {_show(value)}")
    return float(number)


def _v_seconds_or_zero(value: object, name: str, from_text: bool) -> float:
    number = _to_number(value, from_text, integer=False)
    if number is None or not math.isfinite(number) or number < 0:
        raise _Invalid(f"{name} must be a number of seconds >= 0 (0 = never), got {_show(value)}")
    return float(number)


MAX_WELCOME_MESSAGE = 4000


def _v_welcome_message(value: object, name: str, from_text: bool) -> str:
    text = _v_str(value, name, from_text)
    if len(text) > MAX_WELCOME_MESSAGE:
        raise _Invalid(f"{name} is too long ({len(text)} characters, at most {MAX_WELCOME_MESSAGE})")
    return text


_FILE_TYPE_RE = re.compile(r"[a-z0-9]{1,16}")


def _v_file_types(value: object, name: str, from_text: bool) -> tuple[str, ...]:
    # From the environment: a comma-separated list ("pdf,png,jpg").
    items = value.split(",") if from_text and isinstance(value, str) else _str_list(value, name)
    types = []
    for i, item in enumerate(items):
        ext = item.strip().lower().removeprefix(".") if isinstance(item, str) else None
        if ext is None or not _FILE_TYPE_RE.fullmatch(ext):
            raise _Invalid(f'{name} entries must be file extensions like "pdf" or "png", got {_show(item)}', (i,))
        types.append(ext)
    return tuple(dict.fromkeys(types))


# Deliberately loose: one "@", no spaces or address-list punctuation. Whether the
# mailbox exists is for the mail server to say.
_EMAIL_RE = re.compile(r'[^\s@<>(),;:"\[\]\\]{1,64}@[^\s@<>(),;:"\[\]\\.]+(\.[^\s@<>(),;:"\[\]\\.]+)*')


def _check_email(value: object, name: str) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is None or len(text) > 254 or not _EMAIL_RE.fullmatch(text):
        raise _Invalid(f'{name} must be an email address like "support@example.com", got {_show(value)}')
    return text


def _v_mail_host(value: object, name: str, from_text: bool) -> str:
    text = _v_str(value, name, from_text).lower()
    if text and not (_HOSTNAME_RE.match(text) or _IPV6_RE.match(text.removeprefix("[").removesuffix("]"))):
        raise _Invalid(f'{name} must be a host name or address like "smtp.example.com" '
                       f"(the port goes in mail.port), got {_show(value)}")
    return text.removeprefix("[").removesuffix("]")


def _v_port(value: object, name: str, from_text: bool) -> int:
    number = _to_number(value, from_text, integer=True)
    if number is None or not 0 <= number <= 65535:
        raise _Invalid(f"{name} must be a port number between 1 and 65535 (0: the usual one), got {_show(value)}")
    return int(number)


def _v_mail_security(value: object, name: str, from_text: bool) -> str:
    if isinstance(value, str) and value.strip().lower() in MAIL_SECURITY:
        return value.strip().lower()
    raise _Invalid(f"{name} must be one of {', '.join(MAIL_SECURITY)}, got {_show(value)}")


def _v_mail_sender(value: object, name: str, from_text: bool) -> str:
    text = _v_str(value, name, from_text)
    if not text:
        return ""
    display, address = email.utils.parseaddr(text)
    # parseaddr is lenient (it drops what it cannot parse), so the whole value must
    # be exactly the address, or a display name followed by "<address>".
    well_formed = text == address if not display else text.endswith(f"<{address}>")
    if not (address and well_formed and _EMAIL_RE.fullmatch(address) and "\n" not in text):
        raise _Invalid(f'{name} must be an address like "support@example.com" or '
                       f'"Support <support@example.com>", got {_show(value)}')
    return text


_ICE_URL = re.compile(r"^(stun|stuns|turn|turns):[^\s/?#@]+(\?transport=(udp|tcp))?$")
_ICE_KEYS = ("urls", "username", "credential")


def _v_ice_servers(value: object, name: str, from_text: bool) -> tuple[IceServerOption, ...]:
    """An array of {urls, username, credential} tables (JSON text in the environment)."""
    if from_text and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Invalid(f'{name} must be JSON here, like [{{"urls": ["stun:stun.example.com:3478"]}}], '
                           f"got {_show(value)}") from None
    if not isinstance(value, list):
        raise _Invalid(f"{name} must be an array of tables with urls (and username, credential), got {_show(value)}")
    servers = []
    for i, entry in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(entry, dict):
            raise _Invalid(f'{where} must be a table like {{urls = ["stun:host:3478"]}}, got {_show(entry)}', (i,))
        for key in entry:
            if key not in _ICE_KEYS:
                raise _Invalid(f"unknown key '{key}' in {where}{_did_you_mean(key, _ICE_KEYS)}", (i, key))
        urls = entry.get("urls")
        listed = isinstance(urls, list)
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls:
            raise _Invalid(f"{where}.urls must be a URL or an array of them, got {_show(urls)}",
                           (i, "urls") if "urls" in entry else (i,))
        for j, url in enumerate(urls):
            if not isinstance(url, str) or not _ICE_URL.match(url.strip()):
                raise _Invalid(f'{where}.urls entries look like "stun:host:3478", "turn:host:3478?transport=udp" '
                               f'or "turns:host:5349", got {_show(url)}', (i, "urls", j) if listed else (i, "urls"))
        for key in ("username", "credential"):
            if not isinstance(entry.get(key, ""), str):
                raise _Invalid(f"{where}.{key} must be a string, got {_show(entry[key])}", (i, key))
        servers.append(IceServerOption(tuple(u.strip() for u in urls), entry.get("username", ""),
                                       entry.get("credential", "")))
    return tuple(servers)


def _v_ice_policy(value: object, name: str, from_text: bool) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in ("all", "relay"):
        raise _Invalid(f'{name} must be "all" or "relay", got {_show(value)}')
    return text


_Validator = Callable[[object, str, bool], Any]

_SECTIONS: dict[str, tuple[type, dict[str, _Validator]]] = {
    "server": (
        ServerOptions,
        {
            "listen": _v_listen,
            "prefix": _v_prefix,
            "data_dir": _v_nonempty_str,
            "database_url": _v_database_url,
            "log_level": _v_log_level,
            "trust_forwarded": _v_bool,
            "access_log": _v_access_log,
            "shutdown_timeout": _v_grace_seconds,
        },
    ),
    "proxy": (
        ProxyOptions,
        {
            "connect_timeout": _v_positive_number,
            "read_timeout": _v_positive_number,
            "pool_size": _v_positive_int,
            "max_header_size": _v_positive_int,
            "max_body_size": _v_size_or_zero,
            "inject": _v_bool,
            "recompress": _v_bool,
            "websocket": _v_bool,
            "upstream_ca_file": _v_ca_file,
            "upstream_tls_verify": _v_bool,
            "splice": _v_bool,
        },
    ),
    "console": (
        ConsoleOptions,
        {
            "listen": _v_listen,
            "public_url": _v_public_url,
        },
    ),
    "sessions": (
        SessionOptions,
        {
            "idle_timeout": _v_positive_number,
            "max_visitor_sockets_per_address": _v_size_or_zero,
        },
    ),
    "chat": (
        ChatOptions,
        {
            "enabled": _v_bool,
            "prechat": _v_bool,
            "welcome_message": _v_welcome_message,
            "offline_enabled": _v_bool,
            "survey": _v_bool,
            "email_visitor": _v_bool,
            "typing": _v_bool,
            "idle_timeout": _v_seconds_or_zero,
            "files_dir": _v_str,
            "max_file_size": _v_positive_int,
            "max_visitor_files": _v_positive_int,
            "max_starts_per_address": _v_size_or_zero,
            "file_types": _v_file_types,
        },
    ),
    "mail": (
        MailOptions,
        {
            "host": _v_mail_host,
            "port": _v_port,
            "security": _v_mail_security,
            "username": _v_str,
            "password": _v_secret,
            "sender": _v_mail_sender,
            "timeout": _v_positive_number,
        },
    ),
    "screenshare": (
        ScreenShareOptions,
        {
            "enabled": _v_bool,
            "ice_servers": _v_ice_servers,
            "ice_transport_policy": _v_ice_policy,
            "turn_secret": _v_secret,
            "turn_ttl": _v_positive_number,
        },
    ),
}

# Arrays of tables inside a section, e.g. [[chat.field]]: TOML key -> (dataclass field,
# parser). They come from the file only (no environment variable can hold a table).
_SECTION_ARRAYS: dict[str, dict[str, tuple[str, Callable[[object, Any], Any]]]] = {
    "chat": {"field": ("fields", lambda raw, src: _chat_fields_from_file(raw, src))},
}

# Keep the validator tables in step with the dataclasses.
for _section, (_cls, _validators) in _SECTIONS.items():
    _array_fields = [target for target, _ in _SECTION_ARRAYS.get(_section, {}).values()]
    assert [f.name for f in dataclasses.fields(_cls)] == list(_validators) + _array_fields, _section


# --- sites ---------------------------------------------------------------

_SITE_KEYS = ("host", "aliases", "upstream", "mask_selectors", "navigation_origins", "contact_email",
              "transcripts_to", "pass_host_header", "tls_server_name")


def _check_host(value: object, name: str, allow_star: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_show(value)}")
    text = value.strip().lower()
    if text == "*":
        if allow_star:
            return text
        raise _Invalid(f'{name} cannot be "*" (only a site\'s host can)')
    if "://" in text or "/" in text:
        raise _Invalid(
            f'{name} must be a host name like "shop.example.com" (optionally with ":port"), '
            f"not a URL, got {_show(value)}"
        )
    hostname, port = _split_port(text)
    if hostname.startswith("["):
        ok = hostname.endswith("]") and bool(_IPV6_RE.match(hostname[1:-1]))
    else:
        ok = bool(_HOSTNAME_RE.match(hostname.rstrip(".")))
    if ok and port is not None:
        ok = 0 < int(port) <= 65535
    if not ok or (":" in text and port is None and not hostname.startswith("[")):
        star = ', or "*" for any host' if allow_star else ""
        raise _Invalid(f"{name} must be a host name with an optional :port{star}, got {_show(value)}")
    return hostname.rstrip(".") + (f":{int(port)}" if port is not None else "")


def _check_http_url(value: object, name: str, *, origin_only: bool) -> str:
    what = "an http:// or https:// origin" if origin_only else "an http:// or https:// URL"
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be {what}, got {_show(value)}")
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise _Invalid(f"{name} must be {what} with a valid port, got {_show(value)}") from None
    if parts.scheme.lower() not in ("http", "https") or re.search(r"\s", text):
        raise _Invalid(f"{name} must be {what}, got {_show(value)}")
    if not parts.hostname:
        raise _Invalid(f"{name} has no host, got {_show(value)}")
    if parts.username is not None or parts.password is not None:
        raise _Invalid(f"{name} must not contain a user name or password, got {_show(value)}")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise _Invalid(f"{name} must not have a query string or fragment, got {_show(value)}")
    path = parts.path.rstrip("/")
    if origin_only and path:
        raise _Invalid(f'{name} must be an origin like "https://pay.example.com" without a path, got {_show(value)}')
    netloc = parts.netloc.lower().removesuffix(":")  # "http://host:/" has an empty port
    if port is not None:
        netloc = netloc.rpartition(":")[0] + f":{port}"  # "host:08080" -> "host:8080"
    return f"{parts.scheme.lower()}://{netloc}{path}"


def _v_upstream(value: object, name: str, from_text: bool = False) -> str:
    return _check_http_url(value, name, origin_only=False)


# ---------------------------------------------------------------------------
# Locating keys in a TOML file
# ---------------------------------------------------------------------------


class _Locator:
    """Maps key paths to the line where they are written, by scanning the text once.

    Paths use table names, keys and 0-based indexes for arrays and arrays of tables:
    ``("server", "listen")``, ``("site", 1, "upstream")``, ``("site", 0, "aliases", 2)``.
    Handles table headers, ``[[array.of.tables]]``, dotted and quoted keys, inline
    tables, arrays (including arrays of inline tables), multi-line strings and
    comments. The text has already been accepted by tomllib, so the scanner can be
    simple; if something surprises it, it stops and keeps what it found so far.
    """

    _BARE = re.compile(r"[A-Za-z0-9_-]+")
    _SCALAR = re.compile(r"[^,\]}#\n]+")

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.lines: dict[tuple, int] = {}
        self._newlines = [m.start() for m in re.finditer("\n", text)]
        try:
            self._scan()
        except Exception:  # best effort: fall back to what was found
            pass

    def line_of(self, path: tuple) -> int | None:
        """The line of ``path``, else of its closest enclosing table/key, else None."""
        for n in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return line
        return None

    # -- helpers --------------------------------------------------------

    def _line(self, pos: int | None = None) -> int:
        return bisect.bisect_left(self._newlines, self.i if pos is None else pos) + 1

    def _mark(self, path: tuple, line: int) -> None:
        for n in range(1, len(path) + 1):
            self.lines.setdefault(tuple(path[:n]), line)

    def _skip_blank(self, newlines: bool = True) -> None:
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = s.find("\n", self.i)
                self.i = n if end == -1 else end
            else:
                break

    def _expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise ValueError(f"expected {token!r} at {self.i}")
        self.i += len(token)

    def _key(self) -> tuple[str, ...]:
        parts = []
        while True:
            self._skip_blank(newlines=False)
            c = self.s[self.i]
            if c == '"':
                start = self.i
                self._skip_basic_string()
                raw = self.s[start : self.i]
                try:
                    parts.append(json.loads(raw))
                except ValueError:
                    parts.append(raw[1:-1])
            elif c == "'":
                end = self.s.index("'", self.i + 1)
                parts.append(self.s[self.i + 1 : end])
                self.i = end + 1
            else:
                m = self._BARE.match(self.s, self.i)
                if not m:
                    raise ValueError(f"bad key at {self.i}")
                parts.append(m.group())
                self.i = m.end()
            self._skip_blank(newlines=False)
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return tuple(parts)

    def _skip_basic_string(self) -> None:
        s, i = self.s, self.i + 1
        while s[i] != '"':
            i += 2 if s[i] == "\\" else 1
        self.i = i + 1

    def _skip_multiline(self, quote: str) -> None:
        s, i = self.s, self.i + 3
        while True:
            if quote == '"""' and s[i] == "\\":
                i += 2
            elif s.startswith(quote, i):
                i += 3
                while i < len(s) and s[i] == quote[0]:  # up to two quotes may end the content
                    i += 1
                break
            else:
                i += 1
        self.i = i

    # -- the scan -------------------------------------------------------

    def _resolve(self, keys: tuple[str, ...], arrays: dict[tuple, int]) -> tuple:
        path: tuple = ()
        for key in keys:
            path += (key,)
            if path in arrays:
                path += (arrays[path] - 1,)
        return path

    def _scan(self) -> None:
        s = self.s
        arrays: dict[tuple, int] = {}  # array-of-tables path -> entries seen
        table: tuple = ()
        while True:
            self._skip_blank()
            if self.i >= len(s):
                return
            start = self.i
            line = self._line()
            if s.startswith("[[", self.i):
                self.i += 2
                keys = self._key()
                self._expect("]]")
                base = self._resolve(keys[:-1], arrays) + (keys[-1],)
                index = arrays.get(base, 0)
                arrays[base] = index + 1
                table = base + (index,)
                self._mark(table, line)
            elif s[self.i] == "[":
                self.i += 1
                keys = self._key()
                self._expect("]")
                table = self._resolve(keys, arrays)
                self._mark(table, line)
            else:
                keys = self._key()
                self._expect("=")
                self._skip_blank(newlines=False)
                self._mark(table + keys, line)
                self._value(table + keys)
            if self.i <= start:
                raise ValueError("no progress")

    def _value(self, path: tuple) -> None:
        s = self.s
        c = s[self.i]
        if s.startswith('"""', self.i) or s.startswith("'''", self.i):
            self._skip_multiline(s[self.i : self.i + 3])
        elif c == '"':
            self._skip_basic_string()
        elif c == "'":
            self.i = s.index("'", self.i + 1) + 1
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self._skip_blank()
                if s[self.i] == "]":
                    self.i += 1
                    return
                self._mark(path + (index,), self._line())
                self._value(path + (index,))
                index += 1
                self._skip_blank()
                if s[self.i] == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self._skip_blank()
                if s[self.i] == "}":
                    self.i += 1
                    return
                line = self._line()
                keys = self._key()
                self._expect("=")
                self._skip_blank(newlines=False)
                self._mark(path + keys, line)
                self._value(path + keys)
                self._skip_blank()
                if s[self.i] == ",":
                    self.i += 1
        else:  # number, boolean, date/time: up to a delimiter
            m = self._SCALAR.match(s, self.i)
            if not m:
                raise ValueError(f"bad value at {self.i}")
            self.i = m.end()


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


class _FileSource:
    """Where values from the file came from: turns a key path into a ConfigError."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.locator = _Locator(text)

    def error(self, message: str, key_path: tuple) -> ConfigError:
        return ConfigError(message, self.path, self.locator.line_of(key_path))


def _read_toml(path: str) -> tuple[dict[str, Any], str]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("config file is not valid UTF-8", path, line) from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        m = _TOML_POS.search(message)
        if m:
            line = int(m.group(1))
            message = f"{message[: m.start()]} (column {m.group(2)})"
        else:
            m = _TOML_END.search(message)
            if m:
                line = max(1, len(text.splitlines()))
                message = f"{message[: m.start()]} (at end of file)"
        raise ConfigError(f"invalid TOML: {message}", path, line) from None


def _apply_section_from_file(
    name: str, table: object, values: dict[str, Any], src: _FileSource
) -> None:
    if not isinstance(table, dict):
        raise src.error(f"{name} must be a table ([{name}]), got {_show(table)}", (name,))
    validators = _SECTIONS[name][1]
    arrays = _SECTION_ARRAYS.get(name, {})
    for key, value in table.items():
        if key in arrays:
            target, parse = arrays[key]
            values[target] = parse(value, src)
            continue
        if key not in validators:
            hint = _did_you_mean(key, (*validators, *arrays))
            raise src.error(f"unknown key '{key}' in [{name}]{hint}", (name, key))
        try:
            values[key] = validators[key](value, f"{name}.{key}", False)
        except _Invalid as exc:
            raise src.error(str(exc), (name, key, *exc.at)) from None


def _str_list(value: object, name: str) -> list[str]:
    if isinstance(value, str):
        raise _Invalid(f"{name} must be an array of strings, like [{_show(value)}], got {_show(value)}")
    if not isinstance(value, list):
        raise _Invalid(f"{name} must be an array of strings, got {_show(value)}")
    return value


def _site_from_file(index: int, entry: object, src: _FileSource) -> tuple[Site, dict[str, tuple]]:
    """Validate one [[site]] table. Returns the Site and, per host name, its key path."""
    where = ("site", index)
    if not isinstance(entry, dict):
        raise src.error(f"each site must be a table ([[site]]), got {_show(entry)}", where)

    def fail(message: str, *key: object) -> ConfigError:
        return src.error(message, where + key)

    for key in entry:
        if key not in _SITE_KEYS:
            hint = _did_you_mean(key, _SITE_KEYS)
            raise fail(f"unknown key '{key}' in [[site]]{hint}", key)
    if "host" not in entry:
        raise fail('[[site]] is missing "host" (a host name, or "*" for any host)')
    if "upstream" not in entry:
        raise fail('[[site]] is missing "upstream" (e.g. upstream = "http://127.0.0.1:3000")')

    names: dict[str, tuple] = {}
    try:
        host = _check_host(entry["host"], "site.host", allow_star=True)
    except _Invalid as exc:
        raise fail(str(exc), "host") from None
    names[host] = where + ("host",)

    try:
        upstream = _v_upstream(entry["upstream"], "site.upstream")
    except _Invalid as exc:
        raise fail(str(exc), "upstream") from None

    aliases = []
    try:
        raw_aliases = _str_list(entry.get("aliases", []), "site.aliases")
    except _Invalid as exc:
        raise fail(str(exc), "aliases") from None
    for i, alias in enumerate(raw_aliases):
        try:
            alias = _check_host(alias, "site.aliases entry", allow_star=False)
        except _Invalid as exc:
            raise fail(str(exc), "aliases", i) from None
        if alias in names:
            raise fail(f'site.aliases repeats the host name "{alias}"', "aliases", i)
        names[alias] = where + ("aliases", i)
        aliases.append(alias)

    selectors = []
    try:
        raw_selectors = _str_list(entry.get("mask_selectors", []), "site.mask_selectors")
    except _Invalid as exc:
        raise fail(str(exc), "mask_selectors") from None
    for i, selector in enumerate(raw_selectors):
        if not isinstance(selector, str) or not selector.strip() or re.search(r"[{}<\x00-\x1f]", selector):
            raise fail(
                f"site.mask_selectors entries must be non-empty CSS selectors without {{, }} or <, got {_show(selector)}",
                "mask_selectors",
                i,
            )
        selectors.append(selector.strip())

    origins = []
    try:
        raw_origins = _str_list(entry.get("navigation_origins", []), "site.navigation_origins")
    except _Invalid as exc:
        raise fail(str(exc), "navigation_origins") from None
    for i, origin in enumerate(raw_origins):
        try:
            origins.append(_check_http_url(origin, "site.navigation_origins entry", origin_only=True))
        except _Invalid as exc:
            raise fail(str(exc), "navigation_origins", i) from None

    contact_email = ""
    if entry.get("contact_email", ""):
        try:
            contact_email = _check_email(entry["contact_email"], "site.contact_email")
        except _Invalid as exc:
            raise fail(str(exc), "contact_email") from None
    transcripts_to = _email_list_from_file(entry, "transcripts_to", "site.transcripts_to", fail)
    try:
        pass_host_header = _v_bool(entry.get("pass_host_header", False), "site.pass_host_header", False)
    except _Invalid as exc:
        raise fail(str(exc), "pass_host_header") from None
    tls_server_name = ""
    if "tls_server_name" in entry:
        try:
            tls_server_name = _check_server_name(entry["tls_server_name"], upstream)
        except _Invalid as exc:
            raise fail(str(exc), "tls_server_name") from None

    site = Site(
        host=host,
        upstream=upstream,
        aliases=tuple(aliases),
        mask_selectors=tuple(selectors),
        navigation_origins=tuple(dict.fromkeys(origins)),
        contact_email=contact_email,
        transcripts_to=transcripts_to,
        pass_host_header=pass_host_header,
        tls_server_name=tls_server_name,
    )
    return site, names


def _check_server_name(value: object, upstream: str) -> str:
    """The name an https upstream's certificate is checked against (and sent in SNI)."""
    if not upstream.startswith("https://"):
        raise _Invalid(f"site.tls_server_name applies only to an https:// upstream, and this one is {_show(upstream)}")
    text = value.strip().lower().rstrip(".") if isinstance(value, str) else None
    if not text or not _HOSTNAME_RE.match(text) or ".." in text:
        raise _Invalid(f'site.tls_server_name must be a host name like "shop.example.com" (no port, no scheme), '
                       f"got {_show(value)}")
    return text


def _email_list_from_file(entry: dict, key: str, name: str, fail: Callable[..., ConfigError]) -> tuple[str, ...]:
    """An optional array of email addresses in a table (errors point at the bad element)."""
    try:
        raw = _str_list(entry.get(key, []), name)
    except _Invalid as exc:
        raise fail(str(exc), key) from None
    addresses = []
    for i, address in enumerate(raw):
        try:
            addresses.append(_check_email(address, f"{name} entry"))
        except _Invalid as exc:
            raise fail(str(exc), key, i) from None
    return tuple(dict.fromkeys(addresses))


def _sites_from_file(raw: object, src: _FileSource) -> list[Site]:
    if isinstance(raw, dict):
        raise src.error("sites are an array of tables: write [[site]] (double brackets), not [site]", ("site",))
    if not isinstance(raw, list):
        raise src.error(f"site must be an array of tables ([[site]]), got {_show(raw)}", ("site",))
    sites: list[Site] = []
    seen: dict[str, tuple] = {}
    for index, entry in enumerate(raw):
        site, names = _site_from_file(index, entry, src)
        for name, key_path in names.items():
            if name in seen:
                first = src.locator.line_of(seen[name])
                already = f" (already used at line {first})" if first else " (already used by another site)"
                what = "default site" if name == "*" else "site host"
                raise src.error(f'duplicate {what} "{name}"{already}', key_path)
            seen[name] = key_path
        sites.append(site)
    return sites


_CHAT_FIELD_KEYS = ("name", "label", "type", "options", "required")
_DEPARTMENT_KEYS = ("id", "name", "email", "transcripts_to")
_SLUG_RE = re.compile(r"[a-z0-9_-]{1,32}")


def _array_of_tables(raw: object, header: str, where: tuple, src: _FileSource) -> list:
    if isinstance(raw, dict):
        raise src.error(f"write [[{header}]] (double brackets), not [{header}]: it is an array of tables", where)
    if not isinstance(raw, list):
        raise src.error(f"{header} must be an array of tables ([[{header}]]), got {_show(raw)}", where)
    return raw


def _check_keys(entry: object, header: str, keys: tuple[str, ...], where: tuple, src: _FileSource) -> dict:
    if not isinstance(entry, dict):
        raise src.error(f"each {header} must be a table ([[{header}]]), got {_show(entry)}", where)
    for key in entry:
        if key not in keys:
            raise src.error(f"unknown key '{key}' in [[{header}]]{_did_you_mean(key, keys)}", where + (key,))
    return entry


def _chat_fields_from_file(raw: object, src: _FileSource) -> tuple[ChatField, ...]:
    fields: list[ChatField] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(_array_of_tables(raw, "chat.field", ("chat", "field"), src)):
        where = ("chat", "field", index)
        entry = _check_keys(entry, "chat.field", _CHAT_FIELD_KEYS, where, src)

        def fail(message: str, *key: object) -> ConfigError:
            return src.error(message, where + key)

        if "name" not in entry:
            raise fail('[[chat.field]] is missing "name" (e.g. name = "order_number")')
        name = entry["name"]
        if not isinstance(name, str) or not _SLUG_RE.fullmatch(name):
            raise fail(f"chat.field.name must be 1 to 32 characters a-z, 0-9, '_' or '-', got {_show(name)}", "name")
        if name in seen:
            first = src.locator.line_of(("chat", "field", seen[name]))
            raise fail(f'duplicate chat field "{name}"' + (f" (already used at line {first})" if first else ""),
                       "name")
        seen[name] = index
        label = entry.get("label", name)
        if not isinstance(label, str) or not label.strip():
            raise fail(f"chat.field.label must be a non-empty string, got {_show(label)}", "label")
        kind = entry.get("type", "text")
        if kind not in CHAT_FIELD_TYPES:
            raise fail(f"chat.field.type must be one of {', '.join(CHAT_FIELD_TYPES)}, got {_show(kind)}", "type")
        try:
            options = _str_list(entry.get("options", []), "chat.field.options")
        except _Invalid as exc:
            raise fail(str(exc), "options") from None
        for i, option in enumerate(options):
            if not isinstance(option, str) or not option.strip():
                raise fail(f"chat.field.options entries must be non-empty strings, got {_show(option)}",
                           "options", i)
        if kind == "select" and not options:
            raise fail('a chat field of type "select" needs options (e.g. options = ["Billing", "Delivery"])',
                       "type")
        if kind != "select" and options:
            raise fail(f'chat.field.options only apply to type "select" (this field is "{kind}")', "options")
        try:
            required = _v_bool(entry.get("required", False), "chat.field.required", False)
        except _Invalid as exc:
            raise fail(str(exc), "required") from None
        fields.append(ChatField(name=name, label=label.strip(), type=kind,
                                options=tuple(dict.fromkeys(o.strip() for o in options)), required=required))
    return tuple(fields)


def _departments_from_file(raw: object, src: _FileSource) -> list[Department]:
    departments: list[Department] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(_array_of_tables(raw, "department", ("department",), src)):
        where = ("department", index)
        entry = _check_keys(entry, "department", _DEPARTMENT_KEYS, where, src)

        def fail(message: str, *key: object) -> ConfigError:
            return src.error(message, where + key)

        if "id" not in entry:
            raise fail('[[department]] is missing "id" (e.g. id = "sales")')
        department_id = entry["id"]
        if not isinstance(department_id, str) or not _SLUG_RE.fullmatch(department_id):
            raise fail("department.id must be 1 to 32 characters a-z, 0-9, '_' or '-', "
                       f"got {_show(department_id)}", "id")
        if department_id in seen:
            first = src.locator.line_of(("department", seen[department_id]))
            raise fail(f'duplicate department "{department_id}"' + (f" (already used at line {first})" if first else ""),
                       "id")
        seen[department_id] = index
        name = entry.get("name", department_id)
        if not isinstance(name, str) or not name.strip():
            raise fail(f"department.name must be a non-empty string, got {_show(name)}", "name")
        address = ""
        if entry.get("email", ""):
            try:
                address = _check_email(entry["email"], "department.email")
            except _Invalid as exc:
                raise fail(str(exc), "email") from None
        transcripts_to = _email_list_from_file(entry, "transcripts_to", "department.transcripts_to", fail)
        departments.append(Department(id=department_id, name=name.strip(), email=address,
                                      transcripts_to=transcripts_to))
    return departments


def _origin_of(section: str, key: str, env: Mapping[str, str], overrides: Mapping[str, object] | None,
               src: _FileSource | None) -> Callable[[str], ConfigError]:
    """Makes a ConfigError located where the final value of section.key came from."""
    if (overrides or {}).get(f"{section}.{key}") is not None:
        return lambda message: ConfigError(message, origin="command line")
    var = _env_name(section, key)
    if env.get(var, "").strip():
        return lambda message: ConfigError(message, origin=f"environment variable {var}")
    if src is not None:
        return lambda message: src.error(message, (section, key))
    return lambda message: ConfigError(message)


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    allow_no_sites: bool = False,
) -> Config:
    """Build a validated :class:`Config`.

    ``path``: a TOML file; when None, ``COBROWSE_CONFIG`` from ``env`` (if set and
    non-empty). ``env``: environment (default ``os.environ``); ``COBROWSE_<SECTION>_<KEY>``
    override the file, ``COBROWSE_UPSTREAM`` replaces the file's "*" site. Empty
    variables count as unset. ``overrides``: from command-line flags, keys
    ``"server.<field>"``, ``"proxy.<field>"`` and ``"upstream"`` (replaces the "*" site);
    None values are ignored; strings are parsed like environment values.

    Raises :class:`ConfigError`. A config without any site is an error unless
    ``allow_no_sites`` (commands that never proxy, e.g. user management, pass it).
    """
    if env is None:
        env = os.environ
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    sites: list[Site] = []
    departments: list[Department] = []
    source: str | None = None
    src: _FileSource | None = None

    if path is None and env.get(f"{ENV_PREFIX}CONFIG", "").strip():
        path = env[f"{ENV_PREFIX}CONFIG"].strip()

    # 1. the file
    if path is not None:
        source = os.fspath(path)
        data, text = _read_toml(source)
        src = _FileSource(source, text)
        for key, raw in data.items():
            if key in _SECTIONS:
                _apply_section_from_file(key, raw, values[key], src)
            elif key == "site":
                sites = _sites_from_file(raw, src)
            elif key == "department":
                departments = _departments_from_file(raw, src)
            else:
                owner = next((name for name, (_, v) in _SECTIONS.items() if key in v), None)
                if owner is not None:
                    message = f"unknown top-level key '{key}'; it belongs in the [{owner}] table"
                elif isinstance(raw, dict):
                    message = f"unknown section [{key}]{_did_you_mean(key, (*_SECTIONS, 'site'), '[{}]')}"
                elif isinstance(raw, list) and raw and all(isinstance(v, dict) for v in raw):
                    message = f"unknown section [[{key}]]{_did_you_mean(key, ('site', 'department'), '[[{}]]')}"
                else:
                    message = f"unknown top-level key '{key}'{_did_you_mean(key, (*_SECTIONS, 'site'))}"
                raise src.error(message, (key,))

    # 2. the environment
    for section, (_, validators) in _SECTIONS.items():
        for key, validate in validators.items():
            var = _env_name(section, key)
            raw = env.get(var)
            if raw is None or not raw.strip():
                continue
            try:
                values[section][key] = validate(raw, f"{section}.{key}", True)
            except _Invalid as exc:
                raise ConfigError(str(exc), origin=f"environment variable {var}") from None
    known_vars = {_env_name(s, k) for s, (_, v) in _SECTIONS.items() for k in v}
    section_prefixes = tuple(f"{ENV_PREFIX}{section.upper()}_" for section in _SECTIONS)
    for var in env:
        upper = var.upper()
        if upper.startswith(section_prefixes) and upper not in known_vars:
            hint = _did_you_mean(upper, sorted(known_vars), "{}")
            raise ConfigError(f"unknown setting{hint}", origin=f"environment variable {var}")
    env_upstream = env.get(f"{ENV_PREFIX}UPSTREAM", "").strip()
    if env_upstream:
        try:
            upstream = _v_upstream(env_upstream, "upstream")
        except _Invalid as exc:
            raise ConfigError(str(exc), origin=f"environment variable {ENV_PREFIX}UPSTREAM") from None
        sites = [s for s in sites if s.host != "*"] + [Site(host="*", upstream=upstream)]

    # 3. the command line
    for dotted, raw in (overrides or {}).items():
        if raw is None:
            continue
        if dotted == "upstream":
            try:
                upstream = _v_upstream(raw, "upstream")
            except _Invalid as exc:
                raise ConfigError(str(exc), origin="command line") from None
            sites = [s for s in sites if s.host != "*"] + [Site(host="*", upstream=upstream)]
            continue
        section, _, key = dotted.partition(".")
        validators = _SECTIONS.get(section, (None, {}))[1]
        if key not in validators:
            valid = ["upstream", *(f"{s}.{k}" for s, (_, v) in _SECTIONS.items() for k in v)]
            raise ConfigError(f"unknown setting '{dotted}'{_did_you_mean(dotted, valid)}", origin="command line")
        try:
            values[section][key] = validators[key](raw, dotted, isinstance(raw, str))
        except _Invalid as exc:
            raise ConfigError(str(exc), origin="command line") from None

    if not sites and not allow_no_sites:
        message = (
            "no sites configured: add a [[site]] table with host and upstream, "
            f"set {ENV_PREFIX}UPSTREAM, or pass --upstream"
        )
        raise ConfigError(message, source)

    mail = MailOptions(**values["mail"])
    if mail.host and not mail.sender:
        raise _origin_of("mail", "host", env, overrides, src)(
            'mail.sender is needed when mail.host is set (e.g. sender = "Support <support@example.com>")')

    return Config(
        server=ServerOptions(**values["server"]),
        proxy=ProxyOptions(**values["proxy"]),
        console=ConsoleOptions(**values["console"]),
        sessions=SessionOptions(**values["sessions"]),
        chat=ChatOptions(**values["chat"]),
        mail=mail,
        screenshare=ScreenShareOptions(**values["screenshare"]),
        sites=tuple(sites),
        departments=tuple(departments),
        source=source,
    )
