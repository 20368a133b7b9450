"""Images of the public API (float tensors (B, 3, H, W) in [0, 1]) to and from PIL images and files.

`load_image` accepts any image file Pillow reads, of any size and mode, and brings it to the model's
resolution: converted to RGB (alpha dropped, palette expanded), centre-cropped to the model's aspect ratio,
then resampled with Lanczos (an anti-aliased filter, so large photos do not alias when shrunk to 32x32).
It returns what it did, so a results file can state the choice.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from meg_common.errors import InputError
from meg_common.io import atomic_write_bytes

RESAMPLE = Image.Resampling.LANCZOS
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> 8-bit RGB PIL image (rounded)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise InputError(f"to_pil takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise InputError(f"image tensor of shape {tuple(image.shape)}: expected (3, H, W)")
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


def from_pil(pil: Image.Image) -> torch.Tensor:
    """PIL image (any mode) -> (1, 3, H, W) float32 in [0, 1]."""
    array = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def fit(pil: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, dict[str, Any]]:
    """Centre-crop `pil` to the aspect ratio of `size` (height, width), then Lanczos-resize to it."""
    height, width = size
    w0, h0 = pil.size
    if w0 * height > h0 * width:  # too wide: crop the sides
        cw, ch = round(h0 * width / height), h0
    else:  # too tall: crop top and bottom
        cw, ch = w0, round(w0 * height / width)
    left, top = (w0 - cw) // 2, (h0 - ch) // 2
    box = (left, top, left + cw, top + ch)
    out = pil.convert("RGB").crop(box)
    if out.size != (width, height):
        out = out.resize((width, height), RESAMPLE)
    info = {"original_size": [h0, w0], "original_mode": pil.mode, "crop_box_ltrb": list(box),
            "resized_to": [height, width],
            "method": "RGB (alpha dropped), centre crop to the model's aspect ratio, Lanczos resampling"}
    return out, info


def load_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Read an image file -> ((1, 3, H, W) in [0, 1], what was done); InputError if missing or not an image."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image {p} does not exist or is not a file")
    try:
        with Image.open(p) as pil:
            pil.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"image {p}: cannot be read as an image ({type(exc).__name__}); give a PNG/JPEG/WebP file") \
            from None
    info: dict[str, Any] = {"original_size": [pil.size[1], pil.size[0]], "original_mode": pil.mode}
    if size is not None:
        pil, info = fit(pil, size)
    return from_pil(pil), info


def save_image(image: torch.Tensor, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write one image atomically; the format follows the suffix (.png, .jpg, .webp, .bmp)."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InputError(f"{p}: unknown image suffix; use one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    try:
        return atomic_write_bytes(p, buffer.getvalue())
    except OSError as exc:
        raise InputError(f"{p}: cannot write there ({exc.strerror or exc}); choose a writable path") from None


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a batch (B, 3, H, W) to (height, width): area-averaging down, bicubic up (clamped to [0, 1])."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    down = size[0] <= image.shape[-2] and size[1] <= image.shape[-1]
    mode = "area" if down else "bicubic"
    kwargs = {} if down else {"align_corners": False}
    return torch.nn.functional.interpolate(image.float(), size=size, mode=mode, **kwargs).clamp(0, 1)


def grid(images: torch.Tensor, columns: int = 8, pad: int = 1) -> torch.Tensor:
    """Tile a batch (B, 3, H, W) into one (1, 3, H', W') image, white padding."""
    b, c, h, w = images.shape
    rows = -(-b // columns)
    cols = min(columns, b)
    out = torch.ones(1, c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(b):
        r, k = divmod(i, columns)
        out[0, :, pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = images[i]
    return out
