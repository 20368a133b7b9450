"""`meg-phy reproduce --batched`: units of single-ES protocols run as one batch (Plan.batched), on a tiny
random SD folder and a random evaluator (the wiring, not the numbers). The batched case study gives the
task-by-task one up to the model kernels' float rounding: every discrete number equal, scores close."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_evaluator, make_tiny_sd  # noqa: E402

from flowgraphs.commands.reproduce import plan_from_args  # noqa: E402
from meg_phy.cli import build_parser, main  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    make_tiny_evaluator(root / "evaluator")
    return str(make_tiny_sd(root / "tiny")), str(root / "evaluator")


def test_batched_flag_sets_the_plan_and_refuses_what_it_cannot_batch(tmp_path, capsys):
    parser = build_parser()
    assert plan_from_args(parser.parse_args(["reproduce", "--batched", "--out", str(tmp_path)])).batched
    assert not plan_from_args(parser.parse_args(["reproduce", "--out", str(tmp_path)])).batched
    quick = plan_from_args(parser.parse_args(["reproduce", "--quick", "--out", str(tmp_path)]))
    assert quick.batched and quick.runtime == "auto"          # --quick batches, the UNet where it runs fastest
    assert plan_from_args(parser.parse_args(["reproduce", "--quick", "--runtime", "torch", "--out",
                                             str(tmp_path)])).runtime == "torch"
    assert main(["reproduce", "--batched", "--placement", "ray", "--out", str(tmp_path / "a")]) == 2
    assert "choose one" in capsys.readouterr().err
    assert main(["reproduce", "--batched", "--bandwidth", "--out", str(tmp_path / "b")]) == 2
    assert "not to --bandwidth" in capsys.readouterr().err


def test_mcs_option_sets_the_plan_and_refuses_an_unknown_index(tmp_path, capsys):
    parser = build_parser()

    def mcs(value):
        return plan_from_args(parser.parse_args(["reproduce", "--mcs", value, "--out", str(tmp_path)])).mcs

    assert (mcs("5"), mcs("auto"), mcs("table"), mcs("none")) == (5, "auto", "table", "none")
    assert main(["reproduce", "--mcs", "99", "--out", str(tmp_path / "x")]) == 2
    assert "mcs" in capsys.readouterr().err


def test_batched_reproduce_runs_batches_and_matches_task_by_task(assets, tmp_path, monkeypatch):
    import flowgraphs.runner

    model, evaluator = assets
    batches = []
    run_batch = flowgraphs.runner.run_batch

    def counted(configs, tasks, session=None, flow=None):
        batches.append((configs[0].protocol, len(configs)))
        return run_batch(configs, tasks, session, flow)

    monkeypatch.setattr(flowgraphs.runner, "run_batch", counted)
    args = ["reproduce", "--model", model, "--evaluator", evaluator, "--tasks", "3", "--snr-db=0",
            "--series", "seed-analog-aware,centralized-digital", "--channels", "awgn", "--kinds", "img2img-ue"]
    assert main([*args, "--batched", "--out", str(tmp_path / "batched")]) == 0
    # the protocols run as one batch each; the baselines and sceptics task by task (batches of one)
    assert sorted(b for b in batches if b[1] > 1) == [("CENTRALIZED", 3), ("EIUG", 3)]
    assert sum(n == 1 for _, n in batches) == len(batches) - 2
    batches.clear()
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert batches and all(n == 1 for _, n in batches)
    plans = [json.loads((tmp_path / d / "plan.json").read_text()) for d in ("batched", "one")]
    assert plans[0].pop("batched") is True and plans[0] == plans[1]
    rows = [json.loads((tmp_path / d / "results.json").read_text())["rows"] for d in ("batched", "one")]
    assert len(rows[0]) == len(rows[1]) >= 4
    for a, b in zip(*rows, strict=True):
        for key, value in a.items():
            if key.endswith("seconds"):
                continue
            if key in ("fidelity", "feature_distance", "psnr_db", "ssim"):
                assert value["value"] == pytest.approx(b[key]["value"], rel=1e-3, abs=1e-4), (a["series"], key)
            elif key == "quality":   # the same figures grouped (realism: a distance between embeddings)
                for metric, m in value.items():
                    if m is not None and m.get("value") is not None:
                        assert m["value"] == pytest.approx(b[key][metric]["value"], rel=1e-3, abs=1e-3), metric
            else:
                assert value == b[key], (a["series"], key)
