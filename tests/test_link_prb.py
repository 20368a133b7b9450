"""Wider carriers: `prb` resource blocks per slot, TS 38.214 transport blocks and code-block segmentation."""

import os

import pytest

from link_models.config import LinkConfig
from link_models.digital import DigitalLink
from link_models.mcs import mcs, transport_block
from meg_common.errors import InputError


@pytest.mark.parametrize("index, table, res, bits, expected", [
    # N_RE = 144 (1 PRB, 12 data symbols), table 1 MCS 9 (QPSK, R = 679/1024): N_info = 190.97, n = 3,
    # N'_info = 8 floor(190.97 / 8) = 184, the closest TBS >= 184 in table 5.1.3.2-1: 184 (one code block).
    (9, 1, 144, 2, (184, 1)),
    # 52 PRB: N_RE = 7488; table 2 MCS 27 (256-QAM, R = 948/1024): N_info = 55458.6 > 3824, n = 10,
    # N'_info = 1024 round(55434.6 / 1024) = 55296, C = ceil(55320 / 8424) = 7,
    # TBS = 8 C ceil(55320 / (8 C)) - 24 = 56 * 988 - 24 = 55304.
    (27, 2, 7488, 8, (55304, 7)),
    # 52 PRB, table 1 MCS 0 (QPSK, R = 120/1024): N_info = 1755, n = 4, N'_info = 16 floor(1755 / 16) = 1744,
    # the closest TBS >= 1744 in table 5.1.3.2-1: 1800.
    (0, 1, 7488, 2, (1800, 1)),
])
def test_transport_block_sizes_match_ts_38_214(index, table, res, bits, expected):
    tb = transport_block(mcs(index, table), res * bits)
    assert (tb["tb_size"], tb["num_cb"]) == expected


def test_prb_sizes_the_code_blocks_of_a_slot():
    cfg = LinkConfig(prb=52, mcs=27, mcs_table=2, channel="awgn", snr_db=30.0, max_transmissions=4).resolved()
    assert cfg.fft_size == 624
    assert (cfg.tb_size, cfg.num_cb, cfg.modulation) == (55304, 7, "256qam")
    assert cfg.k == 7928 and cfg.n == 7488 * 8 // 7 // 8 * 8  # each code block its share of the slot


def test_52_prb_carry_2_kb_in_one_slot_with_table_2():
    """--prb 52 at 30 kHz (20 MHz): a 2 kB payload in one slot at high SNR with a 256-QAM MCS of table 2,
    through OLLA (mcs 'auto', table 2) and through the fixed MCS."""
    payload = os.urandom(2048)
    for mcs_setting in ("auto", 27):
        cfg = LinkConfig(prb=52, mcs=mcs_setting, mcs_table=2, channel="awgn", snr_db=35.0, estimator="ls",
                         max_transmissions=4)
        link = DigitalLink(cfg, seed=0)
        received, stats = link.send_bytes(payload)
        assert received == payload
        assert stats.frames == 1 and stats.modulation == "256qam" and stats.mcs_table == 2


def test_prb_out_of_range_is_one_line():
    with pytest.raises(InputError, match="prb"):
        LinkConfig(prb=300, mcs=5, snr_db=5.0)
