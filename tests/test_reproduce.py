"""`meg-phy reproduce` on a tiny random SD folder and a random evaluator (the wiring, not the numbers): the
results.json contract (rows with intervals, both baselines in every task kind, claims with verdicts), one
reference per task that an ideal split run reproduces, zero-transmission baselines, plots and report, resume
from the stored units, and (marked `ray`) identical results with the Ray executor."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_evaluator, make_tiny_sd  # noqa: E402

from flowgraphs.experiments import case_study as cs  # noqa: E402
from meg_phy.cli import main  # noqa: E402

ROW_KEYS = {"series", "protocol", "payload", "scheme", "task_kind", "channel", "snr_db", "n_es", "n",
            "prompt_accuracy", "fidelity", "psnr_db", "ssim", "ue_steps", "symbols"}
CI_KEYS = {"value", "ci_low", "ci_high"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", "/tmp/mpl"),
       "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    make_tiny_evaluator(root / "evaluator")
    return str(make_tiny_sd(root / "tiny")), str(root / "evaluator")


def small(model, evaluator, out, *extra):
    return ["reproduce", "--model", model, "--evaluator", evaluator, "--tasks", "2", "--snr-db=-10,20",
            "--series", "seed-analog-aware,centralized-digital", "--channels", "awgn",
            "--kinds", "text-to-image,img2img-ue", "--out", str(out), *extra]


def test_reproduce_contract_baselines_verdicts_and_resume(assets, tmp_path, capsys):
    model, evaluator = assets
    out = tmp_path / "case"
    assert main(small(model, evaluator, out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert {"rows", "claims", "config", "versions"} <= set(results)
    rows = results["rows"]
    assert all(ROW_KEYS <= set(r) for r in rows)
    for r in rows:
        assert r["n"] == 2
        for key in ("prompt_accuracy", "fidelity", "psnr_db", "ssim", "ue_steps"):
            assert CI_KEYS <= set(r[key])
        assert 0 <= r["prompt_accuracy"]["k"] <= 2 and set(r["symbols"]) == {"uplink", "downlink", "backhaul", "air",
                                                                                            "control"}
        lo, hi = r["prompt_accuracy"]["ci_low"], r["prompt_accuracy"]["ci_high"]
        assert lo <= r["prompt_accuracy"]["value"] <= hi
    by = {(r["task_kind"], r["series"], r["snr_db"]): r for r in rows}
    for kind in ("text-to-image", "img2img-ue"):
        for base in ("prompt-only", "ue-local"):  # both baselines in every task kind, nothing on air
            row = by[(kind, base, None)]
            assert row["symbols"] == {"uplink": 0, "downlink": 0, "backhaul": 0, "air": 0, "control": 0}
            assert row["ue_steps"]["value"] > 0 and row["es_steps"]["value"] == 0
        seed = by[(kind, "seed-analog-aware", -10.0)]
        assert seed["symbols"]["downlink"] > 0 and seed["es_steps"]["value"] > 0
        assert seed["symbols"]["air"] == seed["symbols"]["uplink"] + seed["symbols"]["downlink"]
        assert "fidelity" in seed["paired"]["prompt-only"]
    # prompt-only ignores the input image: the same run in both kinds; ue-local of text-to-image is prompt-only
    t2i, i2i = by[("text-to-image", "prompt-only", None)], by[("img2img-ue", "prompt-only", None)]
    assert t2i["ue_steps"] == i2i["ue_steps"] and t2i["symbols"] == i2i["symbols"]
    assert by[("text-to-image", "ue-local", None)]["ssim"] == t2i["ssim"]
    assert by[("img2img-ue", "ue-local", None)]["ue_steps"]["value"] < t2i["ue_steps"]["value"]  # img2img: fewer steps
    assert {"calibration", "correction", "frontier", "margins"} <= set(results)
    cal = results["calibration"]
    assert set(cal["variants"]) == {"shift-1px", "webp-q95", "noise-35db"} and cal["n"] == 2 * 2  # two families
    assert cal["margin_used"] == cal["margin"]["fidelity"] and cal["margin_source"] == "calibration"
    assert results["correction"]["method"] == "holm" and len(results["margins"]) == 3
    for r in rows:
        assert CI_KEYS <= set(r["quality"]["fidelity"]) and "control" in r["symbols"]
        if r["task_kind"] != "img2img-es":
            assert {"prompt_accuracy", "realism"} <= set(r["quality"])
    claims = results["claims"]
    assert all({"claim", "dominated_by", "rival", "margin", "verdict", "evidence"} <= set(c) for c in claims)
    assert {c["claim"] for c in claims} == {"low-snr", "less-communication", "compute-offload"}
    kinds = {(c["claim"], c["task_kind"], c["snr_db"]) for c in claims}
    assert ("low-snr", "img2img-ue", -10.0) in kinds and ("low-snr", "img2img-ue", 20.0) not in kinds
    assert ("less-communication", "text-to-image", 20.0) in kinds
    assert all(c["verdict"] in ("supported", "not supported", "inconclusive") and c["evidence"] for c in claims)
    report = (out / "report.md").read_text()
    assert "## Verdicts" in report and results["versions"]["commit"].split("-")[0] in report
    assert sum(len(s[v]) for s in results["summary"] for v in ("supported", "not supported", "inconclusive")) \
        == len(claims) and "In short" in report
    assert "prompt-only" in report and "ue-local" in report
    for png in ("case_study_text-to-image.png", "case_study_img2img-ue.png", "tradeoff.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "verdicts" in capsys.readouterr().out

    # interrupted after some units: only the missing ones run again, with the same numbers
    units = sorted((out / "units").iterdir())
    victim = [u for u in units if "calibration" not in u.name][len(units) // 2]
    kept = {p: p.stat().st_mtime_ns for p in units if p != victim}
    before = json.loads(victim.read_text())
    victim.unlink()
    # --report-only: the interim results of what is in, nothing runs
    assert main(small(model, evaluator, out, "--report-only")) == 0
    assert not victim.exists()
    interim = json.loads((out / "results.json").read_text())
    assert interim["units"] == {"done": len(units) - 1, "of": len(units)}
    assert len(interim["rows"]) == len(rows) - 1  # chunk = tasks: the victim was a whole point
    assert f"{len(units) - 1} of {len(units)} units are in" in (out / "report.md").read_text()
    os.remove(out / "results.json")
    assert main(small(model, evaluator, out)) == 0
    assert json.loads((out / "results.json").read_text())["units"] == {"done": len(units), "of": len(units)}
    assert "Interim report" not in (out / "report.md").read_text()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    again = json.loads(victim.read_text())
    strip = lambda unit: [{k: v for k, v in r.items() if not k.endswith("seconds")}  # noqa: E731
                          for r in unit["result"].get("records", [])]
    assert strip(again) == strip(before)
    assert json.loads((out / "results.json").read_text())["claims"] == claims


def test_one_reference_per_task_and_an_ideal_split_run_reproduces_it(assets):
    from flowgraphs.runner import run_protocol
    from meg_phy.metrics import psnr_per_image

    model, evaluator = assets
    plan = cs.Plan(grids=(), n_tasks=2, chunk=2, model=model, evaluator=evaluator, steps=8)
    h = cs.setup(plan.to_dict())
    for kind in ("img2img-es", "text-to-image"):  # (img2img-ue uploads a WebP copy of the image: not identical)
        ref, _ = h.reference(kind, 1)
        assert h.reference(kind, 1)[0] is ref  # one reference per task, computed once
        point = cs.Point(kind, "seed-analog-aware", "awgn", 20.0, 1)
        config = h.config(point, 1, "es").ideal()
        ideal = run_protocol(config, h.task(kind, 1), h.session).image
        assert psnr_per_image(ideal, ref)[0] > 60  # the unsplit noiseless output, up to float rounding
    assert torch.equal(h.reference("img2img-es", 1)[0], h.reference("img2img-ue", 1)[0])  # same task, same reference


def test_plan_errors_are_one_line(assets, tmp_path, capsys):
    model, evaluator = assets
    out = tmp_path / "case"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"grids": []}))
    assert main(small(model, evaluator, out)) == 2
    assert "another configuration" in capsys.readouterr().err
    assert main(small(model, evaluator, tmp_path / "empty", "--report-only")) == 2
    assert "holds no campaign" in capsys.readouterr().err
    assert main(["reproduce", "--series", "seed-quantum", "--out", str(tmp_path / "x")]) == 2
    assert "unknown ['seed-quantum']" in capsys.readouterr().err
    assert main(["reproduce", "--kinds", "video", "--out", str(tmp_path / "y")]) == 2
    assert "unknown ['video']" in capsys.readouterr().err


def test_quick_plan_has_enough_tasks_and_both_channels():
    plan = cs.Plan.quick()
    points, _ = cs.points(plan)
    assert plan.n_tasks >= 32 and {p.channel for p in points} >= {"awgn", "tdl-a"}
    assert {p.kind for p in points} == set(cs.KINDS)
    assert {p.series for p in points if p.snr_db is None} == {"prompt-only", "ue-local", cs.CALIBRATION} | {
        f"{b}@{k}" for b in ("prompt-only", "ue-local") for k in cs.SCEPTIC_STEPS}
    assert {f"noise-seed@{k}" for k in (*cs.SCEPTIC_STEPS, cs.FULL_STEPS)} <= {p.series for p in points}
    assert {"centralized-digital-q10", "centralized-digital-lossless"} <= {p.series for p in points}
    full = cs.Plan.full()
    full_points, hooks = cs.points(full)
    assert full.n_tasks >= 200 and {p.n_es for p in full_points} >= {1, 2, 4}
    assert {p.channel for p in full_points} >= {"awgn", "tdl-a", "cdl-a"}
    assert {p.series for p in full_points} >= {f"proto-{name}" for name in ("CENTRALIZED", "EIUG", "DSUC", "DCSUC")}
    assert all(h["why"] for h in hooks)


def test_core_plan_is_the_claims_grid_with_a_pedestrian_ue():
    """The core run (issue 23): 200 tasks, AWGN and TDL-A from -10 to 20 dB, EIUG and ESUC analog and digital,
    the sceptics and CENTRALIZED's curve; ARQ on every hop, continuous fading at 3 km/h only where it fades."""
    plan = cs.Plan.core()
    points, hooks = cs.points(plan)
    assert plan.n_tasks == 200 and not hooks
    assert {p.channel for p in points if p.snr_db is not None} == {"awgn", "tdl-a"}
    assert {p.snr_db for p in points if p.snr_db is not None} == {-10.0, -5.0, 0.0, 5.0, 10.0, 20.0}
    assert {"seed-analog-aware", "seed-digital", "sketch-analog", "sketch-digital", "noise-seed@20", "ue-local@4",
            "centralized-digital-q1", "centralized-digital-lossless", "centralized-capacity"} <= {p.series for p in points}
    assert cs.Plan.from_dict(plan.to_dict()) == plan and "link" not in cs.Plan.quick().to_dict()
    units = cs.campaign(plan)
    first_chunk = [u.key for u in units[:len(points)]]
    assert all(k.endswith("chunk0") for k in first_chunk)      # every point's first chunk before any second
    lossless = [i for i, k in enumerate(first_chunk) if "centralized-digital-lossless" in k]
    assert lossless and min(lossless) == len(points) - len(lossless)   # the slowest series last in its chunk
    assert first_chunk[0].split("|")[1] in ("prompt-only", "ue-local")
    h = cs.Harness.__new__(cs.Harness)
    h.plan, h.prompts = plan, ["a red circle"]
    fading = h.config(cs.Point("img2img-ue", "seed-digital", "tdl-a", -5.0, 1), 0, "ue").hop_spec("es_ue", "downlink")
    flat = h.config(cs.Point("img2img-ue", "seed-digital", "awgn", -5.0, 1), 0, "ue").hop_spec("es_ue", "downlink")
    assert (fading.fading, fading.speed_mps, fading.arq_max, fading.snr_db) == ("continuous", 0.833, 8, -5.0)
    assert (flat.fading, flat.arq_max) == ("block", 8)


@pytest.mark.ray
def test_small_reproduce_subset_local_vs_ray_identical(assets, tmp_path):
    pytest.importorskip("ray")
    model, evaluator = assets
    args = ["--tasks", "2", "--chunk", "1", "--snr-db=-5", "--series", "seed-analog-aware", "--channels", "awgn",
            "--kinds", "img2img-ue"]
    base = ["reproduce", "--model", model, "--evaluator", evaluator, *args]
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    env = {k: v for k, v in ENV.items() if not k.startswith("RAY_")} | {"HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "meg_phy.cli", *base, "--out", str(tmp_path / "ray"),
                           "--executor", "ray", "--workers", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    local, remote = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "ray"))

    def plain(rows):
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]

    assert plain(remote["rows"]) == plain(local["rows"]) and remote["claims"] == local["claims"]


@pytest.mark.parametrize("series,n_es", [("sketch-analog", 1), ("proto-DIUG", 2), ("proto-DSUC", 2),
                                         ("proto-DCSUC", 2)])
def test_sketch_and_distributed_protocols_have_a_text_to_image_form(assets, series, n_es):
    """No input image: the ESs generate from the prompt (the same noise draw on every ES), nothing but the
    prompt goes up, and the UE completes at the model's resolution."""
    model, evaluator = assets
    plan = cs.Plan(grids=(), n_tasks=1, chunk=1, model=model, evaluator=evaluator, steps=6)
    h = cs.setup(plan.to_dict())
    result = cs.run_unit(h, cs.asdict(cs.Point("text-to-image", series, "awgn", 10.0, n_es)), [0])
    assert "skipped" not in result, result.get("skipped")
    (record,) = result["records"]
    assert 0 <= record["fidelity"] <= 1
    from flowgraphs.runner import run_protocol

    point = cs.Point("text-to-image", series, "awgn", 10.0, n_es)
    run = run_protocol(h.config(point, 0, "ue"), h.task("text-to-image", 0), h.session)
    assert not [r for r in run.graph.records if r.payload == "image"]  # no image uploaded
    assert run.image.shape[-2:] == tuple(h.ldm.resolution)


def test_the_report_names_the_plans_own_link_settings():
    """A report says what its digital hops really did: OLLA from the hop default, and the core plan's pedestrian
    UE (ARQ, continuous fading, speed); a plan without link settings adds nothing."""
    from flowgraphs.config import LinkSpec
    from flowgraphs.experiments import paper

    assert paper._adaptation(LinkSpec()).startswith("outer-loop link adaptation: OLLA toward 10 %")
    core = paper._plan_link(cs.Plan.core())
    assert "up to 8 retransmissions" in core and "continuous fading" in core and "(3 km/h)" in core
    assert paper._plan_link(cs.Plan.quick()) == ""
