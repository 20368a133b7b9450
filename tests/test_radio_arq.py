"""A digital radio link retransmits its failed frames itself (selective-repeat ARQ, every transmission on
air) and adapts its MCS with the BLER table measured over the air, so the over-the-air CENTRALIZED series
is the best standard system on a radio, not one handicapped by the link-level table."""

import numpy as np
import pytest

from link_models import LinkConfig
from link_models.ota.radio_link import RadioLink
from sdr_drivers.sim import REALISTIC, SimRadio

PAYLOAD = bytes(np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8))


def radio_link(snr_db, transmissions, seed=6, mcs=20):
    cfg = LinkConfig(mcs=mcs, n=1008, snr_db=snr_db, max_transmissions=transmissions)
    return RadioLink(SimRadio(snr_db=snr_db, channel="awgn", seed=seed, **REALISTIC), cfg, seed=seed)


def test_failed_frames_are_sent_again_until_they_arrive_and_every_transmission_counts():
    # 64-QAM rate 0.55 at 12.5 dB over the impaired radio (codeword BLER about 7 %): first transmissions lose frames
    once, first = radio_link(12.5, 1).send_bytes(PAYLOAD)
    assert once != PAYLOAD and first.block_errors > 0 and first.transmissions == 1
    link = radio_link(12.5, 4)
    assert link.harq and not radio_link(12.5, 1).harq
    got, stats = link.send_bytes(PAYLOAD)
    assert got == PAYLOAD and stats.block_errors == 0 and stats.transmissions > 1
    resent = len(link.last_transfer.retransmitted)
    assert resent > 0 and stats.frames == len(link.last_transfer.sent) + resent
    assert stats.codeword_transmissions > stats.codewords
    assert stats.total_symbols > first.total_symbols and stats.airtime_s > first.airtime_s  # resends are on air


def test_a_clean_link_sends_each_frame_once():
    link = radio_link(30.0, 4)
    got, stats = link.send_bytes(PAYLOAD)
    assert got == PAYLOAD and stats.transmissions == 1 and link.last_transfer.retransmitted == []
    assert stats.codeword_transmissions == stats.codewords


def test_retransmissions_stop_at_the_limit():
    got, stats = radio_link(8.0, 2).send_bytes(PAYLOAD)   # far below this MCS's threshold
    assert got != PAYLOAD and stats.transmissions == 2


def test_radio_hops_adapt_with_the_over_the_air_table():
    from flowgraphs.config import LinkSpec
    from flowgraphs.radio_link import RADIO_BLER_TABLE, radio_link_factory
    from link_models.mcs import LinkAdaptation

    if not RADIO_BLER_TABLE.is_file():
        pytest.fail(f"{RADIO_BLER_TABLE} is missing: make it with scripts/make_bler_table.py --radio sim --tables 1")
    factory = radio_link_factory("sim")
    radio_choice = LinkAdaptation(table=1, bler_table=str(RADIO_BLER_TABLE))
    picks = {}
    for snr in (2.0, 12.0, 20.0):
        link = factory(LinkSpec(scheme="digital", channel="awgn", snr_db=snr), 3)
        assert link.cfg.mcs_index == radio_choice.select(snr) and link.harq
        picks[snr] = link.cfg.mcs_index
    assert picks[2.0] < picks[12.0] <= picks[20.0]


def test_an_analog_hop_whose_every_frame_went_missing_is_not_delivered():
    import torch

    from flowgraphs.config import LinkSpec
    from flowgraphs.hops import Hop
    from flowgraphs.radio_link import radio_link_factory

    factory = radio_link_factory("sim", low_snr_below_db=None)     # the legacy frame at every SNR
    values = torch.randn(256, generator=torch.Generator().manual_seed(0))
    records = {}
    for snr in (-5.0, 10.0):   # below the legacy frame's floor no frame is found; at 10 dB every one is
        hop = Hop("ES1-UE-seed", "ES1", "UE", "seed", LinkSpec(scheme="analog", channel="awgn", snr_db=snr), 3,
                  factory)
        _, _, records[snr] = hop.send_values(values)
    assert not records[-5.0].delivered and records[10.0].delivered
    # the default factory sends below 2 dB in the low-SNR burst mode, which arrives at -5 dB
    hop = Hop("ES1-UE-seed", "ES1", "UE", "seed", LinkSpec(scheme="analog", channel="awgn", snr_db=-5.0), 3,
              radio_link_factory("sim"))
    assert hop.send_values(values)[2].delivered


def test_a_radio_hop_reports_the_mcs_it_used():
    _, stats = radio_link(30.0, 1, mcs=24).send_bytes(PAYLOAD)
    assert (stats.mcs_index, stats.modulation) == (24, "64qam") and 0.7 < stats.code_rate < 0.8
