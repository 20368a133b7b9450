"""DIR/report.md of `meg-phy reproduce`: the case study from measured numbers only, verdicts first."""

from __future__ import annotations

from typing import Any

from flowgraphs.config import LinkSpec
from flowgraphs.experiments.case_study import KINDS
from flowgraphs.experiments.verdicts import (
    ALPHA,
    CLAIMS,
    DEFAULT_MARGIN,
    MEG_SERIES,
    VERDICTS,
    counts,
    summary,
)

KIND_TEXT = {
    "text-to-image": "text-to-image (the UE wants the ES's image; the seed carries what the prompt leaves open)",
    "img2img-es": "img2img, input image at the ES",
    "img2img-ue": "img2img, input image at the UE (uploaded by protocols that need it at an ES)",
}


def ci(m: dict[str, Any] | None, digits: int = 2, sign: bool = False, inf: str = "∞") -> str:
    if m is None:
        return ""

    def one(v, infinite=inf):
        if v is None:
            return infinite
        return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return f"{one(m['value'])} [{one(m['ci_low'], 'n/a')}, {one(m['ci_high'])}]"


def _where(r: dict[str, Any]) -> str:
    if r["snr_db"] is None:
        return "no channel"
    extra = ", uplink swept" if r.get("swept") == "uplink" else ""
    return f"{r['channel']} {r['snr_db']:g} dB{extra}"


def _adaptation(spec) -> str:
    """How the MCS is chosen, in words."""
    link = spec.as_link_config(digital=True)
    if link.olla:
        return (f"outer-loop link adaptation: OLLA toward {link.bler_target * 100:g} % first-transmission BLER on the "
                f"receiver's reported SNR, {link.report_delay_frames} frame old")
    return "link adaptation"


_PLAN_LINK_WORDS = {
    "arq_max": lambda v: f"RLC ARQ after HARQ, up to {v} retransmissions",
    "fading": lambda v: f"{v} fading on TDL/CDL",
    "speed_mps": lambda v: f"a UE at {v:g} m/s ({v * 3.6:.0f} km/h)",
}


def _plan_link(plan) -> str:
    """The plan's own [link] settings of every hop (e.g. the core plan's pedestrian UE), as a sentence."""
    items = dict(getattr(plan, "link", ()) or ())
    if not items:
        return ""
    words = [_PLAN_LINK_WORDS[k](v) if k in _PLAN_LINK_WORDS else f"{k} = {v}" for k, v in items.items()]
    return " Every hop of this plan also has: " + "; ".join(words) + "."


def write(rows: list[dict[str, Any]], claims: list[dict[str, Any]], plan, versions: dict[str, Any],
          model: dict[str, Any], world: dict[str, Any], seconds: float, cpu_seconds: float, quick: bool,
          hooks: list[dict[str, str]], skipped: list[dict[str, str]], progress: dict[str, int] | None = None,
          plots: dict[str, list[tuple[str, str]]] | None = None, *, calibration: dict[str, Any] | None = None,
          margin: float | None = None, margins: list[dict[str, Any]] | None = None,
          frontier: list[dict[str, Any]] | None = None) -> str:
    """report.md of a campaign; `plots`: the figures per task kind (figures.figure_set), (file, what);
    `calibration`, `margin`, `margins` (verdict counts at several margins) and `frontier` from verdicts."""
    margin = DEFAULT_MARGIN if margin is None else margin
    spec = LinkSpec()
    n = min((r["n"] for r in rows), default=0)
    lines = [
        "# Case study: Mobile Edge Generation against the sceptic who knows the system, with intervals and verdicts",
        "",
        f"*Every number below was measured by `meg-phy reproduce{' --quick' if quick else ''}` in this folder "
        f"({seconds / 60:.1f} min wall, {cpu_seconds / 60:.1f} min of CPU time in this process); commit "
        f"`{versions.get('commit')}`, torch {versions.get('torch')}, sionna-no-rt {versions.get('sionna-no-rt')}, "
        f"diffusers {versions.get('diffusers')}. Model `{model.get('path')}` (latent {model.get('latent_shape')}, "
        f"images {model.get('resolution')}), world {world.get('world')}.*",
        "",
    ]
    if progress is not None and progress["done"] < progress["of"]:
        lines += [f"**Interim report (`--report-only`): {progress['done']} of {progress['of']} units are in.** "
                  "Points whose units are not all in have fewer tasks (each row's n); points not reached are "
                  "missing, and so are their verdicts.", ""]
    lines += [
        "## Setup",
        "",
        f"Tasks: {plan.n_tasks} per design point (at least {n} in every row), the same tasks in every series; "
        + "prompts leave attributes open (the world's partial prompts), so the seed carries the layout. "
        + f"{plan.steps} DDIM steps, img2img at strength {plan.strength:g}, guidance {plan.guidance if plan.guidance is not None else '(model default)'}.",
        "",
        "One reference per task: the unsplit, noiseless, uncompressed output of the LDM. Every series, "
        "baseline and protocol is scored against it: prompt accuracy (the evaluator reads back what the "
        f"prompt names), fidelity ({world.get('fidelity')}), PSNR (of the mean squared error over the tasks; "
        "∞: all identical) and SSIM. Baselines with nothing on air: `prompt-only` (the UE generates from its "
        "prompt with its own model and its own noise) and `ue-local` (the UE runs the whole task itself).",
        "",
        f"Links: OFDM {spec.fft_size} subcarriers x {spec.num_ofdm_symbols} symbols at "
        f"{spec.subcarrier_spacing_khz:g} kHz, {spec.estimator.upper()} estimation; digital: 5G LDPC "
        + (f"with MCS {spec.mcs} ({_adaptation(spec)}), " if hasattr(spec, "mcs") else
           f"n = {spec.codeword_bits}, rate {spec.code_rate}, {spec.modulation.upper()}, ")
        + f"up to {spec.max_attempts} transmissions"
        + (" (HARQ, chase combining)" if getattr(spec, "harq", False) else "")
        + "; analog: two values per complex symbol." + _plan_link(plan) + " The swept SNR is the downlink's unless a row says "
        f"'uplink swept'; the other direction is at {plan.uplink_snr_db:g} dB. Symbols count every resource "
        "element on air (data, pilots, cyclic prefix, padding), every try; backhaul apart.",
        "",
        "Statistics: 95 % intervals everywhere: Wilson for rates, bootstrap (BCa, 4000 resamples) for means, "
        "paired bootstrap for differences between series on the same tasks.",
        "",
        "## Calibration: what the metrics do on changes nobody sees",
        "",
    ]
    lines += _calibration(calibration, margin)
    lines += [
        "## Verdicts",
        "",
        f"Quality is fidelity to the reference; non-inferior means the paired difference lies above -{margin:.3f} "
        "(the calibrated margin above). The sceptics: `noise-seed@K` (the ES sends its noise seed, schedule and "
        "strength in a digital control message at the hop's robust MCS with HARQ, counted on air; the UE runs a "
        "K-step schedule alone; not applicable to img2img-es), `prompt-only@K`, and where the UE holds the input "
        "image `ue-local@K` (without @K: the full schedule). A sceptic dominates a MEG series when its quality is "
        "non-inferior and it runs no more UE steps and puts no more symbols on air. low-snr (SNR <= 0 dB, the "
        "EIUG seeds): within the margin of noiseless and no sceptic dominates. less-communication (each MEG "
        f"series: {', '.join(MEG_SERIES)}): fewer air symbols than the cheapest CENTRALIZED configuration of "
        "non-inferior quality (WebP quality levels and lossless, link adapted; fixed MCS; analog pixels; "
        "SoftCast). compute-offload: fewer UE steps than the best UE-alone sceptic of non-inferior quality. "
        f"Paired t tests on per-task differences, one-sided at {ALPHA:g}; Holm's correction within each claim "
        "family; the intervals shown are 95 %, unadjusted. Each claim names the series that decided it.",
        "",
    ]
    if margins:
        lines += ["Verdict counts at three margins (supported / not supported / inconclusive):", "",
                  "| margin | " + " | ".join(CLAIMS) + " |", "|---|" + "---|" * len(CLAIMS)]
        for m in margins:
            cells = [" / ".join(str(m["counts"][c][v]) for v in VERDICTS) for c in CLAIMS]
            lines.append(f"| {m['margin']:.3f} ({m['factor']:g}x) | " + " | ".join(cells) + " |")
        lines.append("")
    if frontier:
        lines += ["The frontier: the sceptics that dominate each MEG series (decided per comparison at "
                  f"{ALPHA:g}, unadjusted; 'maybe': undecided):", "",
                  "| series | task | channel | SNR (dB) | dominated by | maybe dominated by |", "|---|---|---|---:|---|---|"]
        for f in frontier:
            lines.append(f"| {f['series']} | {f['task_kind']} | {f['channel']} | {f['snr_db']:g} | "
                         f"{', '.join(f['dominated_by']) or '(none)'} | {', '.join(f['maybe_dominated_by']) or ''} |")
        lines.append("")
    overview = summary(claims)
    if overview:
        lines += ["In short (the SNRs, in dB, at which each verdict came out):", "",
                  "| claim | series | task | channel | " + " | ".join(VERDICTS) + " |",
                  "|---|---|---|---|" + "---|" * len(VERDICTS)]
        for s in overview:
            cells = [f"{len(s[v])}: {', '.join(f'{x:g}' for x in s[v])}" if s[v] else "0" for v in VERDICTS]
            lines.append(f"| {s['claim']} | {s['series']} | {s['task_kind']} | {s['channel']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "| claim | series | task | channel | SNR (dB) | verdict | decided by | evidence |",
        "|---|---|---|---|---:|---|---|---|",
    ]
    for c in claims:
        lines.append(f"| {c['claim']} | {c['series']} | {c['task_kind']} | {c['channel']} | "
                     f"{c['snr_db']:g} | **{c['verdict']}** | {c.get('decided_by') or ''} | {c['evidence']} |")
    if not claims:
        lines.append("| (no point of this run decides a claim) | | | | | | | |")
    lines += ["", "In all: " + ", ".join(f"{k} {v}" for k, v in counts(claims).items()) + ".", ""]

    lines += ["## Trade-off: UE compute, symbols and fidelity", "", "![trade-off](tradeoff.png)", ""]
    for kind in KINDS:
        mine = [r for r in rows if r["task_kind"] == kind]
        if not mine:
            continue
        shown = (plots or {}).get(kind) or [(f"case_study_{kind}.png", kind)]
        lines += [f"## {KIND_TEXT[kind]}", ""]
        for name, what in shown:
            lines += [f"![{what}]({name})", ""]
        nothing = "ue-local" if kind == "img2img-ue" else "prompt-only"
        user = kind in ("text-to-image", "img2img-ue")
        limited = any((r.get("quality", {}).get("prompt_accuracy") or {}).get("model_limited") for r in mine)
        if user and limited:
            lines += ["Prompt adherence here is **model-limited**: the noiseless reference itself follows fewer than "
                      "half of its prompts, so no series can show adherence the model does not have.", ""]
        lines += [f"| series | point | n_es | n | prompt accuracy [95 % CI] | noiseless | fidelity | fidelity - {nothing} "
                  "| identical | PSNR (dB) | feature distance | realism (KID x 1000) | SSIM | UE steps | ES steps | UE s "
                  "| symbols up / down / backhaul / air (control) |",
                  "|---|---|---:|---:|---|---:|---|---|---|---|---|---|---|---:|---:|---:|---|"]
        for r in sorted(mine, key=lambda r: (r["snr_db"] is not None, r["channel"] or "", r["series"], r["n_es"],
                                             r["snr_db"] or 0)):
            s = r["symbols"]
            diff = r["paired"].get(nothing, {}).get("fidelity")
            real = (r.get("quality") or {}).get("realism")
            kid = None if real is None else {k: (None if real[k] is None else 1000 * real[k])
                                             for k in ("value", "ci_low", "ci_high")}
            same = r.get("identical") or {"k": 0}
            lines.append(
                f"| {r['label']} | {_where(r)} | {r['n_es']} | {r['n']} | {ci(r['prompt_accuracy'])} "
                f"(k = {r['prompt_accuracy']['k']}) | {r['reference_accuracy']['value']:.2f} | {ci(r['fidelity'], 3)} | "
                f"{ci(diff, 3, sign=True)} | {same['k']}/{r['n']} | {ci(r['psnr_db'], 1)} | "
                f"{ci(r.get('feature_distance'), 3)} | {ci(kid, 1) if kid else ''} | {ci(r['ssim'], 3)} | "
                f"{r['ue_steps']['value']:.1f} | {r['es_steps']['value']:.1f} | {r['ue_seconds']['value']:.2f} | "
                f"{s['uplink']:.0f} / {s['downlink']:.0f} / {s['backhaul']:.0f} / {s['air']:.0f} "
                f"({s.get('control', 0):.0f}) |")
        lines.append("")
    if hooks or skipped:
        lines += ["## Not run", ""]
        lines += [f"- series `{h['series']}`: {h['why']}" for h in hooks]
        lines += [f"- point `{s['point']}`: {s['why']}" for s in skipped]
        lines.append("")
    return "\n".join(lines)



def _calibration(calibration: dict[str, Any] | None, margin: float) -> list[str]:
    if not calibration:
        return [f"No calibration point in this run: the verdicts use the default margin {margin:.3f}.", ""]
    lines = [f"Each metric against the reference, on imperceptible variants of the {calibration['n']} references "
             "(a 1-pixel shift, WebP q95, Gaussian noise at 35 dB PSNR): the change from the reference itself "
             "(fidelity 1, feature distance 0), mean [95 % interval]. The non-inferiority margin is "
             f"{calibration['rule']}.", "",
             "| variant | fidelity change | feature distance | PSNR (dB) |", "|---|---|---|---|"]
    for name, v in calibration["variants"].items():
        lines.append(f"| {name} | {ci(v['fidelity'], 3, sign=True)} | {ci(v['feature_distance'], 3)} | "
                     f"{ci(v['psnr_db'], 1)} |")
    lines += ["", "Margins: " + ", ".join(f"{k} {v:.3f}" for k, v in calibration["margin"].items() if v is not None)
              + f"; the verdicts use fidelity's, **{margin:.3f}**.", ""]
    return lines
