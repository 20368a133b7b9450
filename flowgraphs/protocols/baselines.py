"""Zero-transmission baselines: what the UE gets without an edge server (issue 10).

A protocol's value is its gain over doing nothing, at a UE compute cost below it. Two ways of doing nothing:

    prompt-only   UE: text encoding, text-to-image from its own noise, every step, decode   (nothing on air)
    ue-local      UE: the whole task itself (img2img from the input image it holds), decode  (nothing on air)

Both run on the UE with its own copy of the model, and draw their own noise: the ES's noise (the seed that
fixes the layout a prompt leaves open) is what a protocol transmits, so the UE does not know it. The caller
passes the task with the seed the UE draws (`baseline_task`). In a text-to-image task `ue-local` is
`prompt-only` (there is no input image).

They are flowgraphs like the protocols (a module-level `run(st)` each), accounted on the same RunLedger,
but not MEG protocols: they are not in `flowgraphs.protocols.PROTOCOLS`; `flowgraphs.runner.run_baselines`
runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

BASELINES: dict[str, str] = {
    "prompt-only": "UE alone: text-to-image from its prompt with its own model and noise (0 symbols)",
    "ue-local": "UE alone: the whole task (img2img from the input image it holds) with its own noise (0 symbols)",
}
BASELINE_SEED_OFFSET = 7_919
"""The UE's own noise: task seed + this (a draw the ES never made)."""


def prompt_only(st):
    ue = "UE"
    cond = st.encode_prompt(ue, st.task.prompt)
    return st.decode(ue, st.denoise(ue, st.start(ue, None), cond))


def ue_local(st):
    ue = "UE"
    cond = st.encode_prompt(ue, st.task.prompt)
    return st.decode(ue, st.denoise(ue, st.start(ue, st.task.image), cond))


def baseline_task(task):
    """The task as the UE alone runs it: the same prompt, image and schedule, its own noise seed."""
    return replace(task, seed=task.seed + BASELINE_SEED_OFFSET)


def flow_of(name: str, image_at_ue: bool) -> Callable:
    """The flow of baseline `name` (`ue-local` of a text-to-image task is `prompt-only`: no input image)."""
    from meg_common.errors import InputError

    if name not in BASELINES:
        raise InputError(f"baseline {name!r} is not known; choose one of: {', '.join(BASELINES)}")
    return ue_local if name == "ue-local" and image_at_ue else prompt_only
