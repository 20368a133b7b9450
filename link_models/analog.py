"""The analog link: real values sent as complex symbols, returned as unbiased estimates with their noise variance.

Values go through the unit-power mapping of link_models.mapping (the link normalises their power; the scale
and the length travel as a 64-bit header, counted in the statistics but not simulated): two values per
complex symbol, unit mean symbol energy like the digital constellations, over the same OFDM transport.
With `repetition` R > 1 the symbol stream is sent R times (bandwidth expansion); the copies lie a whole
stream apart, so they see different channel, and are combined with maximum-ratio weights 1 / no_eff.
The LMMSE equaliser output is unbiased, so each value estimate is unbiased too, and its variance is the
equaliser's effective noise variance of its symbol times the scale squared (link_models.mapping). With the
ls and lmmse estimators that variance rests on the receiver's own N0 estimate (link_models.ofdm), never on
the configured SNR.
`link.send_values_many(vectors, seeds)` sends several vectors at once, each as `send_values` after
`reseed(seed)` gives it, bit for bit.
`link(batch_size)` (the `sim_ber` call of every link) sends `batch_size` random N(0, 1) values:
(values, estimates), both [batch_size].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from link_models.base import OFDMLink
from link_models.config import LinkConfig
from link_models.link import check_values
from link_models.mapping import from_symbols, power_scale, to_symbols
from link_models.ofdm import OFDMTransport
from link_models.stats import LinkStats

HEADER_BITS = 64  # float32 scale + uint32 length
NOISE_VAR_FLOOR = 1e-12


class AnalogLink(OFDMLink):
    """Real-valued vectors over the OFDM link, reproducible given `seed`."""

    schemes = ("analog",)

    def build(self, cfg: LinkConfig) -> None:
        self.transport = OFDMTransport(cfg, self.device)

    @property
    def values_per_batch(self) -> int:
        """Values that fill `cfg.batch` frames (after repetition)."""
        return max(2, 2 * self.cfg.batch * self.transport.data_symbols_per_frame // self.cfg.repetition)

    def random_values(self, num: int) -> torch.Tensor:
        return torch.randn(num, generator=self.generator, device=self.device)

    def forward(self, batch_size: int, ebno_db: float | torch.Tensor | None = None,
                snr_db: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random N(0, 1) values through the link: (values, estimates), both [batch_size].

        The call every link shares (Sionna's `sim_ber` signature). Values carry no information bits:
        `ebno_db` converts to Es/N0 with the configured modulation and code rate, as LinkConfig does;
        `snr_db` (Es/N0 per resource element) is the one that means what the values see."""
        if ebno_db is not None or snr_db is not None:
            self.set_operating_point(snr_db=None if snr_db is None else float(snr_db),
                                     ebno_db=None if ebno_db is None else float(ebno_db))
        values = self.random_values(int(batch_size))
        return values, self.send_values(values)[0]

    @torch.no_grad()
    def send_values(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LinkStats]:
        """values: 1-D real tensor -> (estimates, per-value noise variance, stats); same shape as values."""
        return self.send_values_many([values], [self.generator])[0]

    @torch.no_grad()
    def send_values_many(self, payloads: Sequence[torch.Tensor], seeds: Sequence[int | torch.Generator]
                         ) -> list[tuple[torch.Tensor, torch.Tensor, LinkStats]]:
        """Several value vectors in one pass, vector i drawing from its own generator (`seeds[i]`: an int, or a
        generator that is advanced): per vector what `reseed(seeds[i])` then `send_values(payloads[i])` gives,
        bit for bit (its own frames, noise, N0 estimate and power scale). OFDMTransport.send_many says what
        runs once for all and what runs per vector."""
        payloads = [check_values(v).to(self.device) for v in payloads]
        generators = self.generators(seeds, len(payloads))
        scales = [power_scale(v) for v in payloads]  # sent as float32 in the header
        symbols = [to_symbols(v.float(), scale) for v, scale in zip(payloads, scales, strict=True)]
        reps = self.cfg.repetition
        received = self.transport.send_many([s.repeat(reps) for s in symbols], self.no, generators)
        return [self._estimate(v, scale, s, *r)
                for v, scale, s, r in zip(payloads, scales, symbols, received, strict=True)]

    def _estimate(self, values: torch.Tensor, scale: torch.Tensor, s: torch.Tensor, x_hat: torch.Tensor,
                  no_eff: torch.Tensor, frames: int, no_est: float) -> tuple[torch.Tensor, torch.Tensor, LinkStats]:
        """The receiver's estimates of one vector: copies combined (maximum ratio), values and their variance."""
        num, reps = values.numel(), self.cfg.repetition
        weights = 1.0 / no_eff.clamp(min=NOISE_VAR_FLOOR).reshape(reps, -1)
        s_hat = (weights * x_hat.reshape(reps, -1)).sum(0) / weights.sum(0)
        var = 1.0 / weights.sum(0)  # complex-symbol variance == per-value variance of u (link_models.mapping)
        estimates, noise_var = from_symbols(s_hat, scale, num, var, dtype=values.dtype)
        sq_error = float((s_hat - s).abs().square().sum())
        t = self.transport
        stats = LinkStats(
            payload_bits=HEADER_BITS, header_bits=HEADER_BITS, values=num,
            data_symbols=frames * t.data_symbols_per_frame, pilot_symbols=frames * t.pilot_symbols_per_frame,
            cp_samples=frames * self.cfg.num_ofdm_symbols * self.cfg.cp_length,
            total_symbols=frames * t.samples_per_frame, frames=frames, airtime_s=frames * t.frame_duration_s,
            snr_db=self.cfg.es_no_db,
            snr_est_db=10 * math.log10(s.numel() / sq_error) if sq_error > 0 else math.inf,
            noise_var=float(var.mean()),
            nmse=float((estimates - values).square().mean() / values.square().mean().clamp(min=1e-30)),
            no_est=no_est)
        return estimates, noise_var, stats
