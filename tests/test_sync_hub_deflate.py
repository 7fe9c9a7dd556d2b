"""permessage-deflate on visitor sockets, seen on the wire.

Visitors' frames to the hub are compressed (their browsers offer the
extension and the hub accepts it); the hub's frames to visitors go out
uncompressed (RSV1 clear), so no compressor state is kept per visitor.
A raw TCP client shows both, bit by bit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import zlib

from aiohttp import web

from cobrowse.sync.broker import InMemoryBroker
from cobrowse.sync.hub import Hub

RSV1 = 0x40


def _masked_frame(payload: bytes, *, compressed: bool) -> bytes:
    first = 0x80 | 0x1 | (RSV1 if compressed else 0)  # FIN, text
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    else:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _deflate(payload: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first, await reader.readexactly(length)


async def test_visitor_frames_compressed_in_plain_out():
    hub = Hub(InMemoryBroker(), b"s" * 32)
    app = web.Application()
    app.router.add_get("/ws", hub.visitor_socket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        assert head.startswith("http/1.1 101")
        assert "permessage-deflate" in head, "the hub accepts the browser's deflate offer"

        hello = json.dumps({"t": "hello", "v": 1, "visitor": "V1", "tab": "T1", "url": "https://shop.test/"})
        writer.write(_masked_frame(_deflate(hello.encode()), compressed=True))
        await writer.drain()
        first, payload = await asyncio.wait_for(_read_frame(reader), 5)
        assert first & RSV1 == 0, "frames to visitors are sent uncompressed"
        assert json.loads(payload) == {"t": "welcome", "v": 1}

        # An uncompressed frame from the visitor is fine too (RFC 7692 allows either per message).
        writer.write(_masked_frame(json.dumps({"t": "ping", "n": 7}).encode(), compressed=False))
        await writer.drain()
        first, payload = await asyncio.wait_for(_read_frame(reader), 5)
        assert first & RSV1 == 0
        assert json.loads(payload) == {"t": "pong", "n": 7}
    finally:
        writer.close()
        await hub.stop()
        await runner.cleanup()
