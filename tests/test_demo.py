"""`meg-phy demo` end to end on a tiny random SD folder and a random evaluator: the comparison printed with the
sceptics that fit the task (ue-local, noise-seed@10) beside the protocols, report and side-by-side picture written."""

import json
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_evaluator, make_tiny_sd  # noqa: E402

from meg_phy.cli import main  # noqa: E402


def test_demo_shows_protocols_beside_the_sceptics_that_fit_the_task(tmp_path, capsys):
    make_tiny_evaluator(tmp_path / "evaluator")
    model = make_tiny_sd(tmp_path / "tiny")
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--evaluator", str(tmp_path / "evaluator"), "--tasks", "2",
                 "--snr-db", "-8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "EIUG, analog seed" in printed and "CENTRALIZED, digital image" in printed
    assert "ue-local" in printed and "nothing on air" in printed and "noise-seed@10" in printed
    summary = json.loads((out / "demo.json").read_text())["variants"]
    analog, digital, central, alone, told = summary
    assert analog["payloads_lost"] == 0
    assert analog["downlink_symbols"] < central["downlink_symbols"]   # (the seed's header is charged on air too)
    # img2img with the image at the UE: the do-nothing sceptic finishes the task from that image
    assert alone["series"] == "ue-local" and alone["symbols"] == 0 and alone["downlink_symbols"] == 0
    assert alone["ue_steps"] == int(20 * 0.75) and analog["ue_steps"] > 0  # the UE alone runs every img2img step
    assert told["series"] == "noise-seed@10" and 0 < told["symbols"] == told["downlink_symbols"]
    assert told["ue_steps"] == int(10 * 0.75) and told["payloads_lost"] == 0
    assert all(0 <= s["fidelity"] <= 1 for s in summary)
    picture = Image.open(out / "demo.png")
    assert picture.size[0] > 6 * picture.size[1] / 2  # seven images per row, two rows
    report = (out / "report.md").read_text()
    assert "| EIUG, analog seed |" in report and "| ue-local (UE alone with its image, 0 symbols) |" in report
