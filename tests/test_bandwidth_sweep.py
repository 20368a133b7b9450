"""The bandwidth sweep (flowgraphs.experiments.bandwidth, `meg-phy bandwidth` = `meg-phy reproduce --bandwidth`):
the budget rules of every series (SoftCast exactly N, digital never more than N, the capacity bound above every
digital payload), a lost seed resumed by the protocols' own rule, the output contract with intervals, and resume.
The sends under a budget themselves are link_models.budget's (tests/test_link_budget.py). The end-to-end run
uses a tiny random SD folder and a random evaluator: it checks the wiring and the accounting, not quality."""

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_evaluator, make_tiny_sd  # noqa: E402

from flowgraphs.experiments import bandwidth as bw  # noqa: E402
from flowgraphs.experiments import campaign  # noqa: E402
from link_models import budget  # noqa: E402
from meg_phy.cli import main  # noqa: E402

CI_KEYS = {"value", "ci_low", "ci_high"}


def digital_link(snr_db: float, seed: int = 0):
    """The sweep's own digital link: a protocol hop's defaults (LinkSpec: one RB, LMMSE, MCS auto, HARQ 4)."""
    from flowgraphs.config import LinkSpec
    from flowgraphs.hops import simulated_link

    return simulated_link(LinkSpec(scheme="digital", channel="awgn", snr_db=snr_db, mcs="table").validate("test"), seed)


@pytest.mark.parametrize("snr_db", [-5.0, 10.0])
def test_digital_never_exceeds_budget_and_capacity_carries_more(snr_db):
    link = digital_link(snr_db)
    rule = budget.digital_plan(link)
    per_cw = link.cfg.n // link.cfg.bits_per_symbol
    assert rule.uses_per_codeword == per_cw and rule.bler == link.cfg.bler_target
    gen = torch.Generator().manual_seed(3)
    for size in (40, 200, 700):
        payload = bytes(torch.randint(0, 256, (size,), generator=gen, dtype=torch.uint8).tolist())
        bits = 8 * size
        need = rule.needs(bits)
        for uses in (rule.first_uses(bits) - 1, rule.first_uses(bits), need, need + per_cw // 2):
            got, stats = budget.send_bytes(link, payload, uses)
            spent = budget.uses_spent(link, stats)
            assert spent <= uses and (stats.transmissions or 0) <= link.cfg.max_transmissions
            if got is not None:
                assert got == payload and spent >= rule.first_uses(bits)
                assert bits <= budget.capacity_bits(uses, snr_db, "awgn")  # no code beats capacity
        # the bound needs fewer channel uses than the fitted digital payload
        assert math.ceil(bits / math.log2(1 + 10 ** (snr_db / 10))) <= need


def test_structured_payloads_are_scrambled(monkeypatch):
    """All-zero payloads would sit on one inner 64-QAM point without DigitalLink's 5G scrambler: in one
    transmission (no HARQ room) most of 20 arrive scrambled, few unscrambled (MCS 17 at 10 dB: a codeword fails
    about 68 % of the time unscrambled, so about 2 of 20 two-codeword payloads arrive; 6 is far in the tail)."""
    link = digital_link(10.0)
    assert link.cfg.modulation == "64qam" and link.cfg.n // 6 == 168
    payload = bytes(58)  # two codewords

    def delivered() -> int:
        count = 0
        for s in range(20):
            link.reseed(100 + s)
            count += budget.send_bytes(link, payload, 2 * 168)[0] == payload
        return count

    assert delivered() >= 12
    monkeypatch.setattr(link, "scramble", lambda x, llr=False: x)
    assert delivered() <= 6


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("bandwidth")
    make_tiny_evaluator(root / "evaluator")
    model = str(make_tiny_sd(root / "tiny"))
    args = ["bandwidth", "--model", model, "--evaluator", str(root / "evaluator"), "--tasks", "2",
            "--uses", "64,256,2048", "--snr-db=10", "--snr-sweep-db=0", "--out", str(root / "out")]
    assert main(args) == 0
    return root / "out", args


def test_sweep_json_contract_and_budgets(sweep):
    out, _ = sweep
    data = json.loads((out / "bandwidth.json").read_text())
    assert {"rows", "no_point", "config", "series", "model", "versions"} <= set(data)
    assert data["config"]["fixed_uses"] == 128  # the tiny model's seed: 4 x 8 x 8 values, two per use
    rows = {(r["series"], r["snr_db"], r["uses"]): r for r in data["rows"]}
    assert set(bw.SERIES) == {r["series"] for r in data["rows"]}
    for r in data["rows"]:
        assert r["n"] == 2
        for key in ("fidelity", "prompt_accuracy", "psnr_db", "ssim", "uses_spent", "delivered", "fits"):
            assert CI_KEYS <= set(r[key]), key
        lo, hi = r["fidelity"]["ci_low"], r["fidelity"]["ci_high"]
        assert lo <= r["fidelity"]["value"] <= hi
    assert rows[("prompt-only", None, 0)]["uses_spent"]["value"] == 0
    # the analog seed has no point below its own 128 uses, and fills larger budgets exactly
    assert {(p["series"], p["uses"]) for p in data["no_point"]} == {("seed-analog", 64)}
    assert ("seed-analog", 10.0, 64) not in rows
    assert rows[("seed-analog", 10.0, 2048)]["settings"] == ["16.0"]
    for (series, snr, uses), r in rows.items():
        if series == "softcast-meta-free" or (series.startswith("seed-analog")):
            assert r["uses_spent"]["value"] == uses and r["max_uses_spent"] == uses
        if series == "softcast" and r["delivered"]["k"] == r["n"]:
            assert r["uses_spent"]["value"] == uses and r["max_uses_spent"] == uses
        if series in ("image-digital", "seed-digital", "softcast"):
            assert r["max_uses_spent"] <= uses
        if series == "image-digital" and r["payload_bits"] is not None:
            bound = rows[("image-capacity", snr, uses)]
            assert r["payload_bits"]["value"] <= bound["payload_bits"]["value"] <= budget.capacity_bits(uses, snr, "awgn")
    assert rows[("image-capacity", 10.0, 2048)]["delivered"]["k"] == 2
    assert rows[("image-digital", 10.0, 2048)]["planning_bler"] >= 0.1
    # the SNR sweep at the seed's size shares the units of the bandwidth grid
    assert ("seed-analog", 0.0, 128) in rows and ("softcast-meta-free", 0.0, 128) in rows
    assert (out / "bandwidth_text-to-image_awgn.png").stat().st_size > 0
    report = (out / "bandwidth.md").read_text()
    assert "## Quality against bandwidth" in report and "| seed-analog | — |" in report


def test_sweep_resumes_from_stored_units(sweep, monkeypatch):
    out, args = sweep
    before = json.loads((out / "bandwidth.json").read_text())["rows"]
    units = sorted((out / "units-bandwidth").iterdir())
    kept = {p: p.stat().st_mtime_ns for p in units}

    def refuse(*_):
        raise AssertionError("a stored unit ran again")

    monkeypatch.setattr(bw, "run_unit", refuse)
    (out / "bandwidth.json").unlink()
    assert main(args) == 0
    assert json.loads((out / "bandwidth.json").read_text())["rows"] == before
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())


def test_reproduce_bandwidth_is_the_same_command(sweep, monkeypatch):
    """`reproduce --bandwidth` with the same options resumes the same folder: no unit runs again."""
    out, args = sweep
    before = json.loads((out / "bandwidth.json").read_text())["rows"]

    def refuse(*_):
        raise AssertionError("a stored unit ran again")

    monkeypatch.setattr(bw, "run_unit", refuse)
    assert main(["reproduce", "--bandwidth", *args[1:]]) == 0
    assert json.loads((out / "bandwidth.json").read_text())["rows"] == before


def test_a_lost_seed_is_generated_from_scratch(sweep):
    """No seed fitted its budget (8 uses): nothing is sent and the UE generates from scratch with the whole
    schedule (the protocols' rule, flowgraphs.transfer), i.e. the task's unsplit run from the noise of
    seed + 1: the reference image of that task."""
    out, _ = sweep
    plan = bw.Plan.from_dict(json.loads((out / "plan.json").read_text()))
    worker = campaign.make_setup(bw.Worker, replace(plan, n_tasks=1))()
    task = worker.task("text-to-image", 0)
    lost, numbers = worker.outcome(bw.Point("text-to-image", "seed-digital", "awgn", 10.0, 8), 0)
    assert (numbers["fits"], numbers["delivered"], numbers["uses"], numbers["air_symbols"]) == (False, False, 0, 0)
    expected = campaign.reference_image(replace(task, seed=task.seed + 1))
    assert lost.shape == expected.shape and float((lost - expected).abs().max()) < 1e-4
    assert float((lost - worker.reference("text-to-image", 0)[0]).abs().max()) > 1e-3  # not the task's own noise


def test_bad_input_is_one_line(sweep, tmp_path, capsys):
    out, args = sweep
    assert main(["bandwidth", "--uses", "0,64", "--out", str(tmp_path / "a")]) == 2
    assert "--uses" in capsys.readouterr().err
    assert main(["reproduce", "--uses", "64", "--out", str(tmp_path / "b")]) == 2
    assert "add --bandwidth" in capsys.readouterr().err
    assert main(["reproduce", "--bandwidth", "--series", "seed-quantum", "--out", str(tmp_path / "c")]) == 2
    assert "unknown ['seed-quantum']" in capsys.readouterr().err
    changed = ["--snr-db=5" if a.startswith("--snr-db=") else a for a in args]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and len(err.strip().splitlines()) == 1
