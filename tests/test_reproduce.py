"""`meg-phy reproduce` on a tiny random SD folder and a random evaluator (the wiring, not the numbers):
every series and SNR becomes a row, all ten protocols get an overhead row, plots and report are written,
and an interrupted sweep resumes from its checkpoints."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.experiments import case_study  # noqa: E402
from meg_phy.cli import main  # noqa: E402

ROW_KEYS = {"protocol", "payload", "scheme", "snr_db", "prompt_accuracy", "psnr_db", "ssim", "symbols", "bits"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from meg_phy.evaluator import AttributeClassifier, save_evaluator
    from meg_phy.scenes import ATTRIBUTES

    root = tmp_path_factory.mktemp("assets")
    torch.manual_seed(0)
    save_evaluator(AttributeClassifier(ATTRIBUTES), root / "evaluator")
    return str(make_tiny_sd(root / "tiny")), str(root / "evaluator")


def test_reproduce_writes_every_point_and_resumes(assets, tmp_path, capsys):
    model, evaluator = assets
    out = tmp_path / "case"
    series = "seed-analog-aware,seed-digital,sketch-analog,centralized-digital"
    args = ["reproduce", "--model", model, "--evaluator", evaluator, "--snr-db=-10,20", "--tasks", "1",
            "--series", series, "--out", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert len(rows) == 4 * 2 and all(ROW_KEYS <= set(r) for r in rows)
    assert {(r["payload"], r["scheme"]) for r in rows} == {("seed", "analog"), ("seed", "digital"), ("sketch", "analog"),
                                                            ("image", "digital")}
    assert {s.key for s in case_study.SERIES} >= set(series.split(","))
    by = {(r["series"], r["snr_db"]): r for r in rows}
    # the digital cliff: at -10 dB the seed does not arrive (and says so); at 20 dB it arrives exactly
    assert by[("seed-digital", -10.0)]["downlink_delivered"] == 0
    assert by[("seed-digital", 20.0)]["downlink_delivered"] == 1 and by[("seed-digital", 20.0)]["psnr_db"] is None
    assert by[("seed-digital", -10.0)]["symbols"] > by[("seed-digital", 20.0)]["symbols"]  # retries cost air time
    table = results["overhead"]
    assert len(table) == 40 and {r["protocol"] for r in table} == {"CENTRALIZED", "UIEG", "EIUG", "CIAG", "ESUC", "UIDG",
                                                                   "DIUG", "DSUC", "UIDCG", "DCSUC"}
    assert all(r["ratio_to_centralized"] == 1 for r in table if r["protocol"] == "CENTRALIZED")
    report = (out / "report.md").read_text()
    assert results["versions"]["commit"].split("-")[0] in report and "## Overhead of every protocol" in report
    for png in ("case_study.png", "overhead.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out

    # interrupted after some points: only the missing ones are run again, with the same numbers
    points = sorted((out / "points").iterdir())
    victim = points[3]
    kept = {p: p.stat().st_mtime_ns for p in points if p != victim}
    before = json.loads(victim.read_text())
    victim.unlink()
    os.remove(out / "results.json")
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert json.loads(victim.read_text()) == before


def test_a_folder_of_another_sweep_is_not_mixed_in(assets, tmp_path, capsys):
    model, evaluator = assets
    out = tmp_path / "case"
    (out).mkdir()
    (out / "plan.json").write_text(json.dumps({"snrs": [1.0]}))
    assert main(["reproduce", "--model", model, "--evaluator", evaluator, "--tasks", "1", "--out", str(out)]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert main(["reproduce", "--series", "seed-quantum", "--out", str(tmp_path / "x")]) == 2
    assert "unknown ['seed-quantum']" in capsys.readouterr().err
