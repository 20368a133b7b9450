"""Quality metrics of a protocol run: PSNR and SSIM against the noiseless reference, prompt accuracy, payload sizes.

PSNR and SSIM come from scikit-image (data range 1, images in [0, 1]); SSIM's window shrinks to fit small
images (7x7 Gaussian-free uniform window by default, at most the image side, odd). Prompt accuracy uses the
embedded evaluator (`meg_phy.evaluator`), imported only when asked for. FID, LPIPS and CLIP score need
pretrained networks that the embedded, offline setup does not have; `docs/generation.md` says how to plug
them in with your own weights.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from meg_common.errors import InputError
from meg_phy.codecs import payload_bits, payload_values


def _pairs(image: torch.Tensor, reference: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 arrays (B, H, W, 3)."""
    if image.shape != reference.shape:
        raise InputError(f"image {tuple(image.shape)} and reference {tuple(reference.shape)} differ in shape")
    if image.dim() == 3:
        image, reference = image[None], reference[None]
    if image.dim() != 4 or image.shape[1] != 3:
        raise InputError(f"images must be (B, 3, H, W) or (3, H, W), got {tuple(image.shape)}")

    def arr(x: torch.Tensor) -> np.ndarray:
        return x.detach().double().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()

    return arr(image), arr(reference)


def psnr_per_image(image: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """PSNR in dB of each image against its reference (inf when identical)."""
    a, b = _pairs(image, reference)
    out = []
    for x, y in zip(a, b, strict=True):
        out.append(float("inf") if np.array_equal(x, y) else float(peak_signal_noise_ratio(y, x, data_range=1.0)))
    return out


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean PSNR (dB) over the batch."""
    return float(np.mean(psnr_per_image(image, reference)))


def ssim_per_image(image: torch.Tensor, reference: torch.Tensor) -> list[float]:
    a, b = _pairs(image, reference)
    side = min(a.shape[1], a.shape[2])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise InputError(f"images of {a.shape[1]}x{a.shape[2]} are too small for SSIM (need at least 3x3)")
    return [float(structural_similarity(y, x, data_range=1.0, channel_axis=-1, win_size=win))
            for x, y in zip(a, b, strict=True)]


def ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean SSIM over the batch (scikit-image, data range 1, per-channel then averaged)."""
    return float(np.mean(ssim_per_image(image, reference)))


def prompt_matches(images: torch.Tensor, prompts: list[str], evaluator=None) -> list[bool]:
    """Whether each image shows every attribute its prompt names (the embedded evaluator reads them)."""
    if evaluator is None:
        from meg_phy.evaluator import load_evaluator

        evaluator = load_evaluator()
    if len(prompts) != images.shape[0]:
        raise InputError(f"{images.shape[0]} images but {len(prompts)} prompts")
    return [bool(m) for m in evaluator.prompt_match(images, prompts)]


def prompt_accuracy(images: torch.Tensor, prompts: list[str], evaluator=None) -> float:
    """Share of images whose every attribute matches the prompt."""
    matches = prompt_matches(images, prompts, evaluator)
    return sum(matches) / len(matches) if matches else float("nan")


def payload_size(payload) -> dict[str, int]:
    """{"bits": ..., "values": ...} of a payload: bytes count bits, an analog tensor counts real values."""
    return {"bits": payload_bits(payload), "values": payload_values(payload)}


__all__ = ["payload_bits", "payload_size", "payload_values", "prompt_accuracy", "prompt_matches", "psnr",
           "psnr_per_image", "ssim", "ssim_per_image"]
