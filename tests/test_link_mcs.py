"""5G NR MCS tables (TS 38.214 through Sionna) and the link-adaptation rule on BLER tables."""

import json
import math

import pytest

from link_models.mcs import DEFAULT_BLER_TABLE, BlerTable, LinkAdaptation, mcs, mcs_table, transport_block
from meg_common.errors import InputError


def test_mcs_rows_follow_ts_38_214():
    # TS 38.214 Table 5.1.3.1-1 (MCS 0, 9, 10, 17, 28) and Table 5.1.3.1-2 (MCS 20, 27): Qm and R x 1024
    for (table, index), (modulation, r1024) in {
        (1, 0): ("qpsk", 120), (1, 9): ("qpsk", 679), (1, 10): ("16qam", 340), (1, 17): ("64qam", 438),
        (1, 28): ("64qam", 948), (2, 20): ("256qam", 682.5), (2, 27): ("256qam", 948), (3, 0): ("qpsk", 30),
    }.items():
        m = mcs(index, table)
        assert (m.modulation, m.code_rate * 1024) == (modulation, r1024)
        assert m.spectral_efficiency == pytest.approx(m.bits_per_symbol * r1024 / 1024)
    assert len(mcs_table(1)) == 29 and len(mcs_table(2)) == 28
    se = [m.spectral_efficiency for m in mcs_table(1)]
    assert all(a <= b + 0.01 for a, b in zip(se, se[1:], strict=False))  # MCS 16 -> 17 dips by 0.004
    assert mcs(11, 1).key == mcs(5, 2).key == "4:378"  # equal rows of two tables share one BLER curve


def test_mcs_block_and_shannon_threshold():
    m = mcs(16, 1)  # 16-QAM, R = 658/1024
    k, n = m.block(3072)
    assert n == 3072 and k == round(658 / 1024 * 3072)
    assert m.shannon_snr_db == pytest.approx(10 * math.log10(2 ** (4 * 658 / 1024) - 1))
    with pytest.raises(InputError, match="1/5"):
        mcs(0, 1).block(3072)


def test_transport_block_size_from_sionna():
    tb = transport_block(mcs(16, 1), 4800)
    assert tb["tb_size"] == pytest.approx(4800 * 658 / 1024, rel=0.02)  # N_info = N R, quantised (5.1.3.2)
    assert tb["num_cb"] * tb["cb_size"] >= tb["tb_size"] + tb["tb_crc_length"]


def test_bad_mcs_input_is_an_input_error():
    with pytest.raises(InputError, match="1024-QAM"):
        mcs(3, 4)
    with pytest.raises(InputError, match="mcs_index"):
        mcs(29, 1)
    with pytest.raises(InputError, match="target"):
        LinkAdaptation(target=1.5, fixed=3)


def _table(curves):
    """A BLER table dict with curves {index: (threshold_db, slope per dB)}: log10 BLER falls linearly."""
    data = {"settings": {}, "curves": {}, "tables": {"1": {}}, "mcs": {}}
    for index, (start, slope) in curves.items():
        points = []
        for j in range(8):
            snr = start + 0.5 * j
            bler = min(1.0, 10 ** (-slope * 0.5 * j))
            points.append({"snr_db": snr, "codewords": 10_000, "block_errors": round(bler * 10_000)})
        data["curves"][f"c{index}"] = {"points": points}
        data["tables"]["1"][str(index)] = f"c{index}"
    return data


def test_link_adaptation_picks_the_highest_mcs_within_target():
    # MCS i reaches BLER 0.1 at 2i + 1 dB (log10 BLER falls by 1 per dB from 1 at 2i dB)
    table = BlerTable(_table({i: (2.0 * i, 1.0) for i in range(6)}))
    la = LinkAdaptation(bler_table=table, target=0.1)
    assert la.select(-10.0) == 0            # nothing meets the target: the lowest MCS
    assert la.select(1.0) == 0               # MCS 0 exactly at 0.1
    assert la.select(3.2) == 1
    assert la.select(5.0) == 2
    assert la.select(30.0) == 5
    assert table.bler(2, 4.5) == pytest.approx(10 ** -0.5, rel=1e-3)  # interpolated in log BLER
    assert table.bler(2, 3.0) == 1.0         # below the measured range: BLER 1
    assert LinkAdaptation(bler_table=table, target=0.01).select(5.0) == 1
    assert LinkAdaptation(fixed=7).select(-5.0) == 7


def test_link_adaptation_is_monotone_despite_noisy_points():
    data = _table({0: (0.0, 1.0), 1: (2.0, 1.0)})
    data["curves"]["c1"]["points"][3]["block_errors"] = 9000  # a noisy bump above the target
    table = BlerTable(data)
    assert table.bler(1, 3.5) <= table.bler(1, 3.0)
    assert LinkAdaptation(bler_table=table).select(3.5) == 1


def test_missing_table_is_an_input_error_naming_the_command(tmp_path):
    with pytest.raises(InputError, match="make_bler_table"):
        LinkAdaptation(bler_table=tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"curves": 3}))
    with pytest.raises(InputError, match="malformed"):
        BlerTable(bad)


@pytest.mark.skipif(not DEFAULT_BLER_TABLE.is_file(), reason="BLER table not generated yet")
def test_shipped_table_is_ordered_by_spectral_efficiency():
    table = BlerTable()
    la = LinkAdaptation()
    picks = [la.select(s) for s in range(-10, 31)]
    assert all(a <= b for a, b in zip(picks, picks[1:], strict=False))
    assert picks[0] == min(table.indices(1)) and picks[-1] == max(table.indices(1))
    for index in table.indices(1):  # a code cannot beat capacity: BLER at the Shannon threshold is ~1
        assert table.bler(index, mcs(index, 1).shannon_snr_db - 0.01) > 0.5


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_BLER_TABLE.is_file(), reason="BLER table not generated yet")
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 5.0, 10.0, 20.0])
def test_link_adaptation_holds_the_bler_target_on_the_link(snr_db):
    # the MCS picked for an SNR, on the same link the table was measured with: BLER <= 10 % (+ sampling)
    from link_models import DigitalLink, LinkConfig

    table = BlerTable()
    la = LinkAdaptation(bler_table=table)
    m = la.mcs(snr_db)
    if m.code_rate < 0.2:
        pytest.skip(f"MCS {m.index} needs 5G bit repetition, which DigitalLink lacks")
    k, n = m.block(table.settings["n"])
    fields = {"decoder": table.settings["decoder"]} if "decoder" in LinkConfig.__dataclass_fields__ else {}
    link = DigitalLink(LinkConfig(modulation=m.modulation, k=k, n=n, channel="awgn", estimator="perfect",
                                  snr_db=snr_db, device="cpu", **fields), seed=11)
    bits, bits_hat = link(400)
    bler = float((bits != bits_hat).any(dim=1).float().mean())
    assert bler <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / 400), (m.index, bler)
