"""The gzip members kept answers are given in (server/http/gzipped.py, server/http/replay.py).

Checked by the decoders readers' software uses: Python's gzip module and zlib with a gzip
wrapper, which check the CRC-32 and the length in the trailer; the browser test
(tests/browser/test_post_page.py) checks Chromium's.
"""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.http import gzipped, replay


def _inflate(member: bytes) -> bytes:
    """One gzip member, whole and nothing after it, as a browser's zlib reads it."""
    reader = zlib.decompressobj(zlib.MAX_WBITS | 16)
    out = reader.decompress(member)
    assert reader.eof and not reader.unused_data
    return out


@settings(max_examples=300, deadline=None)
@given(
    before=st.binary(max_size=3000),
    after=st.binary(max_size=3000),
    values=st.lists(st.binary(min_size=0, max_size=200), min_size=1, max_size=3),
    text=st.booleans(),
)
def test_a_member_around_a_hole_is_the_whole_answer_for_every_value(
    before: bytes, after: bytes, values: list[bytes], text: bool
) -> None:
    """Whatever the parts and whatever goes in the hole, the member inflates to the whole."""
    if text:  # page-like text compresses, so blocks of every kind occur
        before, after = before.hex().encode() * 3, after.hex().encode() * 2
    hole = len(values[0])
    around = gzipped.Around.of(before, after, hole)
    for value in (v.ljust(hole, b"x")[:hole] for v in values):
        member = b"".join(around.around(value))
        assert len(member) == around.size
        assert gzip.decompress(member) == before + value + after
        assert _inflate(member) == before + value + after


def test_a_wrong_sized_value_is_refused() -> None:
    around = gzipped.Around.of(b"<p>before</p>", b"<p>after</p>", 8)
    with pytest.raises(ValueError, match="holds 8 bytes"):
        around.around(b"123")
    with pytest.raises(ValueError, match="stored block"):
        gzipped.Around.of(b"", b"", 70_000)


def test_a_page_is_a_tenth_of_its_size_gzipped() -> None:
    """The markup of a post page repeats itself; a kept page costs a tenth of the bytes."""
    card = b'<li class="comment" id="comment-%d"><article class="comment__card">'
    page = b"".join(
        card % i + b"<p>Comment %d, its own words.</p></article></li>" % i for i in range(500)
    )
    cut = len(page) // 2
    around = gzipped.Around.of(page[:cut], page[cut:], 40)
    assert around.size < len(page) / 10
    assert len(gzipped.compress(page)) < len(page) / 10


@pytest.mark.parametrize(
    ("header", "takes"),
    [
        (b"gzip, deflate, br, zstd", True),  # Chromium
        (b"gzip, deflate, br", True),  # Firefox, Safari
        (b"GZIP", True),
        (b"x-gzip", True),
        (b"deflate, gzip;q=0.5", True),
        (b"*", True),
        (b"br;q=1.0, *;q=0.1", True),
        (b"identity", False),
        (b"", False),
        (b"gzip;q=0", False),
        (b"gzip;q=0.000, *", False),  # named codings win over *
        (b"*;q=0", False),
        (b"br, zstd", False),
        (b"gzip;q=nonsense", False),
        (b"gzip ; q=0.8 ; foo=bar", True),
    ],
)
def test_accept_encoding_is_read_as_rfc_9110_says(header: bytes, takes: bool) -> None:
    scope = {"headers": [(b"accept", b"*/*"), (b"accept-encoding", header)]}
    assert replay.accepts_gzip(scope) is takes


def test_without_accept_encoding_nothing_is_gzipped() -> None:
    assert replay.accepts_gzip({"headers": [(b"accept", b"*/*")]}) is False


async def test_an_answer_near_the_size_limit_stays_kept_once_gzipped() -> None:
    """The largest answer kept is still kept with its gzipped form beside it (which adds to
    the bytes held), not dropped and made again on every other request."""
    replays = replay.Replays(capacity=8, max_bytes=64 * 4096)
    body = b"[" + b'"a comment", ' * 314 + b"0]"
    assert len(body) <= replays.largest < len(body) + len(gzipped.compress(body))

    async def version() -> int:
        return 1

    recorder = replay.Recorder(_discard, {replay.SCOPE_KEY: replay.Replayable(1, version)})
    length = str(len(body)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    await recorder({"type": "http.response.start", "status": 200, "headers": headers})
    await recorder({"type": "http.response.body", "body": body})
    kept = recorder.kept()
    assert kept is not None and kept.compressible
    replays.put("key", kept)
    replays.gzip("key", kept)
    assert replays.get("key") is kept and kept.gzipped is not None
    messages = kept.messages(gzip=True)
    assert messages is not None
    assert gzip.decompress(messages[1]["body"]) == body


async def _discard(message: object) -> None:
    return None


@settings(max_examples=500, deadline=None)
@given(header=st.binary(max_size=400))
def test_any_accept_encoding_gets_an_answer(header: bytes) -> None:
    """Whatever a client sends as Accept-Encoding, the question is answered, never raised."""
    takes = replay.accepts_gzip({"headers": [(b"accept-encoding", header)]})
    assert isinstance(takes, bool)
    if b"gzip" not in header.lower() and b"*" not in header:
        assert takes is False
