"""The fast 5G LDPC decoder against Sionna's: exact decoding, the same noisy codewords, early termination."""

import math

import pytest
import torch

from link_models import DigitalLink, LinkConfig
from link_models.ldpc_fast import LDPC5GFastDecoder
from meg_common.errors import InputError
from meg_common.rng import import_sionna

sn = import_sionna()


def encoder(k, n, bits_per_symbol=None, bg=None):
    return sn.fec.ldpc.LDPC5GEncoder(k, n, num_bits_per_symbol=bits_per_symbol, bg=bg)


def noisy_llrs(enc, bits_per_symbol, ebno_db, codewords, seed):
    """(bits, channel logits) of `codewords` random codewords over AWGN, from our own generator."""
    gen = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (codewords, enc.k), generator=gen).float()
    x = sn.mapping.Mapper("qam", bits_per_symbol)(enc(bits))
    no = 10 ** (-ebno_db / 10) / (bits_per_symbol * enc.k / enc.n)
    noise = torch.complex(torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen))
    y = x + math.sqrt(no / 2) * noise
    return bits, sn.mapping.Demapper("app", "qam", bits_per_symbol)(y, torch.tensor(no))


@pytest.mark.parametrize("k, n, bits_per_symbol, bg", [
    (1024, 2048, 2, "bg1"), (1024, 2048, None, None), (500, 1500, 4, None), (12, 40, None, None),
    (100, 110, None, None), (3000, 3300, 6, None), (8448, 9200, 2, None), (292, 1460, None, None),
])
def test_noiseless_codewords_decode_exactly_and_stop_early(k, n, bits_per_symbol, bg):
    enc = encoder(k, n, bits_per_symbol, bg)
    bits = torch.randint(0, 2, (3, 5, k), generator=torch.Generator().manual_seed(k)).float()
    c = enc(bits)
    logits = 8.0 * (2 * c - 1)
    dec = LDPC5GFastDecoder(enc)
    out = dec(logits)
    assert out.shape == bits.shape and out.dtype == torch.float32
    assert torch.equal(out, bits)
    # punctured bits (the first 2Z, and parity bits at high rates) take a few layered passes to fill in
    assert int(dec.last_iterations.max()) <= (1 if k / n <= 0.5 else 5)
    # all n transmitted bits, in the transmitted (interleaved) order, and soft logits with the channel's sign
    assert torch.equal(LDPC5GFastDecoder(enc, return_infobits=False)(logits), c)
    soft = LDPC5GFastDecoder(enc, hard_out=False)(logits)
    assert torch.equal((soft > 0).float(), bits)


@pytest.mark.parametrize("k, n, bits_per_symbol, bg, ebno_db", [
    (1024, 2048, 2, "bg1", 1.3),   # BG1, Z=48, QPSK with the 5G output interleaver
    (500, 1500, 2, None, 0.9),     # BG2, Z=64
    (500, 1500, None, None, 0.9),  # BG2 without the interleaver (QPSK labels in code order)
    (1024, 2048, 4, None, 3.4),    # BG2, Z=104, 16-QAM: the interleaver matters
])
def test_same_noisy_codewords_error_rates_match_sionna(k, n, bits_per_symbol, bg, ebno_db):
    """BLER about 0.1 on 240 codewords: the fast decoder's block errors within 1.3x (+3) of Sionna's BP."""
    enc = encoder(k, n, bits_per_symbol, bg)
    bits, llr = noisy_llrs(enc, bits_per_symbol or 2, ebno_db, 240, seed=k + n)
    fast = LDPC5GFastDecoder(enc)(llr)
    ref = sn.fec.ldpc.LDPC5GDecoder(enc, num_iter=20, hard_out=True)(llr)
    fast_errors = int((fast != bits).any(dim=1).sum())
    ref_errors = int((ref != bits).any(dim=1).sum())
    assert 8 <= ref_errors <= 100, "operating point: BLER around 0.1 for Sionna"
    assert fast_errors <= 1.3 * ref_errors + 3, (fast_errors, ref_errors)
    # decoding the same LLRs twice gives the same bits (no state carried over between calls)
    assert torch.equal(LDPC5GFastDecoder(enc)(llr), fast)


def test_early_termination_uses_fewer_iterations_at_high_snr():
    enc = encoder(1024, 2048, 2)
    dec = LDPC5GFastDecoder(enc, num_iter=20)
    _, llr_low = noisy_llrs(enc, 2, 0.5, 64, seed=1)
    _, llr_high = noisy_llrs(enc, 2, 4.0, 64, seed=2)
    dec(llr_low)
    low, low_max = dec.last_mean_iterations, int(dec.last_iterations.max())
    bits_high = dec(llr_high)
    high = dec.last_mean_iterations
    assert high < 4 < 10 < low and low_max == 20
    assert dec.last_iterations.shape == (64,)
    dec(llr_low, num_iter=3)  # per-call maximum, as Sionna's num_iter argument
    assert int(dec.last_iterations.max()) == 3
    assert bits_high.shape == (64, 1024)


def test_shapes_and_errors():
    enc = encoder(100, 200, 2)
    dec = LDPC5GFastDecoder(enc)
    assert dec(torch.zeros(0, 200)).shape == (0, 100)
    with pytest.raises(ValueError, match="n=200"):
        dec(torch.zeros(4, 199))
    with pytest.raises(ValueError):
        LDPC5GFastDecoder(enc, num_iter=0)


def test_link_config_selects_the_decoder():
    fast = DigitalLink(LinkConfig(k=256, n=512, ebno_db=3.0, device="cpu"), seed=0)
    ref = DigitalLink(LinkConfig(k=256, n=512, ebno_db=3.0, device="cpu", decoder="Sionna"), seed=0)
    assert isinstance(fast.decoder, LDPC5GFastDecoder)
    assert isinstance(ref.decoder, sn.fec.ldpc.LDPC5GDecoder)
    payload = bytes(range(200))
    assert fast.send_bytes(payload)[0] == payload == ref.send_bytes(payload)[0]
    with pytest.raises(InputError, match="decoder"):
        LinkConfig(decoder="bp")


@pytest.mark.slow
def test_threaded_decoding_gives_the_same_bits():
    """parallel=True (numba threads over codeword ranges) decodes each codeword exactly as one thread does.

    Run in a subprocess: numba's OpenMP layer must not be used in a process that forks later (pytest's)."""
    import os
    import subprocess
    import sys

    code = """
import numba, torch
from meg_common.rng import import_sionna
from link_models.ldpc_fast import LDPC5GFastDecoder
sn = import_sionna()
numba.set_num_threads(2)
enc = sn.fec.ldpc.LDPC5GEncoder(500, 1000, num_bits_per_symbol=2)
llr = 1.2 * (2 * enc(torch.randint(0, 2, (300, 500), generator=torch.Generator().manual_seed(0)).float()) - 1)
llr = llr + 1.5 * torch.randn(llr.shape, generator=torch.Generator().manual_seed(1))
one, two = LDPC5GFastDecoder(enc), LDPC5GFastDecoder(enc, parallel=True)
assert torch.equal(one(llr), two(llr)) and (one.last_iterations == two.last_iterations).all()
assert numba.threading_layer() in ("omp", "tbb", "workqueue")
"""
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
