"""The OFDM part of the frame, built from Sionna blocks, plus the drift tracking Sionna lacks.

`OTAGrid(cfg, num_symbols)` is one Sionna ResourceGrid of `num_symbols` OFDM symbols with a scattered
pilot pattern: the same `num_pilots` subcarriers carry a known BPSK pilot in every symbol, so each symbol
has its own phase and timing reference (a burst receiver has no earlier frame to lean on).

Transmit: ResourceGridMapper -> OFDMModulator. Receive: OFDMDemodulator (window started `timing_backoff`
samples inside the CP, its phase ramp removed through Sionna's `l_min`) -> drift tracking -> Sionna
LSChannelEstimator -> Sionna OFDMEqualizer with `single_stream_lmmse`, the closed form of Sionna's
`lmmse_equalizer` for one stream and one antenna (the same numbers as LMMSEEqualizer, checked in
tests/test_ota_frame.py, about 20x faster because it skips 1x1 Cholesky factorisations).

Drift tracking (ours): a residual CFO turns every symbol by a common phase, and a sample-clock offset
slides the FFT window, which tilts the phase linearly across subcarriers, growing along the frame. From
the pilots of each symbol we measure the tilt (phase step between neighbouring pilots) and the common
phase, fit both with a straight line over the symbols (a constant CFO and SCO make them linear in time),
and derotate (a 5-symbol moving average of what the line misses follows oscillator phase noise). After that the channel is static over the frame, so the LS estimates of all symbols can be
averaged ("lin_time_avg", the default) for a channel estimate about num_symbols times less noisy; with
`interpolation="lin"` every symbol keeps its own estimate (for channels that change within a frame).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from link_models.ota.config import FrameConfig
from meg_common.rng import import_sionna

_PILOT_SEED = 0x5C03
INTERPOLATIONS = ("lin_time_avg", "lin")


def make_pilot_pattern(cfg: FrameConfig, num_symbols: int):
    sn = import_sionna()
    mask = np.zeros((1, 1, num_symbols, cfg.num_used_subcarriers), np.float32)
    mask[..., cfg.pilot_subcarriers] = 1
    rng = np.random.default_rng(_PILOT_SEED)
    per_symbol = 2.0 * rng.integers(0, 2, len(cfg.pilot_subcarriers)) - 1.0
    pilots = np.tile(per_symbol, num_symbols).astype(np.complex64).reshape(1, 1, -1)
    return sn.ofdm.PilotPattern(mask, pilots)


class OTAGrid(nn.Module):
    """Data symbols [B, num_data] <-> time samples [B, num_symbols * (N + CP)] of one grid size."""

    def __init__(self, cfg: FrameConfig, num_symbols: int, interpolation: str = "lin_time_avg",
                 device: str = "cpu"):
        super().__init__()
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}")
        sn = import_sionna()
        self.cfg, self.num_symbols, self.interpolation = cfg, num_symbols, interpolation
        left, right = cfg.guard_carriers
        self.resource_grid = sn.ofdm.ResourceGrid(
            num_ofdm_symbols=num_symbols, fft_size=cfg.fft_size, subcarrier_spacing=cfg.subcarrier_spacing,
            cyclic_prefix_length=cfg.cp_length, num_guard_carriers=(left, right), dc_null=True,
            pilot_pattern=make_pilot_pattern(cfg, num_symbols), device=device)
        self.mapper = sn.ofdm.ResourceGridMapper(self.resource_grid, device=device)
        self.modulator = sn.ofdm.OFDMModulator(cfg.cp_length, device=device)
        self.demodulator = sn.ofdm.OFDMDemodulator(cfg.fft_size, l_min=-cfg.timing_backoff,
                                                   cyclic_prefix_length=cfg.cp_length, device=device)
        self.estimator = sn.ofdm.LSChannelEstimator(self.resource_grid, interpolation_type=interpolation,
                                                    device=device)
        # "lin_time_avg" computed cheaply: Sionna's LS + linear interpolation on the symbol-averaged grid
        # (averaging before instead of after the linear interpolation gives the same estimate, S times cheaper)
        self._average_grid = sn.ofdm.ResourceGrid(
            num_ofdm_symbols=1, fft_size=cfg.fft_size, subcarrier_spacing=cfg.subcarrier_spacing,
            cyclic_prefix_length=cfg.cp_length, num_guard_carriers=(left, right), dc_null=True,
            pilot_pattern=make_pilot_pattern(cfg, 1), device=device)
        self.average_estimator = sn.ofdm.LSChannelEstimator(self._average_grid, interpolation_type="lin",
                                                            device=device)
        self.equalizer = sn.ofdm.OFDMEqualizer(single_stream_lmmse, self.resource_grid,
                                               sn.mimo.StreamManagement(np.array([[1]]), 1), device=device)
        eff = np.asarray(self.resource_grid.effective_subcarrier_ind)          # shifted-order bin of each used
        pil = eff[cfg.pilot_subcarriers]
        self.register_buffer("_pilot_bins", torch.as_tensor(pil, dtype=torch.long))
        self.register_buffer("_pilot_freq", torch.as_tensor(pil - cfg.fft_size // 2, dtype=torch.float32))
        self.register_buffer("_bin_freq", torch.arange(cfg.fft_size, dtype=torch.float32) - cfg.fft_size // 2)
        pilots = self.resource_grid.pilot_pattern.pilots.reshape(num_symbols, -1)
        self.register_buffer("_pilots", pilots.to(torch.complex64))

    @property
    def num_data(self) -> int:
        return int(self.resource_grid.num_data_symbols)

    @property
    def num_samples(self) -> int:
        return self.num_symbols * self.cfg.symbol_length

    def modulate(self, symbols: torch.Tensor) -> torch.Tensor:
        """[B, num_data] complex -> [B, num_samples] complex time samples (CP included)."""
        grid = self.mapper(symbols.reshape(symbols.shape[0], 1, 1, -1).to(torch.complex64))
        return self.modulator(grid).reshape(symbols.shape[0], -1)

    def demodulate(self, samples: torch.Tensor, no: torch.Tensor) -> dict[str, torch.Tensor]:
        """Samples [B, num_samples] starting `timing_backoff` samples before the first CP ends... see below.

        `samples` must start `timing_backoff` samples before the grid's first sample (so the FFT windows
        sit inside the CPs). `no`: [B] noise variance per resource element. Returns x_hat, no_eff
        [B, num_data], the tracked `phase` [B, S] and `tilt` [B, S] (rad per subcarrier).
        """
        batch = samples.shape[0]
        y = self.demodulator(samples.to(torch.complex64)).reshape(batch, self.num_symbols, -1)
        y, phase, tilt = self.track_drift(y)
        y = y.reshape(batch, 1, 1, self.num_symbols, -1)
        no = torch.clamp(no.to(torch.float32), min=1e-12)
        if self.interpolation == "lin_time_avg":
            # pilots are the same in every symbol: their average has 1/S of the noise variance
            h_hat, err_var = self.average_estimator(y.mean(3, keepdim=True), no / self.num_symbols)
            shape = (*h_hat.shape[:-2], self.num_symbols, h_hat.shape[-1])
            h_hat, err_var = h_hat.expand(shape), err_var.expand(shape)
        else:
            h_hat, err_var = self.estimator(y, no)
        x_hat, no_eff = self.equalizer(y, h_hat, err_var, no)
        return {"x_hat": x_hat.reshape(batch, -1), "no_eff": no_eff.reshape(batch, -1).real.float(),
                "phase": phase, "tilt": tilt}

    def track_drift(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Remove per-symbol common phase and linear phase tilt, each fitted by a line over the symbols."""
        h = y[..., self._pilot_bins] * torch.conj(self._pilots)                 # [B, S, P] pilot channel
        d = self._pilot_freq[1:] - self._pilot_freq[:-1]
        z = h[..., 1:] * torch.conj(h[..., :-1])
        tilt = torch.sum(torch.angle(z) * z.abs(), -1) / torch.clamp(torch.sum(d * z.abs(), -1), min=1e-30)
        tilt = _fit_line(tilt, weights=torch.sum(z.abs(), -1))
        h = h * _phasor(-tilt[..., None] * self._pilot_freq)
        # common phase relative to the first symbol, unwrapped along the frame, then fitted by a line
        ref = h.sum(1, keepdim=True) if self.num_symbols == 1 else h[:, :1]
        rel = torch.sum(h * torch.conj(ref), -1)
        steps = torch.angle(rel[:, 1:] * torch.conj(rel[:, :-1]))
        phase = torch.cat([torch.angle(rel[:, :1]), torch.angle(rel[:, :1]) + torch.cumsum(steps, 1)], 1)
        phase = _fit_line(phase, weights=rel.abs())
        # what the line misses (oscillator phase noise) is followed with a short moving average
        if self.num_symbols >= 3:
            residual = rel * _phasor(-phase)
            kernel = torch.ones(1, 1, 5, dtype=torch.float32, device=y.device)
            smooth_re = nn.functional.conv1d(residual.real[:, None].float(), kernel, padding=2)[:, 0]
            smooth_im = nn.functional.conv1d(residual.imag[:, None].float(), kernel, padding=2)[:, 0]
            phase = phase + torch.atan2(smooth_im, smooth_re)
        y = y * _phasor(-(tilt[..., None] * self._bin_freq + phase[..., None]))
        return y, phase, tilt


def _phasor(angle: torch.Tensor) -> torch.Tensor:
    """exp(j angle) for a real tensor (torch.polar: cheaper than a complex exp)."""
    return torch.polar(torch.ones_like(angle), angle)


def single_stream_lmmse(y: torch.Tensor, h: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sionna's unbiased LMMSE equaliser for 1 stream, 1 antenna: x = y conj(h)/|h|^2, no_eff = s/|h|^2.

    Shapes as sionna.phy.mimo.lmmse_equalizer: y [..., 1], h [..., 1, 1], s [..., 1, 1] (noise plus
    channel-estimation error covariance). From x = (h* s^-1 h + 1)^-1 h* s^-1 y, gain d = |h|^2/(|h|^2 + s).
    """
    hh = h[..., 0, 0]
    gain = torch.clamp(hh.real ** 2 + hh.imag ** 2, min=1e-30)
    x_hat = torch.conj(hh) * y[..., 0] / gain
    return x_hat[..., None], (s[..., 0, 0].real / gain)[..., None]


def _fit_line(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted least-squares straight line through values[b, s] over s; returns the fitted values."""
    num = values.shape[-1]
    if num < 3:
        return values
    s = torch.arange(num, dtype=values.dtype, device=values.device)
    w = weights / torch.clamp(weights.sum(-1, keepdim=True), min=1e-30)
    s_mean = (w * s).sum(-1, keepdim=True)
    v_mean = (w * values).sum(-1, keepdim=True)
    cov = (w * (s - s_mean) * (values - v_mean)).sum(-1, keepdim=True)
    var = (w * (s - s_mean) ** 2).sum(-1, keepdim=True)
    slope = cov / torch.clamp(var, min=1e-30)
    return v_mean + slope * (s - s_mean)
