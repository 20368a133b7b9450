"""Gray-mapped constellations (Sionna Mapper / APP Demapper): BPSK as 2-PAM, the rest square QAM.

All constellations have unit average energy, so Es per resource element is 1 and N0 = 10^(-SNR/10).
"""

from __future__ import annotations

from torch import nn

from link_models.config import MODULATIONS
from meg_common.rng import import_sionna


def build_modem(modulation: str, device: str) -> tuple[nn.Module, nn.Module]:
    """(mapper, demapper): bits [..., m*N] -> symbols [..., N]; (symbols, no) -> LLRs [..., m*N]."""
    mapping = import_sionna().mapping
    m = MODULATIONS[modulation]
    kind = "pam" if m == 1 else "qam"
    return mapping.Mapper(kind, m, device=device), mapping.Demapper("app", kind, m, device=device)
