"""Batched runs (flowgraphs.runner.run_batch, SplitLDM on lists) against task-by-task runs, with the
embedded model.

Bit-identity is not expected from the model calls (PyTorch's CPU kernels choose their algorithm by batch
size, SplitLDM.denoise says why), so results are compared within TOL; everything discrete (steps, symbols, deliveries)
must be equal, and what does not pass through a batched kernel (noise draws, hops) must be equal exactly.
Nothing here depends on the model's image size.
"""

import pytest
import torch

from flowgraphs.config import config_from_dict
from flowgraphs.experiments.case_study import Plan
from flowgraphs.runner import run_batch, run_protocol
from flowgraphs.session import Session
from flowgraphs.task import make_task
from meg_common.errors import InputError

TOL = 1e-4          # images in [0, 1]: a 39th of an 8-bit grey level (benchmarks/bench_campaign.py)
SEEDS = [11, 12, 13, 14]


@pytest.fixture(scope="module")
def session():
    return Session()


def _config(seed, protocol="EIUG", **options):
    # the digital uplink at 20 dB takes its MCS open loop: a quantised seed from batched kernels may differ in
    # a few bytes, and next to outer-loop adaptation's 10 % first-try BLER that could change its retransmissions
    data = {"link": {"scheme": "analog", "channel": "awgn"},
            "uplink": {"scheme": "digital", "snr_db": 20.0, "mcs": "table"}, "downlink": {"snr_db": 0.0}}
    return config_from_dict(data, protocol=protocol, seed=seed, steps=10, strength=0.7, image_at="ue", **options)


def _discrete(record):
    d = record.to_dict()
    return {k: v for k, v in d.items() if k not in ("noise_var", "snr_est_db")}


def _same_run(a, b):
    assert (a.image - b.image).abs().max() <= TOL
    assert [_discrete(r) for r in a.graph.records] == [_discrete(r) for r in b.graph.records]
    for ra, rb in zip(a.graph.records, b.graph.records, strict=True):
        assert (ra.noise_var is None) == (rb.noise_var is None)
        if ra.noise_var is not None:
            assert rb.noise_var == pytest.approx(ra.noise_var, rel=1e-5)
    for node in a.graph.compute:
        assert a.graph.compute[node]["steps"] == b.graph.compute[node]["steps"]
        assert a.graph.compute[node]["work"] == b.graph.compute[node]["work"]


@pytest.mark.parametrize("protocol, n_es", [("EIUG", 1), ("CENTRALIZED", 1), ("UIDCG", 3), ("DCSUC", 2),
                                            ("UIDG", 2), ("DIUG", 4), ("DSUC", 2)])
def test_batch_equals_task_by_task(session, protocol, n_es):
    """Every protocol runs batched as it runs alone: single-ES, the cooperative chains (step ranges over wired
    backhaul) and the parallel ones (each ES's tile steps batched over the tasks, exchanges per task)."""
    configs = [_config(s, protocol, n_es=n_es) for s in SEEDS]
    tasks = [make_task(c, session) for c in configs]
    one = [run_protocol(c, t, session) for c, t in zip(configs, tasks, strict=True)]
    many = run_batch(configs, tasks, session)
    assert len(many) == len(SEEDS)
    for a, b in zip(one, many, strict=True):
        assert b.image.shape == a.image.shape == (1, 3, *session.model().resolution)
        _same_run(a, b)
    assert len({round(float(r.image.mean()), 6) for r in many}) == len(SEEDS)   # the tasks really differ


def test_changing_one_tasks_seed_changes_only_that_task(session):
    configs = [_config(s) for s in SEEDS]
    tasks = [make_task(c, session) for c in configs]
    first = run_batch(configs, tasks, session)
    changed = list(configs)
    changed[2] = _config(99)
    second = run_batch(changed, [tasks[0], tasks[1], make_task(changed[2], session), tasks[3]], session)
    for i in (0, 1, 3):
        _same_run(first[i], second[i])
    assert (first[2].image - second[2].image).abs().max() > 1e-2
    assert first[2].graph.records[-1].noise_var != second[2].graph.records[-1].noise_var  # own link draws


def test_start_draws_each_task_from_its_own_generator(session):
    ldm = session.model()
    steps = 10
    seeds = ldm.start(None, None, strength=1.0, steps=steps, generator=[torch.Generator().manual_seed(s) for s in SEEDS])
    for s, got in zip(SEEDS, seeds, strict=True):
        alone = ldm.start(None, None, steps=steps, generator=torch.Generator().manual_seed(s))
        assert torch.equal(got.latents, alone.latents)          # pure noise: no batched kernel involved
        assert torch.equal(got.timesteps, alone.timesteps)


def test_denoise_runs_each_seed_on_its_own_schedule(session):
    """Seeds resumed at different noise levels (different schedules and lengths) in one batch."""
    from meg_phy.resume import resume

    ldm = session.model()
    cond = ldm.encode_prompt(["a large red circle at the center on a white background"] * 3, guidance=3.0)
    start = ldm.start(None, None, strength=1.0, steps=10, generator=[torch.Generator().manual_seed(s) for s in SEEDS[:3]])
    half = ldm.denoise(start, cond, until=5)
    resumed = [resume(ldm, s, v) for s, v in zip(half, (0.0, 0.3, 2.0), strict=True)]
    assert len({s.total for s in resumed}) == 3
    done = ldm.denoise(resumed, cond)
    for s, got in zip(resumed, done, strict=True):
        alone = ldm.denoise(s, ldm.encode_prompt(cond.prompt[0], guidance=3.0))
        assert got.step == alone.step == s.total
        assert (got.latents - alone.latents).abs().max() <= 1e-4


def test_batches_refuse_what_they_cannot_run(session):
    tasks = [make_task(_config(s), session) for s in SEEDS[:2]]
    with pytest.raises(InputError, match="share every setting"):
        run_batch([_config(11), _config(12, snr_db=3.0)], tasks, session)
    with pytest.raises(InputError, match="configs for"):
        run_batch([_config(11)], tasks, session)


def test_batched_plan_option_keeps_earlier_plan_files():
    plan = Plan.full()
    assert not {"batched", "runtime", "link"} & set(plan.to_dict())   # a campaign folder made before still resumes
    data = Plan.from_dict({**plan.to_dict(), "batched": True}).to_dict()
    assert data["batched"] is True
    assert Plan.from_dict(Plan.quick().to_dict()) == Plan.quick()


@pytest.mark.parametrize("kind, series, n_es", [("img2img-ue", "seed-analog-aware", 1),
                                              ("text-to-image", "sketch-analog", 1),
                                              ("text-to-image", "proto-DSUC", 2),
                                              ("text-to-image", "proto-DIUG", 2),
                                              ("text-to-image", "proto-DCSUC", 2)])
def test_case_study_unit_batched_matches_task_by_task(kind, series, n_es):
    """A campaign unit batched and task by task, in every kind of stage a plan batches (text-to-image
    sketches are completed at the model's resolution: there is no input image to take it from)."""
    from dataclasses import asdict, replace

    from flowgraphs.experiments import case_study as cs

    plan = cs.Plan(grids=(cs.Grid((kind,), (series,), ("awgn",), (0.0,), (n_es,)),), n_tasks=3, chunk=3,
                   steps=10)
    point = asdict(cs.Point(kind, series, "awgn", 0.0, n_es))
    one = cs.Harness(plan)
    many = cs.Harness(replace(plan, batched=True))
    many.session, many.world = one.session, one.world
    a, b = cs.run_unit(one, point, [0, 1, 2]), cs.run_unit(many, point, [0, 1, 2])
    assert torch.get_num_threads() == one.threads
    numba = pytest.importorskip("numba")
    assert numba.get_num_threads() == min(one.threads, numba.config.NUMBA_NUM_THREADS)  # the LDPC decoder too
    for ra, rb in zip(a["records"], b["records"], strict=True):
        for key, value in ra.items():
            if key.endswith("seconds"):
                continue
            if key.endswith("embedding"):   # the reader's features of an image: float16, batched-kernel rounding
                from flowgraphs.experiments.world import unpack

                assert unpack(rb[key]) == pytest.approx(unpack(value), abs=2e-2), key
                continue
            if isinstance(value, float) and key != "fidelity":
                assert rb[key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
            else:
                assert rb[key] == value, key


def test_joint_denoising_batches_tasks_resumed_at_different_levels(session):
    """UIDG with the seed up on analog links at 0 dB: each task's ESs resume at its own noise level, so the
    tasks' schedules differ in length and the batched steps cover the tasks that still have one."""
    data = {"link": {"scheme": "analog", "channel": "awgn"}, "uplink": {"scheme": "analog", "snr_db": 0.0},
            "downlink": {"snr_db": 5.0}}
    configs = [config_from_dict(data, protocol="UIDG", seed=s, steps=10, strength=0.7, image_at="ue", n_es=2)
               for s in SEEDS]
    tasks = [make_task(c, session) for c in configs]
    one = [run_protocol(c, t, session) for c, t in zip(configs, tasks, strict=True)]
    assert len({o.graph.compute["ES1"]["steps"] for o in one}) > 1      # the schedules really differ
    for a, b in zip(one, run_batch(configs, tasks, session), strict=True):
        _same_run(a, b)
