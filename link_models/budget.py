"""Sending under a budget of N channel uses (complex data symbols): what a payload costs, what fits, and the sends.

A budget counts the resource elements that carry the payload (coded bits, or analog values two per use);
pilots, cyclic prefix and the empty tail of the last frame are overhead of every scheme alike, reported
(`LinkStats.total_symbols`) but not charged.

- `send_values(link, values, uses)`: analog, exactly `uses` channel uses. When 2 uses > V values, the values
  are repeated cyclically to 2 uses values (some once more than others) and the copies combined with
  maximum-ratio weights 1 / the variance the link reports per value; a value sent c times on AWGN has
  c times less error variance. Fewer than V / 2 uses: the values do not fit (ValueError).
- `send_bytes(link, payload, uses)`: digital over a HARQ `DigitalLink`, never more than `uses`: the link's own
  HARQ (chase combining, `DigitalLink.send_bytes_many` with a budget) sends the first transmission of every
  codeword and a round of retransmissions only while every pending codeword fits in what is left.
- `DigitalPlan` / `digital_plan(link, bler)`: the fit rule of a link-adapted digital link. A payload of B
  bits needs C = ceil(B / k') codewords (k' payload bits per codeword after the CRC24B), n/m uses each; it
  fits in N if its first transmission does (C n/m <= N) and it is delivered within N with probability at
  least 1 - bler_target: every codeword passes within max_transmissions tries and the retransmissions take
  at most floor((N - C n/m) / (n/m)) spare codeword slots, each try failing independently with p = the
  larger of the BLER target and the link's measured first-try BLER (`first_try_bler`).
- `capacity_bits(uses, snr_db, channel)`: the bits N uses carry at capacity (the bound no code beats).
- `repetition(V, N)` / `combine(est, var, index, V)`: the two halves of `send_values` around any send of the
  repeated values (a protocol hop sends them batched: flowgraphs.hops); `plan_of(link)`: a link's fit rule
  (`digital_plan` with its measured first-try BLER, or the capacity bound's `CapacityPlan`), measured once
  per link object. A protocol hop's budget is its `channel_uses` (link_models.config.HopLink).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from link_models.stats import LinkStats

PROBE_CODEWORDS = 256
PROBE_SEED = 7
"""The first-try BLER a fit rule plans with is measured on this many codewords (fixed seed)."""


def send_values(link, values: torch.Tensor, uses: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, LinkStats]:
    """`values` over an analog link in exactly `uses` channel uses (repetition and maximum-ratio combining).

    Returns (estimates shaped like `values`, per-value variance (V,), copies per value (V,), link stats);
    ValueError when 2 uses < V (the values do not fit)."""
    flat = values.detach().reshape(-1).float()
    index = repetition(flat.numel(), uses)
    est, var, stats = link.send_values(flat[index])
    est, var, copies = combine(est, var, index, flat.numel())
    return est.reshape(values.shape), var, copies, stats


def repetition(num: int, uses: int) -> torch.Tensor:
    """Which of `num` values each of the 2 `uses` real values sent carries: the values cyclically, so some go
    once more than others (`flat[repetition(V, N)]` is what goes on air); ValueError when 2 uses < V."""
    if 2 * uses < num:
        raise ValueError(f"{num} values need {math.ceil(num / 2)} channel uses, the budget is {uses}")
    return torch.arange(2 * uses) % num


def combine(est: torch.Tensor, var: torch.Tensor, index: torch.Tensor, num: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The copies of `repetition(num, N)` as received (estimates and the variance the link reports per value)
    combined with maximum-ratio weights 1 / variance: (estimates (num,), their variance (num,), copies)."""
    weights = 1.0 / var.double().reshape(-1).clamp(min=1e-12)
    den = torch.zeros(num, dtype=torch.float64).index_add_(0, index, weights)
    total = torch.zeros(num, dtype=torch.float64).index_add_(0, index, weights * est.double().reshape(-1))
    copies = torch.bincount(index, minlength=num)
    return (total / den).float(), (1.0 / den).float(), copies


def send_bytes(link, payload: bytes, uses: int) -> tuple[bytes | None, LinkStats]:
    """`payload` over a HARQ DigitalLink in at most `uses` channel uses (its HARQ, rounds while they fit).

    Returns (the received bytes, or None when the first transmission alone does not fit or some codeword
    never passed its CRC; the link's statistics: `codeword_transmissions * uses_per_codeword` uses spent,
    `total_symbols` on air, an empty LinkStats when nothing was sent)."""
    if not link.harq:
        raise ValueError("a budgeted digital send needs a HARQ link (max_transmissions > 1: a CRC per codeword)")
    codewords = math.ceil(8 * len(payload) / link.payload_bits_per_codeword)
    if codewords * link.uses_per_codeword > uses:
        return None, LinkStats(payload_bits=8 * len(payload), codewords=codewords, transmissions=0)
    ((received, stats),) = link.send_bytes_many([payload], [link.generator], budgets=[uses])
    return (None if stats.crc_failures else received), stats


def uses_spent(link, stats: LinkStats) -> int:
    """Channel uses a digital send charged to its budget: every codeword transmission, n / m uses each."""
    return stats.codeword_transmissions * link.uses_per_codeword


def delivery_probability(codewords: int, spare: int, p: float, transmissions: int) -> float:
    """P(every codeword passes within `transmissions` tries and the retransmissions number at most `spare`),
    each try failing independently with probability p (chase combining only helps: a lower bound)."""
    if spare < 0:
        return 0.0
    one = np.array([p ** j * (1 - p) for j in range(transmissions)])  # extra tries j of one codeword
    total = np.zeros(spare + 1)
    total[0] = 1.0
    for _ in range(codewords):
        total = np.convolve(total, one)[:spare + 1]
    return float(min(1.0, total.sum()))


@dataclass
class DigitalPlan:
    """What a payload costs on a link-adapted digital link (the module doc gives the rule)."""

    payload_bits_per_codeword: int
    uses_per_codeword: int
    bler: float
    """The per-try failure probability planned with: max(BLER target, measured first-try BLER)."""
    transmissions: int
    target: float
    mcs_index: int | None
    modulation: str
    code_rate: float

    def codewords(self, bits: int) -> int:
        return math.ceil(bits / self.payload_bits_per_codeword)

    def first_uses(self, bits: int) -> int:
        return self.codewords(bits) * self.uses_per_codeword

    def delivery(self, bits: int, budget: int) -> float:
        """Probability that `bits` arrive within `budget` channel uses (HARQ rounds in the spare uses)."""
        count = self.codewords(bits)
        spare = (budget - count * self.uses_per_codeword) // self.uses_per_codeword
        return delivery_probability(count, spare, self.bler, self.transmissions)

    def fits(self, bits: int, budget: int) -> bool:
        return self.first_uses(bits) <= budget and self.delivery(bits, budget) >= 1 - self.target

    def needs(self, bits: int) -> int:
        """The fewest channel uses in which `bits` fit (whole codewords)."""
        uses = self.first_uses(bits)
        while not self.fits(bits, uses):
            uses += self.uses_per_codeword
        return uses


def first_try_bler(link, codewords: int = PROBE_CODEWORDS, seed: int = PROBE_SEED) -> float:
    """Block error rate of one transmission on `link` at its operating point, from `codewords` random codewords
    (the link is reseeded with `seed` first, so the probe is the same on every worker)."""
    link.reseed(seed)
    bits, bits_hat = link(codewords)
    return float((bits != bits_hat).any(dim=1).float().mean())


def digital_plan(link, bler: float | None = None) -> DigitalPlan:
    """The fit rule of a HARQ DigitalLink at its operating point: tries fail with probability max(the link
    adaptation's BLER target, `bler`), `bler` being the link's measured first-try BLER (None: the target)."""
    cfg = link.cfg
    p = max(cfg.bler_target, bler or 0.0)
    return DigitalPlan(link.payload_bits_per_codeword, link.uses_per_codeword, p, cfg.max_transmissions,
                       cfg.bler_target, cfg.mcs_index, cfg.modulation, cfg.code_rate)


@dataclass
class CapacityPlan:
    """The fit rule of the capacity bound: B bits fit in N uses iff B <= N C (`capacity_bits`)."""

    snr_db: float
    channel: str
    mcs_index: None = None
    bler: None = None

    def fits(self, bits: int, budget: int) -> bool:
        return bits <= capacity_bits(budget, self.snr_db, self.channel)


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def plan_of(link) -> DigitalPlan | CapacityPlan:
    """The fit rule of a link under a budget, measured once per link object: a HARQ DigitalLink's
    `digital_plan` with its measured first-try BLER (`first_try_bler`, which reseeds the link: take the link
    anew, reseeded, to send), or a CapacityLink's bound at its SNR and channel."""
    if link not in _PLANS:
        if hasattr(link, "uses_per_codeword"):
            _PLANS[link] = digital_plan(link, first_try_bler(link))
        else:
            _PLANS[link] = CapacityPlan(link.cfg.snr_db, link.cfg.channel)
    return _PLANS[link]


def capacity_bits(uses: int, snr_db: float, channel: str) -> float:
    """N C: the bits N channel uses carry at capacity: ergodic capacity on rayleigh; on every other channel the
    AWGN capacity at the average SNR (an upper bound without transmitter CSI on the fading ones)."""
    from link_models.capacity import max_bits

    return max_bits(uses, snr_db, channel="rayleigh" if channel == "rayleigh" else "awgn")


__all__ = ["CapacityPlan", "DigitalPlan", "capacity_bits", "combine", "delivery_probability", "digital_plan",
           "first_try_bler", "plan_of", "repetition", "send_bytes", "send_values", "uses_spent"]
