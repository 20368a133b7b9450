"""The full matrix from the command line: all ten protocols with default settings at SNRs from -10 to 30 dB,
on AWGN and TDL-A, with n = 1..4 ESs where it applies (slow: `pytest -m slow`). Uses the embedded model when
it is there, else the tiny random SD folder."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.protocols import PROTOCOLS, SINGLE_ES  # noqa: E402
from meg_phy.cli import main  # noqa: E402
from meg_phy.models import DEFAULT_MODEL_DIR  # noqa: E402

MATRIX = [(name, channel, n) for name in PROTOCOLS for channel in ("awgn", "tdl-a")
          for n in ((1,) if name in SINGLE_ES else (1, 2, 3, 4))]


@pytest.fixture(scope="module")
def model_args(tmp_path_factory):
    if (DEFAULT_MODEL_DIR / "model_index.json").exists():
        return []
    return ["--model", str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))]


@pytest.mark.slow
@pytest.mark.parametrize("name, channel, n", MATRIX)
def test_every_protocol_at_every_snr(model_args, tmp_path, name, channel, n):
    for snr in (-10, 0, 15, 30):
        out = tmp_path / f"{snr}"
        assert main(["run", "--protocol", name.lower(), "--channel", channel, "--snr-db", str(snr), "--n-es", str(n),
                     *model_args, "--out", str(out)]) == 0
        result = json.loads((out / "result.json").read_text())
        hops = result["hops"]
        air = [h for h in hops if h["medium"] == "air"]  # backhaul hops are wired: no channel, no SNR
        assert air and all(h["snr_db"] == snr and h["channel"] == channel and h["attempts"] >= 1 for h in air)
        assert all(h["direction"] == "backhaul" and h["symbols"] == 0 for h in hops if h["medium"] == "wired")
        assert result["totals"]["symbols"] == sum(h["symbols"] for h in hops)
        assert sum(c["steps"] for c in result["compute"].values()) > 0
        assert len(result["compute"]) == 1 + (1 if name in SINGLE_ES else n)
        if snr == 30:  # far above every cliff (even in a TDL-A fade): everything arrives at the first try
            assert all(h["delivered"] for h in hops) and all(h["attempts"] == 1 for h in air)
            # (a wired border hop of the first joint round carries the tile and its noise level: 2 sends)
        assert (out / "output.png").exists() and (out / "reference.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["EIUG", "DIUG"])
def test_protocols_run_over_the_simulated_radio(model_args, tmp_path, name):
    out = tmp_path / name
    assert main(["run", "--protocol", name, "--radio", "sim", "--snr-db", "25", *model_args, "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["radio"] == "sim"
    assert all(h["delivered"] and h["symbols"] > 0 for h in result["hops"])
