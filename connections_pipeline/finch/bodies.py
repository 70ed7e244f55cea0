"""Reading a response body within the decoding limits, before anything decodes it.

Every check here is cheap on the bodies Finch actually sends: the size is counted while
reading, and the exact nesting depth is computed only for a body with more brackets than
the limit (a connection with many entities, the providers list), which is rare.
"""

from collections.abc import Mapping
from typing import NamedTuple

import httpx
import numpy as np

from connections_pipeline.decoding_limits import EXCERPT_CHARS, MAX_BODY_BYTES
from connections_pipeline.redaction import scrub

# Every opening bracket as +1, every closing one as -1 (0xff as int8), the rest deleted.
_AS_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


class Unread(NamedTuple):
    """Why a body was not read: it has no content to check."""

    reason: str


async def read_capped(response: httpx.Response, limit: int = MAX_BODY_BYTES) -> bytes | Unread:
    """The body of a streamed `response` (content-encoding undone), or why it was not read:
    larger than `limit` bytes (the rest is never read), or an encoding that does not decode."""
    too_large = Unread(f"body larger than {limit:,} bytes")
    declared = response.headers.get("content-length", "")
    encoded = "content-encoding" in response.headers
    if not encoded and declared.isdigit() and int(declared) > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
    except httpx.DecodingError:
        encoding = response.headers.get("content-encoding", "")
        return Unread(f"body does not decode as its content-encoding {encoding!r}")
    return b"".join(chunks)


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the JSON `body` (UTF-8) nests arrays and objects more than `limit` levels
    deep; brackets inside strings do not count.

    Byte and array operations only, no Python loop over characters: a body of
    MAX_BODY_BYTES is judged in well under a second whatever its shape.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # Outside strings JSON has no backslash; inside, dropping escaped backslashes and then
    # escaped quotes leaves only the quotes that open and close strings.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    nesting = b"".join(unescaped.split(b'"')[::2]).translate(_AS_STEPS, _NOT_BRACKETS)
    # The depth after each bracket: opening ones step down a level, closing ones up.
    depths = np.cumsum(np.frombuffer(nesting, dtype=np.int8), dtype=np.int64)
    return bool(depths.size) and int(depths.max()) > limit


def excerpt(content: bytes, secrets: Mapping[str, str]) -> str:
    """The start of a refused body for its failure reason: at most EXCERPT_CHARS characters,
    escaped (no NUL or control character reaches a table). Each of `secrets` is replaced by
    what it maps to before the cut, so no part of an echoed token survives."""
    # Enough bytes for a secret that starts within the excerpt to end within the text.
    text = content[: 4 * EXCERPT_CHARS + 4096].decode("utf-8", errors="backslashreplace")
    text = scrub(text, secrets)
    cut = text[:EXCERPT_CHARS]
    return repr(cut) + ("..." if len(text) > EXCERPT_CHARS else "")
