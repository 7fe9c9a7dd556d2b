"""chat.mail: composing and sending mail through a real (local) SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from chat.mail import MailError, MailSettings, compose_mail, send_mail, send_transcript, transcript_mail
from chat.transcript import (
    TranscriptEvent,
    TranscriptInfo,
    TranscriptMessage,
    build,
    render_html,
    render_txt,
)

SENDER = "Shop Support <support@shop.example>"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


class Inbox:
    """An aiosmtpd handler keeping what it receives; ``refuse`` answers RCPT with that line."""

    def __init__(self) -> None:
        self.envelopes = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def message(self, index: int = -1) -> email.message.EmailMessage:
        # SMTP carries CRLF line ends; the text parts compare easier with "\n".
        return email.message_from_bytes(self.envelopes[index].original_content.replace(b"\r\n", b"\n"),
                                        policy=default_policy)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def smtp_server(**smtp_options) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5, **smtp_options)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def server():
    with smtp_server() as running:
        yield running


@pytest.fixture
def auth_server():
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        with smtp_server(authenticator=authenticator, auth_required=True, auth_require_tls=False) as running:
            yield running


def settings_for(port: int, **overrides) -> MailSettings:
    return MailSettings(**{"host": "127.0.0.1", "port": port, "security": "none", "sender": SENDER,
                           "timeout": 5.0, **overrides})


def make_transcript(audience: str):
    info = TranscriptInfo(
        conversation_id="conv42", site="shop.example", visitor_name="Zoë Ünïcode", visitor_email="zoe@example.com",
        department="Sales", started_at=T0, ended_at=T0 + timedelta(minutes=5), url="https://shop.example/",
        fields={"Order": "A-1"}, survey_rating=5, survey_comment="Thanks!", participants=[("Ann", "agent")],
    )
    messages = [
        TranscriptMessage(1, T0 + timedelta(seconds=1), "visitor", "text", "Where is my order? ☹", "Zoë Ünïcode"),
        TranscriptMessage(2, T0 + timedelta(seconds=2), "agent", "note", "Check the warehouse", "Ann"),
        TranscriptMessage(3, T0 + timedelta(seconds=3), "agent", "text", "On its way!", "Ann"),
    ]
    events = [TranscriptEvent(T0 + timedelta(seconds=2), "page", None,
                              {"url": "https://shop.example/orders", "title": "Orders"})]
    return build(info, messages, events, audience=audience)


# ----- delivery ------------------------------------------------------------------------------


async def test_agent_transcript_mail_is_delivered(server):
    inbox, port = server
    transcript = make_transcript("agent")
    mail = transcript_mail(transcript, audience="agent")
    await send_mail(settings_for(port), to="Ann Agent <ann@shop.example>", subject=mail.subject, text=mail.text,
                    html=mail.html, attachments=mail.attachments)

    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "support@shop.example"
    assert envelope.rcpt_tos == ["ann@shop.example"]
    message = inbox.message()
    assert message["From"] == SENDER
    assert message["To"] == "Ann Agent <ann@shop.example>"
    assert message["Subject"] == "Chat transcript: Zoë Ünïcode on shop.example, 2024-05-01"
    assert abs(parsedate_to_datetime(message["Date"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith("@shop.example>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/mixed"

    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Check the warehouse" in text and "Where is my order? ☹" in text  # agents get notes
    assert html == render_html(transcript)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "chat-conv42.txt"
    assert attachment.get_content_type() == "text/plain"
    assert attachment.get_content_charset() == "utf-8"
    assert attachment.get_payload(decode=True).decode("utf-8") == render_txt(transcript)
    # Every line fits SMTP's limit whatever the content (quoted-printable, base64).
    assert all(len(line) <= 998 for line in envelope.original_content.split(b"\r\n"))


async def test_visitor_transcript_mail_has_no_notes(server):
    inbox, port = server
    await send_transcript(settings_for(port), make_transcript("visitor"), to="zoe@example.com")
    message = inbox.message()
    assert message["Subject"] == "Your chat with shop.example on 2024-05-01"
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Hello Zoë Ünïcode,\n")
    for part in message.walk():
        if not part.is_multipart():
            assert "warehouse" not in part.get_content()


def test_transcript_mail_checks_the_audience():
    with pytest.raises(ValueError):
        transcript_mail(make_transcript("agent"), audience="visitor")


async def test_login(auth_server):
    inbox, port = auth_server
    await send_mail(settings_for(port, username="mailer", password="s3cret"), to="bob@example.com",
                    subject="Hi", text="Hello")
    assert inbox.envelopes[0].rcpt_tos == ["bob@example.com"]


async def test_login_refused(auth_server):
    inbox, port = auth_server
    with pytest.raises(MailError) as caught:
        await send_mail(settings_for(port, username="mailer", password="wrong"), to="bob@example.com",
                        subject="Hi", text="Hello")
    assert "refused the login of 'mailer'" in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)
    assert "535" in str(caught.value)
    assert not caught.value.transient
    assert inbox.envelopes == []


async def test_recipient_refused(server):
    inbox, port = server
    inbox.refuse = "550 No such user here"
    with pytest.raises(MailError) as caught:
        await send_mail(settings_for(port), to="nobody@example.com", subject="Hi", text="Hello")
    assert "refused the recipient nobody@example.com: 550 No such user here" in str(caught.value)
    assert not caught.value.transient
    inbox.refuse = "451 Try again later"
    with pytest.raises(MailError) as caught:
        await send_mail(settings_for(port), to="nobody@example.com", subject="Hi", text="Hello")
    assert caught.value.transient


async def test_connection_refused():
    port = free_port()  # nothing listens there any more
    with pytest.raises(MailError) as caught:
        await send_mail(settings_for(port), to="bob@example.com", subject="Hi", text="Hello")
    assert f"could not connect to the mail server 127.0.0.1:{port}" in str(caught.value)
    assert caught.value.transient


async def test_timeout():
    done = asyncio.Event()

    async def silent(reader, writer):
        await done.wait()  # accepts, never greets
        writer.close()
        await writer.wait_closed()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with pytest.raises(MailError) as caught:
            await send_mail(settings_for(port, timeout=0.3), to="bob@example.com", subject="Hi", text="Hello")
    finally:
        done.set()
        listener.close()
        await listener.wait_closed()
        await asyncio.sleep(0)  # let the handler close its side
    assert f"the mail server 127.0.0.1:{port} did not answer within 0.3 s" in str(caught.value)
    assert caught.value.transient


# ----- composing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("subject", "Hello\r\nBcc: victim@example.com"),
    ("subject", "Hello\nX-Injected: 1"),
    ("to", "bob@example.com\r\nBcc: victim@example.com"),
    ("to", "bob@example.com\nSubject: spoofed"),
    ("to", "bob@example.com, victim@example.com"),
    ("to", "Bob <bob@example.com>, Eve <eve@example.com>"),
    ("to", "not an address"),
    ("to", "bob@localhost"),
    ("to", ""),
    ("to", "bob@example.com\x00"),
    ("sender", "Support <support@shop.example>\r\nBcc: x@example.com"),
    ("sender", ""),
    ("attachment", "a.txt\r\nContent-Type: text/html"),
])
async def test_header_injection_is_refused_before_connecting(field, value):
    port = free_port()  # nothing listens: a connection attempt would give another error
    arguments = {"to": "bob@example.com", "subject": "Hi", "text": "Hello", "attachments": ()}
    settings = settings_for(port)
    if field == "sender":
        settings = settings_for(port, sender=value)
    elif field == "attachment":
        arguments["attachments"] = [(value, "text/plain", b"x")]
    else:
        arguments[field] = value
    with pytest.raises(MailError) as caught:
        await send_mail(settings, **arguments)
    assert "connect" not in str(caught.value)


def test_compose_mail_encodes_non_ascii():
    message = compose_mail(settings_for(25), to="Zoë <zoe@example.com>", subject="Ünïcode ☺ " + "long " * 30,
                           text="Grüße\n" + "x" * 2000,
                           attachments=[("Überweisung.pdf", "application/pdf", b"%PDF")])
    raw = message.as_bytes()
    raw.decode("ascii")  # every header and body encoded
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert parsed["Subject"] == "Ünïcode ☺ " + "long " * 30
    assert parsed["To"] == "Zoë <zoe@example.com>"
    assert parsed.get_body(("plain",)).get_content() == "Grüße\n" + "x" * 2000 + "\n"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "Überweisung.pdf"
    assert attachment.get_content() == b"%PDF"


def test_mail_settings():
    assert MailSettings(security="none").effective_port == 25
    assert MailSettings(security="starttls").effective_port == 587
    assert MailSettings(security="tls").effective_port == 465
    assert MailSettings(security="tls", port=2465).effective_port == 2465
    assert "hunter2" not in repr(MailSettings(password="hunter2"))
    with pytest.raises(ValueError):
        MailSettings(security="ssl")
    with pytest.raises(ValueError):
        MailSettings(port=70000)
    with pytest.raises(ValueError):
        MailSettings(timeout=0)
