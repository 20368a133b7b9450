"""Receiver front end: remove what the radio adds before any synchronisation (DC offset, IQ imbalance).

Both are estimated blindly over the whole buffer, which is valid because the frame has no DC content
(null DC carrier, DC-free preambles) and OFDM and thermal noise are circular (proper) signals:
- DC / LO leakage: a one-pole DC tracker (time constant ~1000 samples, started at the mean of the
  first samples), subtracted; it follows a slowly drifting offset and leaves no constant behind in the
  silence between bursts. Its notch (about fs/6000 wide) is far narrower than a subcarrier. Left in, it would correlate perfectly at any lag and trigger the
  Schmidl-Cox detector on noise, and after CFO correction it would land on a data subcarrier.
- IQ imbalance (gain and phase error between I and Q): Gram-Schmidt orthonormalisation of I and Q,
  which makes the signal circular again (equal I/Q power, zero I/Q correlation) and removes the image.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def remove_dc(x: np.ndarray, time_constant: float = 1000.0) -> np.ndarray:
    alpha = 1.0 - 1.0 / time_constant
    start = np.mean(x[: int(2 * time_constant)])
    dc, _ = lfilter([1.0 - alpha], [1.0, -alpha], x, zi=np.array([alpha * start], np.complex128))
    return x - dc


def iq_balance(x: np.ndarray) -> np.ndarray:
    """Blind IQ-imbalance correction; keeps the power of I."""
    i, q = x.real.astype(np.float64), x.imag.astype(np.float64)
    p_i = np.mean(i * i)
    if p_i <= 0:
        return x
    q = q - (np.mean(i * q) / p_i) * i
    p_q = np.mean(q * q)
    if p_q <= 0:
        return x
    return (i + 1j * q * np.sqrt(p_i / p_q)).astype(x.dtype if np.iscomplexobj(x) else np.complex128)


def front_end(x: np.ndarray) -> np.ndarray:
    """complex buffer -> DC removed, IQ balanced, complex128."""
    x = np.asarray(x).astype(np.complex128)
    if x.size == 0:
        return x
    return iq_balance(remove_dc(x))
