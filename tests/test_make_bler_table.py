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
