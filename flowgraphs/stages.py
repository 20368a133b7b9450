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

import torch

from flowgraphs.graph import Flowgraph
from flowgraphs.task import Task


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

    def ranges(self, total: int, parts: int) -> list[tuple[int, int]]:
        """`total` steps cut into `parts` consecutive ranges (cooperative protocols)."""
        bounds = [round(total * i / parts) for i in range(parts + 1)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

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

    def denoise(self, node: str, seed, cond, to: int | None = None):
        """Denoise `seed` from its step to step `to` (default: the end)."""
        target = seed.total if to is None else to
        with self.g.on(node, steps=max(0, target - seed.step)):
            return self.ldm.denoise(seed, cond, until=target)

    def decode(self, node: str, seed) -> torch.Tensor:
        with self.g.on(node):
            return self.ldm.decode(seed)

    def start_sketch(self, node: str, image: torch.Tensor | None):
        """The seed of a sketch: the same task with only `sketch_steps` denoising steps in all."""
        return self.start(node, image, steps=max(1, round(self.cfg.sketch_steps / self.task.strength)))

    def render_sketch(self, node: str, seed) -> torch.Tensor:
        """Decode a sketch seed and downsample it by `sketch_scale`: a rough, small, human-viewable image."""
        with self.g.on(node):
            return _downsample(self.ldm.decode(seed), self.cfg.sketch_scale)

    def sketch(self, node: str, image: torch.Tensor | None, cond) -> torch.Tensor:
        return self.render_sketch(node, self.denoise(node, self.start_sketch(node, image), cond))

    def resume(self, node: str, seed, noise_var: float):
        """Resume from a received seed: channel-aware (noise as extra diffusion noise) or naive (as is)."""
        if noise_var <= 0 or self.cfg.resume == "naive":
            return seed
        from meg_phy import resume

        with self.g.on(node):
            return resume.channel_aware(self.ldm, seed, noise_var)

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
            placed = [_resize(img, (h, w)) for img, (_, _, h, w) in zip(images, pixels.boxes, strict=True)]
            return merge(placed, pixels).clamp(0, 1)

    def complete(self, node: str, sketch: torch.Tensor, cond, noise_var: float = 0.0) -> torch.Tensor:
        """Text-guided img2img from a (noisy) sketch at a strength chosen for its noise."""
        from meg_phy.resume import sketch_strength

        size = self.task.image.shape[-2:]
        with self.g.on(node):
            upsampled = _resize(sketch, tuple(size))
            strength = sketch_strength(noise_var, base=self.cfg.sketch_strength)
        seed = self.start(node, upsampled, strength=strength)
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
        """An image (final image, sketch or input) as compressed bytes or analog pixels; returns (image, noise_var)."""
        from meg_phy import codecs

        hop = self.g.hop(src, dst, payload)
        if hop.spec.scheme == "analog":
            values = image * 2 - 1  # zero-mean pixel values use the power better
            est, noise_var, _ = hop.send_values(values)
            return ((est + 1) / 2).clamp(0, 1), float(noise_var.mean()) / 4
        data = codecs.encode_image(image, fmt=self.cfg.image_format, quality=self.cfg.image_quality)
        received, _ = hop.send_bytes(data, codecs.decode_image)
        if received is None:
            return torch.full_like(image, 0.5), 0.0
        return received, 0.0

    def send_seed(self, src: str, dst: str, seed) -> tuple[object, float]:
        """A seed (latent + step) as analog values or quantised bytes; returns (what arrived, noise variance).

        Analog: the latent values go on the analog link (its header carries their scale); the rest of the
        side information (shape, schedule) is session state, or goes digitally when `seed_side_info = "link"`.
        The noise variance is in latent units (what channel-aware resume needs).
        """
        from meg_phy.codecs import seed as codec

        hop = self.g.hop(src, dst, "seed")
        if hop.spec.scheme == "analog":
            values, side = codec.seed_to_analog(seed)
            scale = codec.side_info(side).scale
            on_link = side if self.cfg.seed_side_info == "link" else None
            est, noise_var, record = hop.send_values(values * scale, side=on_link, decode_side=codec.side_info)
            if record.delivered:
                received, latent_var = codec.analog_to_seed(est / scale, noise_var / scale**2, side)
                return received, float(latent_var.mean())
        else:
            received, _ = hop.send_bytes(codec.encode_seed(seed, self.cfg.seed_format), codec.decode_seed)
            if received is not None:
                return received, 0.0
        with self.g.on(dst):  # lost: the receiver carries on from fresh noise at the step it expected
            noise = torch.randn(seed.latents.shape, generator=torch.Generator().manual_seed(self.task.seed + 1))
            return seed.replace(latents=noise.to(seed.latents)), 0.0


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return torch.nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def _downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    if factor <= 1:
        return image
    return torch.nn.functional.avg_pool2d(image, factor)
