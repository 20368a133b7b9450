"""Image and sketch payloads: compressed image bytes (PNG/JPEG/WebP via Pillow) or analog pixel values.

A final image (CENTRALIZED, UIEG, UIDG, UIDCG downlinks) travels at full resolution; a sketch (ESUC, DSUC,
DCSUC) is a rough image sent at a lower resolution (`size`) that the receiver upsamples (bicubic) to the
model resolution and completes with img2img. Digital payloads wrap the file bytes in the project's container
(metadata + CRC32), so a corrupted image is detected instead of decoded into garbage. Analog payloads are
the pixel values mapped to [-1, 1], with the side information as a small digital payload, like analog
seeds: divided by their RMS (unit average power) by default, or as they are with `normalise=False` for a
link that normalises power itself (link_models.mapping; see meg_phy.codecs.seed).
"""

from __future__ import annotations

import io
import struct

import torch
from PIL import Image

from meg_common.errors import InputError
from meg_phy.codecs.container import Kind, PayloadError, pack, unpack
from meg_phy.images import from_pil, resize, to_pil

FORMATS = {"analog": 0, "png": 1, "jpeg": 2, "webp": 3}
_PIL_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_META = struct.Struct("<BBHHHHf")  # format, quality, sent h, sent w, target h, target w, scale
MAX_TARGET_PIXELS = 4096 * 4096
"""Largest target resolution a payload may ask for: a corrupted header (up to 65535 x 65535) would otherwise
make the decoder allocate tens of GB (a fuzz test ran the CI machine out of memory)."""
SKETCH_SIZE = (16, 16)


def _check_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
        raise InputError("image payloads take one image tensor (1, 3, H, W) in [0, 1]")
    if not bool(torch.isfinite(image).all()):
        raise InputError("image contains NaN or infinity")
    if not all(0 < s < 65536 for s in image.shape[-2:]):
        raise InputError(f"image of {tuple(image.shape[-2:])} pixels is too large for a payload")
    return image.detach().float().cpu().clamp(0, 1)


def _sent_size(image: torch.Tensor, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is None:
        return tuple(image.shape[-2:])
    h, w = (int(v) for v in size)
    if not (0 < h <= image.shape[-2] and 0 < w <= image.shape[-1]):
        raise InputError(f"sketch size {size}: must be positive and at most the image's {tuple(image.shape[-2:])}")
    return h, w


def encode_image(image: torch.Tensor, fmt: str = "png", quality: int = 75, size: tuple[int, int] | None = None,
                 kind: Kind = Kind.IMAGE) -> bytes:
    """One image -> bytes (PNG lossless; JPEG/WebP at `quality` 1..100), sent at `size` (default: its own)."""
    if fmt not in _PIL_NAMES:
        raise InputError(f"image format '{fmt}' unknown; choose png, jpeg or webp")
    if not 1 <= int(quality) <= 100:
        raise InputError(f"image quality {quality}: must be 1..100")
    image = _check_image(image)
    sent = _sent_size(image, size)
    small = resize(image, sent)
    buffer = io.BytesIO()
    options = {"quality": int(quality)} if fmt in ("jpeg", "webp") else {}
    if fmt in ("png", "jpeg"):
        options["optimize"] = True  # smaller Huffman tables (JPEG) / deflate search (PNG)
    to_pil(small).save(buffer, format=_PIL_NAMES[fmt], **options)
    meta = _META.pack(FORMATS[fmt], int(quality), *sent, *image.shape[-2:], 1.0)
    return pack(kind, meta, buffer.getvalue())


def encode_sketch(image: torch.Tensor, fmt: str = "jpeg", quality: int = 50,
                  size: tuple[int, int] | None = SKETCH_SIZE) -> bytes:
    """A sketch: the image shrunk to `size` (area averaging) and compressed; decodes back to full size."""
    return encode_image(image, fmt=fmt, quality=quality, size=size, kind=Kind.SKETCH)


def _meta(meta: bytes) -> tuple[str, int, tuple[int, int], tuple[int, int], float]:
    if len(meta) != _META.size:
        raise PayloadError(f"image metadata has {len(meta)} bytes, expected {_META.size}")
    code, quality, sh, sw, th, tw, scale = _META.unpack(meta)
    names = {v: k for k, v in FORMATS.items()}
    if code not in names:
        raise PayloadError(f"image format code {code} is unknown")
    if 0 in (sh, sw, th, tw) or sh > th or sw > tw:
        raise PayloadError(f"image sizes sent {sh}x{sw} / target {th}x{tw} are inconsistent")
    if th * tw > MAX_TARGET_PIXELS:
        raise PayloadError(f"image target {th}x{tw} is larger than {MAX_TARGET_PIXELS} pixels")
    if not (scale > 0 and scale < float("inf")):
        raise PayloadError(f"image scale {scale} is not finite and positive")
    return names[code], quality, (sh, sw), (th, tw), scale


def decode_image(payload: bytes) -> torch.Tensor:
    """bytes (image or sketch) -> (1, 3, H, W) in [0, 1] at the target resolution; PayloadError if malformed."""
    _, meta, body = unpack(payload, (Kind.IMAGE, Kind.SKETCH))
    fmt, _, sent, target, _ = _meta(meta)
    if fmt == "analog":
        raise PayloadError("this payload is analog side information; use analog_to_image with the values")
    try:
        with Image.open(io.BytesIO(body), formats=[_PIL_NAMES[fmt]]) as pil:
            if pil.size != (sent[1], sent[0]):
                raise PayloadError(f"embedded {fmt} is {pil.size[1]}x{pil.size[0]}, metadata says {sent[0]}x{sent[1]}")
            pil.load()
            image = from_pil(pil)
    except PayloadError:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, struct.error, ...)
        raise PayloadError(f"embedded {fmt} does not decode ({type(exc).__name__})") from None
    return resize(image, target)


def image_to_analog(image: torch.Tensor, size: tuple[int, int] | None = None, kind: Kind = Kind.IMAGE,
                    normalise: bool = True) -> tuple[torch.Tensor, bytes]:
    """Image -> (values, side): pixels at `size` mapped to [-1, 1] and divided by their RMS (unit power), or
    not divided with `normalise=False` (scale 1 in the side information)."""
    image = _check_image(image)
    sent = _sent_size(image, size)
    centred = resize(image, sent) * 2 - 1
    scale = (float(centred.pow(2).mean().sqrt()) or 1.0) if normalise else 1.0
    side = pack(kind, _META.pack(FORMATS["analog"], 0, *sent, *image.shape[-2:], scale), b"")
    return (centred / scale if normalise else centred).reshape(-1), side


def sketch_to_analog(image: torch.Tensor, size: tuple[int, int] | None = SKETCH_SIZE,
                     normalise: bool = True) -> tuple[torch.Tensor, bytes]:
    return image_to_analog(image, size=size, kind=Kind.SKETCH, normalise=normalise)


def analog_to_image(values: torch.Tensor, noise_var: float | torch.Tensor,
                    side: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """Received values + noise variance (link units) -> image (1, 3, H, W) at the target size, clamped to [0, 1],
    and the noise variance of the pixels at the sent resolution in [0, 1] units (mean if per-value)."""
    _, meta, body = unpack(side, (Kind.IMAGE, Kind.SKETCH))
    fmt, _, sent, target, scale = _meta(meta)
    if fmt != "analog" or body:
        raise PayloadError(f"side information is a {fmt} image payload, not analog side information")
    values = torch.as_tensor(values).detach().float().cpu().reshape(-1)
    if values.numel() != 3 * sent[0] * sent[1]:
        raise PayloadError(f"received {values.numel()} values, the side information says 3x{sent[0]}x{sent[1]}")
    noise_var = torch.as_tensor(noise_var, dtype=torch.float32).detach().cpu()
    if noise_var.numel() not in (1, values.numel()) or bool((noise_var < 0).any()):
        raise InputError(f"noise variance must be one value or {values.numel()} values, >= 0")
    image = ((values * scale).reshape(1, 3, *sent) + 1) / 2
    image = resize(image.clamp(0, 1), target)
    return image, noise_var * scale**2 / 4


def image_info(payload: bytes) -> dict:
    """Format, quality, sent and target sizes of an image/sketch payload (digital or analog side info)."""
    kind, meta, body = unpack(payload, (Kind.IMAGE, Kind.SKETCH))
    fmt, quality, sent, target, scale = _meta(meta)
    return {"kind": kind.name.lower(), "format": fmt, "quality": quality, "sent_size": list(sent),
            "target_size": list(target), "scale": scale, "file_bytes": len(body)}
