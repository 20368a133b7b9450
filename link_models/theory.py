"""Closed-form references the simulator is checked against.

Uncoded Gray-mapped constellations on AWGN, with Es/N0 per symbol and Eb/N0 = Es/N0 / m:
- BPSK and QPSK: BER = Q(sqrt(2 Eb/N0)).
- Square M-QAM (M = 4^j), exact Gray-code BER of Cho & Yoon (IEEE Trans. Commun., 2002), eq. (14)-(16):
  each of the two PAM dimensions carries log2(sqrt M) bits; the BER of bit k in sqrt(M)-PAM is a finite
  sum of Q functions.
Analog (values two per unit-energy symbol, unbiased estimate): NMSE = N0 / Es = 1 / SNR.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc


def qfunc(x):
    return 0.5 * erfc(np.asarray(x, dtype=float) / math.sqrt(2))


def ber_uncoded_awgn(modulation: str, es_no_db) -> np.ndarray:
    """Bit error rate of Gray-mapped BPSK / QPSK / M-QAM on AWGN at Es/N0 (dB, per symbol)."""
    from link_models.config import MODULATIONS

    m = MODULATIONS[modulation]
    es_no = 10 ** (np.asarray(es_no_db, dtype=float) / 10)
    if m == 1:
        return qfunc(np.sqrt(2 * es_no))
    if m == 2:
        return qfunc(np.sqrt(es_no))  # = Q(sqrt(2 Eb/N0)) with Eb = Es / 2
    return _ber_square_qam(m, es_no)


def _ber_square_qam(m: int, es_no: np.ndarray) -> np.ndarray:
    """Cho & Yoon (2002): exact BER of Gray-coded square 2^m-QAM, with Es/N0 per symbol."""
    side = 2 ** (m // 2)  # sqrt(M)
    M = side * side
    eb_no = es_no / m
    total = np.zeros_like(es_no)
    for k in range(1, int(math.log2(side)) + 1):
        pk = np.zeros_like(es_no)
        for i in range(int((1 - 2 ** (-k)) * side)):
            step = i * 2 ** (k - 1) / side
            w = (-1) ** math.floor(step) * (2 ** (k - 1) - math.floor(step + 0.5))
            pk += w * erfc((2 * i + 1) * np.sqrt(3 * m * eb_no / (2 * (M - 1))))
        total += pk / side
    return total / math.log2(side)


def nmse_analog_awgn(snr_db) -> np.ndarray:
    """Normalised MSE of the analog link on AWGN with perfect CSI: 1 / SNR."""
    return 10 ** (-np.asarray(snr_db, dtype=float) / 10)


def ber_uncoded_rayleigh(modulation: str, es_no_db) -> np.ndarray:
    """BER of BPSK / QPSK on flat Rayleigh fading with perfect CSI: 1/2 (1 - sqrt(g / (1 + g))), g = Eb/N0."""
    from link_models.config import MODULATIONS

    m = MODULATIONS[modulation]
    if m > 2:
        raise ValueError("closed form only for bpsk and qpsk")
    eb_no = 10 ** (np.asarray(es_no_db, dtype=float) / 10) / m
    return 0.5 * (1 - np.sqrt(eb_no / (1 + eb_no)))
