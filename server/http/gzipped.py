"""Gzip for answers given again: compressed once, however often they are sent.

Every browser asks for gzip, and the answers kibitz gives again are its largest: a thread
read, the first page of a big thread's post page (146 kB of HTML for 85 comments, 9 kB
gzipped). Sending a tenth of the bytes costs the kernel a tenth of the copying on both ends
of the connection, and the reader a tenth of the wait on a slow line. Compressing on every
request would cost far more than the answer itself (about 1 ms for such a page); an answer given
again is compressed the first time a reader asks for gzip and kept so (``replay.py``).

The post page has a hole: its one-use form token, fresh in every answer. :class:`Around`
keeps the compressed page open at that hole. The part before it ends on a byte boundary with
no final block (``Z_SYNC_FLUSH``); the token goes in as a *stored* deflate block, which needs
no compressing; the part after it is a deflate stream of its own that never refers back
across the hole. Only the CRC-32 of the token and what follows it (a few hundred bytes) is
computed per answer. RFC 1951 section 3.2.4 (stored blocks), RFC 1952 (the gzip member).
"""

from __future__ import annotations

import functools
import gzip
import struct
import zlib
from dataclasses import dataclass

LEVEL = 6  # zlib's default: 2 ms for a 500 kB thread read, once per state of it
MIN_SIZE = 1024  # smaller answers fit a packet or two anyway
COMPRESSIBLE = (b"text/", b"application/json", b"application/atom+xml", b"application/xml")

# A gzip member's header: deflate, no flags, no time (the same bytes for the same body),
# no extra flags, operating system unknown (RFC 1952 section 2.3).
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
MAX_STORED = 0xFFFF  # the most one stored block holds


def compressible(content_type: bytes, size: int) -> bool:
    """Whether an answer of this type and size is worth compressing."""
    return size >= MIN_SIZE and content_type.lower().startswith(COMPRESSIBLE)


def takes_gzip(value: bytes) -> bool:
    """Whether an Accept-Encoding value takes gzip (RFC 9110 section 12.5.3: q-values,
    ``x-gzip``, ``*``; a coding named outright wins over ``*``)."""
    # Browsers send a handful of short values; a long one is read but not remembered.
    return _takes_gzip_remembered(value) if len(value) <= 128 else _takes_gzip(value)


def _takes_gzip(value: bytes) -> bool:
    weights: dict[str, float] = {}
    for item in value.decode("latin-1").lower().split(","):
        coding, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "q":
                try:
                    weight = float(number)
                except ValueError:
                    weight = 0.0
        weights[coding.strip()] = weight
    for coding in ("gzip", "x-gzip"):
        if coding in weights:
            return weights[coding] > 0
    return weights.get("*", 0.0) > 0


_takes_gzip_remembered = functools.lru_cache(maxsize=256)(_takes_gzip)


def compress(body: bytes) -> bytes:
    """``body`` as one gzip member (the same bytes each time for the same body)."""
    return gzip.compress(body, compresslevel=LEVEL, mtime=0)


def _raw() -> zlib._Compress:
    return zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)


@dataclass(frozen=True, slots=True)
class Around:
    """``before + value + after`` gzipped, for any ``value`` of ``hole`` bytes, cheaply."""

    head: bytes  # the gzip header and ``before`` deflated, ending on a byte boundary
    tail: bytes  # ``after`` deflated, ending with the final block
    before_crc: int
    after: bytes  # kept for the CRC, which covers the value and what follows it
    total: int  # the uncompressed length, the hole's value included
    hole: int

    @classmethod
    def of(cls, before: bytes, after: bytes, hole: int) -> Around:
        if hole > MAX_STORED:
            raise ValueError(f"a hole of {hole} bytes does not fit one stored block")
        first = _raw()
        head = HEADER + first.compress(before) + first.flush(zlib.Z_SYNC_FLUSH)
        last = _raw()
        tail = last.compress(after) + last.flush(zlib.Z_FINISH)
        total = len(before) + hole + len(after)
        return cls(head, tail, zlib.crc32(before), after, total, hole)

    @property
    def size(self) -> int:
        """The length of every member :meth:`around` makes."""
        return len(self.head) + 5 + self.hole + len(self.tail) + 8

    def around(self, value: bytes) -> tuple[bytes, bytes, bytes]:
        """The member in three pieces, ``value`` in the hole (as a stored block)."""
        if len(value) != self.hole:
            raise ValueError(f"the hole holds {self.hole} bytes, not {len(value)}")
        # BFINAL 0, BTYPE 00, padded to the byte; LEN and its ones' complement; the bytes.
        stored = b"\x00" + struct.pack("<HH", self.hole, self.hole ^ 0xFFFF) + value
        crc = zlib.crc32(self.after, zlib.crc32(value, self.before_crc))
        trailer = struct.pack("<II", crc, self.total & 0xFFFFFFFF)
        return self.head, stored, self.tail + trailer
