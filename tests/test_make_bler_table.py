"""scripts/make_bler_table.py: tiny tables (one per estimator) measured with DigitalLink on the hop's link,
resumed, read by LinkAdaptation."""

import importlib.util
import json
from pathlib import Path

import pytest

from link_models.config import MCS_MIN_INFO_BITS
from link_models.mcs import BlerTable, LinkAdaptation, mcs

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_bler_table.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_bler_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_table_scans_from_shannon_threshold_resumes_and_feeds_link_adaptation(script, tmp_path):
    out = tmp_path / "bler.json"
    args = ["--out", str(out), "--estimator", "perfect", "--tables", "1", "--mcs", "1,5", "--n", "240",
            "--max-codewords", "64", "--target-errors", "20", "--batch", "1", "--decoder", "sionna", "--no-progress"]
    assert script.main(args) == 0
    data = json.loads(out.read_text())
    assert data["settings"]["estimator"] == "perfect" and data["settings"]["fft_size"] == 12
    curves = data["curves"]
    assert set(curves) == {mcs(1).key, mcs(5).key} and all(c["done"] for c in curves.values())
    low = curves[mcs(1).key]  # R = 157/1024 < 1/5: the link repeats the rate-1/5 mother code, as a hop does,
    # in a codeword lengthened from n = 240 until it carries MCS_MIN_INFO_BITS, as a hop's is
    assert low["method"] == "repetition" and low["n"] > 240 and low["k"] >= MCS_MIN_INFO_BITS
    assert 5 * low["k"] - 2 < low["ldpc_n"] <= 5 * low["k"]
    for key, curve in curves.items():
        points = curve["points"]
        snrs = [p["snr_db"] for p in points]
        assert snrs == sorted(snrs) and all(abs(b - a - 0.5) < 1e-9 for a, b in zip(snrs, snrs[1:], strict=False))
        assert min(snrs) <= curve["shannon_snr_db"] + 0.5         # the scan starts at the Shannon threshold
        assert points[0]["bler"] >= 0.95 or min(snrs) < curve["shannon_snr_db"]
        assert points[-1]["bler"] <= 0.01, key                       # ... and ends below 1 %
    before = out.read_text()
    assert script.main([*args, "--plot", str(tmp_path / "bler.png")]) == 0  # resumed: nothing to do
    assert (tmp_path / "bler.png").stat().st_size > 10_000
    assert json.loads(out.read_text())["curves"] == json.loads(before)["curves"]
    assert script.main([*args[:-1], "--target-errors", "21", "--no-progress"]) == 2  # other settings: refused
    la = LinkAdaptation(bler_table=BlerTable(out), table=1)
    assert la.select(-20.0) == 1 and la.select(20.0) == 5
    # several estimators need one file each
    assert script.main([*args[:2], "--estimator", "perfect,lmmse", *args[4:]]) == 2
    many = str(tmp_path / "bler_{estimator}.json")
    assert script.main(["--out", many, "--estimator", "lmmse", *args[4:]]) == 0
    lmmse = json.loads((tmp_path / "bler_lmmse.json").read_text())
    assert lmmse["settings"]["estimator"] == "lmmse" and all(c["done"] for c in lmmse["curves"].values())


def test_a_fading_channel_gets_a_table_of_its_own_that_the_open_loop_reads(script, tmp_path, monkeypatch):
    """--channel tdl-a --speed-mps: block-fading curves into bler_table_{estimator}_tdl-a.json; the open loop
    (mcs 'table') on TDL-A reads it, OLLA's inner loop and other channels keep the AWGN table."""
    import link_models.mcs as mcs_module
    from link_models.config import link_adaptation

    args = ["--channel", "tdl-a", "--speed-mps", "3", "--estimator", "perfect", "--tables", "1", "--mcs", "5",
            "--max-codewords", "32", "--target-errors", "8", "--batch", "4", "--step-db", "4", "--no-progress"]
    monkeypatch.setattr(mcs_module, "DATA", tmp_path)
    for cached in (mcs_module._shipped, mcs_module._shipped_channel, link_adaptation):
        cached.cache_clear()
    try:
        assert script.main(args) == 0
        path = tmp_path / "bler_table_perfect_tdl-a.json"
        data = json.loads(path.read_text())
        assert data["settings"]["channel"] == "tdl-a" and data["settings"]["speed_mps"] == 3.0
        curve = data["curves"][mcs(5).key]
        assert curve["done"] and all(abs(b["snr_db"] - a["snr_db"] - 4) < 1e-9
                                     for a, b in zip(curve["points"], curve["points"][1:], strict=False))
        table = BlerTable.shipped("perfect", "tdl-a")
        assert table.indices(1) == [5] and table.channel == "tdl-a"
        assert link_adaptation(1, 0.1, None, "perfect", "tdl-a").bler_table is table
    finally:
        for cached in (mcs_module._shipped, mcs_module._shipped_channel, link_adaptation):
            cached.cache_clear()


@pytest.mark.parametrize("channel", ["tdl-a", "cdl-a"])
def test_the_shipped_fading_tables_are_what_the_open_loop_reads_on_their_channel(channel):
    """The shipped LMMSE tables of TDL-A and CDL-A (the hop's link, block fading at 3 km/h, table 1 MCS 0, 4, ...,
    28): every curve finished, and `mcs='table'` on that channel picks from it (at 10 dB an MCS whose measured
    BLER there is at most 10 %, far below AWGN's choice: a fading channel needs more SNR for the same MCS)."""
    from link_models.config import LinkConfig

    table = BlerTable.shipped("lmmse", channel)
    assert table.channel == channel and table.settings["channel"] == channel
    assert table.settings["speed_mps"] == pytest.approx(0.833) and table.indices(1) == list(range(0, 29, 4))
    hop = dict(estimator="lmmse", fft_size=12, cp_length=1, k=512, n=1024, max_transmissions=4)
    picked = LinkConfig(channel=channel, mcs="table", snr_db=10.0, **hop).resolved()
    awgn = LinkConfig(channel="awgn", mcs="table", snr_db=10.0, **hop).resolved()
    assert picked.mcs_table_used == 1 and picked.mcs_index in table.indices(1)
    assert table.bler(picked.mcs_index, 10.0, 1) <= 0.1 < table.bler(picked.mcs_index + 4, 10.0, 1)
    assert awgn.mcs_index >= picked.mcs_index + 8
