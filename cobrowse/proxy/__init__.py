"""The reverse proxy: an HTTP/1.1 relay on asyncio protocols around :mod:`cobrowse.injector`.

Site traffic never passes through a coroutine per request: parsing is llhttp
(httptools), upstream connections are pooled, and bytes are written as they
arrive. Requests under the reserved prefix are relayed the same way to our
own aiohttp app on an internal socket.
"""

from .protocol import ClientProtocol, Proxy

__all__ = ["ClientProtocol", "Proxy"]
