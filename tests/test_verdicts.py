"""Verdicts follow the data: synthetic per-task records that support a claim, then the same records changed
so that the claim fails or cannot be decided, and the verdict flips with them."""

import numpy as np

from flowgraphs.experiments import verdicts
from flowgraphs.experiments.case_study import NO_CHANNEL, Point, rows

N = 64


def records(fidelity, match, ref_match=None, air=6734, downlink=182, seed=0):
    rng = np.random.default_rng(seed)
    fid = np.clip(np.asarray(fidelity, float) + rng.normal(0, 0.01, N), 0, 1)
    return [{"task": i, "fidelity": float(fid[i]), "prompt_match": bool(match[i]),
             "reference_match": bool((ref_match if ref_match is not None else [True] * N)[i]),
             "air": air, "downlink": downlink, "uplink": air - downlink, "backhaul": 0, "backhaul_bits": 0,
             "mse": 1e-3, "ssim": 0.9, "feature_distance": None, "ue_steps": 13, "es_steps": 7, "ue_seconds": 0.1,
             "es_seconds": 0.1, "airtime_s": 1e-3, "downlink_delivered": 1.0} for i in range(N)]


def world(seed_fid=0.9, seed_match=None, base_fid=0.6, central_fid=0.85, central_air=8736, central_down=2184):
    seed_match = seed_match if seed_match is not None else [True] * N
    seed_pt = Point("img2img-ue", "seed-analog-aware", "awgn", -5.0, 1)
    return {
        Point("img2img-ue", "prompt-only", NO_CHANNEL, None, 0): records([base_fid] * N, [True] * N, air=0, downlink=0, seed=1),
        seed_pt: records([seed_fid] * N, seed_match, seed=2),
        Point("img2img-ue", "centralized-digital", "awgn", -5.0, 1): records([central_fid] * N, [True] * N,
                                                                             air=central_air, downlink=central_down, seed=3),
    }


def verdict(claims, name):
    (c,) = [c for c in claims if c["claim"] == name]
    assert {"claim", "channel", "snr_db", "verdict", "evidence"} <= set(c)
    return c


def test_low_snr_flips_with_fidelity_and_accuracy():
    assert verdict(verdicts.claims(world()), "low-snr")["verdict"] == "supported"
    # the seed no better than doing nothing: its fidelity equals prompt-only's on the same tasks
    same = verdict(verdicts.claims(world(seed_fid=0.6)), "low-snr")
    assert same["verdict"] == "inconclusive" and same["fidelity_vs_prompt_only"]["ci_low"] < 0
    worse = verdict(verdicts.claims(world(seed_fid=0.4)), "low-snr")
    assert worse["verdict"] == "not supported" and "beats: no" in worse["evidence"]
    # fidelity fine, but accuracy drops 0.3 below noiseless
    drop = [i % 10 >= 3 for i in range(N)]
    lost = verdict(verdicts.claims(world(seed_match=drop)), "low-snr")
    assert lost["verdict"] == "not supported" and lost["accuracy_vs_noiseless"]["ci_high"] < -0.1


def test_low_snr_reports_the_ue_local_comparison_beside_the_verdict():
    merged = world()
    assert "fidelity_vs_ue_local" not in verdict(verdicts.claims(merged), "low-snr")   # no ue-local rows
    local = records([0.95] * N, [True] * N, air=0, downlink=0, seed=4)
    for r in local:
        r["ue_steps"] = 14
    merged[Point("img2img-ue", "ue-local", NO_CHANNEL, None, 0)] = local
    c = verdict(verdicts.claims(merged), "low-snr")
    assert c["verdict"] == "supported"          # the claim is against prompt-only; ue-local does not decide it
    assert c["fidelity_vs_ue_local"]["ci_high"] < 0 and c["ue_steps_vs_ue_local"]["value"] == 13 - 14
    assert "against ue-local" in c["evidence"]


def test_less_communication_flips_with_fidelity_and_symbols():
    c = verdict(verdicts.claims(world()), "less-communication")
    assert c["verdict"] == "supported" and c["against"] == "centralized-digital"
    assert c["fewer_air"]["value"] == 8736 / 6734 and c["fewer_downlink"]["value"] == 2184 / 182
    assert verdict(verdicts.claims(world(seed_fid=0.6)), "less-communication")["verdict"] == "not supported"
    more = verdict(verdicts.claims(world(central_air=6000, central_down=2000)), "less-communication")
    assert more["verdict"] == "not supported" and more["fewer_air"]["value"] < 1


def test_rows_carry_intervals_and_paired_differences():
    merged = world()
    out = {r["series"]: r for r in rows(merged)}
    assert set(out) == {"prompt-only", "seed-analog-aware", "centralized-digital"}
    seed = out["seed-analog-aware"]
    assert seed["prompt_accuracy"]["k"] == N and seed["prompt_accuracy"]["ci_low"] < 1 == seed["prompt_accuracy"]["value"]
    assert seed["symbols"] == {"uplink": 6734 - 182, "downlink": 182, "backhaul": 0, "air": 6734}
    assert seed["paired"]["prompt-only"]["fidelity"]["ci_low"] > 0.25
    assert out["prompt-only"]["snr_db"] is None and out["prompt-only"]["channel"] is None


def test_less_communication_is_judged_for_every_meg_series_on_its_own():
    merged = world(seed_fid=0.6)  # the analog seed loses fidelity ...
    digital = records([0.85] * N, [True] * N, air=5000, downlink=900, seed=5)  # ... a digital seed holds it
    merged[Point("img2img-ue", "seed-digital", "awgn", -5.0, 1)] = digital
    found = {c["series"]: c for c in verdicts.claims(merged) if c["claim"] == "less-communication"}
    assert set(found) == {"seed-analog-aware", "seed-digital"}
    assert found["seed-analog-aware"]["verdict"] == "not supported"
    assert found["seed-digital"]["verdict"] == "supported" and found["seed-digital"]["fewer_downlink"]["value"] == 2184 / 900


def test_summary_counts_each_verdict_with_its_snrs():
    merged = world()
    merged.update({Point("img2img-ue", "seed-analog-aware", "awgn", -10.0, 1): records([0.6] * N, [True] * N, seed=6),
                   Point("img2img-ue", "seed-analog-aware", "awgn", 0.0, 1): records([0.9] * N, [True] * N, seed=7)})
    decided = verdicts.claims(merged)
    (low,) = [s for s in verdicts.summary(decided) if s["claim"] == "low-snr"]
    assert low["supported"] == [-5.0, 0.0] and low["inconclusive"] == [-10.0] and low["not supported"] == []
    assert sum(len(s[v]) for s in verdicts.summary(decided) for v in verdicts.VERDICTS) == len(decided)
