"""Channel coding: 5G NR LDPC (Sionna) or none, behind one pair of blocks with the same shapes.

`build_code(k, n, bits_per_symbol, ...)` returns (encoder, decoder): encoder [..., k] bits -> [..., n]
bits; decoder [..., n] LLRs -> [..., k] hard bits. With LDPC the 5G output interleaver for the modulation
order is included (TS 38.212 5.4.2.2), as a 5G transmitter does; uncoded, both are identities (the decoder
takes the hard decision of the LLRs, Sionna's convention: LLR > 0 means bit 1).
"""

from __future__ import annotations

import torch
from torch import nn

from meg_common.errors import InputError
from meg_common.rng import import_sionna


class Uncoded(nn.Module):
    """Identity encoder."""

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        return bits


class HardDecision(nn.Module):
    """Decoder of the uncoded link: bit = 1 where LLR > 0."""

    def forward(self, llr: torch.Tensor) -> torch.Tensor:
        return (llr > 0).to(llr.dtype)


def build_code(code: str, k: int, n: int, bits_per_symbol: int, device: str,
               num_iter: int = 20) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) for `code` in {'ldpc', 'none'}; InputError if 5G LDPC cannot build (k, n)."""
    if code == "none":
        return Uncoded(), HardDecision()
    ldpc = import_sionna().fec.ldpc
    try:
        encoder = ldpc.LDPC5GEncoder(k, n, num_bits_per_symbol=bits_per_symbol, device=device)
    except ValueError as exc:
        raise InputError(f"5G LDPC cannot build k={k}, n={n} ({exc}); choose k <= 8448 and 1/5 <= k/n <= 0.95") from None
    decoder = ldpc.LDPC5GDecoder(encoder, num_iter=num_iter, hard_out=True, device=device)
    return encoder, decoder
