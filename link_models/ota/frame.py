"""Frame building: payload bytes or analog values -> numbered burst frames -> time-domain samples.

One frame on air (N = 64, CP = 16 by default; lengths in samples):

    | sync: CP + 4 x N/2 | train: CP + N | header: 6 OFDM symbols | data: S OFDM symbols |
      detection, coarse    integer CFO,    QPSK, LDPC rate ~1/3,     digital: LDPC + QAM codewords
      timing, frac. CFO    fine timing      164-bit FrameHeader       analog: value pairs as symbols

Every OFDM symbol (header and data) carries the same scattered pilots (link_models.ota.ofdm.OTAGrid).
A digital frame carries up to `codewords_per_frame` LDPC codewords holding a chunk of the payload plus
its CRC-32; an analog frame carries up to `values_per_frame` values, two per resource element, through
the unit-power mapping of link_models.mapping, like link_models.AnalogLink (the scale of the whole
message, float32, travels in every frame's header). A message longer
than one frame is split into frames numbered seq = 0 .. total-1 with a common msg_id.
Samples come out with unit energy per resource element (mean power 52/64 per sample); radios scale them.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from link_models.coding import build_code
from link_models.config import MODULATIONS
from link_models.demapping import SeparableDemapper
from link_models.mapping import power_scale, to_symbols
from link_models.modulation import build_modem
from link_models.ota.config import FrameConfig
from link_models.ota.header import HEADER_BITS, FrameHeader
from link_models.ota.ofdm import OTAGrid
from link_models.ota.preamble import Preamble, make_preamble
from meg_common.errors import InputError

PAYLOAD_CRC_BYTES = 4
HEADER_MODULATION = "qpsk"
_FILL_SEED = 0x5C04


@dataclass
class Frame:
    """One frame as sent: its header, its samples and what it carried (for error counting)."""

    header: FrameHeader
    samples: np.ndarray          # complex64, unit energy per resource element
    data_symbols: int            # OFDM symbols in the data part (S)
    info_bits: np.ndarray | None = None   # digital: [units, k] information bits (chunk + CRC + zero pad)
    symbols: np.ndarray | None = None     # the data resource-element symbols actually used (no fill)


class PayloadCodec(nn.Module):
    """Bits <-> channel symbols for one (modulation, code, k, n): Sionna LDPC and QAM from link_models."""

    def __init__(self, modulation: str, code: str, k: int, n: int, device: str = "cpu", ldpc_iterations: int = 20):
        super().__init__()
        self.modulation, self.code, self.k, self.n = modulation, code, k, n
        self.bits_per_symbol = MODULATIONS[modulation]
        self.encoder, self.decoder = build_code(code, k, n, self.bits_per_symbol, device, num_iter=ldpc_iterations)
        self.mapper, self.demapper = build_modem(modulation, device)
        if not str(device).startswith("cuda"):   # same LLRs up to rounding, ~15x less CPU (link_models.demapping)
            self.demapper = SeparableDemapper(self.demapper.constellation())

    def symbols_for(self, units: int) -> int:
        return units * self.n // self.bits_per_symbol

    @torch.no_grad()
    def encode(self, bits: torch.Tensor) -> torch.Tensor:
        """[..., units, k] 0/1 -> [..., units * n / m] complex symbols."""
        coded = self.encoder(bits.to(torch.float32))
        return self.mapper(coded.reshape(*bits.shape[:-2], -1))

    @torch.no_grad()
    def llr(self, x_hat: torch.Tensor, no_eff: torch.Tensor) -> torch.Tensor:
        return self.demapper(x_hat, no_eff)

    @torch.no_grad()
    def decode(self, llr: torch.Tensor, units: int) -> torch.Tensor:
        """[B, >= units * n] LLRs -> [B, units, k] hard bits."""
        batch = llr.shape[0]
        llr = llr[:, :units * self.n].reshape(batch * units, self.n)
        return self.decoder(llr).reshape(batch, units, self.k)


class FrameCodec(nn.Module):
    """What transmitter and receiver share: preamble, header code, grids and payload codecs (cached)."""

    def __init__(self, cfg: FrameConfig | None = None, device: str = "cpu", ldpc_iterations: int = 20,
                 interpolation: str = "lin_time_avg"):
        super().__init__()
        self.cfg = cfg or FrameConfig()
        self.device, self.ldpc_iterations, self.interpolation = device, ldpc_iterations, interpolation
        self.preamble: Preamble = make_preamble(self.cfg)
        self.header_grid = OTAGrid(self.cfg, self.cfg.header_symbols, interpolation, device)
        m = MODULATIONS[HEADER_MODULATION]
        header_n = self.header_grid.num_data * m
        self.header_codec = PayloadCodec(HEADER_MODULATION, "ldpc", HEADER_BITS, header_n, device, ldpc_iterations)
        self._grids = nn.ModuleDict()
        self._codecs = nn.ModuleDict()

    def grid(self, num_symbols: int) -> OTAGrid:
        key = str(num_symbols)
        if key not in self._grids:
            self._grids[key] = OTAGrid(self.cfg, num_symbols, self.interpolation, self.device)
        return self._grids[key]

    def payload_codec(self, modulation: str, code: str, k: int, n: int) -> PayloadCodec:
        key = f"{modulation}_{code}_{k}_{n}"
        if key not in self._codecs:
            self._codecs[key] = PayloadCodec(modulation, code, k, n, self.device, self.ldpc_iterations)
        return self._codecs[key]

    def data_symbols_for(self, num_re: int) -> int:
        """OFDM symbols needed to carry `num_re` data resource elements."""
        return max(1, math.ceil(num_re / self.cfg.data_subcarriers_per_symbol))

    def fill(self, symbols: torch.Tensor, total: int) -> torch.Tensor:
        """Pad [B, n] symbols to [B, total] with fixed pseudo-random QPSK (keeps the spectrum and PAPR)."""
        missing = total - symbols.shape[-1]
        if missing <= 0:
            return symbols
        rng = np.random.default_rng(_FILL_SEED)
        pad = np.exp(1j * (np.pi / 4 + np.pi / 2 * rng.integers(0, 4, (symbols.shape[0], missing))))
        return torch.cat([symbols, torch.as_tensor(pad, dtype=symbols.dtype, device=symbols.device)], -1)


class FrameBuilder:
    """Payload -> list of Frames -> one burst of samples (frames separated by `gap_samples` of silence)."""

    def __init__(self, codec: FrameCodec, modulation: str = "qpsk", code: str = "ldpc", k: int = 1024,
                 n: int = 2048):
        if modulation not in MODULATIONS:
            raise InputError(f"unknown modulation '{modulation}'; choose one of {', '.join(MODULATIONS)}")
        if n >= 1 << 16 or k >= 1 << 16:
            raise InputError(f"k={k}, n={n}: the OTA header carries k and n in 16 bits; use n < 65536")
        self.codec, self.cfg = codec, codec.cfg
        self.modulation, self.code, self.k, self.n = modulation, code, (k if code == "ldpc" else n), n
        if code == "ldpc":
            self.payload = codec.payload_codec(modulation, code, k, n)

    @property
    def bytes_per_frame(self) -> int:
        return self.cfg.codewords_per_frame * self.k // 8 - PAYLOAD_CRC_BYTES

    # --- digital ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def digital_frames(self, payload: bytes, msg_id: int = 0) -> list[Frame]:
        data = bytes(payload)
        if not data:
            raise InputError("nothing to send: the payload is empty; give at least one byte")
        if self.bytes_per_frame < 1:
            raise InputError(f"k={self.k}: too small for a frame payload; raise k or codewords_per_frame")
        chunks = [data[i:i + self.bytes_per_frame] for i in range(0, len(data), self.bytes_per_frame)]
        if len(chunks) >= 1 << 16:
            raise InputError(f"payload of {len(data)} bytes needs {len(chunks)} frames (max 65535); send less")
        codec = self.codec.payload_codec(self.modulation, self.code, self.k, self.n)
        frames = []
        for seq, chunk in enumerate(chunks):
            body = chunk + zlib.crc32(chunk).to_bytes(PAYLOAD_CRC_BYTES, "big")
            units = math.ceil(8 * len(body) / self.k)
            bits = np.zeros(units * self.k, np.float32)
            bits[:8 * len(body)] = np.unpackbits(np.frombuffer(body, np.uint8))
            info = bits.reshape(units, self.k)
            symbols = codec.encode(torch.from_numpy(info)[None])[0]
            header = FrameHeader("digital", self.modulation, self.code, self.k, self.n, units, len(chunk), seq,
                                 len(chunks), msg_id % 256)
            frames.append(self._frame(header, symbols, info_bits=info))
        return frames

    # --- analog ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def analog_frames(self, values, msg_id: int = 0) -> list[Frame]:
        values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        if values.numel() == 0:
            raise InputError("nothing to send: the value vector is empty; give at least one value")
        if not torch.isfinite(values).all():
            raise InputError("values contain NaN or infinity; send finite values only")
        scale = power_scale(values).double()      # float32, as the header carries it
        per = self.cfg.values_per_frame + self.cfg.values_per_frame % 2
        parts = [values[i:i + per] for i in range(0, values.numel(), per)]
        if len(parts) >= 1 << 16:
            raise InputError(f"{values.numel()} values need {len(parts)} frames (max 65535); send fewer")
        frames = []
        for seq, part in enumerate(parts):
            symbols = to_symbols(part, scale).to(torch.complex64)
            m = MODULATIONS[self.modulation]
            header = FrameHeader("analog", self.modulation, "none", m, m, part.numel(), 0, seq, len(parts),
                                 msg_id % 256, scale=float(scale))
            frames.append(self._frame(header, symbols))
        return frames

    # --- samples ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _frame(self, header: FrameHeader, symbols: torch.Tensor, info_bits=None) -> Frame:
        codec = self.codec
        header_symbols = codec.header_codec.encode(torch.from_numpy(header.to_bits())[None, None])
        header_samples = codec.header_grid.modulate(header_symbols)[0]
        num_symbols = codec.data_symbols_for(symbols.numel())
        grid = codec.grid(num_symbols)
        data_samples = grid.modulate(codec.fill(symbols[None], grid.num_data))[0]
        samples = np.concatenate([codec.preamble.samples, header_samples.numpy(), data_samples.numpy()])
        return Frame(header, samples.astype(np.complex64), num_symbols, info_bits, symbols.numpy())

    def burst(self, frames: list[Frame]) -> np.ndarray:
        """All frames back to back, each followed by `gap_samples` zeros."""
        gap = np.zeros(self.cfg.gap_samples, np.complex64)
        return np.concatenate([part for f in frames for part in (f.samples, gap)])


def take_decoded(frames, bits) -> None:
    """Each frame's decoded information bits: its payload where the payload's CRC passes (`crc_ok`), else None."""
    import zlib

    for f, b in zip(frames, bits, strict=True):
        f.info_bits = b
        raw = np.packbits(b.reshape(-1)[:8 * (f.header.length + PAYLOAD_CRC_BYTES)] > 0.5).tobytes()
        chunk, crc = raw[:f.header.length], raw[f.header.length:]
        f.crc_ok = zlib.crc32(chunk).to_bytes(PAYLOAD_CRC_BYTES, "big") == crc
        f.payload = chunk if f.crc_ok else None
