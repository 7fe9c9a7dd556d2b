"""The chat settings of cobrowse.config: [chat], [[chat.field]], [[department]], [mail]
and the per-site contact_email / transcripts_to."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from cobrowse.config import (
    CHAT_FILE_TYPES,
    ChatField,
    ChatOptions,
    Config,
    ConfigError,
    Department,
    MailOptions,
    ServerOptions,
    load_config,
)

SITE = '\n[[site]]\nhost = "*"\nupstream = "http://127.0.0.1:3000"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cobrowse.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def assert_error_at(path: Path, line: int, *fragments: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: "), text
    for fragment in fragments:
        assert fragment in text, text
    return info.value


def test_defaults():
    config = load_config(env={}, allow_no_sites=True)
    chat = config.chat
    assert chat == ChatOptions()
    assert chat.enabled and not chat.prechat and chat.offline_enabled and not chat.survey
    assert not chat.email_visitor and chat.typing and chat.welcome_message == ""
    assert chat.max_file_size == 10 * 1024 * 1024 and chat.file_types == CHAT_FILE_TYPES
    assert {"png", "jpg", "pdf", "txt", "zip", "docx", "xlsx"} <= set(chat.file_types)
    assert not {"html", "svg", "js", "exe"} & set(chat.file_types)  # nothing a browser would run
    assert chat.fields == () and chat.idle_timeout == 1800
    assert config.mail == MailOptions() and not config.mail.enabled and config.mail.port == 0  # the usual port for the security setting
    assert config.departments == ()
    assert config.chat_files_dir == "data/files"
    assert Config(server=ServerOptions(data_dir="/srv"), chat=ChatOptions(files_dir="/x")).chat_files_dir == "/x"


FULL = """
[chat]
enabled = true
prechat = true
welcome_message = "Hi! <b>How can we help?</b>"
offline_enabled = false
survey = true
email_visitor = true
typing = false
idle_timeout = 0
files_dir = "/var/lib/cobrowse/files"
max_file_size = 2_000_000
file_types = ["PDF", ".png", "jpg", "pdf"]

[[chat.field]]
name = "order"
label = "Order number"
required = true

[[chat.field]]
name = "topic"
label = "Topic"
type = "select"
options = ["Billing", "Delivery"]

[[chat.field]]
name = "details"
type = "textarea"

[[department]]
id = "sales"
name = "Sales"
email = "sales@example.com"
transcripts_to = ["sales-log@example.com", "boss@example.com"]

[[department]]
id = "support"

[mail]
host = "SMTP.example.com"
port = 587
security = "STARTTLS"
username = "cobrowse"
password = " secret "
sender = "Support <support@example.com>"
timeout = 10

[[site]]
host = "shop.example.com"
upstream = "http://127.0.0.1:3000"
contact_email = "help@example.com"
transcripts_to = ["log@example.com"]
"""


def test_full_file(tmp_path):
    config = load_config(write(tmp_path, FULL), env={})
    assert config.chat == ChatOptions(
        enabled=True, prechat=True, welcome_message="Hi! <b>How can we help?</b>", offline_enabled=False,
        survey=True, email_visitor=True, typing=False, idle_timeout=0.0, files_dir="/var/lib/cobrowse/files",
        max_file_size=2_000_000, file_types=("pdf", "png", "jpg"),
        fields=(
            ChatField(name="order", label="Order number", required=True),
            ChatField(name="topic", label="Topic", type="select", options=("Billing", "Delivery")),
            ChatField(name="details", label="details", type="textarea"),
        ),
    )
    assert config.departments == (
        Department(id="sales", name="Sales", email="sales@example.com",
                   transcripts_to=("sales-log@example.com", "boss@example.com")),
        Department(id="support", name="support"),
    )
    assert config.department("sales").email == "sales@example.com" and config.department("nope") is None
    assert config.mail == MailOptions(host="smtp.example.com", port=587, security="starttls", username="cobrowse",
                                      password=" secret ", sender="Support <support@example.com>", timeout=10.0)
    assert config.mail.enabled and "secret" not in repr(config.mail)
    site = config.sites[0]
    assert (site.contact_email, site.transcripts_to) == ("help@example.com", ("log@example.com",))
    assert hash(config) and pickle.loads(pickle.dumps(config)) == config


def test_environment_overrides_scalars(tmp_path):
    env = {
        "COBROWSE_CHAT_PRECHAT": "yes",
        "COBROWSE_CHAT_MAX_FILE_SIZE": "1000",
        "COBROWSE_CHAT_FILE_TYPES": "pdf, PNG",
        "COBROWSE_CHAT_WELCOME_MESSAGE": "Hello",
        "COBROWSE_MAIL_HOST": "mail.internal",
        "COBROWSE_MAIL_PORT": "465",
        "COBROWSE_MAIL_SECURITY": "tls",
        "COBROWSE_MAIL_PASSWORD": "from-env",
        "COBROWSE_MAIL_SENDER": "cobrowse@example.com",
    }
    config = load_config(write(tmp_path, FULL), env=env)
    assert config.chat.prechat and config.chat.max_file_size == 1000 and config.chat.file_types == ("pdf", "png")
    assert config.chat.welcome_message == "Hello" and len(config.chat.fields) == 3  # fields stay from the file
    assert (config.mail.host, config.mail.port, config.mail.security) == ("mail.internal", 465, "tls")
    assert (config.mail.password, config.mail.sender) == ("from-env", "cobrowse@example.com")

    with pytest.raises(ConfigError) as info:
        load_config(env={"COBROWSE_CHAT_MAX_FILE_SIZE": "big"}, allow_no_sites=True)
    assert str(info.value).startswith("environment variable COBROWSE_CHAT_MAX_FILE_SIZE: chat.max_file_size")
    with pytest.raises(ConfigError) as info:
        load_config(env={"COBROWSE_MAIL_HOTS": "x"}, allow_no_sites=True)
    assert "did you mean COBROWSE_MAIL_HOST?" in str(info.value)
    config = load_config(env={}, overrides={"chat.survey": "on"}, allow_no_sites=True)
    assert config.chat.survey


def test_mail_needs_a_sender(tmp_path):
    path = write(tmp_path, '[mail]\nport = 25\nhost = "smtp.example.com"\n' + SITE)
    assert_error_at(path, 3, "mail.sender is needed when mail.host is set")
    with pytest.raises(ConfigError) as info:
        load_config(env={"COBROWSE_MAIL_HOST": "smtp.example.com"}, allow_no_sites=True)
    assert str(info.value).startswith("environment variable COBROWSE_MAIL_HOST: mail.sender is needed")


@pytest.mark.parametrize("text, line, fragments", [
    ('[chat]\nenabled = "yes"\n', 2, ["chat.enabled must be true or false"]),
    ('[chat]\nmax_file_size = 0\n', 2, ["chat.max_file_size must be a positive integer"]),
    ('[chat]\nidle_timeout = -1\n', 2, ["chat.idle_timeout must be a number of seconds >= 0"]),
    ('[chat]\nfile_types = "pdf"\n', 2, ["chat.file_types must be an array of strings"]),
    ('[chat]\nfile_types = ["pdf",\n  "tar.gz"]\n', 3, ['file extensions like "pdf"', '"tar.gz"']),
    ('[chat]\nwelcome_mesage = "hi"\n', 2, ["unknown key 'welcome_mesage' in [chat]; did you mean 'welcome_message'?"]),
    ('[chat]\nfields = []\n', 2, ["unknown key 'fields' in [chat]; did you mean 'field'?"]),
    ('[chat]\nwelcome_message = "' + "x" * 4001 + '"\n', 2, ["chat.welcome_message is too long"]),
    ('[[chat.field]]\nlabel = "Order"\n', 1, ['[[chat.field]] is missing "name"']),
    ('[[chat.field]]\nname = "Order No"\n', 2, ["chat.field.name must be 1 to 32 characters"]),
    ('[[chat.field]]\nname = "a"\n\n[[chat.field]]\nname = "a"\n', 5, ['duplicate chat field "a" (already used at line 1)']),
    ('[[chat.field]]\nname = "a"\ntype = "date"\n', 3, ["chat.field.type must be one of text, textarea, select"]),
    ('[[chat.field]]\nname = "a"\ntype = "select"\n', 3, ['type "select" needs options']),
    ('[[chat.field]]\nname = "a"\noptions = ["x"]\n', 3, ['options only apply to type "select"']),
    ('[[chat.field]]\nname = "a"\ntype = "select"\noptions = ["x", ""]\n', 4, ["options entries must be non-empty"]),
    ('[[chat.field]]\nname = "a"\nrequired = 1\n', 3, ["chat.field.required must be true or false"]),
    ('[[chat.field]]\nname = "a"\nlabl = "A"\n', 3, ["unknown key 'labl' in [[chat.field]]; did you mean 'label'?"]),
    ('[chat.field]\nname = "a"\n', 1, ["write [[chat.field]] (double brackets)"]),
    ('[[department]]\nname = "Sales"\n', 1, ['[[department]] is missing "id"']),
    ('[[department]]\nid = "Sales Team"\n', 2, ["department.id must be 1 to 32 characters"]),
    ('[[department]]\nid = "s"\n[[department]]\nid = "s"\n', 4, ['duplicate department "s" (already used at line 1)']),
    ('[[department]]\nid = "s"\nemail = "nobody"\n', 3, ['department.email must be an email address']),
    ('[[department]]\nid = "s"\ntranscripts_to = ["a@example.com",\n  "b@"]\n', 4,
     ["department.transcripts_to entry must be an email address", '"b@"']),
    ('[[department]]\nid = "s"\nmanager = "x"\n', 3, ["unknown key 'manager' in [[department]]"]),
    ('[department]\nid = "s"\n', 1, ["write [[department]] (double brackets)"]),
    ('[[departmnet]]\nid = "s"\n', 1, ["unknown section [[departmnet]]; did you mean [[department]]?"]),
    ('[mail]\nport = 70000\n', 2, ["mail.port must be a port number between 1 and 65535"]),
    ('[mail]\nhost = "smtp.example.com:587"\n', 2, ["the port goes in mail.port"]),
    ('[mail]\nsecurity = "ssl"\n', 2, ["mail.security must be one of none, starttls, tls"]),
    ('[mail]\nsender = "Support"\n', 2, ["mail.sender must be an address like"]),
    ('[mail]\nsender = "a@example.com, b@example.com"\n', 2, ["mail.sender must be an address like"]),
    ('[mail]\ntimeout = 0\n', 2, ["mail.timeout must be a positive number"]),
])
def test_errors_name_the_line(tmp_path, text, line, fragments):
    path = write(tmp_path, text + SITE)
    assert_error_at(path, line, *fragments)


@pytest.mark.parametrize("text, line, fragments", [
    ('contact_email = "help"\n', 3, ["site.contact_email must be an email address"]),
    ('transcripts_to = "log@example.com"\n', 3, ["site.transcripts_to must be an array of strings"]),
    ('transcripts_to = ["log@example.com", 7]\n', 3, ["site.transcripts_to entry must be an email address"]),
])
def test_site_chat_keys(tmp_path, text, line, fragments):
    path = write(tmp_path, '[[site]]\nhost = "a.example"\n' + text + 'upstream = "http://127.0.0.1:3000"\n')
    assert_error_at(path, line, *fragments)


def test_department_and_site_addresses_are_optional(tmp_path):
    config = load_config(write(tmp_path, '[[department]]\nid = "s"\nemail = ""\n' + SITE), env={})
    assert config.departments == (Department(id="s", name="s"),)
    assert (config.sites[0].contact_email, config.sites[0].transcripts_to) == ("", ())


def test_check_config_summary(tmp_path):
    from cobrowse.cli import describe_config

    summary = describe_config(load_config(write(tmp_path, FULL), env={}))
    assert "chat:         on, pre-chat form, survey, transcripts to visitors; files up to 2000000 B (pdf, png, jpg)" \
        in summary
    assert "departments:  sales, support" in summary
    assert "mail:         smtp.example.com:587 (starttls), from Support <support@example.com>" in summary
    assert "secret" not in summary
    assert "mail:         off (no [mail] host)" in describe_config(Config())
    assert "chat:         off" in describe_config(Config(chat=ChatOptions(enabled=False)))
