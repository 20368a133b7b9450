"""The sceptic who knows the system (issue 23): `noise-seed@K` (the ES's noise seed, schedule and strength in a
digital control message, the UE running the task alone with that noise), `prompt-only@K` and `ue-local@K`, on a
tiny random SD folder and a random evaluator: the wiring and the bit-exact reproduction, not the numbers."""

import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_evaluator, make_tiny_sd  # noqa: E402

from flowgraphs.experiments import case_study as cs  # noqa: E402
from flowgraphs.protocols.baselines import NoiseSeed, parse  # noqa: E402

TASKS = 32


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    make_tiny_evaluator(root / "evaluator")
    model = str(make_tiny_sd(root / "tiny"))
    plan = cs.Plan(grids=(), n_tasks=TASKS, chunk=TASKS, model=model, evaluator=str(root / "evaluator"),
                   steps=cs.FULL_STEPS)
    return cs.setup(plan.to_dict())


def test_control_message_round_trips_and_names_parse():
    msg = NoiseSeed(1023, 20, 0.7)
    data = msg.encode()
    assert len(data) == 9 and NoiseSeed.decode(data) == msg
    assert NoiseSeed.decode(data[:-1]) is None and NoiseSeed.decode(b"\x02" + data[1:]) is None
    assert parse("noise-seed@10") == ("noise-seed", 10) and parse("ue-local") == ("ue-local", None)
    from meg_common.errors import InputError

    for bad in ("noise-seed@0", "seed@4", "prompt-only@x"):
        with pytest.raises(InputError):
            parse(bad)


@pytest.mark.parametrize("kind", ["text-to-image", "img2img-ue"])
def test_noise_seed_at_the_full_schedule_reproduces_the_reference_bit_for_bit(harness, kind):
    """32 tasks of each kind it applies to, the control message sent on AWGN at -10 dB: every message arrives,
    and the UE's output equals the ES's unsplit noiseless output exactly; the message is counted on air."""
    result = cs.run_unit(harness, asdict(cs.Point(kind, f"noise-seed@{cs.FULL_STEPS}", "awgn", -10.0, 1)),
                         list(range(TASKS)))
    assert "skipped" not in result, result.get("skipped")
    records = result["records"]
    assert len(records) == TASKS
    assert all(r["identical"] and r["fidelity"] == 1.0 for r in records)
    assert all(r["downlink_delivered"] == 1.0 and r["control"] > 0 and r["control"] == r["downlink"] == r["air"]
               and r["uplink"] == 0 and r["es_steps"] == 0 for r in records)
    full_ue_steps = records[0]["ue_steps"]
    assert full_ue_steps == (cs.FULL_STEPS if kind == "text-to-image" else int(cs.FULL_STEPS * harness.plan.strength))


def test_noise_seed_at_a_shorter_schedule_on_tdl_a(harness):
    result = cs.run_unit(harness, asdict(cs.Point("img2img-ue", "noise-seed@10", "tdl-a", -10.0, 1)), list(range(TASKS)))
    records = result["records"]
    assert all(r["control"] > 0 and r["air"] == r["control"] for r in records)   # counted on air, delivered or not
    # a shorter schedule: fewer UE steps, not the reference any more
    assert all(r["ue_steps"] == int(10 * harness.plan.strength) for r in records)
    assert not all(r["identical"] for r in records)


def test_control_message_is_delivered_at_minus_10_db_on_tdl_a(harness):
    result = cs.run_unit(harness, asdict(cs.Point("img2img-ue", "noise-seed@10", "tdl-a", -10.0, 1)), list(range(TASKS)))
    assert all(r["downlink_delivered"] == 1.0 for r in result["records"])


def test_a_lost_message_leaves_the_ue_with_its_own_noise(harness, monkeypatch):
    from flowgraphs.runner import run_baseline
    from flowgraphs.stages import Stages

    monkeypatch.setattr(Stages, "send_control", lambda self, src, dst, messages: [None] * len(messages))
    point = cs.Point("img2img-ue", f"noise-seed@{cs.FULL_STEPS}", "awgn", 0.0, 1)
    lost = run_baseline(point.series, harness.config(point, 0, "ue"), harness.task("img2img-ue", 0), harness.session)
    local = harness.baseline("img2img-ue", "ue-local", 0, harness.config(cs.Point("img2img-ue", cs.SEED_SERIES,
                                                                                  "awgn", 0.0, 1), 0, "ue"))[0]
    assert torch.equal(lost.image, local)   # the UE's own draw: ue-local


def test_noise_seed_and_ue_local_do_not_apply_where_the_ue_lacks_the_image(harness):
    for series in ("noise-seed@10", "ue-local@6"):
        snr = None if series.startswith("ue-local") else -5.0
        channel = cs.NO_CHANNEL if snr is None else "awgn"
        result = cs.run_unit(harness, asdict(cs.Point("img2img-es", series, channel, snr, 0 if snr is None else 1)),
                             [0])
        assert "UE lacks the input image" in result["skipped"] or "input image is at the ES" in result["skipped"]


def test_alone_at_k_steps_runs_k_step_schedules_with_nothing_on_air(harness):
    for kind, series, steps in (("text-to-image", "prompt-only@6", 6), ("img2img-ue", "ue-local@10", 7),
                                ("img2img-ue", "prompt-only@4", 4)):
        (record,) = cs.run_unit(harness, asdict(cs.Point(kind, series, cs.NO_CHANNEL, None, 0)), [3])["records"]
        assert record["ue_steps"] == steps and record["air"] == 0 and record["control"] == 0
    points, _ = cs.points(cs.Plan.quick())
    quick = {(p.kind, p.series) for p in points}
    assert ("img2img-ue", "ue-local@4") in quick and ("text-to-image", "noise-seed@20") in quick
    assert ("img2img-ue", cs.CALIBRATION) in quick and ("img2img-es", cs.CALIBRATION) not in quick
