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
`link(batch_size)` (the `sim_ber` call of every link) sends `batch_size` random N(0, 1) values:
(values, estimates), both [batch_size].
"""

from __future__ import annotations

import math

import torch

from link_models.base import OFDMLink
from link_models.config import LinkConfig
from link_models.link import check_values
from link_models.mapping import from_symbols, power_scale, to_symbols
from link_models.ofdm import OFDMTransport
from link_models.stats import LinkStats
from meg_common.rng import sionna_rng

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
        values = check_values(values).to(self.device)
        num = values.numel()
        scale = power_scale(values)  # sent as float32 in the header
        s = to_symbols(values.float(), scale)
        reps = self.cfg.repetition
        with sionna_rng(self.generator):
            x_hat, no_eff, frames = self.transport(s.repeat(reps), self.no)
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
            no_est=t.no_est)
        return estimates, noise_var, stats
