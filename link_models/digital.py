"""The digital link: bits -> 5G LDPC -> QAM -> OFDM frames -> channel -> estimation -> LMMSE -> LDPC -> bits.

Two ways in:
- `link(batch_size, ebno_db=None)` (Sionna `sim_ber` style): `batch_size` random codewords through the
  link, returns (bits, decoded bits), both [batch_size, k]; `sionna.phy.utils.sim_ber(link, ...)` works.
- `link.send_bytes(payload)`: any payload of >= 1 byte, segmented into k-bit blocks (zero-padded tail),
  carried in as many frames as needed, returned with LinkStats.

Codewords are packed back to back over the data resource elements of consecutive frames (a codeword may
straddle two frames); each call of `cfg.batch` frames' worth of codewords is one batched pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from link_models.base import OFDMLink
from link_models.coding import build_code
from link_models.config import LinkConfig
from link_models.modulation import build_modem
from link_models.ofdm import OFDMTransport
from link_models.stats import LinkStats
from meg_common.errors import InputError
from meg_common.rng import sionna_rng


@dataclass
class Pass:
    """What one batched pass through the link measured."""

    bits_hat: torch.Tensor  # [codewords, k]
    frames: int
    symbols: int            # data symbols that carried coded bits
    sq_error: float         # sum |x_hat - x|^2 over those symbols
    no_eff: float           # sum of the equaliser's effective noise variance over those symbols


class DigitalLink(OFDMLink):
    """A 5G-LDPC / QAM / OFDM link configured by a LinkConfig; reproducible given `seed`."""

    schemes = ("digital",)

    def build(self, cfg: LinkConfig) -> None:
        self.encoder, self.decoder = build_code(cfg.code, cfg.k, cfg.n, cfg.bits_per_symbol, self.device,
                                                num_iter=cfg.ldpc_iterations, decoder=cfg.decoder)
        self.mapper, self.demapper = build_modem(cfg.modulation, self.device)
        self.transport = OFDMTransport(cfg, self.device)

    @property
    def codewords_per_batch(self) -> int:
        """Codewords that fill `cfg.batch` frames."""
        bits_per_frame = self.transport.data_symbols_per_frame * self.cfg.bits_per_symbol
        return max(1, self.cfg.batch * bits_per_frame // self.cfg.n)

    # --- batched simulation ----------------------------------------------------------------------------------
    def random_bits(self, num_codewords: int) -> torch.Tensor:
        return torch.randint(0, 2, (num_codewords, self.cfg.k), generator=self.generator,
                             device=self.device).to(torch.float32)

    def forward(self, batch_size: int, ebno_db: float | torch.Tensor | None = None,
                snr_db: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random codewords through the link: (bits, decoded bits), both [batch_size, k].

        The signature of Sionna's `sim_ber` Monte-Carlo function: `sim_ber(link, ebno_dbs, batch_size, ...)`
        works. Given `ebno_db` or `snr_db`, the link moves to that operating point first."""
        if ebno_db is not None or snr_db is not None:
            self.set_operating_point(snr_db=None if snr_db is None else float(snr_db),
                                     ebno_db=None if ebno_db is None else float(ebno_db))
        bits = self.random_bits(int(batch_size))
        return bits, self.transmit(bits).bits_hat

    @torch.no_grad()
    def transmit(self, bits: torch.Tensor) -> Pass:
        """One batched pass of information bits [codewords, k] (float 0/1) at the current operating point."""
        with sionna_rng(self.generator):
            coded = self.encoder(bits).reshape(-1)
            num_coded = coded.numel()  # uncoded blocks need not fill whole symbols: pad the stream
            coded = torch.nn.functional.pad(coded, (0, -num_coded % self.cfg.bits_per_symbol))
            x = self.mapper(coded)
            x_hat, no_eff, frames = self.transport(x, self.no)
            llr = self.demapper(x_hat, no_eff)[:num_coded]
            bits_hat = self.decoder(llr.reshape(bits.shape[0], self.cfg.n))
        return Pass(bits_hat=bits_hat, frames=frames, symbols=x.shape[0],
                    sq_error=float((x_hat - x).abs().square().sum()), no_eff=float(no_eff.sum()))

    # --- payloads --------------------------------------------------------------------------------------------
    def send_bits(self, bits: torch.Tensor) -> tuple[torch.Tensor, LinkStats]:
        """A 1-D tensor of 0/1 bits (any length >= 1) through the link: (decoded bits, stats)."""
        bits = torch.as_tensor(bits).reshape(-1).to(device=self.device, dtype=torch.float32)
        num = bits.numel()
        if num == 0:
            raise InputError("nothing to send: the payload is empty; give at least one byte")
        if ((bits != 0) & (bits != 1)).any():
            raise InputError("send_bits needs bits: every element must be 0 or 1")
        k = self.cfg.k
        codewords = math.ceil(num / k)
        blocks = torch.nn.functional.pad(bits, (0, codewords * k - num)).reshape(codewords, k)
        step = self.codewords_per_batch
        passes = [self.transmit(blocks[i:i + step]) for i in range(0, codewords, step)]
        blocks_hat = torch.cat([p.bits_hat for p in passes])
        bits_hat = blocks_hat.reshape(-1)[:num]
        stats = self._stats(passes, payload_bits=num, codewords=codewords)
        stats.padding_bits = codewords * k - num
        stats.bit_errors = int((bits_hat != bits).sum())
        stats.ber = stats.bit_errors / num
        stats.block_errors = int((blocks_hat != blocks).any(dim=1).sum())
        stats.bler = stats.block_errors / codewords
        return bits_hat, stats

    def send_bytes(self, payload: bytes) -> tuple[bytes, LinkStats]:
        """Bytes through the link (MSB first): (received bytes of the same length, stats)."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise InputError(f"send_bytes needs bytes, got {type(payload).__name__}")
        data = np.frombuffer(bytes(payload), dtype=np.uint8)
        if data.size == 0:
            raise InputError("nothing to send: the payload is empty; give at least one byte")
        bits = torch.from_numpy(np.unpackbits(data).astype(np.float32))
        bits_hat, stats = self.send_bits(bits)
        received = np.packbits(bits_hat.to("cpu", torch.uint8).numpy()).tobytes()
        return received, stats

    def _stats(self, passes: list[Pass], payload_bits: int, codewords: int) -> LinkStats:
        t = self.transport
        frames = sum(p.frames for p in passes)
        symbols = sum(p.symbols for p in passes)
        sq_error = sum(p.sq_error for p in passes)
        return LinkStats(
            payload_bits=payload_bits, coded_bits=codewords * self.cfg.n,
            data_symbols=frames * t.data_symbols_per_frame, pilot_symbols=frames * t.pilot_symbols_per_frame,
            cp_samples=frames * self.cfg.num_ofdm_symbols * self.cfg.cp_length,
            total_symbols=frames * t.samples_per_frame, frames=frames, codewords=codewords,
            airtime_s=frames * t.frame_duration_s, snr_db=self.cfg.es_no_db, ebno_db=self.cfg.eb_no_db,
            snr_est_db=10 * math.log10(symbols / sq_error) if sq_error > 0 else math.inf,
            noise_var=sum(p.no_eff for p in passes) / symbols)
