"""A wired link (fibre or Ethernet backhaul between edge servers): error-free, counted in bits and time.

    link = WiredLink(rate_bps=1e9, latency_s=1e-4)
    received, stats = link.send_bytes(payload)          # the same bytes; stats.payload_bits, stats.transfer_s
    est, noise_var, stats = link.send_values(values)    # float32 values, exactly; variance 0

It follows the `link_models.Link` contract like the radio links, so a protocol hop does not care which
it uses, but nothing goes on air: `total_symbols` and `airtime_s` are 0 and the cost is the bits and the
transfer time `bits / rate_bps + latency_s`. Values travel as float32 (32 bits each). There is nothing
random in it, so `reseed` only checks its argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from link_models.link import check_seed, check_values
from link_models.stats import LinkStats
from meg_common.errors import InputError

VALUE_BITS = 32
"""Bits per real value on the wire (float32)."""


@dataclass
class WiredStats(LinkStats):
    """LinkStats of a wired transfer: no symbols, no airtime; `transfer_s` = bits / rate + latency."""

    transfer_s: float = 0.0


class WiredLink:
    """An error-free link of `rate_bps` bits per second and a fixed `latency_s` per transfer."""

    schemes = ("digital", "analog")

    def __init__(self, rate_bps: float = 1e9, latency_s: float = 1e-4):
        if not (isinstance(rate_bps, (int, float)) and math.isfinite(rate_bps) and rate_bps > 0):
            raise InputError(f"wired rate_bps={rate_bps!r}: must be a finite number > 0 (e.g. 1e9 for 1 Gbit/s)")
        if not (isinstance(latency_s, (int, float)) and math.isfinite(latency_s) and latency_s >= 0):
            raise InputError(f"wired latency_s={latency_s!r}: must be a finite number >= 0")
        self.rate_bps, self.latency_s = float(rate_bps), float(latency_s)

    def reseed(self, seed: int) -> None:
        """Nothing random to restart (the contract's call; the seed is still checked)."""
        check_seed(seed)

    def send_bytes(self, payload: bytes) -> tuple[bytes, WiredStats]:
        """The bytes, unchanged, with the transfer's cost."""
        if not isinstance(payload, (bytes, bytearray)) or not payload:
            raise InputError("send_bytes needs a non-empty bytes payload")
        return bytes(payload), self._stats(8 * len(payload))

    def send_values(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, WiredStats]:
        """Real values as float32 on the wire: (the values as float32, zero variance, stats)."""
        values = check_values(values)
        sent = values.detach().to(torch.float32).clone()
        stats = self._stats(VALUE_BITS * sent.numel())
        stats.values = int(sent.numel())
        stats.nmse = 0.0
        return sent, torch.zeros_like(sent), stats

    def __call__(self, batch_size: int, ebno_db: float | None = None, snr_db: float | None = None):
        """Sionna's sim_ber call: `batch_size` random bytes through the wire as bits, (sent, received)."""
        bits = torch.randint(0, 2, (int(batch_size), 8), dtype=torch.float32)
        return bits, bits.clone()

    def _stats(self, bits: int) -> WiredStats:
        return WiredStats(payload_bits=bits, bit_errors=0, ber=0.0, block_errors=0, bler=0.0,
                          transfer_s=bits / self.rate_bps + self.latency_s)
