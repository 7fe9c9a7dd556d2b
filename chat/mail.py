"""Outgoing mail: transcripts and offline messages, over SMTP with aiosmtplib.

:class:`MailSettings` is what the ``[mail]`` config section maps to.
:func:`send_mail` composes one message (plain text, an optional HTML
alternative, attachments) and delivers it to one recipient; every failure
becomes a :class:`MailError` whose message says what went wrong and where,
and whose ``transient`` says whether trying again later may help.

Header injection: addresses, the subject and attachment names are refused
when they contain a line break (or NUL), and an address must be exactly one
address. The envelope recipient is the one parsed address, never whatever the
headers would produce, so nothing can add a recipient.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import Literal, NamedTuple

import aiosmtplib

from .text import clean_line, remove_unsafe_chars
from .transcript import Audience, Transcript, render_html, render_txt, transcript_filename

__all__ = [
    "MailError",
    "MailSettings",
    "Attachment",
    "TranscriptMail",
    "compose_mail",
    "send_mail",
    "transcript_mail",
    "send_transcript",
]

Security = Literal["none", "starttls", "tls"]
_DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}
_MAX_SUBJECT = 250


class MailError(Exception):
    """Mail could not be composed or delivered. ``transient``: the server or the
    network may be fine later (timeouts, refused connections, 4xx answers); False
    for what needs a change first (bad address, refused login, 5xx answers)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class MailSettings:
    """How to reach the SMTP server.

    ``security``: ``none`` (plain SMTP, no upgrade even when the server offers
    one: a local relay), ``starttls`` (upgrade, certificate verified) or ``tls``
    (TLS from the first byte). ``port`` 0 means the usual port for it: 25, 587
    or 465. ``sender`` is the From address (``"Support <help@example.com>"``).
    ``timeout`` is in seconds, per SMTP step.
    """

    host: str = "localhost"
    port: int = 0
    security: Security = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = ""
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in _DEFAULT_PORTS:
            raise ValueError(f"mail security must be none, starttls or tls, not {self.security!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"mail port out of range: {self.port}")
        if self.timeout <= 0:
            raise ValueError("mail timeout must be positive")

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]


class Attachment(NamedTuple):
    filename: str
    content_type: str  # "text/plain; charset=utf-8", "application/pdf"...
    data: bytes


# ----- composing ----------------------------------------------------------------------


def _no_line_breaks(value: str, what: str) -> None:
    if any(c in value for c in "\r\n\0"):
        raise MailError(f"{what} must not contain line breaks")


# A plain addr-spec: no whitespace, no second address, nothing that needs quoting.
_ADDRESS_FORBIDDEN = set(" \t<>(),;:\"[]\\")


def _address(value: str, what: str) -> str:
    """The bare address of ``value`` ("a@b.example" or "Name <a@b.example>")."""
    if not isinstance(value, str) or not value.strip():
        raise MailError(f"{what} is missing")
    _no_line_breaks(value, what)
    if len(getaddresses([value])) != 1:
        raise MailError(f"{what} must be exactly one address: {value!r}")
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not (at and local and domain and "." in domain.strip(".")) or _ADDRESS_FORBIDDEN & set(address):
        raise MailError(f"{what} is not an email address: {value!r}")
    return address


def _content_type(value: str) -> tuple[str, str, dict[str, str]]:
    base, *raw_params = (part.strip() for part in value.split(";"))
    maintype, slash, subtype = base.lower().partition("/")
    if not (slash and maintype and subtype) or any(c.isspace() for c in base):
        raise MailError(f"not a content type: {value!r}")
    params = {}
    for param in raw_params:
        name, eq, setting = param.partition("=")
        if eq and name.strip():
            params[name.strip().lower()] = setting.strip().strip('"')
    return maintype, subtype, params


def compose_mail(settings: MailSettings, *, to: str, subject: str, text: str, html: str | None = None,
                 attachments: Iterable[tuple[str, str, bytes]] = ()) -> EmailMessage:
    """The message :func:`send_mail` sends (raises :class:`MailError` for bad input)."""
    sender = _address(settings.sender, "the sender (mail.sender)")
    _address(to, "the recipient")
    _no_line_breaks(subject, "the subject")
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = remove_unsafe_chars(subject)[:_MAX_SUBJECT]
    message["Date"] = formatdate(usegmt=True)
    # The sender's domain, not the host name: make_msgid() would otherwise look up
    # this host's FQDN, a blocking DNS query on the event loop.
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders should not answer
    # Quoted-printable keeps every line short and 7-bit, whatever the server supports.
    message.set_content(text, cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", cte="quoted-printable")
    for filename, content_type, data in attachments:
        _no_line_breaks(filename, "an attachment's name")
        maintype, subtype, params = _content_type(content_type)
        message.add_attachment(bytes(data), maintype=maintype, subtype=subtype,
                               filename=remove_unsafe_chars(filename), params=params)
    return message


# ----- sending --------------------------------------------------------------------------


def _server_said(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {clean_line(str(exc.message), 300)}"


async def send_mail(settings: MailSettings, *, to: str, subject: str, text: str, html: str | None = None,
                    attachments: Iterable[tuple[str, str, bytes]] = ()) -> None:
    """Send one message to ``to``; raises :class:`MailError` when it was not accepted."""
    message = compose_mail(settings, to=to, subject=subject, text=text, html=html, attachments=attachments)
    sender, recipient = _address(settings.sender, "the sender"), _address(to, "the recipient")
    where = f"{settings.host}:{settings.effective_port}"
    try:
        await aiosmtplib.send(
            message,
            sender=sender,
            recipients=[recipient],
            hostname=settings.host,
            port=settings.effective_port,
            username=settings.username or None,
            password=(settings.password or None) if settings.username else None,
            use_tls=settings.security == "tls",
            # False, not None: aiosmtplib would otherwise upgrade whenever offered,
            # and a "none" relay's certificate is often one nobody can verify.
            start_tls=settings.security == "starttls",
            timeout=settings.timeout,
        )
    except aiosmtplib.SMTPTimeoutError as exc:
        raise MailError(f"the mail server {where} did not answer within {settings.timeout:g} s",
                        transient=True) from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise MailError(f"the mail server {where} refused the login of {settings.username!r}: {_server_said(exc)}"
                        ) from exc
    except aiosmtplib.SMTPRecipientsRefused as exc:
        said = "; ".join(_server_said(r) for r in exc.recipients)
        transient = all(400 <= r.code < 500 for r in exc.recipients) if exc.recipients else False
        raise MailError(f"the mail server {where} refused the recipient {recipient}: {said}",
                        transient=transient) from exc
    except aiosmtplib.SMTPSenderRefused as exc:
        raise MailError(f"the mail server {where} refused the sender {sender}: {_server_said(exc)}",
                        transient=400 <= exc.code < 500) from exc
    except aiosmtplib.SMTPConnectError as exc:
        raise MailError(f"could not connect to the mail server {where}: {exc}", transient=True) from exc
    except aiosmtplib.SMTPServerDisconnected as exc:
        raise MailError(f"the mail server {where} closed the connection: {exc}", transient=True) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise MailError(f"the mail server {where} refused the message: {_server_said(exc)}",
                        transient=400 <= exc.code < 500) from exc
    except aiosmtplib.SMTPException as exc:  # e.g. no AUTH or no STARTTLS offered: a setup problem
        raise MailError(f"could not send mail through {where}: {exc}") from exc
    except ssl.SSLError as exc:
        raise MailError(f"TLS with the mail server {where} failed: {exc}") from exc
    except (TimeoutError, OSError) as exc:
        raise MailError(f"could not talk to the mail server {where}: {exc}", transient=True) from exc


# ----- transcripts ----------------------------------------------------------------------


class TranscriptMail(NamedTuple):
    subject: str
    text: str  # a short introduction, then the TXT transcript
    html: str  # the HTML transcript (the alternative part)
    attachments: list[Attachment]  # the TXT transcript as a file


def transcript_mail(transcript: Transcript, *, audience: Audience) -> TranscriptMail:
    """The mail for one transcript. ``audience`` must be the one the transcript was
    built for: it is checked, so an agents' copy (with notes) never goes out under
    the visitor's wording."""
    if audience != transcript.audience:
        raise ValueError(f"this transcript was built for the {transcript.audience}, not the {audience}")
    info = transcript.info
    site = clean_line(info.site or "", 100) or "our site"
    started = info.started_at.strftime("%Y-%m-%d") if info.started_at else ""
    visitor = clean_line(info.visitor_name or "", 100)
    txt = render_txt(transcript)
    if audience == "visitor":
        subject = f"Your chat with {site}" + (f" on {started}" if started else "")
        greeting = f"Hello {visitor},\n\n" if visitor else "Hello,\n\n"
        intro = f"{greeting}here is the transcript of your chat with {site}. It is attached as well.\n"
    else:
        who = visitor or clean_line(info.visitor_email or "", 100) or "a visitor"
        subject = f"Chat transcript: {who} on {site}" + (f", {started}" if started else "")
        conversation = clean_line(info.conversation_id, 64)
        intro = f"The transcript of the chat with {who} on {site} (conversation {conversation}).\n"
    subject = clean_line(subject, _MAX_SUBJECT)
    text = f"{intro}\n{'-' * 72}\n\n{txt}"
    attachment = Attachment(transcript_filename(transcript, "txt"), "text/plain; charset=utf-8", txt.encode("utf-8"))
    return TranscriptMail(subject=subject, text=text, html=render_html(transcript), attachments=[attachment])


async def send_transcript(settings: MailSettings, transcript: Transcript, *, to: str) -> None:
    """Mail ``transcript`` (in its own audience's wording) to ``to``."""
    mail = transcript_mail(transcript, audience=transcript.audience)
    await send_mail(settings, to=to, subject=mail.subject, text=mail.text, html=mail.html,
                    attachments=mail.attachments)
