"""The prompt as a digital payload: UTF-8 text followed by its CRC32, so a receiver knows it arrived intact.

meg_phy.codecs frames seeds, sketches and images; text has no kind there, so this is the minimal framing a
prompt needs (see docs/notes/flowgraphs.md).
"""

from __future__ import annotations

import struct
import zlib

from meg_common.errors import InputError


def encode_prompt(text: str) -> bytes:
    data = text.encode("utf-8")
    return data + struct.pack("<I", zlib.crc32(data))


def decode_prompt(payload: bytes) -> str:
    """Text of a prompt payload; InputError when it is truncated or its CRC does not match."""
    if len(payload) < 4:
        raise InputError(f"prompt payload truncated: {len(payload)} bytes")
    data, (crc,) = payload[:-4], struct.unpack("<I", payload[-4:])
    if zlib.crc32(data) != crc:
        raise InputError("prompt payload CRC32 mismatch: corrupted on the link")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("prompt payload is not UTF-8") from None
