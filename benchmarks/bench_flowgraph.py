"""RunLedger overhead: EIUG through flowgraphs (config layers, hop records, compute accounting, stages) against
the same stages and links called directly, in one run.

Both sides do identical work: the same prebuilt task, the same link configurations and link seeds, the same
codec calls, so the outputs are equal (checked). Repetitions are interleaved (alternating order) after one
warm-up each; overhead = flowgraph / direct - 1 on the minimum process CPU time (the least disturbed run on
a shared machine; medians of wall time reported too). Target: at most 5 %.
Uses the embedded default model, or a tiny random SD folder of the same geometry while it is absent.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch

TARGET = 0.05


def _direct(task, config, session):
    """EIUG written out by hand: prompt + image up, ES denoises to the split, analog seed down, UE finishes.

    Links come from the same session as the flowgraph's (built once per configuration, reseeded per hop)."""
    from flowgraphs.ledger import hop_seed
    from flowgraphs.prompt_codec import decode_prompt, encode_prompt
    from meg_phy import codecs
    from meg_phy.resume import resume

    ldm, spec = task.ldm, config.link
    link = session.link(replace(spec, scheme="digital"), hop_seed(config.seed, "UE-ES1-prompt"))
    prompt = None
    for _ in range(spec.max_attempts):
        received, _ = link.send_bytes(encode_prompt(task.prompt))
        try:
            prompt = decode_prompt(received)
            break
        except ValueError:
            continue
    values, side = codecs.image_to_analog(task.image, normalise=False)   # the link normalises power
    est, var, _ = session.link(spec, hop_seed(config.seed, "UE-ES1-image")).send_values(values)
    image, _ = codecs.analog_to_image(est, var, side)
    cond = ldm.encode_prompt(prompt or "", guidance=task.guidance)
    seed = ldm.start(None, image, strength=task.strength, steps=task.steps,
                     generator=torch.Generator().manual_seed(task.seed))
    seed = ldm.denoise(seed, cond, until=round(seed.total * config.split))
    values, side = codecs.seed_to_analog(seed, normalise=False)
    est, var, _ = session.link(spec, hop_seed(config.seed, "ES1-UE-seed")).send_values(values)
    received, latent_var = codecs.analog_to_seed(est, var, side)
    received = resume(ldm, received, float(latent_var.mean()), mode=config.resume)
    cond = ldm.encode_prompt(task.prompt, guidance=task.guidance)
    return ldm.decode(ldm.denoise(received, cond))


def run(quick: bool = False) -> dict:
    import importlib.util
    import tempfile
    from pathlib import Path

    from flowgraphs.config import config_from_dict
    from flowgraphs.runner import run_protocol
    from flowgraphs.session import Session
    from flowgraphs.task import make_task
    from meg_phy.models import DEFAULT_MODEL_DIR

    model, model_name = None, "embedded default model"
    if not (DEFAULT_MODEL_DIR / "model_index.json").exists():
        spec = importlib.util.spec_from_file_location(
            "tiny_sd", Path(__file__).resolve().parent.parent / "tests" / "tiny_sd.py")
        tiny = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tiny)
        model = str(tiny.make_tiny_sd(Path(tempfile.mkdtemp(prefix="bench-flowgraph-")) / "tiny"))
        model_name = "tiny random SD folder (the embedded model is not there yet)"
    torch.set_num_threads(1)
    config = config_from_dict({}, protocol="EIUG", model=model, snr_db=5.0)
    session = Session()
    task = make_task(config, session)
    fns = {"flowgraph": lambda: run_protocol(config, task, session).image,
           "direct": lambda: _direct(task, config, session)}
    same = bool(torch.equal(fns["flowgraph"](), fns["direct"]()))
    repeats = 5 if quick else 20
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns.items())
    for i in range(repeats):
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            c, w = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    overhead = min(cpu["flowgraph"]) / min(cpu["direct"]) - 1
    return {
        "name": "flowgraph overhead (EIUG, analog seed at 5 dB, prompt digital)",
        "model": model_name, "repeats": repeats, "outputs_identical": same,
        "cpu_s_min": {k: min(v) for k, v in cpu.items()},
        "wall_s_median": {k: statistics.median(v) for k, v in wall.items()},
        "overhead": overhead, "target": f"overhead <= {TARGET:.0%}",
        "passed": bool(same and overhead <= TARGET),
    }
