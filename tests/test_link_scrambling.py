"""DigitalLink scrambles its coded bits with the 5G Gold sequence (TS 38.211 7.3.1.1), so structured payloads
(all zeros, all ones) fail no more often than random ones; random payloads keep their statistics."""

import math
import os

import pytest
import torch

from link_models import DigitalLink, LinkConfig
from link_models.digital import SCRAMBLING_ID, SCRAMBLING_RNTI, scrambling_sequence
from meg_common.rng import import_sionna

HOP = {"fft_size": 12, "cp_length": 1, "batch": 32}  # one resource block per frame, as protocol hops


def test_sequence_is_sionnas_5g_scrambling_sequence():
    block = import_sionna().fec.scrambling.TB5GScrambler(n_rnti=SCRAMBLING_RNTI, n_id=SCRAMBLING_ID,
                                                          channel_type="PDSCH")
    zeros = torch.zeros(3000)
    assert torch.equal(torch.from_numpy(scrambling_sequence(3000)), block(zeros))
    assert torch.equal(torch.from_numpy(scrambling_sequence(700)), block(zeros)[:700])  # a prefix
    assert 0.45 < float(block(zeros).mean()) < 0.55


def test_compiled_gold_sequence_equals_sionnas_generator():
    """The compiled recurrence gives Sionna's `generate_prng_seq` bit for bit, for other initialisations and for
    lengths that make the kept sequence grow (a prefix of the longer one each time)."""
    from link_models import digital

    generate = import_sionna().nr.utils.generate_prng_seq
    for c_init in (SCRAMBLING_RNTI * 2 ** 15 + SCRAMBLING_ID, 0, 12345, 2 ** 31 - 1):
        digital._GOLD.pop(c_init, None)
        for length in (5, 4097, 20000, 1000):
            assert (digital._gold(c_init, length) == generate(length, c_init)).all(), (c_init, length)
        assert len(digital._GOLD[c_init]) == 32768       # grown twice (4096, then 32768), never shrunk


def _bler(link: DigitalLink, kind: str, codewords: int, seed: int = 5) -> float:
    link.reseed(seed)
    step, k = link.codewords_per_batch, link.cfg.k
    failed = sent = 0
    while sent < codewords:
        bits = link.random_bits(step) if kind == "random" else torch.full((step, k), float(kind == "ones"))
        failed += int((link.transmit(bits).bits_hat != bits).any(dim=1).sum())
        sent += step
    return failed / sent


def test_structured_payloads_fail_no_more_often_than_random_ones():
    """64-QAM (MCS 18) at 10 dB with LMMSE on one RB: random codewords fail about 15 % of the time. All-zero
    and all-one codewords must not fail more often (two-proportion test, 2.5 sigma). Without the scrambler
    (the same link with scramble() the identity) all-zero codewords fail most of the time: the test bites."""
    cfg = LinkConfig(mcs=18, n=1024, snr_db=10.0, estimator="lmmse", **HOP)
    link = DigitalLink(cfg, seed=0)
    n = 600
    random = _bler(link, "random", n)
    assert 0.05 < random < 0.35
    sigma = math.sqrt(2 * random * (1 - random) / n)
    for kind in ("zeros", "ones"):
        assert _bler(link, kind, n) <= random + 2.5 * sigma, kind
    link.scramble = lambda x, llr=False: x
    assert _bler(link, "zeros", n) > 0.5
    # random payloads: the same statistics with and without scrambling (same seeds, other symbols)
    assert abs(_bler(link, "random", n) - random) <= 2.5 * sigma


def test_zero_payload_round_trip_with_harq():
    """Retransmissions sit elsewhere in their pass (another part of the sequence): each pass descrambles its own
    LLRs before chase combining, so HARQ still delivers."""
    base = {"modulation": "qpsk", "k": 512, "n": 1024, "snr_db": -3.0, "estimator": "perfect", **HOP}
    payload = bytes(600)
    got, stats = DigitalLink(LinkConfig(**base, max_transmissions=4), seed=3).send_bytes(payload)
    assert got == payload and stats.transmissions >= 2
    clean = DigitalLink(LinkConfig(**{**base, "snr_db": 20.0}), seed=1)
    for payload in (bytes(300), b"\xff" * 300, os.urandom(300)):
        assert clean.send_bytes(payload)[0] == payload


@pytest.mark.parametrize("code", ["ldpc", "none"])
def test_sender_and_receiver_agree_on_the_sequence(code):
    """The sequence comes from constants, not from the link's random stream: two links with other seeds decode
    each other's scrambling (here: the same link object scrambles, a fresh one descrambles)."""
    cfg = LinkConfig(modulation="16qam", code=code, k=240, n=480, snr_db=30.0, **HOP)
    a, b = DigitalLink(cfg, seed=1), DigitalLink(cfg, seed=2)
    bits = torch.randint(0, 2, (1000,)).float()
    sent = a.scramble(bits)
    assert 0.4 < float((sent != bits).float().mean()) < 0.6
    llr = 1 - 2 * sent  # hard LLRs of the scrambled bits (sign convention does not matter: both flip)
    assert torch.equal((b.scramble(llr, llr=True) < 0).float(), bits)
