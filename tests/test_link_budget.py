"""link_models.budget: sending under a budget of N channel uses, against independent references.

Analog: r cyclic copies combined by maximum-ratio weights on AWGN with the true N0 give unbiased estimates
whose error variance is P / (r SNR) (P the values' mean square): NMSE = 1 / (r SNR), measured and reported.
Digital: the budgeted send is DigitalLink's own HARQ (with a huge budget it is `send_bytes` bit for bit),
never spends more than its budget, and the fit rule's delivery probability has closed forms."""

import math

import pytest
import torch

from link_models import AnalogLink, DigitalLink, LinkConfig, budget
from meg_common.errors import InputError


def analog_link(snr_db: float) -> AnalogLink:
    return AnalogLink(LinkConfig(channel="awgn", estimator="perfect", snr_db=snr_db), seed=0)


def harq_link(snr_db: float, seed: int = 0) -> DigitalLink:
    """QPSK 1/2 with HARQ (CRC24B per codeword, up to 4 transmissions), LMMSE estimation."""
    return DigitalLink(LinkConfig(channel="awgn", estimator="lmmse", snr_db=snr_db, max_transmissions=4), seed=seed)


@pytest.mark.parametrize("snr_db", [0.0, 5.0])
def test_repetition_with_mrc_gives_nmse_one_over_r_snr(snr_db):
    values = torch.randn(2048, generator=torch.Generator().manual_seed(1)) * 3.0 + 0.5
    link = analog_link(snr_db)
    snr = 10 ** (snr_db / 10)
    power = values.square().mean()
    for r in (1, 2, 4, 8):
        est, var, copies, stats = budget.send_values(link, values, r * values.numel() // 2)
        assert torch.equal(copies, torch.full_like(copies, r)) and stats.values == r * values.numel()
        nmse = float((est - values).square().mean() / power)
        assert nmse * r * snr == pytest.approx(1.0, abs=0.1), r          # measured: 1 / (r SNR)
        assert float(var.mean() / power) * r * snr == pytest.approx(1.0, rel=0.02), r  # reported
        assert abs(float((est - values).mean())) < 4 * math.sqrt(float(var.mean()) / values.numel())  # unbiased


def test_fractional_fill_gives_each_value_its_own_copies_and_refuses_too_few_uses():
    values = torch.randn(1024, generator=torch.Generator().manual_seed(2))
    link = analog_link(5.0)
    unit = values.square().mean() * 10 ** (-5.0 / 10)
    est, var, copies, _ = budget.send_values(link, values, 3 * values.numel() // 4)  # 1.5 copies a value
    assert set(copies.tolist()) == {1, 2} and int(copies.sum()) == 3 * values.numel() // 2
    for c in (1, 2):
        sel = copies == c
        assert float((est - values)[sel].square().mean() / (unit / c)) == pytest.approx(1.0, abs=0.15)
        assert float(var[sel].mean() / (unit / c)) == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="budget"):
        budget.send_values(link, values, values.numel() // 2 - 1)


def test_budgeted_digital_send_is_the_links_own_harq():
    """With room for every retransmission the budgeted send is DigitalLink.send_bytes, bit for bit."""
    link = harq_link(0.0)
    payload = bytes(torch.randint(0, 256, (300,), generator=torch.Generator().manual_seed(4), dtype=torch.uint8).tolist())
    for seed in (1, 2, 3):
        link.reseed(seed)
        plain, plain_stats = link.send_bytes(payload)
        link.reseed(seed)
        got, stats = budget.send_bytes(link, payload, 10 ** 6)
        assert got == (plain if plain_stats.crc_failures == 0 else None)
        assert stats.to_dict() == plain_stats.to_dict()


@pytest.mark.parametrize("snr_db", [-1.0, 3.0])
def test_budgeted_digital_send_never_spends_more_than_its_budget(snr_db):
    link = harq_link(snr_db)
    per = link.uses_per_codeword
    assert per == link.cfg.n // 2  # QPSK: two coded bits a use
    payload = bytes(range(256)) * 2
    rule = budget.digital_plan(link)
    first = rule.first_uses(8 * len(payload))
    assert first == math.ceil(8 * len(payload) / link.payload_bits_per_codeword) * per
    got, stats = budget.send_bytes(link, payload, first - 1)  # the first transmission does not fit
    assert got is None and stats.codeword_transmissions == 0
    with pytest.raises(InputError, match="budget"):
        link.send_bytes_many([payload], [0], budgets=[first - 1])
    for extra in (0, 1, 3, 100):
        for seed in range(4):
            link.reseed(seed)
            got, stats = budget.send_bytes(link, payload, first + extra * per)
            spent = budget.uses_spent(link, stats)
            assert first <= spent <= first + extra * per and stats.transmissions <= 1 + extra
            assert (got == payload) if got is not None else stats.crc_failures > 0
            if extra == 0:
                assert stats.transmissions == 1 and spent == first


def test_a_harq_link_is_required():
    link = DigitalLink(LinkConfig(channel="awgn", snr_db=5.0), seed=0)
    with pytest.raises(ValueError, match="HARQ"):
        budget.send_bytes(link, b"abc", 10_000)


def test_delivery_probability_closed_forms():
    p = 0.1
    assert budget.delivery_probability(7, 0, p, 4) == pytest.approx((1 - p) ** 7)
    # one spare slot: none fails, or exactly one fails once and passes the second time
    assert budget.delivery_probability(5, 1, p, 4) == pytest.approx((1 - p) ** 5 + 5 * p * (1 - p) ** 5)
    assert budget.delivery_probability(3, -1, p, 4) == 0.0
    assert budget.delivery_probability(3, 100, p, 4) == pytest.approx((1 - p ** 4) ** 3)


def test_fit_rule_plans_with_the_larger_bler_and_needs_the_fewest_uses():
    link = harq_link(3.0)
    rule = budget.digital_plan(link)
    assert rule.uses_per_codeword == link.uses_per_codeword and rule.bler == link.cfg.bler_target
    assert budget.digital_plan(link, 0.3).bler == 0.3 and budget.digital_plan(link, 0.01).bler == link.cfg.bler_target
    probe = budget.first_try_bler(link, 32)
    assert 0 <= probe <= 1 and budget.first_try_bler(link, 32) == probe  # the same probe on every worker
    for bits in (100, 2000, 9000):
        need = rule.needs(bits)
        assert rule.fits(bits, need) and not rule.fits(bits, need - 1)
        assert bits <= budget.capacity_bits(need, 3.0, "awgn")  # no code beats capacity
