#!/usr/bin/env python3
"""What cobrowse's own steps cost on the way to a big page's first byte, with
warm caches and with caches a 50 MiB transfer has just flushed, side by side.

The proxy's real code runs in this process (``ClientProtocol``, ``Exchange``,
the injector, the upstream pool), on fake transports that only count bytes:

* *request*: a new visitor connection, a navigation request for the page,
  up to the request written to a pooled upstream connection;
* *head*: the upstream's head with the first 256,000 bytes of the page, up to
  our head and the first piece of the page written to the visitor.

Every other round first copies 64 MiB of memory, as relaying a 50 MiB page
does, so the proxy's code and data come back from RAM ("cold"). The
difference is what cold caches add to the hops that ``http_proxy.py --trace``
calls *request_work* and *response_work* (docs/benchmarks.md).

    .venv/bin/python bench/proxy_cold.py                # 400 rounds, ~5 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from http_proxy import NAV_HEADERS, make_page  # noqa: E402

from cobrowse.assets import inline_tag  # noqa: E402
from cobrowse.config import load_config  # noqa: E402
from cobrowse.injector import Injector, InjectorSettings  # noqa: E402
from cobrowse.proxy import Proxy  # noqa: E402
from cobrowse.proxy.upstream import UpstreamProtocol  # noqa: E402

FIRST_READ = 256_000  # what one read of the upstream socket returns at most
FLUSH_BYTES = 64 * 1024 * 1024


class CountingTransport:
    """Stands in for a socket transport: takes writes and counts them."""

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    def write(self, data) -> None:
        self.written += len(data)

    def writelines(self, pieces) -> None:
        for piece in pieces:
            self.written += len(piece)

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=400, help="rounds, half of them cold (default 400)")
    args = p.parse_args(argv)
    if args.rounds < 40:
        p.error("--rounds must be at least 40")
    return args


async def measure(rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    config = load_config(None, env={}, overrides={"upstream": "http://127.0.0.1:9"})
    injector = Injector(InjectorSettings(prefix=config.server.prefix, recompress=config.proxy.recompress,
                                         inline_tag=inline_tag()))
    proxy = Proxy(config, injector, "/nonexistent.sock")
    target = proxy.target_for(b"/big.html", "127.0.0.1:8080")
    upstream = UpstreamProtocol(proxy.pool, target)
    upstream_transport = CountingTransport()
    upstream.connection_made(upstream_transport)
    page = make_page(FIRST_READ)
    head = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\n"
            b"Content-Type: text/html\r\nContent-Length: 52428800\r\n"
            b"Last-Modified: Tue, 24 Nov 2026 09:00:00 GMT\r\nConnection: keep-alive\r\n"
            b'ETag: "6740-3200000"\r\nAccept-Ranges: bytes\r\n\r\n')
    first_read = (head + page)[:FIRST_READ]
    request = (b"GET /big.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
               + "".join(h + "\r\n" for h in NAV_HEADERS).encode() + b"Connection: close\r\n\r\n")
    flush = bytearray(FLUSH_BYTES)
    results: dict[str, tuple[list[float], list[float]]] = {"warm": ([], []), "cold": ([], [])}
    clock = time.perf_counter
    try:
        for i in range(rounds):
            cold = i % 2 == 1
            if cold:
                flush = bytearray(flush)  # reads and writes 64 MiB
            proxy.pool._idle[target.key] = collections.deque([upstream])
            upstream_transport.written = 0
            t0 = clock()
            client = proxy()
            client_transport = CountingTransport()
            client.connection_made(client_transport)
            client.data_received(request)
            t1 = clock()
            upstream.data_received(first_read)
            t2 = clock()
            assert upstream_transport.written and client_transport.written > len(page) // 2
            upstream.exchange = None  # the transfer would go on; this one stops here
            client.connection_lost(None)
            if i >= 20:  # the first rounds warm up imports and caches
                results["cold" if cold else "warm"][0].append(t1 - t0)
                results["cold" if cold else "warm"][1].append(t2 - t1)
    finally:
        proxy.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(measure(args.rounds))
    print(f"{'caches':8} {'request':>10} {'head':>10}   (median µs of {len(results['warm'][0])} rounds each)")
    for name, (request, head) in results.items():
        print(f"{name:8} {statistics.median(request) * 1e6:10.1f} {statistics.median(head) * 1e6:10.1f}")
    warm, cold = results["warm"], results["cold"]
    print(f"{'cold ÷ warm':8} {statistics.median(cold[0]) / statistics.median(warm[0]):9.1f}× "
          f"{statistics.median(cold[1]) / statistics.median(warm[1]):9.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
