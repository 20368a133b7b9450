"""The frame header: what the receiver must know before it can decode the payload, with a CRC-16.

Fixed 164 bits, big-endian fields: version (4), scheme (1), modulation (3), code (1), reserved (3),
k (16), n (16), units (16: LDPC codewords, or analog values, in this frame), length (16: payload bytes in
this frame, digital), seq (16), total (16: frames of the message), msg_id (8), scale (float32, analog
value scale), CRC-16/CCITT (16) over the rest. It is sent with QPSK and a 5G LDPC code of rate ~1/3
(see link_models.ota.frame), several dB more robust than any payload setting.
Parsing never raises on garbage: `FrameHeader.from_bits` returns None when the CRC or a field is wrong.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np

from link_models.config import MODULATIONS

HEADER_VERSION = 1
MODULATION_NAMES = tuple(MODULATIONS)          # index on air -> name
CODE_NAMES = ("ldpc", "none")
SCHEME_NAMES = ("digital", "analog")
_FIELDS = (("version", 4), ("scheme", 1), ("modulation", 3), ("code", 1), ("reserved", 3), ("k", 16),
           ("n", 16), ("units", 16), ("length", 16), ("seq", 16), ("total", 16), ("msg_id", 8),
           ("scale", 32))
HEADER_BITS = sum(width for _, width in _FIELDS) + 16


@dataclass(frozen=True)
class FrameHeader:
    scheme: str
    modulation: str
    code: str
    k: int
    n: int
    units: int
    length: int
    seq: int
    total: int
    msg_id: int
    scale: float = 1.0

    def to_bits(self) -> np.ndarray:
        """[HEADER_BITS] float32 0/1 bits, CRC appended."""
        fields = {"version": HEADER_VERSION, "scheme": SCHEME_NAMES.index(self.scheme),
                  "modulation": MODULATION_NAMES.index(self.modulation), "code": CODE_NAMES.index(self.code),
                  "reserved": 0, "k": self.k, "n": self.n, "units": self.units, "length": self.length,
                  "seq": self.seq, "total": self.total, "msg_id": self.msg_id,
                  "scale": struct.unpack(">I", struct.pack(">f", float(self.scale)))[0]}
        value = 0
        for name, width in _FIELDS:
            field = int(fields[name])
            if not 0 <= field < (1 << width):
                raise ValueError(f"header field {name}={field} does not fit in {width} bits")
            value = (value << width) | field
        body_bits = HEADER_BITS - 16
        body = value.to_bytes((body_bits + 7) // 8, "big")
        value = (value << 16) | binascii.crc_hqx(body, 0xFFFF)
        bits = [(value >> (HEADER_BITS - 1 - i)) & 1 for i in range(HEADER_BITS)]
        return np.asarray(bits, np.float32)

    @classmethod
    def from_bits(cls, bits) -> FrameHeader | None:
        """Parse hard bits; None if the length, the CRC, the version or any field is invalid."""
        bits = np.asarray(bits).reshape(-1)
        if bits.size != HEADER_BITS or not np.all(np.isfinite(bits.astype(np.float64))):
            return None
        value = 0
        for b in (bits > 0.5):
            value = (value << 1) | int(b)
        crc = value & 0xFFFF
        body_value = value >> 16
        body = body_value.to_bytes((HEADER_BITS - 16 + 7) // 8, "big")
        if binascii.crc_hqx(body, 0xFFFF) != crc:
            return None
        fields = {}
        shift = HEADER_BITS - 16
        for name, width in _FIELDS:
            shift -= width
            fields[name] = (body_value >> shift) & ((1 << width) - 1)
        if (fields["version"] != HEADER_VERSION or fields["scheme"] >= len(SCHEME_NAMES)
                or fields["modulation"] >= len(MODULATION_NAMES) or fields["code"] >= len(CODE_NAMES)):
            return None
        scale = struct.unpack(">f", struct.pack(">I", fields["scale"]))[0]
        header = cls(scheme=SCHEME_NAMES[fields["scheme"]], modulation=MODULATION_NAMES[fields["modulation"]],
                     code=CODE_NAMES[fields["code"]], k=fields["k"], n=fields["n"], units=fields["units"],
                     length=fields["length"], seq=fields["seq"], total=fields["total"],
                     msg_id=fields["msg_id"], scale=scale)
        return header if header.is_consistent() else None

    def is_consistent(self) -> bool:
        """Fields that passed the CRC but describe no frame we could have sent (defence in depth)."""
        m = MODULATIONS[self.modulation]
        if not (np.isfinite(self.scale) and self.scale > 0 and self.units >= 1 and self.total >= 1
                and self.seq < self.total and self.k >= 1 and self.n >= self.k and self.n % m == 0):
            return False
        if self.scheme == "digital":
            return 0 < self.length and 8 * (self.length + 4) <= self.units * self.k
        return True
