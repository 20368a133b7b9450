"""Receiver front end: remove what the radio adds before any synchronisation (DC offset, IQ imbalance).

Both are estimated blindly over the whole buffer, which is valid because the frame has no DC content
(null DC carrier, DC-free preambles) and OFDM and thermal noise are circular (proper) signals:
- DC / LO leakage: the buffer mean, subtracted. Left in, a DC offset correlates perfectly at any lag
  (the Schmidl-Cox detector also centres its windows, see preamble.schmidl_cox_metric) and after CFO
  correction it would land on a data subcarrier. The Pluto tracks slow DC drift in hardware.
- IQ imbalance (gain and phase error between I and Q): Gram-Schmidt orthonormalisation of I and Q,
  which makes the signal circular again (equal I/Q power, zero I/Q correlation) and removes the image.
"""

from __future__ import annotations

import numpy as np


def remove_dc(x: np.ndarray) -> np.ndarray:
    return x - np.mean(x)


def iq_balance(x: np.ndarray) -> np.ndarray:
    """Blind IQ-imbalance correction; keeps the power of I."""
    i, q = x.real, x.imag
    p_i = float(np.dot(i, i)) / i.size
    if p_i <= 0:
        return x
    q = q - (float(np.dot(i, q)) / i.size / p_i) * i
    p_q = float(np.dot(q, q)) / q.size
    if p_q <= 0:
        return x
    out = np.empty(x.size, np.complex64)
    out.real, out.imag = i, q * np.sqrt(p_i / p_q)
    return out


def front_end(x: np.ndarray) -> np.ndarray:
    """complex buffer -> DC removed, IQ balanced, complex64."""
    x = np.asarray(x).astype(np.complex64)
    if x.size == 0:
        return x
    return iq_balance(remove_dc(x))
