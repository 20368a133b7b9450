"""`meg-phy demo` end to end on a tiny random SD folder and a random evaluator: comparison printed, report and
side-by-side picture written, the digital downlink's losses reported."""

import json
import sys
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from meg_phy.cli import main  # noqa: E402


def test_demo_compares_analog_and_digital_seeds_with_centralized(tmp_path, capsys):
    from meg_phy.evaluator import AttributeClassifier, save_evaluator
    from meg_phy.scenes import ATTRIBUTES

    torch.manual_seed(0)
    save_evaluator(AttributeClassifier(ATTRIBUTES), tmp_path / "evaluator")
    model = make_tiny_sd(tmp_path / "tiny")
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--evaluator", str(tmp_path / "evaluator"), "--tasks", "2",
                 "--snr-db", "-8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "EIUG, analog seed" in printed and "CENTRALIZED, digital image" in printed
    summary = json.loads((out / "demo.json").read_text())["variants"]
    analog, digital, central = summary
    assert analog["payloads_lost"] == 0 and digital["payloads_lost"] == 2  # the digital seed falls off its cliff at -8 dB
    assert analog["downlink_symbols"] * 10 < central["downlink_symbols"]
    picture = Image.open(out / "demo.png")
    assert picture.size[0] > 4 * picture.size[1] / 2  # five images per row, two rows
    assert "| EIUG, analog seed |" in (out / "report.md").read_text()
