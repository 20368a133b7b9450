"""The blocks a protocol is made of: generation stages placed on a node, and payload hops between nodes.

`Stages(g, task)` binds a flowgraph to a task. Every method names where it runs:
- generation stages (`start`, `denoise`, `decode`, `sketch`, `complete`, ...) run on one node and account
  their denoising steps and wall time there;
- transfers (`send_prompt`, `send_image`, `send_seed`, ...) encode a payload with meg_phy.codecs, move it
  through one hop and decode it at the receiver; they return what arrived and its noise variance, and
  `resume` makes a received seed usable (channel-aware or naive, as configured).
When a digital payload is still corrupt after its last attempt the receiver carries on with the
best it has (a prompt-less generation, a fresh-noise latent, a grey image) and the hop says
`delivered: false`, so quality drops visibly instead of the run crashing or pretending.
"""

from __future__ import annotations

import math

import torch

from flowgraphs.graph import Flowgraph
from flowgraphs.task import Task
from meg_phy.images import resize


class Stages:
    """Generation stages and payload transfers of one run, accounted on its flowgraph."""

    def __init__(self, g: Flowgraph, task: Task):
        self.g, self.task, self.cfg = g, task, g.config
        self.ldm = task.ldm
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

    # --- generation stages ---------------------------------------------------------------------------
    def encode_prompt(self, node: str, prompt: str | None):
        with self.g.on(node):
            return self.ldm.encode_prompt(prompt or "", guidance=self.task.guidance)

    def start(self, node: str, image: torch.Tensor | None, steps: int | None = None, strength: float | None = None):
        """VAE-encode the input image and noise it to the img2img strength: the seed at step 0."""
        with self.g.on(node):
            return self.ldm.start(None, image, strength=self.task.strength if strength is None else strength,
                                  steps=self.task.steps if steps is None else steps,
                                  generator=torch.Generator().manual_seed(self.task.seed))

    def denoise(self, node: str, seed, cond, to: int | None = None, tile: tuple | None = None):
        """Denoise `seed` (only its `tile` box, when given) from its step to step `to` (default: the end)."""
        target = seed.total if to is None else to
        with self.g.on(node, steps=max(0, target - seed.step)):
            return self.ldm.denoise(seed, cond, until=target, region=tile)

    def decode(self, node: str, seed) -> torch.Tensor:
        with self.g.on(node):
            return self.ldm.decode(seed)

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
            sketch = resize(sketch, tuple(self.task.image.shape[-2:]))
            strength = self.cfg.sketch_strength
            if self.cfg.resume == "channel-aware":
                strength = sketch_strength(noise_var, base=strength, ldm=self.ldm, image=sketch)
        seed = self.start(node, sketch, strength=strength)
        return self.decode(node, self.denoise(node, seed, cond))

    # --- transfers -----------------------------------------------------------------------------------
    def send_prompt(self, src: str, dst: str, text: str) -> str | None:
        """The prompt as UTF-8 bytes with a CRC (always digital); None when it never arrived intact."""
        from flowgraphs.prompt_codec import decode_prompt, encode_prompt

        received, _ = self.g.hop(src, dst, "prompt").send_bytes(encode_prompt(text), decode_prompt)
        return received

    def input_image(self, ue: str, es: str) -> torch.Tensor:
        """The input image at an ES: uploaded by the UE (config image_at = 'ue'), or already there ('es')."""
        if self.cfg.image_at == "es":
            return self.task.image
        return self.send_image(ue, es, self.task.image)[0]

    def send_image(self, src: str, dst: str, image: torch.Tensor, payload: str = "image") -> tuple[torch.Tensor, float]:
        """An image (input, final image or sketch) as compressed bytes or analog pixels: (what arrived, noise var).

        Sketches go at 1/`sketch_scale` of their resolution and come back upsampled. Analog: the noise
        variance is per pixel in [0, 1] units; digital: 0 (a lost image arrives as mid-grey, the hop says so).
        """
        from meg_phy import codecs

        size = None
        if payload == "sketch":
            size = tuple(max(1, d // self.cfg.sketch_scale) for d in image.shape[-2:])
        hop = self.g.hop(src, dst, payload)
        if hop.spec.scheme == "analog":
            to_analog = codecs.sketch_to_analog if payload == "sketch" else codecs.image_to_analog
            values, side = to_analog(image, size=size, normalise=False)
            arrived = self._send_analog(hop, values, side, codecs.image_info, codecs.analog_to_image)
            if arrived is not None:
                return arrived
        else:
            encode = codecs.encode_sketch if payload == "sketch" else codecs.encode_image
            data = encode(image, fmt=self.cfg.image_format, quality=self.cfg.image_quality, size=size)
            received, _ = hop.send_bytes(data, codecs.decode_image)
            if received is not None:
                return received, 0.0
        return torch.full_like(image, 0.5), 0.0

    def _send_analog(self, hop, values, side, decode_side, from_analog):
        """Codec values as they are (not normalised: the link's mapping normalises their power, once, and
        carries the scale in its header) over an analog hop: (what arrived, mean noise variance in payload
        units), or None when the hop lost them. The rest of the side information rides on the link only when
        `side_info = "link"`; otherwise it is session state."""
        on_link = side if self.cfg.side_info == "link" else None
        est, noise_var, record = hop.send_values(values, side=on_link, decode_side=decode_side)
        if not record.delivered:
            return None
        received, var = from_analog(est, noise_var, side)
        return received, float(var.mean())

    def send_seed(self, src: str, dst: str, seed) -> tuple[object, float]:
        """A seed (latent + step) as analog values or quantised bytes; returns (what arrived, noise variance).

        Analog: the latent values go on the analog link (its header carries their scale); the rest of the
        side information (shape, schedule) is session state, or goes digitally when `side_info = "link"`.
        The noise variance is in latent units (what channel-aware resume needs).
        """
        from meg_phy.codecs import seed as codec

        hop = self.g.hop(src, dst, "seed")
        if hop.spec.scheme == "analog":
            values, side = codec.seed_to_analog(seed, normalise=False)
            arrived = self._send_analog(hop, values, side, codec.side_info, codec.analog_to_seed)
            if arrived is not None:
                return arrived
        else:
            received, _ = hop.send_bytes(codec.encode_seed(seed, self.cfg.seed_format), codec.decode_seed)
            if received is not None:
                return received, 0.0
        with self.g.on(dst):  # lost: the receiver carries on from fresh noise at the step it expected
            noise = torch.randn(seed.latents.shape, generator=torch.Generator().manual_seed(self.task.seed + 1))
            return seed.replace(latents=noise.to(seed.latents)), 0.0
