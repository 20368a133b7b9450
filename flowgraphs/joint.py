"""Joint tiled denoising across ESs: one latent, each ES advancing its own tile, tiles exchanged over backhaul.

MultiDiffusion (Bar-Tal et al., 2023) denoises overlapping tiles of one latent with the prompt of the whole
image and fuses the overlaps after every step. On the embedded model (a 4x8x8 latent, a UNet whose receptive
field spans it) a tile alone loses the composition: the UNet takes a 6x8 tile for a whole image and places
"at the left" inside the tile (measured: prompt accuracy 8-10/16 against 15/16 for the whole latent, fused
every step or not). So each ES's denoiser sees a *context window* around its tile (`tile_context`, None =
the whole latent, the default), and only the ES's own tile advances:

- ES i holds a full-size copy of the latent (`Joint.copies[i]`). A step runs the UNet on its window and
  keeps the result on its tile; outside its tile it keeps what the other ESs last sent (a step or more
  behind between exchanges, like DistriFusion's stale activations, here on the latent).
- Every `exchange_every` steps ES j receives from every ES i whose tile meets j's window the values of that
  tile inside the window (one backhaul hop `ESi-ESj-border`, float32 values; wired by default), and sets its
  window to the blend of the tiles (`meg_phy.tiles.blend_weights`, raised-cosine over the overlaps).
- Exchanged every step with the whole latent as context, every ES feeds the UNet the same latent as a single
  ES would, so the result is the single-ES result up to float rounding; fewer exchanges cost less backhaul
  and make the context staler (docs/protocols.md has the measured trade-off).

The cost is honest: a step costs its window (work = channels x window area, accounted per ES), so with the
whole latent as context n ESs do n times the UNet work of one; the tiles split the output and its
authority, not the UNet's work. A smaller context (`tile_context` = margin in latent pixels) pays off on
latents much larger than the UNet's receptive field.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

import torch

from flowgraphs.ledger import RunLedger
from meg_common.errors import InputError
from meg_phy.tiles import Box, TileLayout, blend_weights, intersect


@dataclass
class Joint:
    """The ESs' copies of one task's latent during joint denoising: ES i owns `layout.boxes[i]` and sees
    `windows[i]`."""

    es: list[str]
    layout: TileLayout
    windows: list[Box]
    copies: list
    """Full-size latents, one per ES: its own tile fresh, the rest as last received."""
    since: int = 0
    """Steps since the last exchange."""

    def tile(self, i: int):
        """ES i's tile as a tile latent (what it sends to the UE)."""
        return self.copies[i].crop(self.layout.boxes[i])

    def view(self, i: int):
        """What ES i's denoiser (or decoder) sees: its copy cut to its context window."""
        window = self.windows[i]
        if window == (0, 0, self.layout.height, self.layout.width):
            return self.copies[i]
        return self.copies[i].crop(window)


@dataclass
class BatchJoint:
    """The joint tiled denoising of a batch: one Joint per task (same ESs, layout and windows), as a protocol
    sees `joint`."""

    joints: list[Joint]

    @property
    def layout(self) -> TileLayout:
        return self.joints[0].layout

    def tile(self, i: int) -> list:
        """ES i's tile of every task (what it sends to the UE)."""
        return [j.tile(i) for j in self.joints]


class JointDenoiser:
    """Joint tiled denoising of a batch of tasks (the parallel protocols' `st.joint`): per task one latent,
    each ES advancing its own tile, tiles exchanged over backhaul hops on the task's ledger. Its model calls
    go through the stages' placement and accounting (`st`: a flowgraphs.stages.Stages)."""

    def __init__(self, st):
        self.st = st

    def start(self, copies: list[list], noise_vars: list | None = None) -> BatchJoint:
        """Start joint denoising from each ES's own copy of every task's latent (what it received or made):
        the ESs exchange their tiles once, so they start from one latent; with `noise_vars` (received
        latents, one PerTask per ES) they also exchange their noise estimates and resume at the mean level."""
        from meg_phy.tiles import context_box

        layout = self.st.tiles()
        windows = [context_box(layout, i, self.st.cfg.tile_context, self.st.ldm.unet_multiple) for i in range(layout.n)]
        joints = []
        for t in range(len(self.st)):
            joint = Joint(list(self.st.g.es), layout, windows, [self.st.ldm.resolve_timesteps(c[t]) for c in copies])
            levels = exchange(self.st.graphs[t], joint, None if noise_vars is None else [float(v[t]) for v in noise_vars])
            if noise_vars is not None:
                for i, es in enumerate(joint.es):
                    joint.copies[i] = self.st.resume_task(t, es, joint.copies[i], levels[i])
                if len({(c.step, tuple(c.timesteps.tolist())) for c in joint.copies}) > 1:
                    raise InputError("the ESs resumed at different noise levels (a level message was lost on the "
                                     "backhaul); use a wired backhaul ([backhaul] scheme = 'wired') or a digital one")
            joints.append(joint)
        return BatchJoint(joints)

    def denoise(self, joint: BatchJoint, conds: list, to: int | None = None,
                        last_exchange: bool = False) -> BatchJoint:
        """Every ES advances its tile of every task until step `to` (default: the end); each task's tiles are
        exchanged every `exchange_every` steps, and after the last step only when `last_exchange` (the ESs
        decode with context; otherwise the UE's merge is the last fusion). The steps up to the next exchange
        are one placement call per ES for the tasks that still have them (concurrent on Ray actors)."""
        joints, every = joint.joints, self.st.cfg.exchange_every
        targets = [j.copies[0].total if to is None else to for j in joints]
        while True:
            active = [t for t, j in enumerate(joints) if j.copies[0].step < targets[t]]
            if not active:
                break
            n = min(min(max(1, every - joints[t].since), targets[t] - joints[t].copies[0].step) for t in active)
            self._step(joints, active, conds, n)
            for t in active:
                joints[t].since += n
                if joints[t].since >= every and (joints[t].copies[0].step < targets[t] or last_exchange):
                    exchange(self.st.graphs[t], joints[t])
        if last_exchange:
            for t, j in enumerate(joints):
                if j.since:
                    exchange(self.st.graphs[t], j)
        return joint

    def _step(self, joints: list[Joint], active: list[int], conds: list, steps: int) -> None:
        """`steps` steps (no exchange between them) of every ES on the tasks `active`: one call per ES, handed
        to the placement at once; each task is accounted its steps, its window's work and its share of the
        ES's seconds (on an actor: the actor's compute time, without the round trip)."""
        layout = joints[0].layout
        full = (0, 0, layout.height, layout.width)
        windows = joints[0].windows
        if any(w != full for w in windows) and self.st.ldm.scheduler_name != "ddim":
            raise InputError(f"joint denoising with a context window needs the stateless DDIM scheduler, not "
                             f"{self.st.ldm.scheduler_name}; leave tile_context unset (the whole latent)")
        es = joints[0].es
        calls = [(es[i], advance_tiles, ([joints[t].copies[i] for t in active], windows[i], layout.boxes[i], full,
                                         keep_rows(conds[i], active, len(self.st)), steps))
                 for i in range(len(es))]
        for i, (copies, seconds) in enumerate(self.st.placement.run_all(self.st.ldm, calls)):
            area = steps * copies[0].latents.shape[-3] * windows[i][2] * windows[i][3]
            for t, copy in zip(active, copies, strict=True):
                joints[t].copies[i] = copy
                self.st.graphs[t].account(es[i], seconds=seconds / len(active), steps=steps, work=area)

    def decode_tile(self, node: str, joint: BatchJoint, i: int) -> torch.Tensor:
        """ES i's tile of every task in pixels: it decodes its context window and keeps its tile (no seam from
        the decoder)."""
        from meg_phy.tiles import intersect

        first = joint.joints[0]
        window, box = first.windows[i], first.layout.boxes[i]
        f = self.st.ldm.vae_scale_factor
        inside = intersect(window, box)
        with self.st.on(node):
            pixels = self.st.model_on(node).decode([j.view(i) for j in joint.joints])
        top, left = (inside[0] - window[0]) * f, (inside[1] - window[1]) * f
        return pixels[..., top:top + box[2] * f, left:left + box[3] * f]



def advance_tiles(ldm, latents: list, window: Box, box: Box, full: Box, cond, steps: int = 1) -> list:
    """`steps` steps of the UNet on every latent's context `window` (one batched call a step), each kept on the
    tile `box` only (outside it a copy keeps what the other ESs last sent): the new full-size copies.

    A pure function of the model and its arguments, so it runs wherever the ES is placed."""
    whole = window == full
    for _ in range(steps):
        views = latents if whole else [z.crop(window) for z in latents]
        outs = ldm.denoise(views, cond, until=[z.step + 1 for z in latents])
        latents = [keep_tile(z, out, window, box, whole) for z, out in zip(latents, outs, strict=True)]
    return latents


def keep_rows(cond, rows: list[int], count: int):
    """The prompt condition of the batch's tasks `rows` (all of them, or one embedding for all: `cond` itself)."""
    if len(rows) == count or cond.embeds.shape[0] == 1:
        return cond
    prompts = cond.prompt if isinstance(cond.prompt, list) else [cond.prompt] * count
    return replace(cond, embeds=cond.embeds[rows], prompt=[prompts[r] for r in rows])


def keep_tile(seed, out, window: Box, box: Box, whole: bool):
    """ES's copy `seed` after a step whose result on its context `window` is `out`: the new values on its tile
    `box` only, the rest as it was (the scheduler's state carries on only from a whole-latent step)."""
    top, left, h, w = box
    latents = seed.latents.clone()
    latents[..., top:top + h, left:left + w] = out.latents[..., top - window[0]:top - window[0] + h,
                                                           left - window[1]:left - window[1] + w]
    return seed.replace(latents=latents, step=out.step, guidance=out.guidance, prompt=out.prompt,
                        scheduler_state=out.scheduler_state if whole else {})


def exchange(g: RunLedger, joint: Joint, levels: list[float] | None = None) -> list[float]:
    """One exchange round of one task (its hops and blending on its ledger `g`): ES i sends ES j its tile's values inside j's window; every ES blends its window.

    `levels` (noise-variance estimates of received seeds, one per ES) ride along as 32 bits of side
    information; returns the level each ES then uses (the mean of those it has).
    """
    n, layout = len(joint.es), joint.layout
    weights = blend_weights(layout)
    heard: list[list[float]] = [[lv] for lv in levels] if levels is not None else [[] for _ in range(n)]
    planes = [[None] * n for _ in range(n)]  # planes[j][i]: tile i as ES j knows it (full size)
    for i in range(n):
        for j in range(n):
            box = intersect(layout.boxes[i], joint.windows[j])
            if i == j or box is None:
                continue
            t, x, h, w = box
            values = joint.copies[i].latents[..., t:t + h, x:x + w]
            got, level = send_border(g, joint.es[i], joint.es[j], values, None if levels is None else levels[i])
            plane = joint.copies[j].latents.clone()  # a lost border: ES j keeps its own stale values there
            if got is not None:
                plane[..., t:t + h, x:x + w] = got.to(plane)
            planes[j][i] = plane
            if level is not None:
                heard[j].append(level)
    for j in range(n):
        t, x, h, w = joint.windows[j]
        with g.on(joint.es[j]):
            own = joint.copies[j].latents
            fused = sum(weights[i].to(own) * (own if i == j else planes[j][i] if planes[j][i] is not None else own)
                        for i in range(n))
            latents = own.clone()
            latents[..., t:t + h, x:x + w] = fused[..., t:t + h, x:x + w]
            joint.copies[j] = joint.copies[j].replace(latents=latents)
    joint.since = 0
    return [sum(h) / len(h) if h else 0.0 for h in heard]


def send_border(g: RunLedger, src: str, dst: str, values: torch.Tensor, level: float | None):
    """Tile values (and optionally a noise level) over one backhaul hop: (values that arrived or None, level
    that arrived or None). Wired and analog hops carry values; a digital hop carries float32 bytes + CRC32."""
    hop = g.hop(src, dst, "border")
    flat = values.detach().reshape(-1).float()
    side = None if level is None else _pack(torch.tensor([level]))
    if hop.spec.carrier == "digital":
        data = _pack(torch.cat([torch.tensor([float("nan") if level is None else level]), flat]))
        got, _ = hop.send_bytes(data, _unpack)
        if got is None:
            return None, None
        return got[1:].reshape(values.shape), None if level is None else float(got[0])
    est, _, record = hop.send_values(flat, side=side, decode_side=_unpack)
    return est.reshape(values.shape), level if (level is not None and record.delivered) else None


def _pack(values: torch.Tensor) -> bytes:
    data = values.to(torch.float32).numpy().tobytes()
    return data + struct.pack("<I", zlib.crc32(data))


def _unpack(data: bytes) -> torch.Tensor:
    body, crc = data[:-4], data[-4:]
    if len(data) < 8 or struct.unpack("<I", crc)[0] != zlib.crc32(body):
        raise ValueError("border payload: CRC mismatch")
    return torch.frombuffer(bytearray(body), dtype=torch.float32).clone()
