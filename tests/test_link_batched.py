"""Batched link sends (`send_values_many`, `send_bytes_many`): bit for bit what one call per payload gives.

Each payload draws from its own seed's generator, estimates its own N0 and (digital) runs its own HARQ
retransmissions, so payload i of a batch must equal `link.reseed(seeds[i]); link.send_*(payloads[i])`
exactly: torch.equal on estimates and variances, byte equality, equal statistics.
"""

import pytest
import torch

from link_models import AnalogLink, DigitalLink, LinkConfig
from meg_common.errors import InputError


def _values(sizes, seed=5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g) * (1 + i) + 0.3 * i for i, n in enumerate(sizes)]


def _payloads(sizes, seed=6):
    g = torch.Generator().manual_seed(seed)
    return [bytes(torch.randint(0, 256, (n,), generator=g, dtype=torch.uint8).tolist()) for n in sizes]


@pytest.mark.parametrize("channel, estimator, repetition", [
    ("awgn", "lmmse", 1), ("tdl-a", "lmmse", 1), ("tdl-a", "ls", 2), ("rayleigh", "perfect", 1)])
def test_batched_analog_send_equals_one_call_per_payload(channel, estimator, repetition):
    link = AnalogLink(LinkConfig(channel=channel, estimator=estimator, snr_db=0.0, repetition=repetition), seed=0)
    payloads = _values([37, 1000, 1, 3100, 500])     # one frame carries 1536 values: 1 to 3 frames each
    seeds = [3, 101, 7, 3, 55]                       # a seed may repeat: the draws are the payload's own
    batched = link.send_values_many(payloads, seeds)
    for v, seed, (est, var, stats) in zip(payloads, seeds, batched, strict=True):
        link.reseed(seed)
        est1, var1, stats1 = link.send_values(v)
        assert torch.equal(est, est1) and torch.equal(var, var1)
        assert stats.to_dict() == stats1.to_dict()
    assert len({s.no_est for *_, s in batched}) == (1 if estimator == "perfect" else len(seeds))  # own N0 each


@pytest.mark.parametrize("channel, estimator, snr_db", [("awgn", "lmmse", 3.5), ("tdl-a", "lmmse", 9.0),
                                                        ("tdl-a", "ls", 10.0)])
def test_batched_digital_send_with_harq_equals_one_call_per_payload(channel, estimator, snr_db):
    # batch=1: three 16-QAM codewords per pass, so the larger payloads take several passes per transmission
    cfg = LinkConfig(channel=channel, estimator=estimator, snr_db=snr_db, modulation="16qam", k=1024, n=2048,
                     max_transmissions=4, batch=1)
    link = DigitalLink(cfg, seed=0)
    payloads = _payloads([150, 1, 900, 150, 400, 60])
    seeds = list(range(40, 46))
    batched = link.send_bytes_many(payloads, seeds)
    for p, seed, (received, stats) in zip(payloads, seeds, batched, strict=True):
        link.reseed(seed)
        received1, stats1 = link.send_bytes(p)
        assert received == received1
        assert stats.to_dict() == stats1.to_dict()
    transmissions = [s.transmissions for _, s in batched]
    assert max(transmissions) > 1, transmissions        # HARQ combines earlier transmissions
    if channel != "awgn":                               # and on a fading channel the payloads need different
        assert len(set(transmissions)) > 1, transmissions   # numbers of them


def test_batched_digital_send_without_harq_and_uncoded():
    for cfg in (LinkConfig(channel="awgn", estimator="ls", snr_db=3.0, k=1024, n=2048, batch=1),
                LinkConfig(channel="tdl-a", code="none", estimator="lmmse", modulation="16qam", snr_db=12.0,
                           k=1001)):
        link = DigitalLink(cfg, seed=0)
        payloads = _payloads([3, 700, 129])
        batched = link.send_bytes_many(payloads, [9, 8, 7])
        for p, seed, (received, stats) in zip(payloads, [9, 8, 7], batched, strict=True):
            link.reseed(seed)
            assert (received, stats.to_dict()) == (lambda r, s: (r, s.to_dict()))(*link.send_bytes(p))


def test_a_given_generator_is_advanced_as_the_links_own_and_the_link_is_untouched():
    link = DigitalLink(LinkConfig(channel="awgn", estimator="lmmse", snr_db=2.0, max_transmissions=3), seed=0)
    link.reseed(77)
    own = link.generator.get_state()
    g = torch.Generator().manual_seed(5)
    first, second = link.send_bytes_many([b"abc" * 50, b"xyz" * 9], [g, 12])
    assert torch.equal(link.generator.get_state(), own)          # the link's own stream is not used
    link.reseed(5)
    assert first[0] == link.send_bytes(b"abc" * 50)[0]
    assert torch.equal(g.get_state(), link.generator.get_state())   # a later call goes on from g
    alink = AnalogLink(LinkConfig(channel="awgn", estimator="ls", snr_db=0.0), seed=0)
    g = torch.Generator().manual_seed(8)
    est = alink.send_values_many([torch.ones(10)], [g])[0][0]
    alink.reseed(8)
    assert torch.equal(est, alink.send_values(torch.ones(10))[0])
    assert torch.equal(g.get_state(), alink.generator.get_state())


def test_global_rng_untouched_and_bad_batches_are_input_errors():
    link = DigitalLink(LinkConfig(channel="awgn", estimator="ls", snr_db=5.0), seed=0)
    alink = AnalogLink(LinkConfig(channel="awgn", estimator="ls", snr_db=5.0), seed=0)
    state = torch.get_rng_state()
    link.send_bytes_many([b"a", b"bc"], [1, 2])
    alink.send_values_many([torch.ones(3), torch.zeros(4)], [1, 2])
    assert torch.equal(torch.get_rng_state(), state)
    assert link.send_bytes_many([], []) == [] and alink.send_values_many([], []) == []
    with pytest.raises(InputError, match="one seed per payload"):
        link.send_bytes_many([b"a", b"b"], [1])
    with pytest.raises(InputError, match="empty"):
        link.send_bytes_many([b"a", b""], [1, 2])
    with pytest.raises(InputError, match="1-D"):
        alink.send_values_many([torch.ones(2, 2)], [1])
    with pytest.raises(InputError, match="integer >= 0"):
        alink.send_values_many([torch.ones(2)], [-1])
