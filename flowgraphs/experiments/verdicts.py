"""The paper's two claims as verdicts computed from paired intervals, never typed in (issue 10).

Each verdict is `supported`, `not supported` or `inconclusive`, with the numbers that decided it. Both claims
compare series on the same tasks (paired bootstrap of per-task differences, meg_common.stats):

- **low-snr**, at each SNR <= 0 dB, channel and task kind (n_es = 1, downlink swept): does the seed series
  (EIUG, analog, channel-aware resume) beat `prompt-only` in fidelity to the reference, and does its prompt
  accuracy stay within `ACCURACY_MARGIN` of noiseless (the reference: EIUG over ideal links is the unsplit
  run)?
  beats: the interval of fidelity(seed) - fidelity(prompt-only) lies above 0 (yes), below 0 (no), or holds 0.
  keeps: the interval of match(seed) - match(reference) lies above -0.1 (yes), below -0.1 (no), or holds it.
  supported = beats and keeps; not supported = either is a clear no; otherwise inconclusive.
  Beside it (evidence, not the verdict), where the UE holds the input image: the paired differences in
  fidelity and UE steps against `ue-local`, the UE finishing the task itself.
- **less-communication**, at each SNR, channel and task kind, for each MEG series of the run (`MEG_SERIES`:
  the analog and digital seed, the analog and digital sketch; the paper's claim is about MEG, not one payload,
  so a digital seed may hold it where the analog one does not): against the CENTRALIZED series with the best
  mean fidelity there (the strongest comparison), is that series' fidelity equal or better (the interval
  of the difference lies above -`FIDELITY_MARGIN`: yes; below it: no) and how many times fewer air symbols
  does it use (ratio of means CENTRALIZED / seed, paired bootstrap), on the downlink and over the whole run?
  supported = fidelity yes and the whole-run ratio's interval above 1; not supported = fidelity no or the
  ratio's interval below 1; otherwise inconclusive.
"""

from __future__ import annotations

from typing import Any

from flowgraphs.experiments.case_study import NO_CHANNEL, SEED_SERIES, Point
from meg_common import stats

VERDICTS = ("supported", "not supported", "inconclusive")
ACCURACY_MARGIN = 0.1
FIDELITY_MARGIN = 0.05
"""Equal fidelity, for less-communication: the paired difference is above -0.05 (on a 0..1 agreement scale)."""
CENTRALIZED_PREFIX = "centralized-"
MEG_SERIES = (SEED_SERIES, "seed-digital", "sketch-analog", "sketch-digital")
"""The series the less-communication claim is judged for, each on its own (where the run has it)."""


def is_rival(series: str) -> bool:
    """CENTRALIZED systems on the same kind of link as the seed series: not the capacity bound (no system
    reaches it; its rows show how far each is from it), not the over-the-air (--radio sim) series."""
    return series.startswith(CENTRALIZED_PREFIX) and not series.endswith(("-capacity", "-sim"))


def _f(ci: dict[str, Any], digits: int = 3, sign: bool = False) -> str:
    def one(v):
        if v is None:
            return "n/a"
        return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return f"{one(ci['value'])} [{one(ci['ci_low'])}, {one(ci['ci_high'])}]"


def _paired(a: list[dict[str, Any]], b: list[dict[str, Any]], key, other=None) -> dict[str, Any]:
    """Paired difference of a per-task quantity between two series (tasks matched by index)."""
    other = other or key
    bb = {r["task"]: r for r in b}
    common = [r for r in a if r["task"] in bb]
    return stats.paired_difference([key(r) for r in common], [other(bb[r["task"]]) for r in common])


def _decide(parts: list[int]) -> str:
    if all(p == 1 for p in parts):
        return "supported"
    if any(p == -1 for p in parts):
        return "not supported"
    return "inconclusive"


def low_snr(merged: dict[Point, list[dict[str, Any]]], series: str = SEED_SERIES) -> list[dict[str, Any]]:
    claims = []
    for point, records in sorted(merged.items(), key=lambda kv: (kv[0].kind, kv[0].channel, kv[0].snr_db or 0)):
        if point.series != series or point.snr_db is None or point.snr_db > 0 or point.n_es != 1 \
                or point.swept != "downlink":
            continue
        base = merged.get(Point(point.kind, "prompt-only", NO_CHANNEL, None, 0))
        if not base:
            continue
        fid = _paired(records, base, lambda r: r["fidelity"])
        acc = stats.paired_difference([float(bool(r["prompt_match"])) for r in records],
                                      [float(bool(r["reference_match"])) for r in records])
        beats = stats.excludes_zero(fid)
        low, high = acc["ci_low"], acc["ci_high"]
        keeps = 1 if low is not None and low > -ACCURACY_MARGIN else -1 if high is not None and high < -ACCURACY_MARGIN else 0
        verdict = _decide([beats, keeps])
        acc_seed = sum(bool(r["prompt_match"]) for r in records) / len(records)
        acc_ref = sum(bool(r["reference_match"]) for r in records) / len(records)
        words = {1: "yes", -1: "no", 0: "undecided"}
        evidence = (f"fidelity minus prompt-only's {_f(fid, sign=True)} (beats: {words[beats]}); prompt accuracy "
                    f"{acc_seed:.3f} vs noiseless {acc_ref:.3f}, difference {_f(acc, sign=True)} "
                    f"(within {ACCURACY_MARGIN:g}: {words[keeps]}); n = {len(records)}")
        claim = {"claim": "low-snr", "channel": point.channel, "snr_db": point.snr_db, "task_kind": point.kind,
                 "series": series, "verdict": verdict, "evidence": evidence,
                 "fidelity_vs_prompt_only": fid, "accuracy_vs_noiseless": acc, "n": len(records)}
        local = merged.get(Point(point.kind, "ue-local", NO_CHANNEL, None, 0))
        if local and point.kind == "img2img-ue":
            # Reported beside the verdict, not part of it (issue 10 defines the claim against prompt-only):
            # where the UE holds the input image it can finish the task itself, the sceptic's other first try.
            claim["fidelity_vs_ue_local"] = _paired(records, local, lambda r: r["fidelity"])
            claim["ue_steps_vs_ue_local"] = _paired(records, local, lambda r: r["ue_steps"])
            claim["evidence"] += (f"; beside it, against ue-local (the UE finishing the task from its own image): "
                                  f"fidelity {_f(claim['fidelity_vs_ue_local'], sign=True)}, UE steps "
                                  f"{_f(claim['ue_steps_vs_ue_local'], digits=1, sign=True)}")
        claims.append(claim)
    return claims


def less_communication(merged: dict[Point, list[dict[str, Any]]], series: str = SEED_SERIES) -> list[dict[str, Any]]:
    claims = []
    for point, records in sorted(merged.items(), key=lambda kv: (kv[0].kind, kv[0].channel, kv[0].snr_db or 0)):
        if point.series != series or point.snr_db is None or point.n_es != 1 or point.swept != "downlink":
            continue
        rivals = {p.series: r for p, r in merged.items() if is_rival(p.series) and p.kind == point.kind
                  and p.channel == point.channel and p.snr_db == point.snr_db and p.n_es == 1}
        if not rivals:
            continue
        name = max(sorted(rivals), key=lambda k: sum(r["fidelity"] for r in rivals[k]) / len(rivals[k]))
        rival = rivals[name]
        fid = _paired(records, rival, lambda r: r["fidelity"])
        low, high = fid["ci_low"], fid["ci_high"]
        equal = 1 if low is not None and low > -FIDELITY_MARGIN else -1 if high is not None and high < -FIDELITY_MARGIN else 0
        common = {r["task"] for r in records} & {r["task"] for r in rival}
        mine = [r for r in records if r["task"] in common]
        theirs = {r["task"]: r for r in rival if r["task"] in common}
        air = stats.ratio_of_means([theirs[r["task"]]["air"] for r in mine], [r["air"] for r in mine])
        down = stats.ratio_of_means([theirs[r["task"]]["downlink"] for r in mine], [r["downlink"] for r in mine])
        fewer = 1 if air["ci_low"] is not None and air["ci_low"] > 1 else \
            -1 if air["ci_high"] is not None and air["ci_high"] < 1 else 0
        verdict = _decide([equal, fewer])
        words = {1: "yes", -1: "no", 0: "undecided"}
        evidence = (f"against {name}: fidelity difference {_f(fid, sign=True)} (equal or better within "
                    f"{FIDELITY_MARGIN:g}: {words[equal]}); {_f(air, 2)}x fewer air symbols over the whole run, "
                    f"{_f(down, 2)}x fewer on the downlink; n = {len(mine)}")
        claims.append({"claim": "less-communication", "channel": point.channel, "snr_db": point.snr_db,
                       "task_kind": point.kind, "series": series, "against": name, "verdict": verdict,
                       "evidence": evidence, "fidelity_difference": fid, "fewer_air": air, "fewer_downlink": down,
                       "n": len(mine)})
    return claims


def claims(merged: dict[Point, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return low_snr(merged) + [c for series in MEG_SERIES for c in less_communication(merged, series)]


def counts(decided: list[dict[str, Any]]) -> dict[str, int]:
    """How many claims came out each way, in `VERDICTS` order."""
    return {v: sum(c["verdict"] == v for c in decided) for v in VERDICTS}


def summary(decided: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdicts counted per claim, series, task kind and channel, with the SNRs (dB) of each outcome: the
    overview a reader needs before the per-point table (a claim that holds only at high SNR shows as such);
    in the order the claims were decided."""
    groups: dict[tuple, dict[str, list[float]]] = {}
    for c in decided:
        key = (c["claim"], c["series"], c["task_kind"], c["channel"])
        groups.setdefault(key, {v: [] for v in VERDICTS})[c["verdict"]].append(c["snr_db"])
    return [{"claim": claim, "series": series, "task_kind": kind, "channel": channel,
             **{v: sorted(snrs) for v, snrs in outcome.items()}}
            for (claim, series, kind, channel), outcome in groups.items()]
