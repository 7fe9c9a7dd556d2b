"""Python chat clients that follow docs/chat.md the way the widget and the console do.

Each keeps an outbox of messages not yet acknowledged (re-sent after every
reconnect), the messages it holds by seq, and on every (re)connect asks for
everything after the last seq it holds with none missing before it. The tests drop their connections
and kill the server under them, then compare what each side holds.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import OrderedDict

import aiohttp
import websockets
from aiohttp import web

WAIT = 10.0


async def start_shop_upstream() -> tuple[web.AppRunner, int]:
    """A one-page HTML site to put the proxy in front of; returns its runner and port."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>shop</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def client_id() -> str:
    return secrets.token_urlsafe(12)


async def agent_cookie(console_port: int, username: str, password: str) -> str:
    origin = f"http://127.0.0.1:{console_port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{origin}/api/login", json={"username": username, "password": password},
                             headers={"Origin": origin}) as response:
            assert response.status == 200, await response.text()
            morsel = response.cookies["__cobrowse_console"]
            return f"{morsel.key}={morsel.value}"


class ChatClient:
    """One side of a conversation over a websocket that can be dropped at any moment."""

    def __init__(self) -> None:
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.conversation: str | None = None
        self.held: dict[int, dict] = {}  # seq -> message
        self.outbox: OrderedDict[str, str] = OrderedDict()  # id -> text, not yet acked
        self.acked: dict[str, int] = {}  # id -> seq
        self.sent_order: list[str] = []  # ids in the order this side wrote them
        self.errors: list[dict] = []
        self.frames: list[dict] = []
        self.changed = asyncio.Event()
        self.connects = 0
        self.resending: asyncio.Task | None = None

    @property
    def last_seq(self) -> int:
        """The last seq held with none missing before it (seqs are 1, 2, 3...), as the widget resumes."""
        n = 0
        while n + 1 in self.held:
            n += 1
        return n

    async def _open(self) -> None:
        raise NotImplementedError

    async def _resume(self) -> None:
        raise NotImplementedError

    async def connect(self) -> None:
        await self._open()
        self.connects += 1
        self.reader = asyncio.ensure_future(self._read(self.ws))
        await self._resume()
        for message_id, text in list(self.outbox.items()):
            await self._write_send(message_id, text)

    async def _read(self, ws) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                self._handle(frame)
                self.changed.set()
        except (websockets.ConnectionClosed, ConnectionError):
            pass

    def _handle(self, frame: dict) -> None:
        kind = frame["t"]
        if kind == "chat_ack":
            self.outbox.pop(frame["id"], None)
            previous = self.acked.setdefault(frame["id"], frame["seq"])
            assert previous == frame["seq"], f"{frame['id']} acked as {previous} and {frame['seq']}"
        elif kind == "chat_msg":
            self._hold(frame["m"])
        elif kind == "chat_history":
            for message in frame["messages"]:
                self._hold(message)
            if frame.get("more") and frame["messages"]:
                # The next page, after this one's last message (as the widget and console do).
                asyncio.ensure_future(self._next_page(frame["messages"][-1]["seq"]))
        elif kind == "error":
            self.errors.append(frame)
            if frame["code"] == "rate_limited" and self.resending is None:
                # Too fast for the hub: what was dropped is still in the outbox; send it again shortly.
                self.resending = asyncio.ensure_future(self._resend_later())

    def _hold(self, message: dict) -> None:
        seq = message["seq"]
        known = self.held.get(seq)
        assert known is None or known["id"] == message["id"], f"seq {seq} is {known} and {message}"
        self.held[seq] = message

    async def _next_page(self, after: int) -> None:
        frame = {"t": "chat_sync", "after": after}
        if self.conversation is not None and isinstance(self, AgentClient):
            frame["conversation"] = self.conversation
        try:
            await self.write(frame)
        except (websockets.ConnectionClosed, ConnectionError):
            pass  # the reconnect resyncs

    async def _resend_later(self) -> None:
        await asyncio.sleep(1.1)
        self.resending = None
        try:
            for message_id, text in list(self.outbox.items()):
                await self._write_send(message_id, text)
        except (websockets.ConnectionClosed, ConnectionError):
            pass  # the reconnect re-sends them

    async def send(self, text: str) -> str:
        message_id = client_id()
        self.outbox[message_id] = text
        self.sent_order.append(message_id)
        try:
            await self._write_send(message_id, text)
        except (websockets.ConnectionClosed, ConnectionError, AttributeError):
            pass  # stays in the outbox: re-sent on reconnect
        return message_id

    async def _write_send(self, message_id: str, text: str) -> None:
        raise NotImplementedError

    async def write(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    def drop(self) -> None:
        """The network goes away: no closing handshake, frames in flight are lost."""
        if self.ws is not None:
            self.ws.transport.abort()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.wait([self.reader], timeout=WAIT)

    async def wait_for(self, predicate, what: str, timeout: float = WAIT):
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{type(self).__name__} timed out waiting for {what}; {len(self.outbox)} "
                                     f"unacked, {self.connects} connects, errors {self.errors[-3:]}, "
                                     f"last frames {self.frames[-3:]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass


class VisitorClient(ChatClient):
    def __init__(self, url: str, name: str = "Vera") -> None:
        super().__init__()
        self.url = url
        self.visitor = secrets.token_hex(16)
        self.tab = secrets.token_hex(8)
        self.name = name
        self.token: str | None = None
        self.start_key = client_id()

    async def _open(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=None)
        await self.write({"t": "hello", "v": 1, "visitor": self.visitor, "tab": self.tab,
                          "url": "http://shop.test/", "title": "Shop"})

    async def _resume(self) -> None:
        if self.token is None:
            await self.write({"t": "chat_start", "key": self.start_key, "name": self.name})
            await self.wait_for(lambda: self.token is not None, "chat_started")
        else:
            await self.write({"t": "chat_resume", "token": self.token, "after": self.last_seq})

    def _handle(self, frame: dict) -> None:
        if frame["t"] == "chat_started":
            self.conversation = frame["conversation"]
            self.token = frame["token"]
        super()._handle(frame)

    async def _write_send(self, message_id: str, text: str) -> None:
        await self.write({"t": "chat_send", "id": message_id, "text": text})


class AgentClient(ChatClient):
    def __init__(self, url: str, cookie: str, origin: str) -> None:
        super().__init__()
        self.url = url
        self.cookie = cookie
        self.origin = origin
        self.offers: list[dict] = []

    async def _open(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=None, origin=self.origin,
                                           additional_headers={"Cookie": self.cookie})
        await self.write({"t": "agent_hello", "v": 1})

    async def _resume(self) -> None:
        await self.write({"t": "chat_watch", "available": True})
        if self.conversation is not None:
            await self.write({"t": "chat_open", "conversation": self.conversation, "after": self.last_seq})

    def _handle(self, frame: dict) -> None:
        if frame["t"] == "chat_offers":
            self.offers = frame["offers"]
        super()._handle(frame)

    async def accept(self, conversation: str) -> None:
        self.conversation = conversation
        await self.write({"t": "chat_accept", "conversation": conversation})
        await self.wait_for(lambda: any(m["sender"] == "system" for m in self.held.values()), "the welcome")

    async def _write_send(self, message_id: str, text: str) -> None:
        await self.write({"t": "chat_send", "conversation": self.conversation, "id": message_id, "text": text})
