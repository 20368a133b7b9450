"""Channel coding: 5G NR LDPC (Sionna) or none, behind one pair of blocks with the same shapes.

`build_code(k, n, bits_per_symbol, ...)` returns (encoder, decoder): encoder [..., k] bits -> [..., n]
bits; decoder [..., n] LLRs -> [..., k] hard bits. With LDPC the 5G output interleaver for the modulation
order is included (TS 38.212 5.4.2.2), as a 5G transmitter does; uncoded, both are identities (the decoder
takes the hard decision of the LLRs, Sionna's convention: LLR > 0 means bit 1).

Decoders: "fast" (link_models.ldpc_fast: layered offset-normalised min-sum, early termination, numba, CPU)
or "sionna" (Sionna's flooding boxplus-phi BP). The fast one runs on the CPU only, so on a CUDA device
"fast" builds Sionna's decoder, which runs on the GPU.
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
               num_iter: int = 20, decoder: str = "fast") -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) for `code` in {'ldpc', 'none'}; InputError if 5G LDPC cannot build (k, n)."""
    if decoder not in ("fast", "sionna"):
        raise InputError(f"unknown decoder '{decoder}'; choose one of fast, sionna")
    if code == "none":
        return Uncoded(), HardDecision()
    ldpc = import_sionna().fec.ldpc
    try:
        encoder = ldpc.LDPC5GEncoder(k, n, num_bits_per_symbol=bits_per_symbol, device=device)
    except ValueError as exc:
        raise InputError(f"5G LDPC cannot build k={k}, n={n} ({exc}); choose k <= 8448 and 1/5 <= k/n <= 0.95") from None
    if decoder == "fast" and not str(device).startswith("cuda"):
        from link_models.ldpc_fast import LDPC5GFastDecoder

        return encoder, LDPC5GFastDecoder(encoder, num_iter=num_iter)
    return encoder, ldpc.LDPC5GDecoder(encoder, num_iter=num_iter, hard_out=True, device=device)
