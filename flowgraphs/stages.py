"""The blocks a protocol is made of: generation stages placed on a node, and payload hops between nodes.

`Stages(g, task)` binds a flowgraph to a task. Every method names where it runs:
- generation stages (`start`, `denoise`, `decode`, `sketch`, `complete`, ...) run on one node and account
  their denoising steps, work (latent elements x steps) and wall time there;
- transfers (`send_prompt`, `send_image`, `send_seed`, ...) encode a payload with meg_phy.codecs, move it
  through one hop and decode it at the receiver; they return what arrived and its noise variance, and
  `resume` makes a received seed usable (channel-aware or naive, as configured). `upload_*` reach several
  ESs at once: one broadcast transmission (config `broadcast`, the default) or one hop per ES;
- joint tiled denoising (`share_tiles`, `denoise_jointly`, `decode_tile`): the parallel protocols' ESs
  each advance their own tile of one latent, seeing a context window around it, and exchange their tiles
  over backhaul hops every `exchange_every` steps (flowgraphs.joint explains the method).
When a digital payload is still corrupt after its last attempt the receiver carries on with the
best it has (a prompt-less generation, a fresh-noise latent, a grey image, its own stale border) and the hop
says `delivered: false`, so quality drops visibly instead of the run crashing or pretending.
"""

from __future__ import annotations

import math

import torch

from flowgraphs.graph import Flowgraph
from flowgraphs.joint import Joint, exchange, step_tiles
from flowgraphs.task import Task
from meg_common.errors import InputError
from meg_phy.images import resize


class Stages:
    """Generation stages and payload transfers of one run, accounted on its flowgraph."""

    def __init__(self, g: Flowgraph, task: Task, placement=None):
        """`placement`: where the ESs' model calls run (flowgraphs.placement; None: in this process)."""
        from flowgraphs.placement import LOCAL

        self.g, self.task, self.cfg = g, task, g.config
        self.ldm = task.ldm
        self.placement = placement or LOCAL
        self.placement.prepare(g.es, self.ldm)
        self.n_steps = len(self.ldm.schedule(task.steps, task.strength)[0])
        """Denoising steps of the img2img task (diffusers runs steps * strength of the schedule)."""

    # --- where the work is split ---------------------------------------------------------------
    def split_step(self) -> int:
        """The step at which a seed changes hands (config `split`)."""
        return round(self.n_steps * self.cfg.split)

    def share(self, seed, servers_left: int) -> int:
        """Where this ES of a cooperative chain stops: an equal share of the steps still to run.

        Recomputed at every ES, because channel-aware resume may lengthen the remaining schedule.
        """
        return seed.step + -(-(seed.total - seed.step) // servers_left)

    def tiles(self):
        """The overlapping latent tiles of the parallel protocols, one per ES (a meg_phy.tiles.TileLayout)."""
        from meg_phy.tiles import tile_layout

        return tile_layout(*self.ldm.latent_size, len(self.g.es), overlap=self.cfg.tile_overlap,
                           multiple=self.ldm.unet_multiple)

    def model_on(self, node: str):
        """The model as `node` runs it: this process's, or the ES's own on its Ray actor (same calls)."""
        return self.placement.model(node, self.ldm)

    # --- where the input image is --------------------------------------------------------------------
    def ue_image(self) -> torch.Tensor:
        """The input image at the UE, for protocols that make their seed from it (UIEG, CIAG, UIDG, UIDCG)."""
        if self.cfg.image_at != "ue":
            raise InputError(f"{self.cfg.protocol} makes its seed from the input image at the UE, but image_at = "
                             f"'{self.cfg.image_at}'; set image_at = 'ue' (or, with the image at the ES, use EIUG, "
                             f"ESUC, DIUG, DSUC, DCSUC or CENTRALIZED)")
        return self.task.image

    def input_image(self, ue: str, es: str) -> torch.Tensor | None:
        """The input image at an ES: uploaded by the UE (config image_at = 'ue'), or already there ('es');
        None for a text-to-image task (no input image: the ES generates from the prompt, nothing goes up)."""
        if self.task.image is None or self.cfg.image_at == "es":
            return self.task.image
        return self.send_image(ue, es, self.task.image)[0]

    def upload_image(self, ue: str, servers: list[str]) -> list[torch.Tensor | None]:
        """The input image at every ES: the UE's upload (a broadcast by default), or, with image_at = 'es', the
        copy that the first ES holds, sent to the others over backhaul hops; None everywhere for a
        text-to-image task (each ES starts from the task's noise, the same draw on every ES)."""
        if self.task.image is None:
            return [None] * len(servers)
        if self.cfg.image_at == "es":
            return [self.task.image] + [self.send_image(servers[0], es, self.task.image)[0] for es in servers[1:]]
        return [image for image, _ in self._reach(ue, servers, "image", lambda ch: self._send_image(ch, self.task.image))]

    # --- generation stages ---------------------------------------------------------------------------
    def encode_prompt(self, node: str, prompt: str | None):
        with self.g.on(node):
            return self.model_on(node).encode_prompt(prompt or "", guidance=self.task.guidance)

    def start(self, node: str, image: torch.Tensor | None, steps: int | None = None, strength: float | None = None):
        """VAE-encode the input image and noise it to the img2img strength: the seed at step 0."""
        with self.g.on(node):
            return self.model_on(node).start(
                None, image, strength=self.task.strength if strength is None else strength,
                steps=self.task.steps if steps is None else steps, generator=torch.Generator().manual_seed(self.task.seed))

    def denoise(self, node: str, seed, cond, to: int | None = None, tile: tuple | None = None):
        """Denoise `seed` (only its `tile` box, when given) from its step to step `to` (default: the end)."""
        target = seed.total if to is None else to
        steps = max(0, target - seed.step)
        area = tile[2] * tile[3] if tile is not None else seed.latents.shape[-2] * seed.latents.shape[-1]
        with self.g.on(node, steps=steps, work=steps * seed.latents.shape[-3] * area):
            return self.model_on(node).denoise(seed, cond, until=target, region=tile)

    def decode(self, node: str, seed) -> torch.Tensor:
        with self.g.on(node):
            return self.model_on(node).decode(seed)

    def start_sketch(self, node: str, image: torch.Tensor | None):
        """The seed of a sketch: the same task with only `sketch_steps` denoising steps in all.

        img2img runs int(steps * strength) of a `steps` schedule, so the schedule is ceil(sketch_steps / strength).
        """
        return self.start(node, image, steps=max(1, math.ceil(self.cfg.sketch_steps / self.task.strength)))

    def render_sketch(self, node: str, seed) -> torch.Tensor:
        """Decode a sketch seed (it is sent at 1/`sketch_scale` resolution, see send_image)."""
        return self.decode(node, seed)

    def sketch(self, node: str, image: torch.Tensor | None, cond) -> torch.Tensor:
        return self.render_sketch(node, self.denoise(node, self.start_sketch(node, image), cond))

    def resume(self, node: str, seed, noise_var: float):
        """Resume from a received seed: channel-aware (noise as extra diffusion noise) or naive (as is)."""
        if noise_var <= 0 or self.cfg.resume == "naive":
            return seed
        from meg_phy.resume import resume

        with self.g.on(node):
            return resume(self.ldm, seed, noise_var, mode=self.cfg.resume)

    def crop(self, node: str, seed, tiles, i: int):
        """Tile i of a seed."""
        with self.g.on(node):
            return seed.crop(tiles.boxes[i])

    def merge(self, node: str, seeds: list, tiles):
        """Blend latent tiles (raised-cosine windows over the overlaps) into one seed."""
        from meg_phy.ldm import merge_seeds

        with self.g.on(node):
            return merge_seeds(seeds, tiles)

    def stitch(self, node: str, images: list[torch.Tensor], tiles) -> torch.Tensor:
        """Blend image tiles (each resized to its place, so sketch tiles work too) into one full-size image."""
        from meg_phy.tiles import merge

        pixels = tiles.scaled(self.ldm.vae_scale_factor)
        with self.g.on(node):
            placed = [resize(img, (h, w)) for img, (_, _, h, w) in zip(images, pixels.boxes, strict=True)]
            return merge(placed, pixels).clamp(0, 1)

    def complete(self, node: str, sketch: torch.Tensor, cond, noise_var: float = 0.0) -> torch.Tensor:
        """Text-guided img2img from a (noisy) sketch, at a strength raised to cover its noise (meg_phy.resume)."""
        from meg_phy.resume import sketch_strength

        with self.g.on(node):
            sketch = resize(sketch, tuple(int(v) for v in self.ldm.resolution))
            strength = self.cfg.sketch_strength
            if self.cfg.resume == "channel-aware":
                strength = sketch_strength(noise_var, base=strength, ldm=self.ldm, image=sketch)
        seed = self.start(node, sketch, strength=strength)
        return self.decode(node, self.denoise(node, seed, cond))

    # --- joint tiled denoising (parallel protocols) --------------------------------------------------
    def share_tiles(self, copies: list, noise_vars: list[float] | None = None) -> Joint:
        """Start joint denoising from each ES's own copy of the latent (what it received or made): the ESs
        exchange their tiles once, so they start from one latent; with `noise_vars` (received seeds) they
        also exchange their noise estimates and resume at the mean level."""
        from meg_phy.tiles import context_box

        layout = self.tiles()
        windows = [context_box(layout, i, self.cfg.tile_context, self.ldm.unet_multiple) for i in range(layout.n)]
        joint = Joint(list(self.g.es), layout, windows, [self.ldm.resolve_timesteps(c) for c in copies])
        levels = exchange(self, joint, noise_vars)
        if noise_vars is not None:
            joint.copies = [self.resume(es, seed, level) for es, seed, level in zip(joint.es, joint.copies, levels, strict=True)]
            if len({(c.step, tuple(c.timesteps.tolist())) for c in joint.copies}) > 1:
                raise InputError("the ESs resumed at different noise levels (a level message was lost on the "
                                 "backhaul); use a wired backhaul ([backhaul] scheme = 'wired') or a digital one")
        return joint

    def denoise_jointly(self, joint: Joint, conds: list, to: int | None = None, last_exchange: bool = False) -> Joint:
        """Every ES advances its tile one step at a time (seeing its context window) until step `to` (default:
        the end); the tiles are exchanged every `exchange_every` steps, and after the last step only when
        `last_exchange` (the ESs decode with context; otherwise the UE's merge is the last fusion)."""
        first = joint.copies[0]
        target = first.total if to is None else to
        step = first.step
        while step < target:  # the steps up to the next exchange: one call per ES (concurrent on Ray actors)
            n = min(max(1, self.cfg.exchange_every - joint.since), target - step)
            joint.copies = step_tiles(self, joint, conds, steps=n)
            joint.since, step = joint.since + n, step + n
            if joint.since >= self.cfg.exchange_every and (step < target or last_exchange):
                exchange(self, joint)
        if last_exchange and joint.since:
            exchange(self, joint)
        return joint

    def decode_tile(self, node: str, joint: Joint, i: int) -> torch.Tensor:
        """ES i's tile in pixels: it decodes its context window and keeps its tile (no seam from the decoder)."""
        from meg_phy.tiles import intersect

        window, box = joint.windows[i], joint.layout.boxes[i]
        f = self.ldm.vae_scale_factor
        inside = intersect(window, box)
        with self.g.on(node):
            pixels = self.model_on(node).decode(joint.view(i))
            top, left = (inside[0] - window[0]) * f, (inside[1] - window[1]) * f
            return pixels[..., top:top + box[2] * f, left:left + box[3] * f]

    # --- transfers -----------------------------------------------------------------------------------
    def send_prompt(self, src: str, dst: str, text: str) -> str | None:
        """The prompt as UTF-8 bytes with a CRC (always digital); None when it never arrived intact."""
        return self.upload_prompt(src, [dst], text)[0]

    def prompt_at(self, ue: str, servers: list[str]) -> list:
        """The task's prompt uploaded to every ES (one broadcast) and encoded there: one condition per ES."""
        prompts = self.upload_prompt(ue, servers, self.task.prompt)
        return [self.encode_prompt(es, prompt) for es, prompt in zip(servers, prompts, strict=True)]

    def upload_prompt(self, src: str, dsts: list[str], text: str) -> list[str | None]:
        """The prompt at every node of `dsts` (one broadcast, or one hop each with broadcast = false)."""
        from flowgraphs.prompt_codec import decode_prompt, encode_prompt

        return self._reach(src, dsts, "prompt", lambda ch: ch.send_bytes(encode_prompt(text), decode_prompt))

    def send_image(self, src: str, dst: str, image: torch.Tensor, payload: str = "image") -> tuple[torch.Tensor, float]:
        """An image (input, final image or sketch) as compressed bytes or analog pixels: (what arrived, noise var).

        Sketches go at 1/`sketch_scale` of their resolution and come back upsampled. Analog: the noise
        variance is per pixel in [0, 1] units; digital (and wired): 0 (a lost image arrives as mid-grey, the
        hop says so).
        """
        return self._send_image(self.g.broadcast(src, [dst], payload), image, payload)[0]

    def send_seed(self, src: str, dst: str, seed) -> tuple[object, float]:
        """A seed (latent + step) as analog values or quantised bytes; returns (what arrived, noise variance).

        Analog: the latent values go on the analog link (its header carries their scale); the rest of the
        side information (shape, schedule) is session state, or goes digitally when `side_info = "link"`.
        Wired: the latent as float32 values, exactly. The noise variance is in latent units (what
        channel-aware resume needs).
        """
        return self._send_seed(self.g.broadcast(src, [dst], "seed"), seed)[0]

    def upload_seed(self, src: str, dsts: list[str], seed) -> list[tuple[object, float]]:
        """A seed at every node of `dsts`, each with its own noise (one broadcast, or one hop each)."""
        return self._reach(src, dsts, "seed", lambda ch: self._send_seed(ch, seed))

    def _reach(self, src: str, dsts: list[str], payload: str, send) -> list:
        """`send(channel)` to every node of `dsts`: one broadcast channel, or (broadcast = false) one each."""
        groups = [list(dsts)] if self.cfg.broadcast else [[dst] for dst in dsts]
        return [out for group in groups for out in send(self.g.broadcast(src, group, payload))]

    def _send_image(self, channel, image: torch.Tensor, payload: str = "image") -> list[tuple[torch.Tensor, float]]:
        from meg_phy import codecs

        size = None
        if payload == "sketch":
            size = tuple(max(1, d // self.cfg.sketch_scale) for d in image.shape[-2:])
        lost = (torch.full_like(image, 0.5), 0.0)
        if channel.spec.scheme == "softcast":
            return self._send_softcast(channel, image, size, lost)
        if channel.spec.scheme == "analog":
            to_analog = codecs.sketch_to_analog if payload == "sketch" else codecs.image_to_analog
            values, side = to_analog(image, size=size, normalise=False)
            arrived = self._send_analog(channel, values, side, codecs.image_info, codecs.analog_to_image)
            return [lost if a is None else a for a in arrived]
        encode = codecs.encode_sketch if payload == "sketch" else codecs.encode_image
        data = encode(image, fmt=self.cfg.image_format, quality=self.cfg.image_quality, size=size)
        return [lost if r is None else (r, 0.0) for r in channel.send_bytes(data, codecs.decode_image)]

    def _send_softcast(self, channel, image: torch.Tensor, size, lost) -> list[tuple[torch.Tensor, float]]:
        """An image as SoftCast values in `softcast_uses` channel uses (a sketch: 1/sketch_scale^2 of them) on
        the analog link, its metadata digitally on the same hop; per receiver (image, the LLSE decoder's
        expected pixel MSE of the sent chunks, from the reported noise variance: what channel-aware sketch
        completion needs)."""
        from meg_phy.codecs.softcast import SoftCastDecoder, SoftCastEncoder, unpack_meta

        small = image if size is None else resize(image, size)
        uses = self.cfg.softcast_uses // (self.cfg.sketch_scale ** 2 if size is not None else 1)
        values, meta = SoftCastEncoder()(small.detach().cpu().float(), channel_uses=max(8, uses))
        info = unpack_meta(meta)
        out = []
        for est, noise_var, record in channel.send_values(values, side=meta, decode_side=unpack_meta):
            if not record.delivered:
                out.append(lost)
                continue
            received = SoftCastDecoder()(est, noise_var, meta).to(image)
            if size is not None:
                received = resize(received, tuple(image.shape[-2:]))
            g, lam = info.gains[info.kept], info.energy_hat[info.kept]
            s2 = float(noise_var.double().mean())
            mse = float((lam * s2 / (g.square() * lam + s2)).sum()) * info.chunk_len / (3 * info.size[0] * info.size[1])
            out.append((received, mse))
        return out

    def _send_seed(self, channel, seed) -> list[tuple[object, float]]:
        from meg_phy.codecs import seed as codec

        if channel.spec.scheme in ("analog", "wired", "softcast"):
            values, side = codec.seed_to_analog(seed, normalise=False)
            arrived = self._send_analog(channel, values, side, codec.side_info, codec.analog_to_seed)
        else:
            got = channel.send_bytes(codec.encode_seed(seed, self.cfg.seed_format), codec.decode_seed)
            arrived = [None if r is None else (r, 0.0) for r in got]
        out = []
        for hop, a in zip(channel.hops, arrived, strict=True):
            if a is None:
                with self.g.on(hop.dst):
                    a = (self._seed_from_scratch(seed), 0.0)
            out.append(a)
        return out

    def _seed_from_scratch(self, seed):
        """What a receiver resumes from when a seed was lost (not delivered: a digital payload that never
        passed its CRC, an analog one whose every frame went missing): the limit of channel-aware resume as
        the noise grows without bound, i.e. fresh noise at the start of the full schedule, so the receiver
        generates from scratch with all the schedule's steps (it carries the seed's prompt and guidance)."""
        fresh = self.ldm.start(None, None, strength=1.0, steps=seed.num_inference_steps,
                               generator=torch.Generator().manual_seed(self.task.seed + 1))
        return fresh.replace(latents=fresh.latents.to(seed.latents), guidance=seed.guidance, prompt=seed.prompt)

    def _send_analog(self, channel, values, side, decode_side, from_analog) -> list:
        """Codec values as they are (not normalised: the link's mapping normalises their power, once, and
        carries the scale in its header) over an analog (or wired) hop or broadcast: per receiver (what
        arrived, mean noise variance in payload units), or None when the hop lost them. The rest of the side
        information rides on the link only when `side_info = "link"`; otherwise it is session state."""
        on_link = side if self.cfg.side_info == "link" else None
        out = []
        for est, noise_var, record in channel.send_values(values, side=on_link, decode_side=decode_side):
            if not record.delivered:
                out.append(None)
                continue
            received, var = from_analog(est, noise_var, side)
            out.append((received, float(var.mean())))
        return out
