"""Verdicts follow the data (issue 23): synthetic per-task records on the three-way frontier of quality, UE
steps and air symbols; each verdict flips when a sceptic is made to dominate, the rival is the cheapest
non-inferior CENTRALIZED configuration, Holm corrects within a claim family, the margin comes from the
calibration."""

import numpy as np

from flowgraphs.experiments import campaign as rt
from flowgraphs.experiments import verdicts
from flowgraphs.experiments.case_study import CALIBRATION, NO_CHANNEL, Point, calibration, rows
from flowgraphs.experiments.world import pack

N = 64
KIND = "img2img-ue"
MARGIN = 0.1


def records(fidelity, air=0, downlink=0, ue_steps=20, seed=0, spread=0.01, match=True):
    rng = np.random.default_rng(seed)
    fid = np.clip(np.asarray([fidelity] * N, float) + rng.normal(0, spread, N), 0, 1)
    return [{"task": i, "fidelity": float(fid[i]), "prompt_match": match, "reference_match": True,
             "air": air, "downlink": downlink, "uplink": air - downlink, "backhaul": 0, "backhaul_bits": 0,
             "control": 0, "mse": 1e-3, "ssim": 0.9, "feature_distance": 0.1, "ue_steps": ue_steps, "es_steps": 7,
             "ue_seconds": 0.1, "es_seconds": 0.1, "airtime_s": 1e-3, "downlink_delivered": 1.0, "identical": False}
            for i in range(N)]


def alone(series):
    return Point(KIND, series, NO_CHANNEL, None, 0)


def at(series, snr=-5.0, channel="awgn"):
    return Point(KIND, series, channel, snr, 1)


def world(seed_fid=0.95, q50_air=7000):
    return {
        alone("prompt-only"): records(0.2, seed=1),
        alone("ue-local"): records(0.45, ue_steps=14, seed=2),
        at("seed-analog-aware"): records(seed_fid, air=6734, downlink=182, ue_steps=13, seed=3),
        at("centralized-digital"): records(0.96, air=8736, downlink=2184, ue_steps=0, seed=4),
        at("centralized-digital-q10"): records(0.6, air=3000, downlink=300, ue_steps=0, seed=5),
        at("centralized-digital-q50"): records(0.95, air=q50_air, downlink=1000, ue_steps=0, seed=6),
        at("centralized-digital-lossless"): records(1.0, air=20000, downlink=14000, ue_steps=0, seed=7),
        at("centralized-capacity"): records(0.96, air=100, downlink=100, ue_steps=0, seed=8),  # a bound: never a rival
    }


def one(decided, claim, series="seed-analog-aware"):
    (c,) = [c for c in decided if c["claim"] == claim and c["series"] == series]
    assert {"claim", "dominated_by", "rival", "margin", "verdict", "evidence", "decided_by"} <= set(c)
    return c


def dominating_noise_seed(merged, fid=0.95, steps=7, air=1800):
    merged[at("noise-seed@10")] = records(fid, air=air, downlink=air, ue_steps=steps, seed=9)
    return merged


def test_low_snr_flips_when_a_sceptic_dominates():
    c = one(verdicts.claims(world(), MARGIN), "low-snr")
    assert c["verdict"] == "supported" and c["dominated_by"] == []
    c = one(verdicts.claims(dominating_noise_seed(world()), MARGIN), "low-snr")
    assert c["verdict"] == "not supported" and c["dominated_by"] == ["noise-seed@10"]
    assert c["decided_by"] == "noise-seed@10" and "dominated by noise-seed@10" in c["evidence"]
    # the same sceptic with more UE steps than the seed series does not dominate it
    c = one(verdicts.claims(dominating_noise_seed(world(), steps=14), MARGIN), "low-snr")
    assert c["verdict"] == "supported" and c["dominated_by"] == []
    # far from noiseless: not supported whatever the sceptics do
    c = one(verdicts.claims(world(seed_fid=0.6), MARGIN), "low-snr")
    assert c["verdict"] == "not supported" and c["fidelity_vs_noiseless"]["ci_high"] < -MARGIN


def test_the_rival_is_the_cheapest_non_inferior_centralized_configuration():
    c = one(verdicts.claims(world(), MARGIN), "less-communication")
    # q10 is cheaper but clearly worse, lossless and q75 are non-inferior but dearer, capacity is a bound
    assert c["rival"] == "centralized-digital-q50" and c["decided_by"] == "centralized-digital-q50"
    assert c["curve"]["centralized-digital-q10"]["non_inferior"] == "no"
    assert "centralized-capacity" not in c["curve"]
    assert c["verdict"] == "supported" and c["fewer_air"]["value"] == 7000 / 6734
    # the cheapest non-inferior configuration now uses fewer symbols than the seed: the verdict flips
    c = one(verdicts.claims(world(q50_air=6000), MARGIN), "less-communication")
    assert c["rival"] == "centralized-digital-q50" and c["verdict"] == "not supported"
    # a seed of lower quality: WebP q10 is now non-inferior to it, the cheapest such, and cheaper than the seed
    c = one(verdicts.claims(world(seed_fid=0.62), MARGIN), "less-communication")
    assert c["curve"]["centralized-digital-q10"]["non_inferior"] == "yes"
    assert c["rival"] == "centralized-digital-q10" and c["verdict"] == "not supported"


def test_less_communication_with_nothing_centralized_reaching_its_quality():
    merged = {k: v for k, v in world().items() if "q50" not in k.series and "lossless" not in k.series
              and k.series != "centralized-digital"}
    c = one(verdicts.claims(merged, MARGIN), "less-communication")
    assert c["rival"] is None and c["verdict"] == "supported" and "no CENTRALIZED configuration" in c["evidence"]


def test_compute_offload_flips_when_a_ue_alone_sceptic_reaches_the_quality_for_fewer_steps():
    c = one(verdicts.claims(world(), MARGIN), "compute-offload")
    assert c["verdict"] == "supported" and c["rival"] is None and "no UE-alone sceptic" in c["evidence"]
    c = one(verdicts.claims(dominating_noise_seed(world()), MARGIN), "compute-offload")
    assert c["verdict"] == "not supported" and c["rival"] == "noise-seed@10" and c["ue_steps_saved"]["value"] == 7 - 13
    # the sceptic reaches the quality only with more steps than the seed series: offloading holds
    c = one(verdicts.claims(dominating_noise_seed(world(), steps=20), MARGIN), "compute-offload")
    assert c["verdict"] == "supported" and c["rival"] == "noise-seed@10"


def test_sceptics_fit_the_task_kind():
    merged = dominating_noise_seed(world())
    merged[alone("ue-local@6")] = records(0.4, ue_steps=4, seed=10)
    names = set(verdicts.sceptics(merged, at("seed-analog-aware")))
    assert names == {"prompt-only", "ue-local", "ue-local@6", "noise-seed@10"}
    es = Point("img2img-es", "seed-analog-aware", "awgn", -5.0, 1)
    merged[Point("img2img-es", "ue-local", NO_CHANNEL, None, 0)] = records(0.9, ue_steps=14)
    merged[Point("img2img-es", "prompt-only", NO_CHANNEL, None, 0)] = records(0.2)
    assert set(verdicts.sceptics(merged, es)) == {"prompt-only"}   # the UE lacks the image there


def test_holm_corrects_within_a_family():
    """One claim whose p is 0.02 is supported alone, not among ten with the same p."""
    base = {"p_support": 0.02, "p_fail": 0.9, "evidence": ""}
    (alone_,) = verdicts.correct([dict(base)])
    assert alone_["verdict"] == "supported"
    family = verdicts.correct([dict(base) for _ in range(10)])
    assert all(c["verdict"] == "inconclusive" and abs(c["p_support_holm"] - 0.2) < 1e-12 for c in family)


def test_verdict_counts_at_three_margins():
    merged = world(seed_fid=0.87)
    out = verdicts.at_margins(merged, 0.1)
    assert [o["factor"] for o in out] == [0.5, 1.0, 2.0]
    low = {o["factor"]: o["counts"]["low-snr"] for o in out}
    assert low[0.5]["not supported"] == 1 and low[2.0]["supported"] == 1


def calibration_records(spread, seed=0):
    rng = np.random.default_rng(seed)
    return [{"task": i, "variants": {name: {"fidelity": float(-abs(rng.normal(0.05, spread))), "feature_distance":
                                            0.01, "mse": 1e-4} for name in rt.VARIANTS}} for i in range(N)]


def test_margin_comes_from_the_calibration_and_widens_with_its_spread():
    narrow = rt.calibration(calibration_records(0.005))
    wide = rt.calibration(calibration_records(0.08))
    assert set(narrow["variants"]) == set(rt.VARIANTS) and narrow["n"] == N
    assert 0.05 < narrow["margin"]["fidelity"] < wide["margin"]["fidelity"]
    assert verdicts.margin_of(wide) == wide["margin"]["fidelity"] and verdicts.margin_of({}) == verdicts.DEFAULT_MARGIN
    merged = {Point(KIND, CALIBRATION, NO_CHANNEL, None, 0): calibration_records(0.005), **world()}
    assert calibration(merged)["margin"] == narrow["margin"]
    assert all(r["series"] != CALIBRATION for r in rows(merged))


def test_rows_carry_quality_objects_and_realism():
    merged = world()
    rng = np.random.default_rng(0)
    renders = rng.normal(size=(N, 8))
    for r in merged[at("seed-analog-aware")]:
        r["embedding"] = pack(renders[r["task"]] + rng.normal(0, 0.1, 8))
    cal = calibration_records(0.01)
    for r in cal:
        r["render_embedding"] = pack(renders[r["task"]])
    merged[Point(KIND, CALIBRATION, NO_CHANNEL, None, 0)] = cal
    out = {r["series"]: r for r in rows(merged)}
    seed = out["seed-analog-aware"]["quality"]
    assert {"fidelity", "psnr_db", "feature_distance", "prompt_accuracy", "realism"} <= set(seed)
    assert seed["realism"]["metric"] == "KID" and seed["realism"]["ci_low"] <= seed["realism"]["value"]
    assert abs(seed["realism"]["value"]) < 0.5 and seed["realism"]["n"] == N
    assert out["seed-analog-aware"]["symbols"]["control"] == 0
    assert "ue-local" in out["seed-analog-aware"]["paired"]   # img2img-ue's do-nothing baseline
    assert out["prompt-only"]["quality"]["realism"] is None     # no embeddings
