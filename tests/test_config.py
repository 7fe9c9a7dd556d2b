"""Tests for cobrowse.config: defaults, loading, precedence, host lookup, error lines."""

from __future__ import annotations

import dataclasses
import pickle
import textwrap
from pathlib import Path

import pytest

from cobrowse.config import (
    Config,
    ConfigError,
    ProxyOptions,
    ServerOptions,
    Site,
    _Locator,
    load_config,
    parse_listen,
)

# One site, so files that test other things do not trip over "no sites".
SITE = '\n[[site]]\nhost = "*"\nupstream = "http://127.0.0.1:3000"\n'


def write(tmp_path: Path, text: str, name: str = "cobrowse.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_for(path: Path, env: dict | None = None, overrides: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={} if env is None else env, overrides=overrides)
    return info.value


def assert_error_at(path: Path, line: int, *fragments: str) -> ConfigError:
    err = error_for(path)
    text = str(err)
    assert text.startswith(f"{path}:{line}: "), text
    assert err.path == str(path) and err.line == line
    for fragment in fragments:
        assert fragment in text, text
    return err


# --- defaults ------------------------------------------------------------


def test_defaults():
    config = load_config(env={}, allow_no_sites=True)
    assert config == Config()
    assert config.server == ServerOptions()
    assert config.server.listen == "127.0.0.1:8080"
    assert config.server.prefix == "/__cobrowse/"
    assert config.server.data_dir == "data"
    assert config.server.database_url == ""
    assert config.server.log_level == "info"
    assert config.server.trust_forwarded is False
    assert config.proxy == ProxyOptions()
    assert config.proxy.connect_timeout == 5.0 and config.proxy.read_timeout == 30.0
    assert config.proxy.pool_size == 100 and config.proxy.max_header_size == 8190
    assert config.proxy.max_body_size == 0
    assert config.proxy.inject and config.proxy.recompress and config.proxy.websocket
    assert config.sites == () and config.source is None
    assert config.site_for_host("anything") is None


def test_no_sites_is_an_error_unless_allowed(tmp_path):
    with pytest.raises(ConfigError, match="no sites configured"):
        load_config(env={})
    path = write(tmp_path, "[server]\nlisten = '0.0.0.0:80'\n")
    err = error_for(path)
    assert str(err).startswith(f"{path}: no sites configured")
    assert load_config(path, env={}, allow_no_sites=True).server.listen == "0.0.0.0:80"


def test_dataclasses_are_frozen_hashable_and_picklable():
    config = Config(sites=(Site("a.com", "http://x"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.source = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.listen = "x"  # type: ignore[misc]
    assert hash(config) == hash(Config(sites=(Site("a.com", "http://x"),)))
    assert not hasattr(config, "__dict__")
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config and copy.site_for_host("a.com") == config.sites[0]
    replaced = dataclasses.replace(config, sites=(Site("*", "http://y"),))
    assert replaced.site_for_host("a.com").upstream == "http://y"


# --- loading a file --------------------------------------------------------


FULL = """
# cobrowse configuration
[server]
listen = "0.0.0.0:9000"
prefix = "/_cb/"
data_dir = "/var/lib/cobrowse"
database_url = "postgresql+asyncpg://cb:pw@db/cobrowse"
log_level = "DEBUG"
trust_forwarded = true

[proxy]
connect_timeout = 2
read_timeout = 12.5
pool_size = 10
max_header_size = 16384
max_body_size = 1048576
inject = false
recompress = false
websocket = false
splice = false

[[site]]
host = "Shop.Example.com"
aliases = ["www.shop.example.com", "shop.example.com:8443"]
upstream = "https://backend.internal:8443/"
mask_selectors = [".account-number", "form > #card"]
navigation_origins = ["https://pay.example.com/"]
pass_host_header = true
tls_server_name = "Shop.Example.com."

[[site]]
host = "blog.example.com"
upstream = "http://10.0.0.5:8080/blog/"

[[site]]
host = "*"
upstream = "http://127.0.0.1:3000"
"""


def test_load_full_file(tmp_path):
    path = write(tmp_path, FULL)
    config = load_config(path, env={})
    assert config.source == str(path)
    assert config.server == ServerOptions(
        listen="0.0.0.0:9000",
        prefix="/_cb/",
        data_dir="/var/lib/cobrowse",
        database_url="postgresql+asyncpg://cb:pw@db/cobrowse",
        log_level="debug",
        trust_forwarded=True,
    )
    assert config.proxy == ProxyOptions(
        connect_timeout=2.0,
        read_timeout=12.5,
        pool_size=10,
        max_header_size=16384,
        max_body_size=1048576,
        inject=False,
        recompress=False,
        websocket=False,
        splice=False,
    )
    assert isinstance(config.proxy.connect_timeout, float)
    shop, blog, default = config.sites
    assert shop == Site(
        host="shop.example.com",
        upstream="https://backend.internal:8443",
        aliases=("www.shop.example.com", "shop.example.com:8443"),
        mask_selectors=(".account-number", "form > #card"),
        navigation_origins=("https://pay.example.com",),
        pass_host_header=True,
        tls_server_name="shop.example.com",
    )
    assert not blog.pass_host_header and not blog.tls_server_name
    assert blog.upstream == "http://10.0.0.5:8080/blog"
    assert default.host == "*"


def test_site_for_host(tmp_path):
    config = load_config(write(tmp_path, FULL), env={})
    shop, blog, default = config.sites
    assert config.site_for_host("shop.example.com") is shop
    assert config.site_for_host("SHOP.example.COM") is shop
    assert config.site_for_host("shop.example.com:8080") is shop  # configured without port: any port
    assert config.site_for_host("shop.example.com.") is shop
    assert config.site_for_host("www.shop.example.com") is shop
    assert config.site_for_host("blog.example.com") is blog
    assert config.site_for_host("blog.example.com:443") is blog
    assert config.site_for_host("other.example.com") is default
    assert config.site_for_host("") is default
    assert config.site_for_host("[::1]:8080") is default


def test_site_for_host_port_specific_and_no_default():
    a = Site("a.com", "http://a")
    a_8080 = Site("a.com:8080", "http://a8080")
    v6 = Site("[::1]:9000", "http://v6")
    config = Config(sites=(a, a_8080, v6))
    assert config.site_for_host("a.com:8080") is a_8080  # exact host:port wins
    assert config.site_for_host("a.com:9999") is a
    assert config.site_for_host("a.com") is a
    assert config.site_for_host("[::1]:9000") is v6
    assert config.site_for_host("[::1]:9001") is None
    assert config.site_for_host("b.com") is None


def test_sites_as_array_of_inline_tables(tmp_path):
    path = write(
        tmp_path,
        """
        site = [
          { host = "a.example", upstream = "http://a:1" },
          { host = "b.example", upstream = "http://b:2" },
        ]
        """,
    )
    config = load_config(path, env={})
    assert [s.host for s in config.sites] == ["a.example", "b.example"]


def test_dotted_keys_and_inline_section(tmp_path):
    path = write(tmp_path, 'server.listen = "127.0.0.1:1"\nproxy = { pool_size = 3 }\n' + SITE)
    config = load_config(path, env={})
    assert config.server.listen == "127.0.0.1:1"
    assert config.proxy.pool_size == 3


def test_config_path_from_env(tmp_path):
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:7000"\n' + SITE)
    config = load_config(env={"COBROWSE_CONFIG": str(path)})
    assert config.source == str(path)
    assert config.server.listen == "127.0.0.1:7000"
    # An explicit path wins over COBROWSE_CONFIG.
    other = write(tmp_path, '[server]\nlisten = "127.0.0.1:7001"\n' + SITE, "other.toml")
    assert load_config(other, env={"COBROWSE_CONFIG": str(path)}).server.listen == "127.0.0.1:7001"


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SITE.encode())
    assert load_config(path, env={}).sites[0].host == "*"


# --- precedence ------------------------------------------------------------


def test_env_overrides_file(tmp_path):
    path = write(
        tmp_path,
        """
        [server]
        listen = "127.0.0.1:8000"
        log_level = "warning"
        [proxy]
        read_timeout = 10
        inject = true
        [[site]]
        host = "a.com"
        upstream = "http://a"
        [[site]]
        host = "*"
        upstream = "http://from-file"
        mask_selectors = [".x"]
        """,
    )
    env = {
        "COBROWSE_SERVER_LISTEN": "0.0.0.0:8001",
        "COBROWSE_SERVER_TRUST_FORWARDED": "yes",
        "COBROWSE_PROXY_READ_TIMEOUT": "2.5",
        "COBROWSE_PROXY_POOL_SIZE": "7",
        "COBROWSE_PROXY_INJECT": "off",
        "COBROWSE_UPSTREAM": "http://from-env/",
        "COBROWSE_SERVER_DATA_DIR": "",  # empty = unset
        "PATH": "/usr/bin",  # unrelated variables are ignored
        "COBROWSE_SECRET_THING": "ignored",  # not in a settings namespace
    }
    config = load_config(path, env=env)
    assert config.server.listen == "0.0.0.0:8001"
    assert config.server.log_level == "warning"  # from the file
    assert config.server.trust_forwarded is True
    assert config.server.data_dir == "data"
    assert config.proxy.read_timeout == 2.5
    assert config.proxy.pool_size == 7
    assert config.proxy.inject is False
    assert [s.host for s in config.sites] == ["a.com", "*"]
    assert config.sites[1] == Site("*", "http://from-env")  # replaced, not merged
    assert config.site_for_host("a.com").upstream == "http://a"


@pytest.mark.parametrize(
    "word,expected",
    [("true", True), ("1", True), ("YES", True), ("on", True), ("false", False), ("0", False), ("No", False), ("off", False)],
)
def test_env_bool_words(word, expected):
    config = load_config(env={"COBROWSE_PROXY_WEBSOCKET": word}, allow_no_sites=True)
    assert config.proxy.websocket is expected


def test_env_upstream_alone_is_enough():
    config = load_config(env={"COBROWSE_UPSTREAM": "https://app.internal:8443"})
    assert config.sites == (Site("*", "https://app.internal:8443"),)


def test_cli_overrides_env_and_file(tmp_path):
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:8000"\nprefix = "/file/"\n' + SITE)
    env = {"COBROWSE_SERVER_LISTEN": "127.0.0.1:8001", "COBROWSE_PROXY_READ_TIMEOUT": "3", "COBROWSE_UPSTREAM": "http://env"}
    overrides = {
        "server.listen": "127.0.0.1:8002",
        "proxy.read_timeout": 4,  # typed values are accepted as they are
        "proxy.inject": "false",  # strings are parsed like environment values
        "server.prefix": None,  # None = flag not given
        "upstream": "http://cli:1/",
    }
    config = load_config(path, env=env, overrides=overrides)
    assert config.server.listen == "127.0.0.1:8002"
    assert config.server.prefix == "/file/"
    assert config.proxy.read_timeout == 4.0
    assert config.proxy.inject is False
    assert config.sites == (Site("*", "http://cli:1"),)


def test_override_errors():
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides={"server.listen": "nope", "upstream": "http://x"})
    assert str(info.value).startswith("command line: server.listen must be host:port")
    with pytest.raises(ConfigError, match="unknown setting 'proxy.read_timout'; did you mean 'proxy.read_timeout'"):
        load_config(env={}, overrides={"proxy.read_timout": 1}, allow_no_sites=True)
    with pytest.raises(ConfigError, match=r'^command line: upstream must be an http:// or https:// URL, got "x"$'):
        load_config(env={}, overrides={"upstream": "x"})


# --- env errors name the variable --------------------------------------------


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_config(env={"COBROWSE_PROXY_READ_TIMEOUT": "fast"}, allow_no_sites=True)
    err = info.value
    assert str(err) == (
        'environment variable COBROWSE_PROXY_READ_TIMEOUT: proxy.read_timeout must be a positive number, got "fast"'
    )
    assert err.path is None and err.line is None


@pytest.mark.parametrize(
    "var,value,fragment",
    [
        ("COBROWSE_SERVER_LISTEN", "8080", "server.listen must be host:port"),
        ("COBROWSE_SERVER_LISTEN", "127.0.0.1:99999", "port must be between 0 and 65535"),
        ("COBROWSE_SERVER_PREFIX", "cb", 'server.prefix must start and end with "/"'),
        ("COBROWSE_SERVER_LOG_LEVEL", "loud", "server.log_level must be one of debug, info, warning, error"),
        ("COBROWSE_SERVER_TRUST_FORWARDED", "maybe", "server.trust_forwarded must be true or false"),
        ("COBROWSE_PROXY_POOL_SIZE", "1.5", "proxy.pool_size must be a positive integer"),
        ("COBROWSE_PROXY_MAX_BODY_SIZE", "-1", "proxy.max_body_size must be a non-negative integer"),
        ("COBROWSE_PROXY_CONNECT_TIMEOUT", "nan", "proxy.connect_timeout must be a positive number"),
        ("COBROWSE_SESSIONS_MAX_VISITOR_SOCKETS_PER_ADDRESS", "-3",
         "sessions.max_visitor_sockets_per_address must be a non-negative integer (0 = unlimited)"),
        ("COBROWSE_UPSTREAM", "ftp://files", "upstream must be an http:// or https:// URL"),
    ],
)
def test_env_errors(var, value, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(env={var: value}, allow_no_sites=True)
    assert str(info.value).startswith(f"environment variable {var}: "), str(info.value)
    assert fragment in str(info.value)


def test_visitor_sockets_per_address(tmp_path):
    assert load_config(env={}, allow_no_sites=True).sessions.max_visitor_sockets_per_address == 64
    env = {"COBROWSE_SESSIONS_MAX_VISITOR_SOCKETS_PER_ADDRESS": "0"}
    assert load_config(env=env, allow_no_sites=True).sessions.max_visitor_sockets_per_address == 0
    path = write(tmp_path, """
        [sessions]
        max_visitor_sockets_per_address = 200
        """)
    assert load_config(path, env={}, allow_no_sites=True).sessions.max_visitor_sockets_per_address == 200
    bad = write(tmp_path, """
        [sessions]
        max_visitor_sockets_per_address = "many"
        """)
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={}, allow_no_sites=True)
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "max_visitor" in text)
    assert info.value.line == line and "max_visitor_sockets_per_address" in str(info.value)


def test_unknown_env_setting_suggests():
    with pytest.raises(ConfigError) as info:
        load_config(env={"COBROWSE_PROXY_READ_TIMOUT": "3"}, allow_no_sites=True)
    assert str(info.value) == (
        "environment variable COBROWSE_PROXY_READ_TIMOUT: unknown setting; did you mean COBROWSE_PROXY_READ_TIMEOUT?"
    )


@pytest.mark.parametrize("var,suggestion", [
    ("COBROWSE_CONSOLE_PUBLIC_UR", "COBROWSE_CONSOLE_PUBLIC_URL"),
    ("COBROWSE_SESSIONS_IDLE_TIMOUT", "COBROWSE_SESSIONS_IDLE_TIMEOUT"),
    ("COBROWSE_SCREENSHARE_ENABLE", "COBROWSE_SCREENSHARE_ENABLED"),
])
def test_a_typo_in_any_sections_variable_is_an_error(var, suggestion):
    with pytest.raises(ConfigError, match=f"environment variable {var}: unknown setting; did you mean {suggestion}"):
        load_config(env={var: "x"}, allow_no_sites=True)


def test_variables_outside_the_sections_are_not_settings():
    load_config(env={"COBROWSE_SECRET_KEY": "k" * 22, "COBROWSE_CHROMIUM": "/usr/bin/chromium"}, allow_no_sites=True)


# --- file errors name the file and the line -----------------------------------


def test_example_error_message(tmp_path):
    path = write(
        tmp_path,
        """
        [server]
        listen = "0.0.0.0:8080"

        [proxy]
        connect_timeout = 5

        read_timeout = "fast"
        """
        + SITE,
    )
    err = assert_error_at(path, 7)
    assert str(err) == f'{path}:7: proxy.read_timeout must be a positive number, got "fast"'


def test_syntax_error_line(tmp_path):
    path = write(tmp_path, '[server]\nlisten = "0.0.0.0:8080"\n\nprefix = \n')
    assert_error_at(path, 4, "invalid TOML", "Invalid value", "(column")


def test_syntax_error_duplicate_table(tmp_path):
    path = write(tmp_path, "[proxy]\npool_size = 1\n[server]\n[proxy]\n")
    assert_error_at(path, 4, "invalid TOML")


def test_syntax_error_at_end_of_file(tmp_path):
    path = write(tmp_path, "[proxy]\npool_size = 1\nx = [1,\n2,\n")
    assert_error_at(path, 4, "invalid TOML", "end of file")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\n# caf\xe9\nlisten = "x"\n')
    assert_error_at(path, 2, "not valid UTF-8")


def test_unreadable_file(tmp_path):
    err = error_for(tmp_path / "nope.toml")
    assert str(err).startswith(f"{tmp_path / 'nope.toml'}: cannot read config file")


def test_unknown_key_suggestion(tmp_path):
    path = write(tmp_path, "[proxy]\nconnect_timeout = 1\nread_timout = 3\n" + SITE)
    err = assert_error_at(path, 3)
    assert err.message == "unknown key 'read_timout' in [proxy]; did you mean 'read_timeout'?"


def test_unknown_key_without_suggestion(tmp_path):
    path = write(tmp_path, "[server]\n\nzzz = 1\n" + SITE)
    err = assert_error_at(path, 3)
    assert err.message == "unknown key 'zzz' in [server]"


def test_unknown_section_suggestion(tmp_path):
    path = write(tmp_path, SITE + "\n[serverr]\nlisten = '0.0.0.0:1'\n")
    assert_error_at(path, 5, "unknown section [serverr]; did you mean [server]?")


def test_unknown_array_of_tables_suggestion(tmp_path):
    path = write(tmp_path, '[[sites]]\nhost = "*"\nupstream = "http://x"\n')
    assert_error_at(path, 1, "unknown section [[sites]]; did you mean [[site]]?")


def test_top_level_key_that_belongs_in_a_table(tmp_path):
    path = write(tmp_path, '# x\nlisten = "0.0.0.0:1"\n' + SITE)
    assert_error_at(path, 2, "unknown top-level key 'listen'; it belongs in the [server] table")


def test_unknown_site_key(tmp_path):
    path = write(tmp_path, '[[site]]\nhost = "*"\nupstreams = "http://x"\n')
    assert_error_at(path, 3, "unknown key 'upstreams' in [[site]]; did you mean 'upstream'?")


def test_site_as_plain_table(tmp_path):
    path = write(tmp_path, '# sites\n[site]\nhost = "*"\nupstream = "http://x"\n')
    assert_error_at(path, 2, "write [[site]]")


@pytest.mark.parametrize(
    "body,line,fragment",
    [
        ('[server]\nprefix = "/a/"\nlisten = "localhost"\n', 3, 'server.listen must be host:port'),
        ('[server]\nlisten = "0.0.0.0:70000"\n', 2, "server.listen port must be between 0 and 65535"),
        ('[server]\nlisten = "::1:8080"\n', 2, "IPv6 address in brackets"),
        ('[server]\nlisten = 8080\n', 2, 'server.listen must be a string "host:port", got 8080'),
        ('[server]\n\nprefix = "cobrowse"\n', 3, 'server.prefix must start and end with "/" (e.g. "/__cobrowse/"), got "cobrowse"'),
        ('[server]\nprefix = "/cobrowse"\n', 2, 'server.prefix must start and end with "/"'),
        ('[server]\nprefix = "/"\n', 2, 'server.prefix must start and end with "/"'),
        ('[server]\nlog_level = "verbose"\n', 2, "server.log_level must be one of debug, info, warning, error"),
        ('[server]\ntrust_forwarded = "yes"\n', 2, 'server.trust_forwarded must be true or false, got "yes"'),
        ('[server]\ndata_dir = ""\n', 2, "server.data_dir must be a non-empty string"),
        ('[server]\ndatabase_url = "cobrowse.db"\n', 2, "server.database_url must be a database URL"),
        ('[server]\nshutdown_timeout = -1\n', 2, "server.shutdown_timeout must be a number of seconds >= 0 (0 = do not wait), got -1"),
        ('[server]\nshutdown_timeout = "soon"\n', 2, 'server.shutdown_timeout must be a number of seconds >= 0'),
        ("[proxy]\nconnect_timeout = 0\n", 2, "proxy.connect_timeout must be a positive number, got 0"),
        ("[proxy]\nread_timeout = -1.5\n", 2, "proxy.read_timeout must be a positive number, got -1.5"),
        ("[proxy]\nread_timeout = true\n", 2, "proxy.read_timeout must be a positive number, got true"),
        ("[proxy]\npool_size = 2.5\n", 2, "proxy.pool_size must be a positive integer, got 2.5"),
        ("[proxy]\nmax_header_size = 0\n", 2, "proxy.max_header_size must be a positive integer"),
        ("[proxy]\nmax_body_size = -1\n", 2, "proxy.max_body_size must be a non-negative integer"),
        ("[proxy]\ninject = 1\n", 2, "proxy.inject must be true or false, got 1"),
        ('server = "x"\n', 1, "server must be a table"),
    ],
)
def test_bad_values_name_the_line(tmp_path, body, line, fragment):
    path = write(tmp_path, "# leading comment\n" + body + SITE)
    assert_error_at(path, line + 1, fragment)


@pytest.mark.parametrize(
    "site,line,fragment",
    [
        ('host = "a.com"\nupstream = "ftp://a.com"\n', 3, 'site.upstream must be an http:// or https:// URL, got "ftp://a.com"'),
        ('host = "a.com"\nupstream = "a.com:8080"\n', 3, "site.upstream must be an http:// or https:// URL"),
        ('host = "a.com"\nupstream = "http://"\n', 3, "site.upstream has no host"),
        ('host = "a.com"\nupstream = "http://a:99999"\n', 3, "valid port"),
        ('host = "a.com"\nupstream = "http://a/?x=1"\n', 3, "must not have a query string or fragment"),
        ('host = "a.com"\nupstream = "http://a/#top"\n', 3, "must not have a query string or fragment"),
        ('host = "a.com"\nupstream = "http://u:p@a/"\n', 3, "must not contain a user name or password"),
        ('host = "a.com"\n# no upstream\n', 1, '[[site]] is missing "upstream"'),
        ('upstream = "http://a"\n', 1, '[[site]] is missing "host"'),
        ('host = "https://a.com"\nupstream = "http://a"\n', 2, "not a URL"),
        ('host = "a com"\nupstream = "http://a"\n', 2, "site.host must be a host name"),
        ('host = "a.com:0"\nupstream = "http://a"\n', 2, "site.host must be a host name"),
        ('host = "a.com"\nupstream = "http://a"\naliases = "b.com"\n', 4, "site.aliases must be an array of strings"),
        ('host = "a.com"\nupstream = "http://a"\naliases = [\n  "b.com",\n  "*",\n]\n', 6, 'cannot be "*"'),
        ('host = "a.com"\nupstream = "http://a"\naliases = ["b.com", "A.com"]\n', 4, 'repeats the host name "a.com"'),
        ('host = "a.com"\nupstream = "http://a"\nmask_selectors = [".ok", ""]\n', 4, "site.mask_selectors entries"),
        ('host = "a.com"\nupstream = "http://a"\nmask_selectors = ["a > b", "x{}"]\n', 4, "site.mask_selectors entries"),
        ('host = "a.com"\nupstream = "http://a"\nnavigation_origins = ["https://p.com/pay"]\n', 4, "without a path"),
        ('host = "a.com"\nupstream = "http://a"\nnavigation_origins = ["javascript:alert(1)"]\n', 4, "origin"),
        ('host = "a.com"\nupstream = "http://a"\npass_host_header = "yes"\n', 4, "site.pass_host_header must be true or false"),
        ('host = "a.com"\nupstream = "http://a"\ntls_server_name = "a.com"\n', 4, "applies only to an https:// upstream"),
        ('host = "a.com"\nupstream = "https://10.0.0.5"\ntls_server_name = "a.com:443"\n', 4, "no port"),
        ('host = "a.com"\nupstream = "https://10.0.0.5"\ntls_server_name = ""\n', 4, "site.tls_server_name must be a host name"),
        ('host = "a.com"\nupstream = "https://10.0.0.5"\ntls_server_name = ["a.com"]\n', 4, "site.tls_server_name must be"),
    ],
)
def test_bad_sites_name_the_line(tmp_path, site, line, fragment):
    path = write(tmp_path, "[[site]]\n" + site)
    assert_error_at(path, line, fragment)


def test_error_in_second_site_points_into_that_site(tmp_path):
    path = write(
        tmp_path,
        """
        [[site]]
        host = "a.com"
        upstream = "http://a"

        [[site]]
        host = "b.com"
        upstream = "gopher://b"
        """,
    )
    assert_error_at(path, 7, "site.upstream must be an http:// or https:// URL")


def test_missing_upstream_points_at_the_site_header(tmp_path):
    path = write(
        tmp_path,
        """
        [[site]]
        host = "a.com"
        upstream = "http://a"

        [[site]]
        host = "b.com"
        """,
    )
    assert_error_at(path, 5, '[[site]] is missing "upstream"')


def test_duplicate_host(tmp_path):
    path = write(
        tmp_path,
        """
        [[site]]
        host = "a.com"
        upstream = "http://a"

        [[site]]
        host = "A.COM"
        upstream = "http://b"
        """,
    )
    assert_error_at(path, 6, 'duplicate site host "a.com" (already used at line 2)')


def test_duplicate_host_via_alias_in_multiline_array(tmp_path):
    path = write(
        tmp_path,
        """
        [[site]]
        host = "a.com"
        upstream = "http://a"

        [[site]]
        host = "b.com"
        aliases = [
          "c.com",   # comment
          "a.com",
        ]
        upstream = "http://b"
        """,
    )
    assert_error_at(path, 9, 'duplicate site host "a.com" (already used at line 2)')


def test_duplicate_default_site(tmp_path):
    path = write(tmp_path, SITE + SITE.replace("3000", "3001"))
    assert_error_at(path, 6, 'duplicate default site "*" (already used at line 2)')


def test_error_inside_inline_site_table(tmp_path):
    path = write(
        tmp_path,
        """
        site = [
          { host = "a.com", upstream = "http://a" },

          { host = "b.com", upstream = "mailto:b" },
        ]
        """,
    )
    assert_error_at(path, 4, "site.upstream must be an http:// or https:// URL")


def test_error_in_inline_section_and_dotted_key(tmp_path):
    path = write(tmp_path, 'proxy = { pool_size = 3, read_timeout = "x" }\n' + SITE)
    assert_error_at(path, 1, "proxy.read_timeout must be a positive number")
    path = write(tmp_path, '# top\nproxy.pool_size = 3\nproxy.read_timeout = "x"\n' + SITE)
    assert_error_at(path, 3, "proxy.read_timeout must be a positive number")


def test_multiline_string_does_not_confuse_the_locator(tmp_path):
    path = write(
        tmp_path,
        '''
        [server]
        database_url = """
        [proxy]
        read_timeout = 1
        """
        [proxy]
        read_timeout = "slow"
        '''
        + SITE,
    )
    # database_url is also invalid, but the first error is the [server] one (line 2).
    err = error_for(path)
    assert err.line == 2
    path = write(
        tmp_path,
        """
        [server]
        data_dir = '''
        [proxy]
        read_timeout = 1
        '''
        [proxy]
        read_timeout = "slow"
        """
        + SITE,
    )
    assert_error_at(path, 7, "proxy.read_timeout")


def test_locator_paths():
    text = textwrap.dedent(
        """
        # [not-a-table]
        [server]
        listen = "x"   # [also not]
        "prefix" = '/p/'
        [[site]]
        host = "a"
        aliases = ["b",
          "c"]
        [[site]]
        host = "d"
        [site.extra]
        key = { a = 1, "b" = [1, 2] }
        """
    )
    lines = _Locator(text).lines
    assert lines[("server",)] == 3
    assert lines[("server", "listen")] == 4
    assert lines[("server", "prefix")] == 5
    assert lines[("site", 0)] == 6
    assert lines[("site", 0, "aliases", 1)] == 9
    assert lines[("site", 1, "host")] == 11
    assert lines[("site", 1, "extra", "key", "b", 1)] == 13
    assert ("not-a-table",) not in lines
    assert _Locator(text).line_of(("site", 1, "missing")) == 10


def test_parse_listen():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen("localhost:0") == ("localhost", 0)
    for bad in ("8080", ":8080", "host:", "host:x", "[::1]8080", "h:65536"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_config_error_str():
    assert str(ConfigError("m")) == "m"
    assert str(ConfigError("m", "f.toml")) == "f.toml: m"
    assert str(ConfigError("m", "f.toml", 7)) == "f.toml:7: m"
    assert str(ConfigError("m", origin="environment variable X")) == "environment variable X: m"
    err = pickle.loads(pickle.dumps(ConfigError("m", "f.toml", 7)))
    assert str(err) == "f.toml:7: m" and err.line == 7


# --- https upstreams ---------------------------------------------------------


def test_upstream_ca_file_and_verification_from_file_and_environment(tmp_path):
    import trustme

    ca_path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_path))
    path = write(tmp_path, f"""
        [proxy]
        upstream_ca_file = "{ca_path}"
        [[site]]
        host = "*"
        upstream = "https://app.internal"
        """)
    config = load_config(path, env={})
    assert config.proxy.upstream_ca_file == str(ca_path) and config.proxy.upstream_tls_verify is True
    config = load_config(path, env={"COBROWSE_PROXY_UPSTREAM_TLS_VERIFY": "false"})
    assert config.proxy.upstream_tls_verify is False
    assert load_config(env={}, allow_no_sites=True).proxy.upstream_ca_file == ""


@pytest.mark.parametrize("content, fragment", [
    (None, "cannot read"),
    (b"not a certificate\n", "holds no PEM certificate"),
])
def test_an_unusable_upstream_ca_file_names_its_line(tmp_path, content, fragment):
    ca_path = tmp_path / "ca.pem"
    if content is not None:
        ca_path.write_bytes(content)
    path = write(tmp_path, f"""
        [proxy]
        read_timeout = 10
        upstream_ca_file = "{ca_path}"
        """)
    assert_error_at(path, 3, "proxy.upstream_ca_file", fragment, str(ca_path))


# --- access log ----------------------------------------------------------------


def test_access_log_from_file_environment_and_flag(tmp_path):
    path = write(tmp_path, f"""
        [server]
        access_log = "{tmp_path / 'access.log'}"
        """)
    assert load_config(path, env={}, allow_no_sites=True).server.access_log == str(tmp_path / "access.log")
    config = load_config(path, env={"COBROWSE_SERVER_ACCESS_LOG": "-"}, allow_no_sites=True)
    assert config.server.access_log == "-"
    config = load_config(path, env={}, overrides={"server.access_log": ""}, allow_no_sites=True)
    assert config.server.access_log == ""


@pytest.mark.parametrize("where, fragment", [("missing/access.log", "does not exist"), (".", "is a directory")])
def test_an_access_log_that_cannot_be_written_names_its_line(tmp_path, where, fragment):
    path = write(tmp_path, f"""
        [server]
        listen = "127.0.0.1:8000"
        access_log = "{tmp_path / where}"
        """)
    assert_error_at(path, 3, "server.access_log", fragment)


def test_shutdown_timeout_default_file_and_environment(tmp_path):
    assert load_config(env={}, allow_no_sites=True).server.shutdown_timeout == 10.0
    path = write(tmp_path, "[server]\nshutdown_timeout = 0\n" + SITE)
    assert load_config(path, env={}).server.shutdown_timeout == 0.0  # 0: cut at once
    config = load_config(path, env={"COBROWSE_SERVER_SHUTDOWN_TIMEOUT": "45.5"})
    assert config.server.shutdown_timeout == 45.5


def test_a_bad_element_of_an_array_setting_is_reported_at_its_own_line(tmp_path):
    path = write(tmp_path, '[chat]\nfile_types = [\n  "pdf",\n  "png",\n  "bad type",\n]\n' + SITE)
    assert_error_at(path, 5, 'chat.file_types entries must be file extensions', '"bad type"')
    path = write(tmp_path, '[[screenshare.ice_servers]]\nurls = ["stun:a.example:3478"]\n\n'
                           '[[screenshare.ice_servers]]\nurls = [\n  "stun:b.example:3478",\n  "http://nope",\n]\n'
                 + SITE)
    assert_error_at(path, 7, "screenshare.ice_servers[1].urls entries", '"http://nope"')
    path = write(tmp_path, '[screenshare]\nice_servers = [\n  {urls = ["stun:a:1"]},\n'
                           '  {urls = ["stun:b:1"], username = 5},\n]\n' + SITE)
    assert_error_at(path, 4, "screenshare.ice_servers[1].username must be a string")
