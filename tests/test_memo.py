"""meg_phy.memo: a kept denoising result is the computation's, bit for bit, and leaves the generator and the
accounted compute time where the computation would; different inputs never share a result."""

import pytest
import torch

from meg_phy.memo import DenoiseMemo, memo_key
from tests.tiny_sd import tiny_ldm


@pytest.fixture(scope="module")
def ldm():
    return tiny_ldm()


def _start(ldm, seed=3):
    cond = ldm.encode_prompt("a red circle", guidance=3.0)
    return ldm.start(cond, steps=8, generator=torch.Generator().manual_seed(seed)), cond


def _computed_then_kept(ldm, call):
    """(computed, kept): `call()` on an empty memo, then again (a hit that stands in for the seconds)."""
    computed = call()
    before = ldm.memo.saved_s
    kept = call()
    assert ldm.memo.stats() == {"hits": 1, "misses": 1, "entries": 1}
    assert ldm.memo.saved_s > before  # the hit stands in for the computation's seconds
    return computed, kept


def test_a_hit_returns_the_computation_and_misses_on_any_other_input(ldm):
    first, cond = _start(ldm)
    plain = ldm.denoise(first, cond, until=5)
    ldm.memo = DenoiseMemo(16)
    try:
        computed, kept = _computed_then_kept(ldm, lambda: ldm.denoise(first, cond, until=5))
        for out in (computed, kept):
            assert torch.equal(out.latents, plain.latents) and out.step == plain.step == 5
            assert out.scheduler_state.keys() == plain.scheduler_state.keys()
        kept.latents.add_(1.0)  # a caller changing its result does not change what is kept
        assert torch.equal(ldm.denoise(first, cond, until=5).latents, plain.latents)
        # any other input is another computation
        other_cond = ldm.encode_prompt("a blue square", guidance=3.0)
        other_seed, _ = _start(ldm, seed=4)
        ldm.denoise(first, cond, until=6)
        ldm.denoise(first, other_cond, until=5)
        ldm.denoise(first, ldm.encode_prompt("a red circle", guidance=2.0), until=5)
        ldm.denoise(other_seed, cond, until=5)
        ldm.denoise(first.replace(latents=first.latents + 1e-7), cond, until=5)
        assert ldm.memo.stats()["misses"] == 6 and ldm.memo.stats()["hits"] == 2
    finally:
        ldm.memo = None


def test_the_generator_ends_where_the_computation_leaves_it(ldm):
    first, cond = _start(ldm)
    ldm.memo = DenoiseMemo(4)
    try:
        g1 = torch.Generator().manual_seed(9)
        ldm.denoise(first, cond, until=4, generator=g1)
        g2 = torch.Generator().manual_seed(9)
        torch.rand(1, generator=g2)  # another state: another key
        ldm.denoise(first, cond, until=4, generator=g2)
        assert ldm.memo.stats()["misses"] == 2
        g3 = torch.Generator().manual_seed(9)
        ldm.denoise(first, cond, until=4, generator=g3)  # the state g1 had: a hit
        assert ldm.memo.stats()["hits"] == 1 and torch.equal(g3.get_state(), g1.get_state())
    finally:
        ldm.memo = None


def test_the_table_is_bounded_least_recently_used_first():
    table = DenoiseMemo(2)
    keys = [memo_key("k", torch.tensor([float(i)])) for i in range(3)]
    assert len(set(keys)) == 3 and memo_key("k", torch.tensor([1.0])) == keys[1]
    assert memo_key(torch.tensor([1.0])) != memo_key(torch.tensor([1.0], dtype=torch.float64))
    table.put(keys[0], "a", seconds=0.5)
    table.put(keys[1], "b")
    assert table.get(keys[0]) == ("a", None)  # now the most recent
    table.put(keys[2], "c")
    assert table.get(keys[1]) is None and table.get(keys[0]) == ("a", None) and len(table) == 2
    with pytest.raises(ValueError):
        DenoiseMemo(0)


def test_a_campaign_reuses_the_es_work_across_snrs_and_reports_its_seconds(tmp_path):
    """Two downlink SNRs of EIUG on the same tasks: the ES's denoising to the split is computed once, and
    the second point still accounts ES seconds of the same order as the first (replayed, not the lookup)."""
    from flowgraphs.experiments import case_study as cs
    from tests.tiny_sd import tiny_sd_folder

    plan = cs.Plan(grids=(cs.Grid(("img2img-ue",), ("seed-analog-aware",), ("awgn",), (-5.0, 10.0)),),
                   n_tasks=2, chunk=2, model=str(tiny_sd_folder()), steps=6)
    harness = cs.Harness(plan)
    assert harness.ldm.memo is not None
    low, high = (cs.Point("img2img-ue", "seed-analog-aware", "awgn", snr, 1) for snr in (-5.0, 10.0))
    first = [harness.outcome(low, i)[1] for i in range(2)]
    hits = harness.ldm.memo.hits
    second = [harness.outcome(high, i)[1] for i in range(2)]
    assert harness.ldm.memo.hits >= hits + 2  # the ES's part of each task came from the table
    for a, b in zip(first, second, strict=True):
        assert a["es_steps"] == b["es_steps"] > 0
        assert b["es_seconds"] > 0.3 * a["es_seconds"]


def test_a_batch_seen_before_is_returned_bit_for_bit_and_any_other_batch_is_computed(ldm):
    firsts = [_start(ldm, seed=s)[0] for s in (3, 4)]
    cond = ldm.encode_prompt(["a red circle", "a blue square"], guidance=3.0)
    plain = ldm.denoise(firsts, cond, until=5)
    ldm.memo = DenoiseMemo(8)
    try:
        computed, kept = _computed_then_kept(ldm, lambda: ldm.denoise(firsts, cond, until=5))
        for outs in (computed, kept):
            assert all(torch.equal(o.latents, p.latents) and o.step == p.step == 5 for o, p in zip(outs, plain, strict=True))
        kept[0].latents.add_(1.0)  # the caller's copy, not the table's
        assert torch.equal(ldm.denoise(firsts, cond, until=5)[0].latents, plain[0].latents)
        ldm.denoise(firsts, cond, until=[5, 6])
        ldm.denoise(firsts[::-1], cond, until=5)
        ldm.denoise([firsts[0], firsts[1].replace(latents=firsts[1].latents + 1e-7)], cond, until=5)
        assert ldm.memo.stats()["misses"] == 4
    finally:
        ldm.memo = None


def test_a_batched_campaign_reuses_the_es_batch_across_snrs_and_reports_its_seconds():
    from dataclasses import replace

    from flowgraphs.experiments import case_study as cs
    from tests.tiny_sd import tiny_sd_folder

    plan = cs.Plan(grids=(cs.Grid(("text-to-image",), ("centralized-digital",), ("awgn",), (0.0, 10.0)),),
                   n_tasks=3, chunk=3, model=str(tiny_sd_folder()), steps=6)
    harness = cs.Harness(replace(plan, batched=True))
    low, high = (cs.Point("text-to-image", "centralized-digital", "awgn", snr, 1) for snr in (0.0, 10.0))
    first = [numbers for _, numbers in harness.outcomes(low, [0, 1, 2])]
    hits = harness.ldm.memo.hits
    second = [numbers for _, numbers in harness.outcomes(high, [0, 1, 2])]
    assert harness.ldm.memo.hits == hits + 1  # the ES's whole generation of the batch came from the table
    for a, b in zip(first, second, strict=True):
        assert a["es_steps"] == b["es_steps"] == 6
        assert b["es_seconds"] > 0.3 * a["es_seconds"]
