"""Adaptive links at link level: MCS / link adaptation in LinkConfig and DigitalLink, HARQ with chase combining,
and the receiver that estimates its own noise (ls, lmmse) with LMMSE channel estimation across the frame.

Adaptation rules are checked against a synthetic BLER table written here (a steep curve 2 dB above each
MCS's Shannon SNR), so they do not depend on the shipped table; the slow check at the end runs the shipped
table against the link it was measured with.
"""

import json
import math
import os
import statistics

import pytest
import torch

from link_models import AnalogLink, DigitalLink, LinkConfig
from link_models.config import CRC_BITS, MCS_BLOCK
from link_models.mcs import DEFAULT_BLER_TABLE, BlerTable, mcs_table
from link_models.ofdm import estimate_noise
from link_models.sweep import run_sweep
from meg_common.errors import InputError

FAST = {"fft_size": 12, "cp_length": 1, "batch": 16}  # one resource block per frame, as protocol hops


def synthetic_table(gap_db: float = 2.0) -> dict:
    curves, index = {}, {}
    for row in mcs_table(1):
        key = row.key
        index[str(row.index)] = key
        threshold = row.shannon_snr_db + gap_db
        points = [{"snr_db": threshold + 0.5 * i, "codewords": 1000,
                   "block_errors": int(round(1000 / (1 + math.exp(4 * 0.5 * i)))) } for i in range(-6, 7)]
        curves[key] = {"points": points}
    return {"settings": {"synthetic": True}, "tables": {"1": index}, "curves": curves}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("bler") / "bler_table.json"
    path.write_text(json.dumps(synthetic_table()))
    return str(path)


# --- MCS in LinkConfig --------------------------------------------------------------------------------------
def test_fixed_mcs_sets_modulation_and_rate_and_keeps_the_codeword_length():
    for index in (5, 15, 25):
        row = mcs_table(1)[index]
        cfg = LinkConfig(mcs=index, snr_db=10.0, n=1024).resolved()
        assert (cfg.mcs_index, cfg.modulation) == (index, row.modulation)
        assert cfg.n == 1008 and cfg.n % MCS_BLOCK == 0 and cfg.ldpc_n == cfg.n
        assert abs(cfg.code_rate - row.code_rate) < 1 / cfg.n
    assert LinkConfig(mcs="7", snr_db=0.0).resolved().mcs_index == 7  # an index as text (command line)
    assert LinkConfig(mcs="none", snr_db=0.0, modulation="16qam").mcs is None  # as given


def test_lowest_rates_lengthen_the_codeword_so_the_crc_stays_small():
    from link_models.config import MCS_MIN_INFO_BITS

    low = LinkConfig(mcs=0, mcs_table=3, snr_db=-10.0, n=1024, max_transmissions=4).resolved()  # rate 30/1024
    assert low.k >= MCS_MIN_INFO_BITS and CRC_BITS <= 0.1 * low.k
    assert low.n % MCS_BLOCK == 0 and low.n > 1008 and abs(low.code_rate - 30 / 1024) < 1 / low.n
    assert low.ldpc_n == 5 * low.k // 2 * 2 < low.n  # the rate-1/5 mother code, repeated up to n
    high = LinkConfig(mcs=15, snr_db=10.0, n=1024).resolved()
    assert high.n == 1008  # rates that already carry 240 bits keep the hop's length
    # and an operating point that moves the MCS up again returns to the nominal length
    assert low.with_snr(snr_db=-10.0) == low
    assert LinkConfig(mcs="auto", snr_db=-10.0, n=1024).with_snr(snr_db=25.0).resolved().n == 1008


def test_auto_picks_the_highest_mcs_within_the_target(table):
    bler = BlerTable(table)
    for snr in (-8.0, -3.0, 0.0, 4.5, 9.0, 14.0, 25.0):
        cfg = LinkConfig(mcs="auto", snr_db=snr, bler_table=table).resolved()
        ok = [i for i in bler.indices(1) if bler.bler(i, snr) <= 0.1]
        assert cfg.mcs_index == (max(ok) if ok else 0)
    # the codeword length does not drift when the MCS changes with the SNR
    cfg = LinkConfig(mcs="auto", snr_db=25.0, n=1000, bler_table=table).resolved()
    assert cfg.with_snr(snr_db=-3.0).with_snr(snr_db=25.0) == cfg and cfg.n == 984
    assert LinkConfig(mcs="auto", snr_db=0.0, bler_target=0.5, bler_table=table).resolved().mcs_index >= \
        LinkConfig(mcs="auto", snr_db=0.0, bler_table=table).resolved().mcs_index


@pytest.mark.parametrize("kw, message", [
    ({"mcs": "auto", "ebno_db": 3.0}, "give snr_db"),
    ({"mcs": "fast", "snr_db": 3.0}, "give 'auto'"),
    ({"mcs": 40, "snr_db": 3.0}, "mcs_index"),
    ({"mcs": 3, "code": "none", "snr_db": 3.0}, "needs code 'ldpc'"),
    ({"max_transmissions": 0, "snr_db": 3.0}, "max_transmissions"),
    ({"max_transmissions": 4, "k": 24, "n": 96, "snr_db": 3.0}, "CRC"),
    ({"estimator": "lmmse", "fft_size": 2, "snr_db": 3.0}, "fft_size"),
])
def test_bad_mcs_settings_say_what_to_do(kw, message):
    with pytest.raises(InputError, match=message):
        LinkConfig(**kw)


def test_rates_below_one_fifth_repeat_the_mother_code_and_deliver():
    cfg = LinkConfig(mcs=0, snr_db=-4.0, n=1024, estimator="perfect", **FAST).resolved()
    assert cfg.code_rate < 0.2 and cfg.ldpc_n < cfg.n and cfg.k / cfg.ldpc_n >= 0.2
    payload = os.urandom(40)
    received, stats = DigitalLink(cfg, seed=1).send_bytes(payload)
    assert received == payload and stats.coded_bits == stats.codewords * cfg.n and stats.mcs_index == 0


def test_auto_link_rebuilds_its_code_when_the_snr_moves(table):
    link = DigitalLink(LinkConfig(mcs="auto", snr_db=0.0, n=1024, estimator="perfect", bler_table=table, **FAST))
    low = (link.cfg.mcs_index, link.cfg.k)
    link.set_operating_point(snr_db=20.0)
    assert link.cfg.mcs_index > low[0] and link.random_bits(3).shape == (3, link.cfg.k)
    bits = link.random_bits(8)
    assert torch.equal(link.transmit(bits).bits_hat, bits)  # 20 dB: the new code decodes


# --- HARQ -------------------------------------------------------------------------------------------------
def test_harq_combines_transmissions_and_counts_every_one():
    """QPSK rate 1/2 needs about 1 dB on AWGN; at -3 dB one transmission fails, chase combining of four
    gains 6 dB and delivers; every retransmission costs frames, symbols and airtime."""
    base = {"modulation": "qpsk", "k": 512, "n": 1024, "snr_db": -3.0, "estimator": "perfect", **FAST}
    payload = os.urandom(256)
    once, s1 = DigitalLink(LinkConfig(**base), seed=3).send_bytes(payload)
    got, s4 = DigitalLink(LinkConfig(**base, max_transmissions=4), seed=3).send_bytes(payload)
    assert once != payload and s1.bler > 0.5 and s1.transmissions == 1
    assert got == payload and s4.bler == 0 and 2 <= s4.transmissions <= 4
    assert s4.codewords == math.ceil(8 * len(payload) / (512 - CRC_BITS))  # CRC24B in every codeword
    assert s4.codewords < s4.codeword_transmissions <= 4 * s4.codewords
    assert s4.coded_bits == s4.codeword_transmissions * 1024 and s4.total_symbols > s1.total_symbols
    assert s4.airtime_s == pytest.approx(s4.frames * s1.airtime_s / s1.frames)


def test_harq_stops_at_its_limit_and_reports_the_failure():
    cfg = LinkConfig(modulation="16qam", k=512, n=1024, snr_db=-5.0, estimator="perfect", max_transmissions=2, **FAST)
    payload = os.urandom(64)
    received, stats = DigitalLink(cfg, seed=0).send_bytes(payload)
    assert received != payload and stats.transmissions == 2 and stats.block_errors > 0
    assert stats.codeword_transmissions == 2 * stats.codewords


# --- the receiver estimates N0 -----------------------------------------------------------------------------
@pytest.mark.parametrize("channel", ["awgn", "tdl-a"])
def test_noise_estimate_from_the_pilots_is_unbiased(channel):
    link = AnalogLink(LinkConfig(channel=channel, estimator="lmmse", snr_db=10.0, **FAST), seed=0)
    ratios = []
    for seed in range(12):
        link.reseed(seed)
        link.send_values(torch.randn(2 * 144 * 32))
        ratios.append(link.transport.no_est / 0.1)
    assert abs(statistics.mean(ratios) - 1) < 0.04 and statistics.stdev(ratios) < 0.1


def test_estimate_noise_on_a_known_grid():
    gen = torch.Generator().manual_seed(0)
    pilots = torch.exp(1j * math.pi / 2 * torch.randint(0, 4, (2, 64), generator=gen)).to(torch.complex64)
    h = torch.exp(2j * math.pi * 0.01 * torch.arange(64))  # a slowly turning channel
    y = torch.zeros(200, 1, 1, 14, 64, dtype=torch.complex64)
    noise = (torch.randn(200, 2, 64, generator=gen) + 1j * torch.randn(200, 2, 64, generator=gen)) * math.sqrt(0.05 / 2)
    y[:, 0, 0, [2, 11], :] = (h * pilots + noise).to(torch.complex64)
    assert float(estimate_noise(y, pilots, (2, 11))) == pytest.approx(0.05, rel=0.02)


@pytest.mark.parametrize("channel, snr_db", [("awgn", -10.0), ("awgn", 20.0), ("tdl-a", 0.0), ("tdl-a", 20.0)])
def test_lmmse_reported_variance_matches_the_error(channel, snr_db):
    """No N0 is given to the receiver: the analog link's reported variance comes from its own estimate."""
    link = AnalogLink(LinkConfig(channel=channel, estimator="lmmse", snr_db=snr_db, **FAST), seed=1)
    reported = error = power = 0.0
    for seed in range(4):
        link.reseed(seed)
        v = torch.randn(link.values_per_batch * 4)
        est, var, _ = link.send_values(v)
        reported, error, power = reported + float(var.sum()), error + float((est - v).square().sum()), \
            power + float(v.square().sum())
    assert 0.8 <= reported / error <= 1.25


def test_perfect_csi_uses_the_true_noise_and_says_so():
    cfg = LinkConfig(channel="awgn", estimator="perfect", snr_db=5.0, **FAST)
    _, _, stats = AnalogLink(cfg, seed=0).send_values(torch.randn(500))
    assert stats.no_est == pytest.approx(cfg.noise_variance)


def test_analog_sweep_reports_the_variance_and_the_median_to_mean_gap(tmp_path):
    cfg = LinkConfig(channel="tdl-a", estimator="lmmse", snr_db=0.0, **FAST)
    result = run_sweep(cfg, tmp_path, scheme="analog", axis="snr_db", values=[0.0, 10.0], max_frames=64,
                       progress=False)
    for p in result["points"]:
        assert 0.7 < p["noise_var_reported"] / p["nmse"] < 1.4  # 64 frames of TDL-A: a loose check
        assert 0 < p["mse_median_to_mean"] < 1 and p["nmse_median"] == pytest.approx(p["nmse"] * p["mse_median_to_mean"])
        assert p["no_est"] == pytest.approx(10 ** (-p["snr_db"] / 10), rel=0.15)
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["points"][0]["noise_var_reported"] == result["points"][0]["noise_var_reported"]


def test_digital_sweep_records_the_mcs(tmp_path, table):
    cfg = LinkConfig(mcs="auto", snr_db=0.0, n=1024, estimator="perfect", bler_table=table, **FAST)
    result = run_sweep(cfg, tmp_path, scheme="digital", axis="snr_db", values=[0.0, 15.0], max_frames=16,
                       target_errors=5, progress=False)
    low, high = result["points"]
    assert low["mcs_index"] < high["mcs_index"] and high["modulation"] == "64qam" and high["code_rate"] > 0.5


# --- the shipped table against the link (slow) ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_BLER_TABLE.is_file(), reason="no shipped BLER table yet (scripts/make_bler_table.py)")
def test_auto_mcs_keeps_the_bler_target_at_every_snr(tmp_path):
    """First-transmission BLER of the MCS that `auto` picks, on the link the perfect-CSI table was measured
    with (its n and grid), at every SNR (below table 1's MCS 0, auto takes table 3's low-SE rows)."""
    table = BlerTable.shipped("perfect")
    s = table.settings
    grid = {"n": int(s.get("n", 3072)), "fft_size": int(s.get("fft_size", 128)), "cp_length": int(s.get("cp_length", 9))}
    cfg = LinkConfig(mcs="auto", snr_db=0.0, estimator="perfect", channel="awgn", **grid)
    snrs = [-5.0, -3.0, 0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0]
    for snr in snrs:
        picked = cfg.with_snr(snr_db=snr).resolved()
        assert table.bler(picked.mcs_index, snr, picked.mcs_table_used) <= 0.1
    frames = 400 * 128 // grid["fft_size"]  # about 300 codewords of QPSK at least
    result = run_sweep(cfg, tmp_path, scheme="digital", axis="snr_db", values=snrs, max_frames=frames,
                       target_errors=10_000, progress=False)
    for p in result["points"]:
        bler, blocks = p["bler"], p["blocks"]
        assert blocks >= 300
        # not significantly above the target (one-sided 2 sigma of the binomial at the target)
        assert bler <= 0.1 + 2 * math.sqrt(0.1 * 0.9 / blocks), p


@pytest.mark.slow
@pytest.mark.parametrize("channel", ["awgn", "tdl-a"])
def test_lmmse_reported_variance_holds_from_minus_10_to_20_db(tmp_path, channel):
    """The estimator's acceptance check: analog link, lmmse, no N0 given: reported / measured within 0.8..1.25 (mean over the
    sweep's frames) at every SNR; the median-to-mean gap is reported (scripts/plot_estimation.py plots it)."""
    cfg = LinkConfig(channel=channel, estimator="lmmse", snr_db=-10.0, fft_size=12, cp_length=1, batch=32)
    result = run_sweep(cfg, tmp_path, scheme="analog", axis="snr_db", values=[-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0],
                       max_frames=512, progress=False)
    for p in result["points"]:
        assert 0.8 <= p["noise_var_reported"] / p["nmse"] <= 1.25, p
        assert 0 < p["mse_median_to_mean"] <= 1.05
