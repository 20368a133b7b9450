"""Payload codecs: what goes on a link between MEG stages.

- seeds: `encode_seed`/`decode_seed` (digital: float32, float16, 8/4-bit with per-channel ranges),
  `seed_to_analog`/`analog_to_seed` (values + digital side information; unit average power unless
  `normalise=False`, which a flowgraph uses because its links normalise power);
- images and sketches: `encode_image`/`encode_sketch`/`decode_image` (PNG/JPEG/WebP bytes),
  `image_to_analog`/`sketch_to_analog`/`analog_to_image` (pixel values + side information);
- `payload_bits`: what a payload costs on a link.

Every digital payload is framed by `container` (magic, kind, version, lengths, CRC32); every decoder
raises `PayloadError` (an `InputError`) naming what is wrong with malformed, truncated or corrupted input.
"""

from meg_phy.codecs.container import FRAMING_BYTES, Kind, PayloadError
from meg_phy.codecs.image import (
    analog_to_image,
    decode_image,
    encode_image,
    encode_sketch,
    image_info,
    image_to_analog,
    sketch_to_analog,
)
from meg_phy.codecs.seed import (
    SeedInfo,
    analog_to_seed,
    decode_seed,
    encode_seed,
    quantisation_noise_var,
    seed_to_analog,
    side_info,
)


def payload_bits(payload) -> int:
    """Bits of a digital payload (bytes), or 0 for analog values (count them with `payload_values`)."""
    return 8 * len(payload) if isinstance(payload, (bytes, bytearray, memoryview)) else 0


def payload_values(payload) -> int:
    """Real values of an analog payload (a tensor), or 0 for bytes."""
    return 0 if isinstance(payload, (bytes, bytearray, memoryview)) else int(payload.numel())


__all__ = [
    "FRAMING_BYTES", "Kind", "PayloadError", "SeedInfo", "analog_to_image", "analog_to_seed", "decode_image",
    "decode_seed", "encode_image", "encode_seed", "encode_sketch", "image_info", "image_to_analog",
    "payload_bits", "payload_values", "quantisation_noise_var", "seed_to_analog", "side_info",
    "sketch_to_analog",
]
