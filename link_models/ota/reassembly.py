"""Reassembly of a numbered multi-frame message; which frames are missing is reported, never guessed.

Analog values of a missing frame follow the one rule of every link (link_models.mapping.nothing_received):
0 with the prior variance (the message's scale squared, from any received header), so they read as unknown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from link_models.mapping import nothing_received
from link_models.ota.receiver import DecodedFrame


@dataclass
class Message:
    msg_id: int | None
    total: int                              # frames the message was split into (0: nothing received)
    received: list[int] = field(default_factory=list)   # seq numbers decoded (CRC ok), sorted
    missing: list[int] = field(default_factory=list)    # seq numbers never decoded
    payload: bytes | None = None            # digital: all frames present and CRC-ok
    values: np.ndarray | None = None        # analog: estimates, 0 where a frame is missing
    value_var: np.ndarray | None = None     # analog: variance, the prior scale^2 where a frame is missing

    @property
    def complete(self) -> bool:
        return self.total > 0 and not self.missing


def reassemble(frames: list[DecodedFrame], msg_id: int | None = None) -> Message:
    """Join the CRC-ok frames of one message (the most frequent msg_id when none is given) by seq."""
    good = [f for f in frames if f.crc_ok and (msg_id is None or f.header.msg_id == msg_id % 256)]
    if msg_id is None and good:
        msg_id = Counter(f.header.msg_id for f in good).most_common(1)[0][0]
        good = [f for f in good if f.header.msg_id == msg_id]
    if not good:
        return Message(msg_id, 0)
    total = Counter(f.header.total for f in good).most_common(1)[0][0]
    by_seq: dict[int, DecodedFrame] = {}
    for f in good:
        if f.header.total == total:
            by_seq.setdefault(f.header.seq, f)
    received = sorted(by_seq)
    message = Message(msg_id, total, received, [s for s in range(total) if s not in by_seq])
    first = by_seq[received[0]].header
    if first.scheme == "digital":
        if message.complete:
            message.payload = b"".join(by_seq[s].payload for s in range(total))
        return message
    per = max(f.header.units for f in by_seq.values())
    sizes = [by_seq[s].header.units if s in by_seq else per for s in range(total)]
    lost = [nothing_received(sizes[s], first.scale, torch.float64) for s in range(total)]
    values = [by_seq[s].values if s in by_seq else lost[s][0].numpy() for s in range(total)]
    var = [by_seq[s].value_var if s in by_seq else lost[s][1].numpy() for s in range(total)]
    message.values, message.value_var = np.concatenate(values), np.concatenate(var)
    return message
