"""What the UE gets without MEG: the zero-transmission baselines and the sceptic who shares the noise seed.

A protocol's value is its gain over what a UE with the same model can do alone, or with a few bits:

    prompt-only[@K]  UE: text encoding, text-to-image from its own noise, a K-step schedule, decode  (nothing on air)
    ue-local[@K]     UE: the whole task itself (img2img from the input image it holds), K steps     (nothing on air)
    noise-seed@K     ES: sends its noise seed, the schedule length and the strength as a small digital control
                     message (Stages.send_control: the hop's robust control MCS, CRC, HARQ, counted on air);
                     UE: runs the task alone with that noise on a K-step schedule. At K = the full schedule it
                     reproduces the ES's unsplit output bit for bit; where the message is lost the UE uses its
                     own noise. It needs the input image at the UE (not img2img-es: InputError).

K is the length of the UE's schedule (img2img runs K x strength of it); without @K the task's own (the full
schedule). prompt-only and ue-local draw their own noise: the caller passes the task with the seed the UE
draws (`baseline_task`); noise-seed gets the ES's task and draws its own only when the message is lost. In a
text-to-image task `ue-local` is `prompt-only` (there is no input image).

They are flowgraphs like the protocols (module-level flows taking `st: Stages`), accounted on the same
RunLedger, but not MEG protocols: they are not in `flowgraphs.protocols.PROTOCOLS`;
`flowgraphs.runner.run_baselines` runs them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

BASELINES: dict[str, str] = {
    "prompt-only": "UE alone: text-to-image from its prompt with its own model and noise (0 symbols)",
    "ue-local": "UE alone: the whole task (img2img from the input image it holds) with its own noise (0 symbols)",
    "noise-seed": "the ES's noise seed, schedule and strength in a digital control message; the UE runs the task "
                  "alone with that noise",
}
BASELINE_SEED_OFFSET = 7_919
"""The UE's own noise: task seed + this (a draw the ES never made)."""
CONTROL_FORMAT = ">BIHH"
"""The noise-seed control message: version, noise seed (32 bits), schedule length, strength x 10000."""
CONTROL_VERSION = 1


@dataclass(frozen=True)
class NoiseSeed:
    """What the UE needs to reproduce the ES's run: its noise seed, schedule length and img2img strength."""

    seed: int
    steps: int
    strength: float

    def encode(self) -> bytes:
        from meg_common.errors import InputError

        if not 0 <= self.seed < 2**32 or not 1 <= self.steps < 2**16 or not 0 < self.strength <= 1:
            raise InputError(f"noise-seed message: seed {self.seed} (32 bits), steps {self.steps} and strength "
                             f"{self.strength} (0..1] do not fit its format")
        return struct.pack(CONTROL_FORMAT, CONTROL_VERSION, self.seed, self.steps, round(self.strength * 10000))

    @classmethod
    def decode(cls, data: bytes) -> NoiseSeed | None:
        """The message, or None when it is not one (wrong size or version)."""
        if len(data) != struct.calcsize(CONTROL_FORMAT):
            return None
        version, seed, steps, strength = struct.unpack(CONTROL_FORMAT, data)
        return cls(seed, steps, strength / 10000) if version == CONTROL_VERSION and steps and strength else None


def prompt_only(st, steps: int | None = None):
    ue = "UE"
    cond = st.encode_prompt(ue, st.task.prompt)
    return st.decode(ue, st.denoise(ue, st.start(ue, None, steps=steps), cond))


def ue_local(st, steps: int | None = None):
    ue = "UE"
    cond = st.encode_prompt(ue, st.task.prompt)
    return st.decode(ue, st.denoise(ue, st.start(ue, st.task.image, steps=steps), cond))


def noise_seed(st, steps: int | None = None):
    """The ES tells the UE its noise seed (one control message per task on the downlink); the UE runs the task
    alone on a `steps` schedule (None: the full one) with that noise, or with its own where it was lost."""
    from meg_common.errors import InputError

    ue, es = "UE", st.g.es[0]
    images = st.task.image
    if images is not None and st.cfg.image_at != "ue":
        raise InputError("noise-seed does not apply where the input image is at the ES: the UE cannot run the "
                         "task without it (img2img-es)")
    messages = [NoiseSeed(t.seed, st.task.steps, st.task.strength if images is not None else 1.0).encode()
                for t in st.task.tasks]
    arrived = [None if m is None else NoiseSeed.decode(m) for m in st.send_control(es, ue, messages)]
    seeds = [m.seed if m else t.seed + BASELINE_SEED_OFFSET for m, t in zip(arrived, st.task.tasks, strict=True)]
    strengths = [m.strength if m else st.task.strength for m in arrived] if images is not None else None
    cond = st.encode_prompt(ue, st.task.prompt)
    latents = st.start(ue, images, steps=steps, strength=strengths, noise_seeds=seeds)
    return st.decode(ue, st.denoise(ue, latents, cond))


def baseline_task(task):
    """The task as the UE alone runs it: the same prompt, image and schedule, its own noise seed."""
    return replace(task, seed=task.seed + BASELINE_SEED_OFFSET)


def parse(name: str) -> tuple[str, int | None]:
    """'prompt-only@10' -> ('prompt-only', 10); 'ue-local' -> ('ue-local', None) (InputError if unknown)."""
    from meg_common.errors import InputError

    base, _, k = name.partition("@")
    if base not in BASELINES or (k and not (k.isdigit() and int(k) >= 1)):
        raise InputError(f"baseline {name!r} is not known; choose one of: {', '.join(BASELINES)} "
                         f"(optionally @K, the UE's schedule length, e.g. noise-seed@10)")
    return base, int(k) if k else None


def flow_of(name: str, image_at_ue: bool, steps: int | None = None) -> Callable:
    """The flow of baseline `name` (optionally `name@K`; `steps` overrides K); `ue-local` of a text-to-image
    task is `prompt-only` (no input image)."""
    base, k = parse(name)
    k = steps if steps is not None else k
    if base == "noise-seed":
        return partial(noise_seed, steps=k)
    return partial(ue_local if base == "ue-local" and image_at_ue else prompt_only, steps=k)
