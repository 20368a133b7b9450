"""DIR/report.md of `meg-phy reproduce`: the case study from measured numbers only, verdicts first."""

from __future__ import annotations

from typing import Any

from flowgraphs.config import LinkSpec
from flowgraphs.experiments.case_study import KINDS
from flowgraphs.experiments.verdicts import (
    ACCURACY_MARGIN,
    FIDELITY_MARGIN,
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


def write(rows: list[dict[str, Any]], claims: list[dict[str, Any]], plan, versions: dict[str, Any],
          model: dict[str, Any], world: dict[str, Any], seconds: float, cpu_seconds: float, quick: bool,
          hooks: list[dict[str, str]], skipped: list[dict[str, str]], progress: dict[str, int] | None = None,
          plots: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """report.md of a campaign; `plots`: the figures per task kind (figures.figure_set), (file, what)."""
    spec = LinkSpec()
    n = min((r["n"] for r in rows), default=0)
    lines = [
        "# Case study: Mobile Edge Generation against doing nothing, with intervals and verdicts",
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
        + (f"with MCS {spec.mcs} (link adaptation), " if hasattr(spec, "mcs") else
           f"n = {spec.codeword_bits}, rate {spec.code_rate}, {spec.modulation.upper()}, ")
        + f"up to {spec.max_attempts} transmissions"
        + (" (HARQ, chase combining)" if getattr(spec, "harq", False) else "")
        + "; analog: two values per complex symbol. The swept SNR is the downlink's unless a row says "
        f"'uplink swept'; the other direction is at {plan.uplink_snr_db:g} dB. Symbols count every resource "
        "element on air (data, pilots, cyclic prefix, padding), every try; backhaul apart.",
        "",
        "Statistics: 95 % intervals everywhere: Wilson for rates, bootstrap (BCa, 4000 resamples) for means, "
        "paired bootstrap for differences between series on the same tasks.",
        "",
        "## Verdicts",
        "",
        f"low-snr: the seed series (EIUG, analog, channel-aware) beats `prompt-only` in fidelity (paired interval "
        f"above 0) and keeps its prompt accuracy within {ACCURACY_MARGIN:g} of noiseless (paired interval above "
        f"-{ACCURACY_MARGIN:g}). less-communication, for each MEG series the run has ({', '.join(MEG_SERIES)}): "
        f"at equal or better fidelity (paired interval above -{FIDELITY_MARGIN:g}) than the best CENTRALIZED "
        "series at the same point, how many times fewer air symbols (interval above 1: supported).",
        "",
    ]
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
        "| claim | series | task | channel | SNR (dB) | verdict | evidence |",
        "|---|---|---|---|---:|---|---|",
    ]
    for c in claims:
        lines.append(f"| {c['claim']} | {c['series']} | {c['task_kind']} | {c['channel']} | "
                     f"{c['snr_db']:g} | **{c['verdict']}** | {c['evidence']} |")
    if not claims:
        lines.append("| (no point of this run decides a claim) | | | | | | |")
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
        lines += ["| series | point | n_es | n | prompt accuracy [95 % CI] | noiseless | fidelity | fidelity - prompt-only "
                  "| PSNR (dB) | SSIM | UE steps | ES steps | UE s | symbols up / down / backhaul / air |",
                  "|---|---|---:|---:|---|---:|---|---|---|---|---:|---:|---:|---|"]
        for r in sorted(mine, key=lambda r: (r["snr_db"] is not None, r["channel"] or "", r["series"], r["n_es"],
                                             r["snr_db"] or 0)):
            s = r["symbols"]
            diff = r["paired"].get("prompt-only", {}).get("fidelity")
            lines.append(
                f"| {r['label']} | {_where(r)} | {r['n_es']} | {r['n']} | {ci(r['prompt_accuracy'])} "
                f"(k = {r['prompt_accuracy']['k']}) | {r['reference_accuracy']['value']:.2f} | {ci(r['fidelity'], 3)} | "
                f"{ci(diff, 3, sign=True)} | {ci(r['psnr_db'], 1)} | {ci(r['ssim'], 3)} | "
                f"{r['ue_steps']['value']:.1f} | {r['es_steps']['value']:.1f} | {r['ue_seconds']['value']:.2f} | "
                f"{s['uplink']:.0f} / {s['downlink']:.0f} / {s['backhaul']:.0f} / {s['air']:.0f} |")
        lines.append("")
    if hooks or skipped:
        lines += ["## Not run", ""]
        lines += [f"- series `{h['series']}`: {h['why']}" for h in hooks]
        lines += [f"- point `{s['point']}`: {s['why']}" for s in skipped]
        lines.append("")
    return "\n".join(lines)
