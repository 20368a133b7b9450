"""Latent payloads: a latent at some denoising step, as digital bytes or as analog values plus side information.

Digital (`encode_seed` / `decode_seed`): the latent quantised to float32, float16, or uniform 8/4-bit with a
(min, max) pair per latent channel, in the container of `meg_phy.codecs.container` (header, CRC32). The
metadata says what the receiver needs to resume: shape, step, number of inference steps, begin index,
current timestep, strength, scheduler, the remaining timestep schedule (steps already run are not sent and
come back as -1), and the tile box for multi-ES tiles. A scheduler's internal history (DPM-Solver's past
model outputs) is not sent: a multistep solver restarts at first order on the receiver.

Analog (`seed_to_analog` / `analog_to_seed`): the latent values as a 1-D float tensor for an analog link;
the side information (the same metadata, with the scale, no body) goes as a small digital payload. The
receiver maps the received values and their noise variance back to a Latent and the noise variance in latent
units, for channel-aware resume. Power normalisation belongs to the link (link_models.mapping normalises
whatever it is given, once, and carries the scale): a flowgraph asks for `normalise=False`, the latent
as it is (scale 1 in the side information). The default, `normalise=True`, divides by the RMS (unit
average power, the scale in the side information) for a channel that does not normalise by itself.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import torch

from meg_common.errors import InputError
from meg_phy.codecs.container import Kind, PayloadError, pack, unpack
from meg_phy.ldm import Latent

DTYPES = {"analog": 0, "float32": 1, "float16": 2, "int8": 3, "int4": 4}
BITS = {"float32": 32, "float16": 16, "int8": 8, "int4": 4}
SCHEDULER_CODES = {"ddim": 1, "dpm": 2, "euler": 3}
_FIXED = struct.Struct("<BBBB")
_STEPS = struct.Struct("<HHHfff")
_FLAG_REGION, _FLAG_FLOAT_TIMESTEPS = 1, 2


@dataclass(frozen=True)
class SeedInfo:
    """What a seed payload says besides the latent values."""

    dtype: str
    shape: tuple[int, ...]
    step: int
    num_inference_steps: int
    begin_index: int
    timestep: float
    strength: float
    scale: float
    scheduler: str
    remaining: tuple[float, ...]
    region: tuple[int, int, int, int] | None = None
    full_size: tuple[int, int] | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _info(seed: Latent, dtype: str, scale: float) -> SeedInfo:
    if seed.timesteps is None:
        raise InputError("seed has no timestep schedule; resolve it with SplitLDM.resolve_timesteps first")
    if seed.scheduler not in SCHEDULER_CODES:
        raise InputError(f"seed scheduler '{seed.scheduler}' has no payload code")
    remaining = tuple(float(t) for t in seed.timesteps[seed.step:].tolist())
    timestep = remaining[0] if remaining else float("nan")
    return SeedInfo(dtype, tuple(seed.latents.shape), seed.step, seed.num_inference_steps, seed.begin_index,
                    timestep, float(seed.strength), float(scale), seed.scheduler, remaining, seed.region,
                    seed.full_size)


def _pack_meta(info: SeedInfo, extra: bytes = b"") -> bytes:
    integral = all(t == int(t) and 0 <= t < 65536 for t in info.remaining)
    flags = (_FLAG_REGION if info.region else 0) | (0 if integral else _FLAG_FLOAT_TIMESTEPS)
    if len(info.shape) > 8 or any(not 0 < d < 65536 for d in info.shape):
        raise InputError(f"latent shape {info.shape} cannot be sent (at most 8 dims, each 1..65535)")
    for name in ("step", "num_inference_steps", "begin_index"):
        if not 0 <= getattr(info, name) < 65536:
            raise InputError(f"seed {name} {getattr(info, name)} out of the payload range 0..65535")
    meta = _FIXED.pack(DTYPES[info.dtype], SCHEDULER_CODES[info.scheduler], len(info.shape), flags)
    meta += struct.pack(f"<{len(info.shape)}H", *info.shape)
    meta += _STEPS.pack(info.step, info.num_inference_steps, info.begin_index, info.timestep, info.strength,
                        info.scale)
    meta += struct.pack("<H", len(info.remaining))
    remaining = [int(t) for t in info.remaining] if integral else list(info.remaining)
    meta += struct.pack(f"<{len(remaining)}{'H' if integral else 'f'}", *remaining)
    if info.region:
        meta += struct.pack("<6H", *info.region, *info.full_size)
    return meta + extra


def _unpack_meta(meta: bytes) -> tuple[SeedInfo, bytes]:
    """SeedInfo and the rest of the meta (per-channel ranges); PayloadError on anything inconsistent."""
    try:
        code, sched, ndim, flags = _FIXED.unpack_from(meta)
        pos = _FIXED.size
        shape = struct.unpack_from(f"<{ndim}H", meta, pos)
        pos += 2 * ndim
        step, total, begin, timestep, strength, scale = _STEPS.unpack_from(meta, pos)
        pos += _STEPS.size
        (count,) = struct.unpack_from("<H", meta, pos)
        pos += 2
        fmt = "f" if flags & _FLAG_FLOAT_TIMESTEPS else "H"
        remaining = struct.unpack_from(f"<{count}{fmt}", meta, pos)
        pos += struct.calcsize(f"<{count}{fmt}")
        region = full = None
        if flags & _FLAG_REGION:
            *region, fh, fw = struct.unpack_from("<6H", meta, pos)
            region, full = tuple(region), (fh, fw)
            pos += 12
    except struct.error:
        raise PayloadError(f"seed metadata truncated ({len(meta)} bytes)") from None
    dtypes = {v: k for k, v in DTYPES.items()}
    schedulers = {v: k for k, v in SCHEDULER_CODES.items()}
    if code not in dtypes:
        raise PayloadError(f"seed dtype code {code} is unknown")
    if sched not in schedulers:
        raise PayloadError(f"seed scheduler code {sched} is unknown")
    if flags & ~(_FLAG_REGION | _FLAG_FLOAT_TIMESTEPS):
        raise PayloadError(f"seed flags {flags:#x} have unknown bits")
    if ndim < 1 or 0 in shape:
        raise PayloadError(f"seed shape {shape} is empty")
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(strength)):
        raise PayloadError(f"seed scale {scale} / strength {strength} not finite and positive")
    if any(not math.isfinite(t) for t in remaining):
        raise PayloadError("seed timestep schedule has non-finite values")
    info = SeedInfo(dtypes[code], tuple(shape), step, total, begin, timestep, strength, scale, schedulers[sched],
                    tuple(float(t) for t in remaining), region, full)
    return info, meta[pos:]


def _seed_from(info: SeedInfo, latents: torch.Tensor) -> Latent:
    integral = all(t == int(t) for t in info.remaining)
    dtype = torch.int64 if integral else torch.float32
    timesteps = torch.tensor([-1.0] * info.step + list(info.remaining), dtype=torch.float64).to(dtype)
    return Latent(latents=latents, step=info.step, timesteps=timesteps, num_inference_steps=info.num_inference_steps,
                begin_index=info.begin_index, strength=info.strength, scheduler=info.scheduler,
                region=info.region, full_size=info.full_size)


# ---- digital -------------------------------------------------------------------------------------------------
def encode_seed(seed: Latent, dtype: str = "float16") -> bytes:
    """Latent -> bytes: latent as float32/float16, or 8/4-bit uniform with a (min, max) per channel."""
    if dtype not in BITS:
        raise InputError(f"seed dtype '{dtype}' unknown; choose one of {', '.join(BITS)}")
    latents = seed.latents.detach().float().cpu()
    if not bool(torch.isfinite(latents).all()):
        raise InputError("seed latents contain NaN or infinity")
    info = _info(seed, dtype, 1.0)
    if dtype in ("float32", "float16"):
        return pack(Kind.SEED, _pack_meta(info), latents.to(getattr(torch, dtype)).numpy().tobytes())
    if latents.dim() < 2:
        raise InputError(f"seed latents of shape {tuple(latents.shape)}: expected (B, C, h, w)")
    levels = 2 ** BITS[dtype] - 1
    channels = latents.shape[1]
    per_channel = latents.transpose(0, 1).reshape(channels, -1)
    lo, hi = per_channel.min(dim=1).values, per_channel.max(dim=1).values
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    q = torch.round((per_channel - lo[:, None]) / span[:, None] * levels).clamp(0, levels).to(torch.uint8)
    q = q.reshape(channels, latents.shape[0], *latents.shape[2:]).transpose(0, 1).reshape(-1)
    if dtype == "int4":
        q = torch.cat([q, q.new_zeros(q.numel() % 2)])
        q = q[0::2] | (q[1::2] << 4)
    ranges = struct.pack(f"<{2 * lo.numel()}f", *lo.tolist(), *hi.tolist())
    return pack(Kind.SEED, _pack_meta(info, ranges), q.numpy().tobytes())


def decode_seed(payload: bytes) -> Latent:
    """bytes -> Latent (schedule steps already run are -1); PayloadError for anything malformed."""
    _, meta, body = unpack(payload, Kind.SEED)
    info, ranges = _unpack_meta(meta)
    n = info.numel
    if info.dtype == "analog":
        raise PayloadError("this seed payload is analog side information; use analog_to_seed with the values")
    if info.dtype in ("float32", "float16"):
        width = BITS[info.dtype] // 8
        if len(body) != n * width or ranges:
            raise PayloadError(f"seed body has {len(body)} bytes, {n} {info.dtype} values need {n * width}")
        values = torch.frombuffer(bytearray(body), dtype=getattr(torch, info.dtype)).float()
        if not bool(torch.isfinite(values).all()):
            raise PayloadError("seed values contain NaN or infinity")
        return _seed_from(info, values.reshape(info.shape))
    if len(info.shape) < 2:
        raise PayloadError(f"quantised seed of shape {info.shape}: expected (B, C, h, w)")
    channels = info.shape[1]
    if len(ranges) != 8 * channels:
        raise PayloadError(f"seed has {len(ranges)} bytes of channel ranges, {channels} channels need {8 * channels}")
    bounds = torch.tensor(struct.unpack(f"<{2 * channels}f", ranges), dtype=torch.float32).reshape(2, channels)
    if not bool(torch.isfinite(bounds[1] - bounds[0]).all()) or bool((bounds[1] < bounds[0]).any()):
        raise PayloadError("seed channel ranges are not finite or have max < min")
    need = n if info.dtype == "int8" else (n + 1) // 2
    if len(body) != need:
        raise PayloadError(f"seed body has {len(body)} bytes, {n} {info.dtype} values need {need}")
    q = torch.frombuffer(bytearray(body), dtype=torch.uint8)
    if info.dtype == "int4":
        q = torch.stack([q & 0x0F, q >> 4], dim=1).reshape(-1)[:n]
    levels = 2 ** BITS[info.dtype] - 1
    lo, hi = bounds
    q = q.reshape(info.shape).transpose(0, 1).reshape(channels, -1).float()
    values = lo[:, None] + q / levels * (hi - lo)[:, None]
    values = values.reshape(channels, info.shape[0], *info.shape[2:]).transpose(0, 1).contiguous()
    return _seed_from(info, values)


def quantisation_noise_var(payload: bytes) -> float:
    """Mean variance of the quantisation error of a digital seed (step²/12 per channel; 0 for float32).

    Lets a receiver treat coarse quantisation like channel noise in `meg_phy.resume`.
    """
    _, meta, _ = unpack(payload, Kind.SEED)
    info, ranges = _unpack_meta(meta)
    if info.dtype in ("float32", "analog"):
        return 0.0
    if info.dtype == "float16":
        seed = decode_seed(payload)
        return float(((seed.latents.abs() * 2.0 ** -11) ** 2 / 3).mean())
    channels = len(ranges) // 8
    lo, hi = torch.tensor(struct.unpack(f"<{2 * channels}f", ranges)).reshape(2, channels)
    step = (hi - lo) / (2 ** BITS[info.dtype] - 1)
    return float((step**2 / 12).mean())


# ---- analog --------------------------------------------------------------------------------------------------
def seed_to_analog(seed: Latent, normalise: bool = True) -> tuple[torch.Tensor, bytes]:
    """Latent -> (values, side): values are the latent / its RMS (unit average power), or the latent as it is
    with `normalise=False` (for a link that normalises, see the module doc); side is a digital payload."""
    latents = seed.latents.detach().float().cpu()
    if not bool(torch.isfinite(latents).all()):
        raise InputError("seed latents contain NaN or infinity")
    scale = float(latents.pow(2).mean().sqrt()) if normalise else 1.0
    scale = scale if scale > 0 else 1.0
    side = pack(Kind.SEED, _pack_meta(_info(seed, "analog", scale)), b"")
    return (latents / scale if normalise else latents).reshape(-1), side


def analog_to_seed(values: torch.Tensor, noise_var: float | torch.Tensor, side: bytes) -> tuple[Latent, torch.Tensor]:
    """Received values + their noise variance (link units) -> Latent and noise variance in latent units.

    `noise_var` may be a scalar or one variance per value (as an equaliser reports); it is scaled by the
    side information's scale², keeping its shape.
    """
    _, meta, body = unpack(side, Kind.SEED)
    info, rest = _unpack_meta(meta)
    if info.dtype != "analog" or body or rest:
        raise PayloadError(f"side information is a {info.dtype} seed payload, not analog side information")
    values = torch.as_tensor(values).detach().float().cpu().reshape(-1)
    if values.numel() != info.numel:
        raise PayloadError(f"received {values.numel()} values, the side information says {info.numel} "
                           f"(shape {info.shape})")
    noise_var = torch.as_tensor(noise_var, dtype=torch.float32).detach().cpu()
    if noise_var.numel() not in (1, info.numel) or bool((noise_var < 0).any()) or not bool(
            torch.isfinite(noise_var).all()):
        raise InputError(f"noise variance must be one value or {info.numel} values, finite and >= 0")
    latents = (values * info.scale).reshape(info.shape)
    return _seed_from(info, latents), noise_var * info.scale**2


def side_info(payload: bytes) -> SeedInfo:
    """The metadata of any seed payload (digital or analog side information)."""
    _, meta, _ = unpack(payload, Kind.SEED)
    return _unpack_meta(meta)[0]
