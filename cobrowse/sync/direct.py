"""Websocket messages handled where they arrive, when nothing is waiting before them.

aiohttp hands a received message to its handler through a queue: the parser
puts it there, a future wakes the handler's task, and the task takes it out
again on its next turn of the event loop. For a relay that is most of the
work it does per message apart from the two system calls (a future, a
scheduled callback, a task step and four coroutine frames), and a turn of
the loop of latency. ``DirectWebSocketResponse.receive_or_handle`` lets a
handler offer a plain function instead: while the handler's task is waiting
for the next message and none is queued, each text or binary message is
given to that function at once, inside the transport's callback. The
function takes what it can finish without waiting (a relayed event) and
declines the rest (a chat message to store first, a frame over the rate, a
bad frame to answer and count), which then goes through the queue as
before. Messages keep their order: nothing is handled at once while one is
queued or the task is busy with one.

This reaches into aiohttp's internals (its ``_post_start``, its Cython
message queue, whose ``feed_data`` a Python subclass may override). Where
they differ from what this module expects, the response simply works as a
plain ``WebSocketResponse``; tests/test_sync_direct.py checks that the fast
way is taken with the aiohttp we install.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

try:  # aiohttp >= 3.11 (the queue and reader moved there)
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
except ImportError:  # pragma: no cover - an aiohttp without them: no fast way
    WebSocketDataQueue = WebSocketReader = None

log = logging.getLogger("cobrowse.hub")

# A function given a message's data: True once it has handled it, False to have
# it queued for the handler's task. It must not wait for anything.
HandleNow = Callable[[Any], bool]

_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)


if WebSocketDataQueue is not None:

    class DirectQueue(WebSocketDataQueue):  # type: ignore[misc, valid-type]
        """aiohttp's message queue, which first offers each message to ``handle_now``."""

        handle_now: HandleNow | None = None

        def feed_data(self, message, size) -> None:  # noqa: D401 - aiohttp's signature
            handle_now = self.handle_now
            if handle_now is not None and not self._buffer and message.type in _DATA:
                try:
                    if handle_now(message.data):
                        return
                except Exception as exc:  # what would have ended the handler's task ends the socket
                    log.exception("handling a websocket message failed")
                    self.handle_now = None
                    self.set_exception(exc)
                    return
            super().feed_data(message, size)
else:  # pragma: no cover
    DirectQueue = None


# What the lazy heartbeat (below) overrides or uses of aiohttp's WebSocketResponse.
_HEARTBEAT_PARTS = ("_on_data_received", "_send_heartbeat", "_pong_not_received", "_reset_heartbeat",
                    "_need_heartbeat_reset", "_heartbeat_cb")


class DirectWebSocketResponse(web.WebSocketResponse):
    """A ``WebSocketResponse`` whose messages a handler may take at once (``receive_or_handle``),
    with a heartbeat that costs nothing per message.

    aiohttp resets the heartbeat on every chunk received: a callback scheduled
    for the next turn of the loop, which cancels the pong timer and works out
    the next ping's time; for a socket streaming ten frames a second that is
    most of a relayed message's Python. Here a chunk only notes that the peer
    spoke (one attribute). When the ping falls due, a peer that spoke since
    gets no ping and the next is due a heartbeat from then; when a pong is
    overdue, a peer that spoke since the ping is alive. So a peer is pinged
    after 1 to 2 heartbeats of silence and dropped half a heartbeat after a
    ping it ignored, as with aiohttp's own (which pings after exactly one).
    """

    direct = False  # True once the fast way is in place (see _post_start)
    lazy_heartbeat = False

    def _on_data_received(self) -> None:
        if self.lazy_heartbeat:
            self._need_heartbeat_reset = True
        else:
            super()._on_data_received()

    def _send_heartbeat(self) -> None:
        if self.lazy_heartbeat and self._need_heartbeat_reset:
            self._heartbeat_cb = None
            self._need_heartbeat_reset = False
            self._reset_heartbeat()  # no ping: the next is due a heartbeat from now
        else:
            super()._send_heartbeat()

    def _pong_not_received(self) -> None:
        if self.lazy_heartbeat and self._need_heartbeat_reset:
            self._need_heartbeat_reset = False  # it spoke after the ping (its pong, say): alive
            self._reset_heartbeat()
        else:
            super()._pong_not_received()

    def _post_start(self, request, protocol, writer) -> None:
        # aiohttp sets its parser and queue up, then ours take their place before
        # they have seen a byte (bytes that came with the upgrade request, if a
        # client sent any so early, are left to aiohttp's).
        early = getattr(request.protocol, "_message_tail", b"")
        super()._post_start(request, protocol, writer)
        try:
            proto = request.protocol
            reader = self._reader
            if DirectQueue is None or early or proto._payload_parser is not self._parser or reader._buffer:
                return
            queue = DirectQueue(request._protocol, reader._limit // 2, loop=self._loop)
            new_parser = WebSocketReader(queue, self._max_msg_size, compress=bool(self._compress),
                                         decode_text=self._decode_text)
        except (AttributeError, TypeError):  # an aiohttp built otherwise: the plain way
            return
        self.lazy_heartbeat = all(hasattr(web.WebSocketResponse, name) for name in _HEARTBEAT_PARTS)
        callback = proto._data_received_cb
        proto._payload_parser = None
        self._reader, self._parser = queue, new_parser
        proto.set_parser(new_parser, data_received_cb=callback)
        self.direct = True

    async def receive_or_handle(self, handle_now: HandleNow, timeout: float | None = None):
        """The next message that ``handle_now`` declined (or a close, error...), as ``receive`` returns it.

        Until then, each message that arrives while none is queued goes to
        ``handle_now`` first, at once.
        """
        queue = self._reader
        if not self.direct or type(queue) is not DirectQueue:
            return await self.receive(timeout)
        queue.handle_now = handle_now
        try:
            return await self.receive(timeout)
        finally:
            queue.handle_now = None
