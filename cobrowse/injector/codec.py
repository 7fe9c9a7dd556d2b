"""Incremental Content-Encoding decoders and encoders.

A byte-level injector cannot find ``<head>`` inside a compressed body, so a
compressed page is decoded, injected and encoded again, chunk by chunk.
Decoders emit their output in bounded pieces (``PIECE``), so a small
compressed chunk that expands enormously (a decompression bomb, or just a
very repetitive 50 MB page) never sits in memory whole: the I/O shell writes
each piece before the next one is produced.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol

try:  # Brotli is a dependency of the service; the mitmproxy addon may run without it.
    import brotli
except ImportError:  # pragma: no cover - exercised only in foreign environments
    brotli = None

PIECE = 256 * 1024  # largest piece a decoder emits at once
GZIP_LEVEL = 5  # level 5 is within a few percent of 9's size at a fraction of its cost
BROTLI_QUALITY = 4  # quality 11 is far too slow for a live response (hammerhead #2743)


class DecodeError(Exception):
    """The upstream body is not valid for its declared Content-Encoding."""


class Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def finish(self) -> Iterator[bytes]: ...


class Encoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class _ZlibDecoder:
    """gzip (RFC 1952, possibly several members) or deflate (zlib or raw)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self._zobj = zlib.decompressobj(self._wbits)
        self._started = False
        self._head = b""  # deflate: a first byte, held until the zlib header can be judged

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zobj.eof and not self._gzip:
            return  # bytes after a deflate stream mean nothing, and zlib would keep them all
        if not self._gzip and not self._started:
            # Whether "deflate" is zlib-wrapped shows only in its first two
            # bytes; a lone first byte decodes either way and proves nothing.
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
        while data:
            try:
                out = self._zobj.decompress(data, PIECE)
            except zlib.error as exc:
                if not self._gzip and not self._started:
                    # "deflate" should be zlib-wrapped, but some servers send raw deflate.
                    self._wbits = -zlib.MAX_WBITS
                    self._zobj = zlib.decompressobj(self._wbits)
                    self._started = True
                    continue
                raise DecodeError(f"invalid {'gzip' if self._gzip else 'deflate'} data: {exc}") from None
            self._started = True
            if out:
                yield out
            if self._zobj.unconsumed_tail:
                data = self._zobj.unconsumed_tail
            elif self._zobj.eof and self._zobj.unused_data and self._gzip:
                # Concatenated gzip members decode as one stream.
                data = self._zobj.unused_data
                self._zobj = zlib.decompressobj(self._wbits)
            else:
                data = b""

    def finish(self) -> Iterator[bytes]:
        out = self._zobj.flush()
        if out:
            yield out


class _BrotliDecoder:
    def __init__(self) -> None:
        self._dobj = brotli.Decompressor()
        # Brotli >= 1.2 can bound its output; older versions (as pinned by
        # some mitmproxy releases) cannot, and then decode in one go.
        self._bounded = hasattr(self._dobj, "can_accept_more_data")

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            if not self._bounded:
                yield from _pieces(self._dobj.process(data))
                return
            # The limit is a hint (the library grows its buffer in blocks), and
            # output can still be pending once all input is taken in, even
            # when can_accept_more_data() says True: drain until it gives nothing.
            out = self._dobj.process(data, output_buffer_limit=PIECE)
            while out:
                yield from _pieces(out)
                if self._dobj.is_finished():
                    break
                out = self._dobj.process(b"", output_buffer_limit=PIECE)
        except brotli.error as exc:
            raise DecodeError(f"invalid br data: {exc}") from None

    def finish(self) -> Iterator[bytes]:
        return iter(())


def _pieces(data: bytes) -> Iterator[bytes]:
    """``data`` in pieces of at most PIECE bytes (one piece, uncopied, in the common case)."""
    if len(data) <= PIECE:
        if data:
            yield data
        return
    for start in range(0, len(data), PIECE):
        yield data[start:start + PIECE]


class _ChainDecoder:
    """Content-Encoding "gzip, br" was applied gzip first: undo br, then gzip."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self._decoders = decoders

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(1, self._decoders[0].feed(data))

    def finish(self) -> Iterator[bytes]:
        for i, decoder in enumerate(self._decoders):
            yield from self._through(i + 1, decoder.finish())

    def _through(self, index: int, pieces: Iterator[bytes]) -> Iterator[bytes]:
        if index == len(self._decoders):
            yield from pieces
            return
        for piece in pieces:
            yield from self._through(index + 1, self._decoders[index].feed(piece))


class _ZlibEncoder:
    def __init__(self, gzip: bool) -> None:
        wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self._zobj = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, wbits)

    def feed(self, data: bytes) -> bytes:
        # A sync flush per chunk keeps the response streaming: the browser can
        # render what it has instead of waiting for the compressor's window.
        return self._zobj.compress(data) + self._zobj.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._zobj.flush(zlib.Z_FINISH)


class _BrotliEncoder:
    def __init__(self) -> None:
        self._cobj = brotli.Compressor(quality=BROTLI_QUALITY)

    def feed(self, data: bytes) -> bytes:
        return self._cobj.process(data) + self._cobj.flush()

    def finish(self) -> bytes:
        return self._cobj.finish()


def parse_codings(content_encoding: str | None) -> list[str]:
    """``"gzip, br"`` -> ``["gzip", "br"]``, without identity entries."""
    if not content_encoding:
        return []
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    return [c for c in codings if c and c != "identity"]


def _decoder_for(coding: str) -> Decoder | None:
    if coding in ("gzip", "x-gzip"):
        return _ZlibDecoder(gzip=True)
    if coding == "deflate":
        return _ZlibDecoder(gzip=False)
    if coding == "br" and brotli is not None:
        return _BrotliDecoder()
    return None


def can_decode(codings: list[str]) -> bool:
    return all(c in DECODABLE for c in codings)


def make_decoder(codings: list[str]) -> Decoder | None:
    """A decoder undoing ``codings`` (in the order they were applied), or None if unsupported."""
    decoders = [_decoder_for(c) for c in reversed(codings)]
    if not decoders or any(d is None for d in decoders):
        return None
    return decoders[0] if len(decoders) == 1 else _ChainDecoder(decoders)  # type: ignore[arg-type]


def make_encoder(coding: str) -> Encoder | None:
    if coding in ("gzip", "x-gzip"):
        return _ZlibEncoder(gzip=True)
    if coding == "deflate":
        return _ZlibEncoder(gzip=False)
    if coding == "br" and brotli is not None:
        return _BrotliEncoder()
    return None


DECODABLE = frozenset({"gzip", "x-gzip", "deflate"} | ({"br"} if brotli is not None else set()))
