"""The one link contract: what a protocol hop may call on any link, simulated or over the air.

    from link_models import Link
    assert isinstance(link, Link)                       # DigitalLink, AnalogLink, ota.RadioLink
    received, stats = link.send_bytes(payload)           # digital: bytes -> (bytes of the same length, stats)
    est, noise_var, stats = link.send_values(values)     # analog: 1-D real tensor -> (estimates, variance, stats)
    link.reseed(seed)                                    # the link's random draws restart from `seed`

A link carries bytes, values or both (the links here say which in `schemes`: "digital", "analog"); the
call it does not carry raises InputError naming the link that does. `reseed` is the only way to change a built link's random
stream: a reseeded link behaves exactly like one built with that seed, so a built link can serve many
hops (building Sionna's LDPC code costs more than a small payload). `forward` (`link(batch_size, ebno_db)`)
is Sionna's `sim_ber` Monte-Carlo call on every link: `batch_size` random blocks through the link,
(sent, received); for a digital link the blocks are k-bit codewords, (bits, decoded bits) [batch_size, k];
for an analog link they are single N(0, 1) values, (values, estimates) [batch_size].

The simulated OFDM links (DigitalLink, AnalogLink) also send many payloads in one call, each drawing from
its own seed: `send_bytes_many(payloads, seeds)` / `send_values_many(values, seeds)` give payload i bit for
bit what `reseed(seeds[i])` and one `send_*` give (a seed may also be a generator, advanced as the link's
own would be). Not part of the protocol: a caller checks for them (flowgraphs.hops does).

Analog values go through the one unit-power mapping of `link_models.mapping` (the link normalises power,
the scale travels as side information); a value whose frame never arrived comes back as 0 with its
prior variance (the values' mean square) and is counted in `LinkStats.frames_lost`.
"""

from __future__ import annotations

import operator
from typing import Protocol, runtime_checkable

import torch

from link_models.stats import LinkStats
from meg_common.errors import InputError


@runtime_checkable
class Link(Protocol):
    """Structural type of every link (see the module docstring): the three calls a hop may make."""

    def send_bytes(self, payload: bytes) -> tuple[bytes, LinkStats]:
        """Bytes through the link: (received bytes of the same length, stats)."""
        ...

    def send_values(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LinkStats]:
        """A 1-D real tensor through the link: (unbiased estimates, per-value noise variance, stats)."""
        ...

    def reseed(self, seed: int) -> None:
        """Restart every random draw of the link (noise, fading, message ids) from `seed`."""
        ...


def check_seed(seed) -> int:
    """`seed` as an int >= 0 (InputError otherwise)."""
    try:
        value = operator.index(seed)
    except TypeError:
        value = -1
    if isinstance(seed, bool) or value < 0:
        raise InputError(f"seed={seed!r}: must be an integer >= 0")
    return value


def not_carried(link, what: str) -> InputError:
    """The error for the call a link does not carry ('bytes' or 'values')."""
    other = "a DigitalLink (scheme 'digital')" if what == "bytes" else "an AnalogLink (scheme 'analog')"
    return InputError(f"{type(link).__name__} carries {' and '.join(link.schemes) or 'nothing'} payloads, "
                      f"not {what}; send {what} over {other}")


def check_values(values) -> torch.Tensor:
    """What `send_values` takes: a non-empty 1-D real floating-point tensor of finite values (InputError
    naming what is wrong otherwise)."""
    if not isinstance(values, torch.Tensor):
        raise InputError(f"send_values needs a 1-D real torch tensor, got {type(values).__name__}")
    if values.is_complex() or not values.is_floating_point():
        raise InputError(f"send_values needs real floating-point values, got {values.dtype}")
    if values.dim() != 1:
        raise InputError(f"send_values needs a 1-D tensor, got shape {tuple(values.shape)}; flatten it first")
    if values.numel() == 0:
        raise InputError("nothing to send: the value vector is empty; give at least one value")
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).sum())
        raise InputError(f"{bad} of {values.numel()} values are NaN or infinite; send finite values only")
    return values
