"""The claims as a frontier of quality, UE compute and air symbols: verdicts computed from paired tests on the
same tasks, never typed in.

Quality is fidelity to the one reference per task (the ES's full-schedule noiseless output); "non-inferior"
means the paired difference lies above -margin, the margin calibrated on imperceptible variants of the
references (campaign.calibration; `DEFAULT_MARGIN` where a run has no calibration). Every comparison is a
paired t test on per-task differences (meg_common.stats.paired_test; its 95 % interval is what the evidence
shows), one-sided at `ALPHA` = 2.5 %, the level of a 95 % two-sided interval.

**The frontier.** For every MEG series (`MEG_SERIES`) at every point (task kind, channel, SNR; one ES, downlink
swept), a sceptic S *dominates* it when S's quality is non-inferior, S runs no more UE steps and puts no more
symbols on air (each decided: yes, no, or undecided; "no more" within half a step / half a symbol).
The sceptics (`sceptics`): `noise-seed@K` at the same point (the ES's noise seed in a control message, the UE
alone with it), `prompt-only[@K]`, and, where the UE holds the input image (img2img-ue), `ue-local[@K]`.
Dominance is an intersection: it holds when every leg holds (p = the largest leg's), it fails when any leg
fails (p = the smallest).

**Verdicts** (each names the series that decided it, `decided_by`):
- *low-snr* (SNR <= 0 dB; the EIUG seed series, whose noiseless run is the reference): quality within the
  margin of the same series without noise (fidelity 1 per task) and no sceptic dominates it.
- *less-communication*: fewer air symbols than the cheapest CENTRALIZED configuration of non-inferior quality,
  searched on its rate-quality curve at the same point (`is_rival`: WebP quality levels and lossless, link
  adapted; fixed MCS; analog pixels; SoftCast; not the capacity bound, not the radio series). Supported when
  the series uses fewer air symbols than every configuration not clearly inferior to it (so than the cheapest,
  `rival`); not supported when some configuration is non-inferior and uses no more; with no configuration
  reaching its quality it is supported (nothing centralized matches it). The UE steps it costs are beside.
- *compute-offload*: fewer UE steps than the best UE-alone sceptic (`noise-seed@K`, `ue-local@K`,
  `prompt-only@K`) of non-inferior quality, with the air symbols it costs; the same rules with UE steps.

A verdict is an intersection-union test: supported when every condition holds (p_support = the largest
condition p), not supported when one fails (p_fail = the smallest). **Holm's correction within each claim
family** (all verdicts of one claim in a run) is applied to p_support and p_fail apart: supported when the
adjusted p_support is below ALPHA, not supported when the adjusted p_fail is, inconclusive otherwise. So each
family's chance of one wrong "supported" (or one wrong "not supported") is at most 2.5 %. The listed
`dominated_by` (the frontier) is per comparison at ALPHA, unadjusted: a description, not a claim.
"""

from __future__ import annotations

from typing import Any

from flowgraphs.experiments.case_study import NO_CHANNEL, SEED_SERIES, Point
from meg_common import stats

VERDICTS = ("supported", "not supported", "inconclusive")
CLAIMS = ("low-snr", "less-communication", "compute-offload")
ALPHA = 0.025
"""One-sided level of every test (a 95 % two-sided interval); Holm keeps each claim family at it."""
DEFAULT_MARGIN = 0.05
"""Non-inferiority margin in fidelity where the run has no calibration point (the fixed margin of the first case study)."""
MARGIN_FACTORS = (0.5, 1.0, 2.0)
"""The report counts the verdicts at these multiples of the calibrated margin."""
STEP_TOLERANCE = 0.5
SYMBOL_TOLERANCE = 0.5
"""'No more UE steps / air symbols': the paired difference lies below half a step / half a symbol."""
CENTRALIZED_PREFIX = "centralized-"
MEG_SERIES = (SEED_SERIES, "seed-analog-naive", "seed-digital", "sketch-analog", "sketch-digital")
"""The MEG series judged, each on its own (where the run has it)."""
NOISELESS_IS_REFERENCE = (SEED_SERIES, "seed-analog-naive", "seed-digital")
"""MEG series whose noiseless run is the reference (an ideal split EIUG run is the unsplit run; a delivered
int8 seed reproduces it): low-snr compares them with fidelity 1. The sketches' noiseless run is not the
reference, so low-snr does not judge them."""
SCEPTIC_ALONE = ("prompt-only", "ue-local")


def is_rival(series: str) -> bool:
    """CENTRALIZED configurations on the same kind of link as the MEG series: not the capacity bound (no system
    reaches it), not the over-the-air (--radio sim) series."""
    return series.startswith(CENTRALIZED_PREFIX) and not series.endswith(("-capacity", "-sim"))


def margin_of(calibration: dict[str, Any] | None) -> float:
    """The fidelity margin a run's calibration sets (DEFAULT_MARGIN without one)."""
    value = ((calibration or {}).get("margin") or {}).get("fidelity")
    return float(value) if value is not None else DEFAULT_MARGIN


# ---- paired comparisons -----------------------------------------------------------------------------------
def _aligned(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    bb = {r["task"]: r for r in b}
    common = [r for r in a if r["task"] in bb]
    return [float(r[key]) for r in common], [float(bb[r["task"]][key]) for r in common]


def _test(a, b, key: str, threshold: float) -> dict[str, Any]:
    """Paired test of a - b (series a against series b on the same tasks) against a threshold."""
    return stats.paired_test(*_aligned(a, b, key), threshold=threshold)


def _status(p_yes: float, p_no: float) -> str:
    return "yes" if p_yes < ALPHA else "no" if p_no < ALPHA else "undecided"


def compare(mine: list[dict[str, Any]], other: list[dict[str, Any]], margin: float) -> dict[str, Any]:
    """Does `other` dominate `mine`? Its three legs (quality non-inferior, no more UE steps, no more air
    symbols), each a paired test of other - mine, and the intersection's p-values."""
    quality = _test(other, mine, "fidelity", -margin)
    steps = _test(other, mine, "ue_steps", STEP_TOLERANCE)
    air = _test(other, mine, "air", SYMBOL_TOLERANCE)
    legs = {"quality": (quality["p_above"], quality["p_below"]), "ue_steps": (steps["p_below"], steps["p_above"]),
            "air": (air["p_below"], air["p_above"])}
    p_yes = max(p for p, _ in legs.values())
    p_no = min(p for _, p in legs.values())
    return {"quality": quality, "ue_steps": steps, "air": air,
            "legs": {k: _status(*v) for k, v in legs.items()}, "p_yes": p_yes, "p_no": p_no,
            "dominates": _status(p_yes, p_no)}


def _mean(records: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in records) / len(records)


def meg_points(merged: dict[Point, list[dict[str, Any]]], series=MEG_SERIES) -> list[Point]:
    return sorted((p for p in merged if p.series in series and p.snr_db is not None and p.n_es == 1
                   and p.swept == "downlink"),
                  key=lambda p: (MEG_SERIES.index(p.series) if p.series in MEG_SERIES else 99, p.kind, p.channel,
                                 p.snr_db))


def sceptics(merged: dict[Point, list[dict[str, Any]]], point: Point) -> dict[str, list[dict[str, Any]]]:
    """The sceptics of a MEG point: noise-seed@K at the same point, prompt-only at every K, and ue-local at
    every K where the UE holds the input image (img2img-ue)."""
    out = {}
    for p, records in merged.items():
        base = p.series.partition("@")[0]
        if p.kind != point.kind or not records:
            continue
        if base == "noise-seed" and (p.channel, p.snr_db, p.n_es, p.swept) == (point.channel, point.snr_db, 1,
                                                                                point.swept):
            out[p.series] = records
        elif p.channel == NO_CHANNEL and (base == "prompt-only" or (base == "ue-local" and p.kind == "img2img-ue")):
            out[p.series] = records
    return dict(sorted(out.items(), key=lambda kv: (kv[0].partition("@")[0], int(kv[0].partition("@")[2] or 999))))


def _rivals(merged, point: Point) -> dict[str, list[dict[str, Any]]]:
    return {p.series: r for p, r in merged.items() if is_rival(p.series) and p.kind == point.kind and r
            and p.channel == point.channel and p.snr_db == point.snr_db and p.n_es == 1 and p.swept == point.swept}


def _f(ci: dict[str, Any] | None, digits: int = 3, sign: bool = False) -> str:
    if ci is None:
        return "n/a"

    def one(v):
        if v is None:
            return "n/a"
        return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return f"{one(ci['value'])} [{one(ci['ci_low'])}, {one(ci['ci_high'])}]"


def _base(point: Point, claim: str, margin: float, n: int) -> dict[str, Any]:
    return {"claim": claim, "series": point.series, "task_kind": point.kind, "channel": point.channel,
            "snr_db": point.snr_db, "margin": margin, "n": n}


# ---- the frontier -------------------------------------------------------------------------------------------
def frontier_of(merged, point: Point, margin: float) -> dict[str, Any]:
    """The sceptics that dominate a MEG point (decided yes) and those that may (undecided), with the legs."""
    mine = merged[point]
    found = {name: compare(mine, records, margin) for name, records in sceptics(merged, point).items()}
    return {"series": point.series, "task_kind": point.kind, "channel": point.channel, "snr_db": point.snr_db,
            "margin": margin,
            "dominated_by": [k for k, c in found.items() if c["dominates"] == "yes"],
            "maybe_dominated_by": [k for k, c in found.items() if c["dominates"] == "undecided"],
            "comparisons": found}


def frontier(merged, margin: float) -> list[dict[str, Any]]:
    """`frontier_of` every MEG point (without the per-leg detail: see the claims' evidence)."""
    out = []
    for point in meg_points(merged):
        f = frontier_of(merged, point, margin)
        f["legs"] = {k: c["legs"] for k, c in f.pop("comparisons").items()}
        out.append(f)
    return out


# ---- the three claims (p-values before Holm) ----------------------------------------------------------------
def low_snr(merged, margin: float) -> list[dict[str, Any]]:
    out = []
    for point in meg_points(merged, NOISELESS_IS_REFERENCE):
        if point.snr_db > 0:
            continue
        mine = merged[point]
        within = stats.paired_test([r["fidelity"] for r in mine], [1.0] * len(mine), threshold=-margin)
        f = frontier_of(merged, point, margin)
        comps = f["comparisons"]
        p_support = max([within["p_above"], *(c["p_no"] for c in comps.values())])
        p_fail = min([within["p_below"], *(c["p_yes"] for c in comps.values())])
        dominating = f["dominated_by"]
        failing = min([("noiseless", within["p_below"]), *((k, c["p_yes"]) for k, c in comps.items())],
                      key=lambda kv: kv[1])[0]
        hinge = max([("noiseless", within["p_above"]), *((k, c["p_no"]) for k, c in comps.items())],
                    key=lambda kv: kv[1])[0]
        decided = {"supported": hinge, "not supported": failing, "inconclusive": hinge}
        words = {"yes": "yes", "no": "no", "undecided": "undecided"}
        evidence = (f"fidelity minus noiseless (1 per task) {_f(within, sign=True)} (within {margin:.3f}: "
                    f"{words[_status(within['p_above'], within['p_below'])]}); "
                    + ("dominated by " + ", ".join(dominating) if dominating else "no sceptic dominates it clearly")
                    + (f" (undecided: {', '.join(f['maybe_dominated_by'])})" if f["maybe_dominated_by"] else "")
                    + f"; n = {len(mine)}")
        out.append({**_base(point, "low-snr", margin, len(mine)), "dominated_by": dominating,
                    "maybe_dominated_by": f["maybe_dominated_by"], "rival": None, "_decides": decided,
                    "fidelity_vs_noiseless": within, "p_support": p_support, "p_fail": p_fail, "evidence": evidence})
    return out


def less_communication(merged, margin: float) -> list[dict[str, Any]]:
    out = []
    for point in meg_points(merged):
        rivals = _rivals(merged, point)
        if not rivals:
            continue
        mine = merged[point]
        tests = {}
        for name, theirs in rivals.items():
            q = _test(theirs, mine, "fidelity", -margin)
            fewer = _test(theirs, mine, "air", 0.0)               # rival - mine > 0: mine uses fewer
            no_more = _test(theirs, mine, "air", SYMBOL_TOLERANCE)  # rival - mine < 1/2: rival uses no more
            tests[name] = {"quality": q, "status": _status(q["p_above"], q["p_below"]), "fewer": fewer,
                           "no_more": no_more, "air": _mean(theirs, "air")}
        candidates = [k for k, t in tests.items() if t["status"] != "no"]
        fails = {k: max(t["quality"]["p_above"], t["no_more"]["p_below"]) for k, t in tests.items()}
        failing = min(fails, key=lambda k: (fails[k], tests[k]["air"]))
        p_fail = fails[failing]
        if not candidates:
            rival = None
            p_support = max(t["quality"]["p_below"] for t in tests.values())
            decided = max(tests, key=lambda k: tests[k]["quality"]["value"] or 0)
            what = (f"no CENTRALIZED configuration reaches its quality (best, {decided}: fidelity difference "
                    f"{_f(tests[decided]['quality'], sign=True)})")
            ratio = down = None
        else:
            rival = min(candidates, key=lambda k: (tests[k]["air"], k))
            p_support = max(tests[k]["fewer"]["p_above"] for k in candidates)
            decided = rival
            common = _aligned(rivals[rival], mine, "air")
            ratio = stats.ratio_of_means(*common)
            down = stats.ratio_of_means(*_aligned(rivals[rival], mine, "downlink"))
            t = tests[rival]
            what = (f"cheapest CENTRALIZED not clearly worse: {rival} (fidelity difference {_f(t['quality'], sign=True)}, "
                    f"non-inferior: {t['status']}); {_f(ratio, 2)}x fewer air symbols ({_f(down, 2)}x on the "
                    f"downlink)")
        steps = stats.mean([r["ue_steps"] for r in mine])
        if p_fail < ALPHA:
            t = tests[failing]
            what += (f"; {failing} is non-inferior (fidelity difference {_f(t['quality'], sign=True)}) for no more "
                     f"air symbols ({t['air']:.0f})")
        evidence = (f"{what}; it costs {_f(steps, 1)} UE steps (CENTRALIZED: 0); "
                    f"{len(candidates)} of {len(tests)} configurations not clearly worse; n = {len(mine)}")
        out.append({**_base(point, "less-communication", margin, len(mine)),
                    "dominated_by": frontier_of(merged, point, margin)["dominated_by"], "rival": rival,
                    "_decides": {"supported": decided, "not supported": failing, "inconclusive": decided},
                    "fewer_air": ratio, "fewer_downlink": down, "ue_steps": steps,
                    "curve": {k: {"fidelity_difference": t["quality"], "non_inferior": t["status"], "air": t["air"]}
                              for k, t in tests.items()},
                    "p_support": p_support, "p_fail": p_fail, "evidence": evidence})
    return out


def compute_offload(merged, margin: float) -> list[dict[str, Any]]:
    out = []
    for point in meg_points(merged):
        alone = sceptics(merged, point)
        if not alone:
            continue
        mine = merged[point]
        tests = {}
        for name, theirs in alone.items():
            q = _test(theirs, mine, "fidelity", -margin)
            tests[name] = {"quality": q, "status": _status(q["p_above"], q["p_below"]),
                           "more": _test(theirs, mine, "ue_steps", 0.0),             # sceptic - mine > 0
                           "no_more": _test(theirs, mine, "ue_steps", STEP_TOLERANCE),
                           "steps": _mean(theirs, "ue_steps")}
        candidates = [k for k, t in tests.items() if t["status"] != "no"]
        fails = {k: max(t["quality"]["p_above"], t["no_more"]["p_below"]) for k, t in tests.items()}
        failing = min(fails, key=lambda k: (fails[k], tests[k]["steps"]))
        p_fail = fails[failing]
        air = stats.mean([r["air"] for r in mine])
        if not candidates:
            best = None
            p_support = max(t["quality"]["p_below"] for t in tests.values())
            decided = max(tests, key=lambda k: tests[k]["quality"]["value"] or 0)
            what = (f"no UE-alone sceptic reaches its quality (closest, {decided}: fidelity difference "
                    f"{_f(tests[decided]['quality'], sign=True)})")
            fewer = None
        else:
            best = min(candidates, key=lambda k: (tests[k]["steps"], k))
            p_support = max(tests[k]["more"]["p_above"] for k in candidates)
            decided = best
            t = tests[best]
            fewer = t["more"]
            what = (f"best UE-alone sceptic not clearly worse: {best} (fidelity difference {_f(t['quality'], sign=True)}, "
                    f"non-inferior: {t['status']}), UE steps it saves {_f(fewer, 1, sign=True)}")
        if p_fail < ALPHA:
            t = tests[failing]
            what += (f"; {failing} is non-inferior (fidelity difference {_f(t['quality'], sign=True)}) with no more "
                     f"UE steps ({t['steps']:.1f})")
        evidence = f"{what}; for {_f(air, 0)} air symbols; n = {len(mine)}"
        out.append({**_base(point, "compute-offload", margin, len(mine)),
                    "dominated_by": frontier_of(merged, point, margin)["dominated_by"], "rival": best,
                    "_decides": {"supported": decided, "not supported": failing, "inconclusive": decided},
                    "ue_steps_saved": fewer, "air_symbols": air,
                    "sceptics": {k: {"fidelity_difference": t["quality"], "non_inferior": t["status"],
                                     "ue_steps": t["steps"]} for k, t in tests.items()},
                    "p_support": p_support, "p_fail": p_fail, "evidence": evidence})
    return out


def correct(family: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Holm within one claim family: adjusted p_support and p_fail, and the verdicts they give."""
    if not family:
        return family
    support = stats.holm([c["p_support"] for c in family])
    fail = stats.holm([c["p_fail"] for c in family])
    for c, ps, pf in zip(family, support, fail, strict=True):
        c["p_support_holm"], c["p_fail_holm"] = ps, pf
        c["verdict"] = "supported" if ps < ALPHA else "not supported" if pf < ALPHA else "inconclusive"
        decides = c.pop("_decides", None)
        if decides is not None:   # the series the outcome hinged on: what failed it, or what it had to beat
            c["decided_by"] = decides[c["verdict"]]
        c["evidence"] += f"; Holm-adjusted p {ps:.2g} (supported) / {pf:.2g} (not supported), family of {len(family)}"
    return family


def claims(merged: dict[Point, list[dict[str, Any]]], margin: float = DEFAULT_MARGIN) -> list[dict[str, Any]]:
    """Every verdict of a run at a fidelity margin, Holm-corrected within each claim family."""
    return (correct(low_snr(merged, margin)) + correct(less_communication(merged, margin))
            + correct(compute_offload(merged, margin)))


def at_margins(merged, margin: float, factors=MARGIN_FACTORS) -> list[dict[str, Any]]:
    """The verdict counts per claim at several multiples of the margin (how much the verdicts hang on it)."""
    out = []
    for factor in factors:
        decided = claims(merged, margin * factor)
        out.append({"factor": factor, "margin": margin * factor,
                    "counts": {claim: counts([c for c in decided if c["claim"] == claim]) for claim in CLAIMS}})
    return out


CORRECTION = {"method": "holm", "family": "each claim (low-snr, less-communication, compute-offload) over the run",
              "alpha_one_sided": ALPHA, "tests": "paired t tests on per-task differences; a verdict is an "
              "intersection-union test of its conditions (supported: largest p; not supported: smallest)",
              "intervals": "95 % two-sided, unadjusted"}


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
