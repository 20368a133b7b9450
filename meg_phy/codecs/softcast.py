"""SoftCast for one image: an analog image scheme whose quality follows the channel and fits any bandwidth.

After S. Jakubczak and D. Katabi, "A Cross-Layer Design for Scalable Mobile Video", ACM MobiCom 2011
(SoftCast; the SIGCOMM 2010 demo and the MIT tech report describe the same design), applied to one image
instead of a group of video frames, so its 3-D DCT becomes a 2-D DCT:

1. Colour: RGB, or an orthonormal luma/chroma rotation ("yuv": Y = (R+G+B)/sqrt3, U = (R-B)/sqrt2,
   V = (R-2G+B)/sqrt6) that compacts energy into Y while keeping squared errors equal to those in RGB.
2. Orthonormal 2-D DCT-II per colour channel (so the MSE of the coefficients is the MSE of the pixels).
3. The mean is removed: each channel's DC coefficient goes in the metadata (float32), so the power is spent
   on the picture, not on its average brightness. Every chunk is then treated as zero-mean.
4. Chunks: each channel's coefficients are cut into rectangles of `chunk` = (h, w) coefficients,
   L = h w values each, with energy lambda_i = mean of the squared coefficients of chunk i.
5. Chunk selection: N channel uses carry 2N real values, so the K = min(2N / L, chunks with energy)
   chunks of highest energy are sent, the others dropped (they cost their energy in MSE).
6. Power allocation: g_i = c lambda_i^(-1/4), with c^2 = P K / sum_kept sqrt(lambda_i), so the sent values
   g_i x have mean power P (the optimal linear scaling of SoftCast, sec. 3.2 of the paper).
7. Two real values per complex channel use (the analog link pairs them); the receiver sees y = g x + n.
8. LLSE decoding: x_hat = g_i lambda_i / (g_i^2 lambda_i + sigma^2) y, per value if sigma^2 is per value.

SoftCast's MSE (sum over coefficients, before clipping to [0, 1]): for a kept chunk with the receiver's
lambda equal to the true one, L lambda_i sigma^2 / (g_i^2 lambda_i + sigma^2), for a dropped chunk
L lambda_i; the pixel MSE is their sum over 3 H W. At high SNR the kept chunks' part tends to the
paper's L sigma^2 (sum_kept sqrt lambda_i)^2 / (P K). `SoftCastPlan.expected_mse` evaluates the
exact expectation for the quantised lambdas the receiver uses: L [(a_i g_i - 1)^2 lambda_i + a_i^2 sigma^2],
a_i = g_i lambda_hat_i / (g_i^2 lambda_hat_i + sigma^2).

Metadata (digital side information, bytes): a fixed header of 33 bytes (version, colour, H, W, chunk h/w,
variance bits b, power P as float32, the 3 channel means as float32, the log2-energy range lo/hi as float32),
then a bitmap of the kept chunks (1 bit per chunk) and a b-bit code per kept chunk (log2 lambda quantised
uniformly between lo and hi), packed MSB first. Header bits = 264 + 8 ceil((C + b K) / 8) for C chunks;
for a 64 x 64 image with 4 x 4 chunks and b = 6: 264 + 768 + 6 K bits (at most 5640). The encoder uses the
quantised energies itself, so sender and receiver agree on every gain.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import torch

from meg_common.errors import InputError
from meg_phy.codecs.container import PayloadError

VERSION = 1
COLOURS = {"rgb": 0, "yuv": 1}
_HEAD = struct.Struct("<BBHHBBBf3fff")
HEADER_BYTES = _HEAD.size
_YUV = torch.tensor([[1 / math.sqrt(3)] * 3,
                     [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
                     [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)]], dtype=torch.float64)


def _dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix D [n, n]: X = D x, x = D^T X."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def _colour_matrix(colour: str) -> torch.Tensor:
    return _YUV if colour == "yuv" else torch.eye(3, dtype=torch.float64)


def _to_chunks(coeffs: torch.Tensor, chunk: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) -> (C, L): chunk index = channel, chunk row, chunk column (row-major)."""
    h, w = chunk
    c, height, width = coeffs.shape
    return coeffs.reshape(c, height // h, h, width // w, w).permute(0, 1, 3, 2, 4).reshape(-1, h * w)


def _from_chunks(chunks: torch.Tensor, shape: tuple[int, int], chunk: tuple[int, int]) -> torch.Tensor:
    h, w = chunk
    height, width = shape
    return chunks.reshape(3, height // h, width // w, h, w).permute(0, 1, 3, 2, 4).reshape(3, height, width)


def _gains(energy_hat: torch.Tensor, kept: torch.Tensor, power: float) -> torch.Tensor:
    """g_i = c lambda_i^(-1/4) on the kept chunks (0 elsewhere), mean power of g x equal to `power`."""
    gains = torch.zeros_like(energy_hat)
    root = energy_hat[kept].sqrt()
    c = math.sqrt(power * int(kept.sum()) / float(root.sum()))
    gains[kept] = c / root.sqrt()
    return gains


@dataclass(frozen=True)
class SoftCastMeta:
    """What the metadata says (see the module doc for its layout)."""

    colour: str
    size: tuple[int, int]
    chunk: tuple[int, int]
    variance_bits: int
    power: float
    means: tuple[float, float, float]   # per colour channel, the value the DC coefficient stands for
    kept: torch.Tensor                  # (C,) bool
    energy_hat: torch.Tensor            # (C,) float64, quantised chunk energy (0 where dropped)

    @property
    def chunk_len(self) -> int:
        return self.chunk[0] * self.chunk[1]

    @property
    def num_values(self) -> int:
        return int(self.kept.sum()) * self.chunk_len

    @property
    def gains(self) -> torch.Tensor:
        return _gains(self.energy_hat, self.kept, self.power)

    def received_mse(self, noise_var: float | torch.Tensor) -> float:
        """The pixel MSE ([0, 1] units) the receiver expects of its LLSE estimate of the sent chunks, from the
        metadata alone (quantised energies) and the mean of the reported noise variance: what channel-aware
        sketch completion needs. The dropped chunks' error is unknown to it and left out
        (`SoftCastPlan.expected_mse` has the whole error, from the true energies)."""
        s2 = float(torch.as_tensor(noise_var, dtype=torch.float64).mean())
        g, lam = self.gains[self.kept], self.energy_hat[self.kept]
        height, width = self.size
        return float((lam * s2 / (g.square() * lam + s2)).sum()) * self.chunk_len / (3 * height * width)


def _quantise(energy: torch.Tensor, kept: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Codes (kept chunks, in order) of log2 energy on a uniform grid, the quantised energies, lo, hi."""
    logs = torch.log2(energy[kept]).float().double()  # lo/hi travel as float32: use what the receiver gets
    lo, hi = float(np.float32(logs.min())), float(np.float32(logs.max()))
    levels = 2**bits - 1
    step = (hi - lo) / levels if hi > lo else 0.0
    codes = torch.zeros(logs.shape, dtype=torch.long) if step == 0 else torch.round((logs - lo) / step).long()
    codes = codes.clamp(0, levels)
    energy_hat = torch.zeros_like(energy)
    energy_hat[kept] = torch.exp2(lo + codes.double() * step)
    return codes, energy_hat, lo, hi


def _pack_meta(meta: SoftCastMeta, codes: torch.Tensor, lo: float, hi: float) -> bytes:
    head = _HEAD.pack(VERSION, COLOURS[meta.colour], *meta.size, *meta.chunk, meta.variance_bits, meta.power,
                      *meta.means, lo, hi)
    b = meta.variance_bits
    code_bits = ((codes[:, None] >> torch.arange(b - 1, -1, -1)) & 1).reshape(-1)
    stream = torch.cat([meta.kept.long(), code_bits]).numpy().astype(np.uint8)
    return head + np.packbits(stream).tobytes()


def unpack_meta(data: bytes) -> SoftCastMeta:
    """Metadata bytes -> SoftCastMeta; PayloadError naming what is wrong with malformed input."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PayloadError(f"SoftCast metadata must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise PayloadError(f"SoftCast metadata truncated: {len(data)} bytes, the header alone has {HEADER_BYTES}")
    version, colour, height, width, ch, cw, bits, power, m0, m1, m2, lo, hi = _HEAD.unpack_from(data)
    names = {v: k for k, v in COLOURS.items()}
    if version != VERSION:
        raise PayloadError(f"SoftCast metadata version {version} is not supported (this build reads {VERSION})")
    if colour not in names:
        raise PayloadError(f"SoftCast colour code {colour} is unknown")
    if 0 in (height, width, ch, cw, bits) or height % ch or width % cw or bits > 16:
        raise PayloadError(f"SoftCast sizes {height}x{width}, chunk {ch}x{cw}, {bits} variance bits are inconsistent")
    if not all(math.isfinite(v) for v in (power, m0, m1, m2, lo, hi)) or power <= 0 or hi < lo:
        raise PayloadError("SoftCast metadata has non-finite values, power <= 0 or an empty energy range")
    num_chunks = 3 * (height // ch) * (width // cw)
    stream = torch.from_numpy(np.unpackbits(np.frombuffer(data[HEADER_BYTES:], dtype=np.uint8)).astype(np.int64))
    if stream.numel() < num_chunks:
        raise PayloadError(f"SoftCast metadata truncated: no room for the bitmap of {num_chunks} chunks")
    kept = stream[:num_chunks].bool()
    count = int(kept.sum())
    need = math.ceil((num_chunks + bits * count) / 8)
    if count == 0 or len(data) - HEADER_BYTES != need:
        raise PayloadError(f"SoftCast metadata has {len(data) - HEADER_BYTES} bytes after the header, "
                           f"{count} kept chunks need {need}")
    code_bits = stream[num_chunks:num_chunks + bits * count].reshape(count, bits)
    codes = (code_bits << torch.arange(bits - 1, -1, -1)).sum(1)
    step = (hi - lo) / (2**bits - 1)
    energy_hat = torch.zeros(num_chunks, dtype=torch.float64)
    energy_hat[kept] = torch.exp2(lo + codes.double() * step)
    return SoftCastMeta(names[colour], (height, width), (ch, cw), bits, float(power), (m0, m1, m2), kept,
                        energy_hat)


def header_bits(meta: bytes) -> int:
    """Bits of side information a SoftCast image costs (send them on a digital link)."""
    return 8 * len(meta)


@dataclass(frozen=True)
class SoftCastPlan:
    """Everything the encoder decided for one image, with SoftCast's MSE formula."""

    values: torch.Tensor      # (K L,) float32, what goes on the channel
    meta: bytes
    info: SoftCastMeta
    energy: torch.Tensor      # (C,) true chunk energies lambda_i (DC removed)

    @property
    def channel_uses(self) -> int:
        """Complex channel uses the values take (two real values each)."""
        return math.ceil(self.values.numel() / 2)

    def expected_mse(self, noise_var: float) -> float:
        """Expected pixel MSE ([0, 1] units, before clipping) for noise of variance `noise_var` on each value."""
        s2 = float(noise_var)
        if not (math.isfinite(s2) and s2 >= 0):
            raise InputError(f"noise_var={noise_var!r}: must be a finite variance >= 0")
        g, lam, lam_hat, kept = self.info.gains, self.energy, self.info.energy_hat, self.info.kept
        a = torch.where(kept, g * lam_hat / (g.square() * lam_hat + s2), torch.zeros_like(g))
        per_chunk = torch.where(kept, (a * g - 1).square() * lam + a.square() * s2, lam)
        height, width = self.info.size
        return float(per_chunk.sum() * self.info.chunk_len / (3 * height * width))


class SoftCastEncoder:
    """Image (1, 3, H, W) in [0, 1] + channel uses -> (values (K L,) float32, metadata bytes).

    chunk: (h, w) coefficients per chunk (H, W multiples of them); colour: yuv | rgb; power: mean power
    of the sent values (1 = the analog link's unit power); variance_bits: bits per quantised chunk energy.
    """

    def __init__(self, chunk: tuple[int, int] = (4, 4), colour: str = "yuv", power: float = 1.0,
                 variance_bits: int = 6):
        if colour not in COLOURS:
            raise InputError(f"SoftCast colour '{colour}' unknown; choose {' or '.join(COLOURS)}")
        chunk = tuple(int(v) for v in chunk)
        if len(chunk) != 2 or not all(0 < v < 256 for v in chunk):
            raise InputError(f"SoftCast chunk {chunk}: give two sizes in 1..255, e.g. (4, 4)")
        if not (isinstance(power, int | float) and math.isfinite(power) and power > 0):
            raise InputError(f"SoftCast power {power!r}: must be a positive number")
        if not (isinstance(variance_bits, int) and 1 <= variance_bits <= 16):
            raise InputError(f"SoftCast variance_bits {variance_bits!r}: must be an integer 1..16")
        self.chunk, self.colour, self.power, self.variance_bits = chunk, colour, float(power), variance_bits

    def __call__(self, image: torch.Tensor, channel_uses: int) -> tuple[torch.Tensor, bytes]:
        plan = self.plan(image, channel_uses)
        return plan.values, plan.meta

    def plan(self, image: torch.Tensor, channel_uses: int) -> SoftCastPlan:
        x = self._check(image, channel_uses)
        height, width = x.shape[-2:]
        coeffs = _dct_matrix(height) @ x @ _dct_matrix(width).T          # (3, H, W)
        means = coeffs[:, 0, 0] / math.sqrt(height * width)
        means = torch.tensor(np.float32(means.numpy()), dtype=torch.float64)  # what float32 metadata carries
        coeffs[:, 0, 0] -= means * math.sqrt(height * width)
        chunks = _to_chunks(coeffs, self.chunk)                            # (C, L)
        energy = chunks.square().mean(dim=1)
        length = chunks.shape[1]
        count = min(2 * int(channel_uses) // length, int((energy > 0).sum()))
        kept = torch.zeros(energy.shape, dtype=torch.bool)
        if count == 0:
            if not bool((energy > 0).any()):  # a flat image: send one chunk of zeros so the link has values
                count = 1
                energy = energy.clone()
                energy[0] = 1e-30
            else:
                raise InputError(f"{channel_uses} channel uses carry no chunk of {length} values; give at least "
                                 f"{math.ceil(length / 2)} channel uses or a smaller chunk")
        order = sorted(range(energy.numel()), key=lambda i: (-float(energy[i]), i))
        kept[order[:count]] = True
        codes, energy_hat, lo, hi = _quantise(energy, kept, self.variance_bits)
        info = SoftCastMeta(self.colour, (height, width), self.chunk, self.variance_bits, self.power,
                            tuple(float(m) for m in means), kept, energy_hat)
        values = (chunks[kept] * info.gains[kept, None]).reshape(-1).float()
        return SoftCastPlan(values, _pack_meta(info, codes, lo, hi), info, energy)

    def _check(self, image, channel_uses) -> torch.Tensor:
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or tuple(image.shape[:2]) != (1, 3):
            raise InputError("SoftCast takes one image tensor (1, 3, H, W) in [0, 1]")
        if not bool(torch.isfinite(image).all()):
            raise InputError("image contains NaN or infinity")
        height, width = image.shape[-2:]
        if height % self.chunk[0] or width % self.chunk[1] or height > 65535 or width > 65535:
            raise InputError(f"image {height}x{width} is not a multiple of the chunk {self.chunk}; "
                             "choose a chunk that divides it")
        if isinstance(channel_uses, bool) or not isinstance(channel_uses, int) or channel_uses < 1:
            raise InputError(f"channel_uses={channel_uses!r}: must be a positive integer")
        x = image.detach().cpu().double()[0]
        return torch.einsum("ij,jhw->ihw", _colour_matrix(self.colour), x)


class SoftCastDecoder:
    """(received values, noise variance, metadata) -> image (1, 3, H, W) by LLSE, clipped to [0, 1] if `clamp`.

    noise_var: the variance of the noise on each received value (a scalar, or one per value as the analog
    link reports), in the units of the sent values.
    """

    def __call__(self, values: torch.Tensor, noise_var: float | torch.Tensor, meta: bytes,
                 clamp: bool = True) -> torch.Tensor:
        info = unpack_meta(meta)
        y = torch.as_tensor(values).detach().cpu().double().reshape(-1)
        if y.numel() != info.num_values:
            raise PayloadError(f"received {y.numel()} values, the SoftCast metadata says {info.num_values}")
        s2 = torch.as_tensor(noise_var, dtype=torch.float64).detach().cpu().reshape(-1)
        if s2.numel() not in (1, y.numel()) or not bool(torch.isfinite(s2).all()) or bool((s2 < 0).any()):
            raise InputError(f"noise variance must be one value or {y.numel()} values, finite and >= 0")
        length = info.chunk_len
        y = y.reshape(-1, length)
        s2 = s2.reshape(-1, length) if s2.numel() > 1 else s2
        g = info.gains[info.kept, None]
        lam = info.energy_hat[info.kept, None]
        chunks = torch.zeros(info.kept.numel(), length, dtype=torch.float64)
        chunks[info.kept] = g * lam / (g.square() * lam + s2) * y
        height, width = info.size
        coeffs = _from_chunks(chunks, info.size, info.chunk)
        coeffs[:, 0, 0] = torch.tensor(info.means, dtype=torch.float64) * math.sqrt(height * width)
        x = _dct_matrix(height).T @ coeffs @ _dct_matrix(width)
        image = torch.einsum("ij,ihw->jhw", _colour_matrix(info.colour), x)[None].float()
        return image.clamp(0, 1) if clamp else image
