"""The running chat: its service, file store and hub feature, built once from the config.

Both web apps (the visitor side on each site's origin and the console) and the
hub use the same instance. Mail (transcripts when a conversation ends, notices
of offline messages) goes out in the background from here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from chat import archive
from chat.files import FileStore
from chat.mail import MailError, MailSettings, send_mail, transcript_mail
from chat.service import ChatService
from chat.text import rich_text, rich_tree

from .config import Config
from .storage.db import Database
from .sync.chat import ChatHubSettings, HubChat
from .sync.hub import Hub

log = logging.getLogger("cobrowse.chat")

# Pauses before each new attempt when the SMTP server fails for a while (4xx, timeouts).
MAIL_RETRIES = (30.0, 120.0, 600.0, 0.0)


@dataclass(slots=True)
class ChatRuntime:
    config: Config
    db: Database
    service: ChatService
    files: FileStore
    hub_chat: HubChat
    mail: MailSettings | None

    @property
    def options(self):
        return self.config.chat

    # ----- mail ----------------------------------------------------------------

    async def mail_transcripts(self, conversation_id: str) -> None:
        """Each address gets one transcript (agents' copy with notes, or the visitor's)."""
        if self.mail is None:
            return
        conversation = await self.service.get(conversation_id)
        if conversation is None or conversation.accepted_at is None:
            # Nobody answered: no transcript (and no mail a script could make us send).
            return
        site = self.config.site_for_host(conversation.site_host)
        site_addresses = list(getattr(site, "transcripts_to", ()) or ()) if site is not None else []
        recipients = await self.service.transcript_recipients(
            conversation_id, site_transcripts_to=site_addresses, email_visitor=self.options.email_visitor)
        copies: dict[str, object] = {}
        for address, audience in recipients:
            if audience not in copies:
                copies[audience] = await archive.transcript(self.db, self.service, conversation_id,
                                                            audience=audience)
            mail = transcript_mail(copies[audience], audience=audience)
            # Claimed before sending: a second node or a retry never mails this address again.
            if not await self.service.mark_mailed(conversation_id, address, audience):
                continue
            for attempt, pause in enumerate(MAIL_RETRIES):
                try:
                    await send_mail(self.mail, to=address, subject=mail.subject, text=mail.text, html=mail.html,
                                    attachments=mail.attachments)
                    break
                except MailError as exc:
                    last = attempt == len(MAIL_RETRIES) - 1 or not exc.transient
                    log.log(logging.ERROR if last else logging.WARNING,
                            "could not mail the transcript of %s to %s%s: %s", conversation_id, address,
                            "" if last else f" (trying again in {pause:.0f} s)", exc)
                    if last:
                        # Unclaimed, so a later run (or another node) may still send it.
                        await self.service.unmark_mailed(conversation_id, address)
                        break
                    await asyncio.sleep(pause)

    async def mail_offline(self, message) -> None:
        """A visitor left a message while nobody was available: tell the site (or department)."""
        if self.mail is None:
            return
        to = self._offline_address(message.site_host, message.department)
        if not to:
            return
        lines = [f"From: {message.name or 'a visitor'} <{message.email or 'no address given'}>",
                 f"Site: {message.site_host}"]
        if message.department:
            lines.append(f"Department: {message.department}")
        if message.url:
            lines.append(f"Page: {message.url}")
        for name, value in (message.fields or {}).items():
            lines.append(f"{name}: {value}")
        lines += ["", message.text, "", "Answer it from the agent console (Offline messages)."]
        subject = f"Message from {message.name or 'a visitor'} on {message.site_host}"
        try:
            await send_mail(self.mail, to=to, subject=subject, text="\n".join(lines))
        except MailError as exc:
            log.error("could not mail offline message %s to %s: %s", message.id, to, exc)
            return
        await self.service.mark_offline_emailed(message.id)

    def _offline_address(self, site_host: str, department: str) -> str:
        if department:
            for entry in self.config.departments:
                if entry.id == department and entry.email:
                    return entry.email
        site = self.config.site_for_host(site_host)
        return getattr(site, "contact_email", "") if site is not None else ""


def build_chat(config: Config, db: Database, hub: Hub, secret: bytes) -> ChatRuntime | None:
    options = config.chat
    if not options.enabled:
        return None
    # One service per process: it queues SQLite writes in memory (see chat.service).
    service = ChatService.from_config(db, config, secret=secret)
    files = FileStore(Path(config.chat_files_dir), max_size=options.max_file_size, allowed_types=options.file_types)
    mail = None
    if config.mail.host:
        mail = MailSettings(host=config.mail.host, port=config.mail.port, security=config.mail.security,
                            username=config.mail.username, password=config.mail.password,
                            sender=config.mail.sender, timeout=config.mail.timeout)
    welcome = options.welcome_message
    runtime = ChatRuntime(config=config, db=db, service=service, files=files, hub_chat=None, mail=mail)  # type: ignore[arg-type]
    settings = ChatHubSettings(
        welcome_text=rich_text(welcome) if welcome else "",
        welcome_rich=rich_tree(welcome) if welcome else None,
        survey=options.survey,
        typing=options.typing,
        offline_enabled=options.offline_enabled,
        idle_timeout=options.idle_timeout,
        starts_per_address=options.max_starts_per_address,
        on_ended=runtime.mail_transcripts,
        on_offline=runtime.mail_offline,
    )
    runtime.hub_chat = HubChat(hub, service, settings)
    hub.chat = runtime.hub_chat
    return runtime
