"""The unit-power analog mapping: real values <-> complex symbols, two values per symbol, scale as side information.

    scale = power_scale(values)                          # RMS of the values (float32: what a header carries)
    symbols = to_symbols(values, scale)                  # [..., ceil(n / 2)], mean energy 1 per symbol
    est, var = from_symbols(symbols_hat, scale, n, no_eff)   # [..., n] estimates and per-value variance
    est, var = nothing_received(n, scale)                # a value that never arrived: 0 and its prior variance

This is the one place where analog power is normalised, once, on the link: values of any scale are divided
by their RMS `scale`, so u = v / scale has mean square 1, and paired into s = (u_2i + j u_2i+1) / sqrt(2),
so the symbols have unit mean energy like the digital constellations. The scale travels as side
information (AnalogLink's accounted 64-bit header, the over-the-air frame header). A receiver with an
unbiased symbol estimate of complex noise variance no_eff gets unbiased value estimates with variance
no_eff * scale^2 each (no_eff / 2 per real dimension, times 2 from the sqrt(2)).

Used by link_models.analog.AnalogLink (so by the resume study's AWGN link and link_models.budget), link_models.
ota.frame / receiver and link_models.ota.RadioLink. No Sionna here: torch only.
"""

from __future__ import annotations

import math

import torch


def power_scale(values: torch.Tensor) -> torch.Tensor:
    """RMS of `values` (accumulated in float64) as a float32 scalar tensor; 1 when all values are 0."""
    scale = values.double().square().mean().sqrt().float()
    return scale if scale != 0 else torch.ones((), device=values.device)


def to_symbols(values: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """1-D real values [n] -> complex symbols [ceil(n / 2)] of unit mean energy (an odd tail is padded with 0).

    Computed in the precision of `values` (float32 -> complex64, float64 -> complex128)."""
    num = values.shape[-1]
    u = torch.nn.functional.pad(values / scale, (0, num % 2))
    return torch.complex(u[..., 0::2], u[..., 1::2]) / math.sqrt(2)


def from_symbols(symbols: torch.Tensor, scale: torch.Tensor | float, num: int,
                 symbol_var: torch.Tensor | None = None,
                 dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Symbol estimates [..., m] -> (value estimates [..., num], per-value noise variance [..., num] or None).

    `scale` may be a scalar or broadcast over the leading dimensions (one scale per frame, shape [..., 1]);
    `symbol_var` is the complex noise variance of each symbol estimate ([..., m]); results in `dtype`
    (default: the symbols' real precision)."""
    u = torch.view_as_real(symbols).flatten(-2) * math.sqrt(2)
    dtype = dtype or u.dtype
    scale = torch.as_tensor(scale, device=u.device)
    estimates = u[..., :num].to(dtype) * scale.to(dtype)
    if symbol_var is None:
        return estimates, None
    variance = (symbol_var.repeat_interleave(2, dim=-1)[..., :num] * scale.square()).to(dtype)
    return estimates, variance


def nothing_received(num: int, scale: torch.Tensor | float,
                     dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """What a receiver reports for `num` values whose frame never arrived: (0, scale^2) each.

    0 is the prior mean and scale^2 (the values' mean square, known from the side information) the prior
    variance, so a downstream estimator (channel-aware resume, MMSE combining) treats them as unknown."""
    scale = torch.as_tensor(scale, dtype=torch.float64)
    return torch.zeros(num, dtype=dtype), torch.full((num,), float(scale.square()), dtype=dtype)
