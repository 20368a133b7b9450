"""The byte container every digital payload uses: a small header, kind-specific metadata, a body, a CRC32.

Layout (little-endian):  magic "MG" | kind u8 | version u8 | meta_len u16 | body_len u32 | meta | body | crc32 u32
(the CRC covers everything before it). 14 bytes of framing; a receiver learns from the CRC whether a digital
link delivered the payload intact, and every malformed input is a `PayloadError` naming what is wrong.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

from meg_common.errors import InputError

MAGIC = b"MG"
VERSION = 1
_HEAD = struct.Struct("<2sBBHI")
FRAMING_BYTES = _HEAD.size + 4


class PayloadError(InputError):
    """A received or loaded payload is malformed, truncated or corrupted (CRC mismatch)."""


class Kind(IntEnum):
    SEED = 1
    IMAGE = 2
    SKETCH = 3


def pack(kind: Kind, meta: bytes, body: bytes) -> bytes:
    if len(meta) > 0xFFFF or len(body) > 0xFFFFFFFF:
        raise InputError(f"payload too large (meta {len(meta)} B, body {len(body)} B)")
    head = _HEAD.pack(MAGIC, int(kind), VERSION, len(meta), len(body))
    data = head + meta + body
    return data + struct.pack("<I", zlib.crc32(data))


def unpack(payload: bytes, expected: Kind | tuple[Kind, ...]) -> tuple[Kind, bytes, bytes]:
    """(kind, meta, body) of a payload, after checking framing, lengths, kind and CRC32."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PayloadError(f"payload must be bytes, not {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) < FRAMING_BYTES:
        raise PayloadError(f"payload truncated: {len(payload)} bytes, a payload has at least {FRAMING_BYTES}")
    magic, kind, version, meta_len, body_len = _HEAD.unpack_from(payload)
    if magic != MAGIC:
        raise PayloadError(f"payload does not start with magic {MAGIC!r} (got {magic!r}); not a meg-phy payload")
    expected = expected if isinstance(expected, tuple) else (expected,)
    if kind not in {int(k) for k in expected}:
        names = "/".join(k.name.lower() for k in expected)
        raise PayloadError(f"payload kind {kind} is not {names}")
    if version != VERSION:
        raise PayloadError(f"payload version {version} is not supported (this build reads version {VERSION})")
    size = FRAMING_BYTES + meta_len + body_len
    if len(payload) != size:
        state = "truncated" if len(payload) < size else "has trailing bytes"
        raise PayloadError(f"payload {state}: {len(payload)} bytes, header says {size}")
    (crc,) = struct.unpack_from("<I", payload, size - 4)
    if zlib.crc32(payload[:-4]) != crc:
        raise PayloadError("payload CRC32 mismatch: corrupted on the link")
    meta = payload[_HEAD.size:_HEAD.size + meta_len]
    return Kind(kind), meta, payload[_HEAD.size + meta_len:size - 4]
