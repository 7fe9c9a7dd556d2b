"""Access-log lines for the connections the proxy hands to our app.

The hub's websockets skip the internal socket: the proxy gives the visitor's
connection itself to our aiohttp app (see ``ClientProtocol._hand_off``), so
no exchange of the proxy ever sees them end. aiohttp tells its access logger
when a handler is done, which for a websocket is when it closes; this logger
writes those into the proxy's access log, in the same format, with the time
the socket was open. Requests that came through the internal socket are the
proxy's own exchanges and are logged there already.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios
from collections.abc import Callable

from aiohttp import web_log
from aiohttp.abc import AbstractAccessLogger

from .access_log import AccessLog, RequestRecord
from .headers import forwarded_client

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked is a __u64 at this offset
# (the struct only ever grows at its end).
_TCPI_BYTES_ACKED = 120


def bytes_written(sock) -> int | None:
    """Bytes written to a TCP socket so far: what the peer acknowledged plus
    what still waits in the send queue. None where the kernel cannot say."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_BYTES_ACKED + 8)
        acked = struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)[0]
        queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError, ValueError, struct.error):
        return None
    return acked + queued


def handoff_access_logger(access_log: Callable[[], AccessLog | None], trust_forwarded: bool,
                          debug: bool) -> type[AbstractAccessLogger]:
    """An access-logger class for the app's runner. ``access_log`` gives the
    proxy's log (None when there is none); with ``debug``, aiohttp's own
    logging of every request to the app goes on as well."""

    class HandoffAccessLogger(AbstractAccessLogger):
        def __init__(self, logger: logging.Logger, log_format: str) -> None:
            super().__init__(logger, log_format)
            self._debug = web_log.AccessLogger(logger, log_format) if debug else None

        def log(self, request, response, time: float) -> None:
            if self._debug is not None:
                self._debug.log(request, response, time)
            log = access_log()
            transport = request.transport
            if log is None or transport is None:
                return
            if not isinstance(transport.get_extra_info("peername"), tuple):
                return  # the internal socket: the proxy's exchange logged it
            headers = request.headers
            # Our proxy added the last X-Forwarded-For entry before handing over.
            address = forwarded_client(headers.get("X-Forwarded-For"), request.remote or "", trust_forwarded)
            record = RequestRecord(address.encode("latin-1", "replace"), request.method.encode("latin-1"),
                                   request.raw_path.encode("latin-1", "replace"),
                                   f"{request.version.major}.{request.version.minor}",
                                   _header(headers, "Referer"), _header(headers, "User-Agent"))
            record.arrived -= time  # it arrived when the handler started, ``time`` seconds ago
            sent = None
            if response.status == 101:
                # A websocket writes past aiohttp's response accounting. A browser
                # opens a fresh connection for each, so the socket's count is its own.
                sent = bytes_written(transport.get_extra_info("socket"))
            log.record(record, response.status, sent if sent is not None else response.body_length)

    return HandoffAccessLogger


def _header(headers, name: str) -> bytes | None:
    value = headers.get(name)
    return value.encode("latin-1", "replace") if value is not None else None
