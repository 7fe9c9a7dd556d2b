"""Transcripts and offline messages reach a real SMTP server (aiosmtpd), once per address.

The whole service runs with mail on. Transcripts are enabled at site,
department and agent level, with addresses that overlap on purpose: every
address gets exactly one mail, agents' copies carry private notes and the
visitor's never does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import socket
from email import policy

import argon2
import pytest
from aiosmtpd.controller import Controller

from chat_clients import AgentClient, VisitorClient, agent_cookie, start_shop_upstream
from cobrowse.config import ChatOptions, Department, MailOptions, Site
from cobrowse.server import Service
from cobrowse.storage import accounts
from conftest import make_config

PASSWORD = "correct horse battery"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.mails.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpt, m in self.mails if address in rcpt]


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    yield inbox, port
    controller.stop()




def _body(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


async def _until(predicate, what: str) -> None:
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_transcripts_go_once_to_each_address(tmp_path, smtp):
    inbox, smtp_port = smtp
    runner, upstream_port = await start_shop_upstream()
    base = make_config(data_dir=str(tmp_path), sites=(Site(
        host="*", upstream=f"http://127.0.0.1:{upstream_port}", contact_email="desk@shop.test",
        transcripts_to=("team@shop.test",)),))
    config = dataclasses.replace(
        base,
        chat=ChatOptions(email_visitor=True),
        mail=MailOptions(host="127.0.0.1", port=smtp_port, sender="Support <support@shop.test>"),
        departments=(Department(id="sales", name="Sales", transcripts_to=("team@shop.test", "sales@shop.test")),),
    )
    service = Service(config)
    previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    await service.start()
    try:
        # Anna wants her chats' transcripts, at an address the department also uses.
        await accounts.create_user(service.db, "anna", PASSWORD, display_name="Anna", email="sales@shop.test",
                                   transcripts=True, departments=["sales"])
        console = f"http://127.0.0.1:{service.console_port}"
        agent = AgentClient(f"ws://127.0.0.1:{service.console_port}/ws",
                            await agent_cookie(service.console_port, "anna", PASSWORD), console)
        await agent.connect()
        visitor = VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws")
        await visitor._open()
        visitor.reader = asyncio.ensure_future(visitor._read(visitor.ws))
        await visitor.write({"t": "chat_start", "key": "mail-start-1", "name": "Vera",
                             "email": "vera@example.com", "department": "sales"})
        await visitor.wait_for(lambda: visitor.token is not None, "chat_started")
        await agent.wait_for(lambda: any(o["conversation"] == visitor.conversation for o in agent.offers),
                             "the offer")
        await agent.accept(visitor.conversation)
        await visitor.send("My order has not arrived")
        await agent.send("Let me check")
        await agent.write({"t": "chat_send", "conversation": agent.conversation, "id": "private-note-1",
                           "text": "NOTE-CANARY courier lost it", "private": True})
        await agent.wait_for(lambda: not agent.outbox and "private-note-1" in agent.acked, "acks")
        await visitor.wait_for(lambda: not visitor.outbox, "acks")
        await visitor.write({"t": "chat_end"})

        expected = {"team@shop.test", "sales@shop.test", "vera@example.com"}
        await _until(lambda: {r for rcpt, _ in inbox.mails for r in rcpt} >= expected, "three mails")
        await asyncio.sleep(0.3)  # nothing more arrives
        assert sorted(r for rcpt, _ in inbox.mails for r in rcpt) == sorted(expected), "one mail per address"
        for address in ("team@shop.test", "sales@shop.test"):
            (mail,) = inbox.to(address)
            assert "NOTE-CANARY" in _body(mail), "agents' copies carry private notes"
            assert "My order has not arrived" in _body(mail)
        (visitor_mail,) = inbox.to("vera@example.com")
        assert "Let me check" in _body(visitor_mail)
        assert "NOTE-CANARY" not in visitor_mail.as_string()
        assert visitor_mail["From"] == "Support <support@shop.test>"

        # Ending again (another tab, a retry) mails nobody twice.
        await agent.write({"t": "chat_end", "conversation": agent.conversation})
        await asyncio.sleep(0.5)
        assert len(inbox.mails) == 3
        await agent.close()
        await visitor.close()
    finally:
        accounts.set_password_hasher(previous)
        await service.stop()
        await runner.cleanup()


async def test_offline_message_is_mailed_to_the_site(tmp_path, smtp):
    inbox, smtp_port = smtp
    runner, upstream_port = await start_shop_upstream()
    base = make_config(data_dir=str(tmp_path), sites=(Site(
        host="*", upstream=f"http://127.0.0.1:{upstream_port}", contact_email="desk@shop.test"),))
    config = dataclasses.replace(base, mail=MailOptions(host="127.0.0.1", port=smtp_port,
                                                        sender="support@shop.test"))
    service = Service(config)
    await service.start()
    try:
        visitor = VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws")
        await visitor._open()
        visitor.reader = asyncio.ensure_future(visitor._read(visitor.ws))
        await visitor.write({"t": "leave_message", "key": "offline-key-9", "name": "Vera",
                             "email": "vera@example.com", "text": "Please call me about <b>order</b> 42"})
        await visitor.wait_for(lambda: any(f["t"] == "offline_stored" for f in visitor.frames), "stored")
        await _until(lambda: inbox.mails, "the mail")
        (mail,) = inbox.to("desk@shop.test")
        assert "Please call me about <b>order</b> 42" in _body(mail)
        assert "vera@example.com" in _body(mail)
        stored = await service.chat.service.offline("open")
        assert len(stored) == 1 and stored[0].emailed_at is not None
        await visitor.close()
    finally:
        await service.stop()
        await runner.cleanup()
