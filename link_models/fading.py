"""Time-correlated fading: a TDL/CDL channel that evolves continuously over a UE's session.

The block-fading channels of `link_models.channels` draw a new channel for every frame (Sionna's TDL/CDL
draw their random parameters, Doppler angles and phases, at every call). A UE moving at `speed_mps` sees one
channel that changes with time: here the random parameters of the 3GPP model are drawn once per session
(from `FadingState.seed`) and the channel is evaluated at the session's clock, frame after frame:

    h(t) for frame f, OFDM symbol s at t = (clock + f) * T_frame + s * T_symbol

`clock` (frames since the session started) lives in the `FadingState` and advances with every frame the
session puts on air and with the idle time the link waits for feedback (link_models.scheduled), so the
channel is continuous across the frames of a pass, HARQ retransmissions, ARQ retransmissions and the
payloads (tasks) of one session.

- TDL: the sum-of-sinusoids model Sionna's `tr38901.TDL` uses (Xiao, Zheng, Beaulieu), with its power delay
  profile, number of sinusoids and angles; only the time axis starts at the session's clock instead of 0.
  Its autocorrelation over sessions is the Jakes/Clarke J0(2 pi f_D tau) (tests/test_link_fading.py).
- CDL: Sionna's `tr38901.CDL` clusters and rays through its `ChannelCoefficientsGenerator` (steps 10-11 of
  TR 38.901 7.5), with a horizontal UE velocity of random direction per session.
The parameters are re-drawn each call from a generator seeded with the state's seed (cheap, and a state is
a few numbers: it pickles and copies). The noise is drawn from the payload's own generator, as on every link.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from link_models.config import LinkConfig
from meg_common.rng import import_sionna, make_generator, sionna_rng
from meg_common.vocabulary import time_varying

SPEED_OF_LIGHT = 299792458.0


@dataclasses.dataclass
class FadingState:
    """One UE's channel over a session: the seed of its random model parameters and its clock in frames."""

    seed: int
    clock: int = 0
    """Frames since the session began (frames on air and idle frames waiting for feedback)."""


def doppler_hz(cfg: LinkConfig) -> float:
    """Maximum Doppler shift f_D = v f_c / c of the configuration."""
    return float(cfg.speed_mps) * float(cfg.carrier_frequency_hz) / SPEED_OF_LIGHT


class ContinuousFading(nn.Module):
    """(x, no, state) -> (y, h): the channel of `cfg.channel` (tdl-* or cdl-*) at the session's clock.

    x: [frames, 1, 1, symbols, fft] resource grids sent back to back from `state.clock`; h has Sionna's
    OFDMChannel shape [frames, 1, 1, 1, 1, symbols, fft]. The state's clock is not moved here (the caller
    advances it by what it puts on air)."""

    def __init__(self, cfg: LinkConfig, resource_grid, device: str):
        super().__init__()
        sn = import_sionna()
        if not time_varying(cfg.channel):
            raise ValueError(f"continuous fading needs a TDL or CDL channel, not {cfg.channel}")
        family, letter = cfg.channel.split("-")
        self.family = family
        self.device = device
        self.speed = float(cfg.speed_mps)
        self.symbol_s = float(resource_grid.ofdm_symbol_duration)
        self.symbols = int(cfg.num_ofdm_symbols)
        self.frame_s = self.symbols * self.symbol_s
        tr = sn.channel.tr38901
        delay_spread = cfg.delay_spread_ns * 1e-9
        if family == "tdl":
            self.model = tr.TDL(letter.upper(), delay_spread=delay_spread, carrier_frequency=cfg.carrier_frequency_hz,
                                min_speed=self.speed, max_speed=self.speed, device=device)
        else:
            ut, bs = (tr.AntennaArray(num_rows=1, num_cols=1, polarization="single", polarization_type="V",
                                      antenna_pattern="omni", carrier_frequency=cfg.carrier_frequency_hz,
                                      device=device) for _ in range(2))
            self.model = tr.CDL(letter.upper(), delay_spread=delay_spread, carrier_frequency=cfg.carrier_frequency_hz,
                                ut_array=ut, bs_array=bs, direction="downlink",
                                min_speed=self.speed, max_speed=self.speed, device=device)
        self.frequencies = sn.channel.subcarrier_frequencies(cfg.fft_size, cfg.subcarrier_spacing_khz * 1e3,
                                                            device=device)
        self.cir_to_ofdm = sn.channel.cir_to_ofdm_channel
        self.apply_channel = sn.channel.ApplyOFDMChannel(device=device)

    def times(self, clock: int, frames: int) -> torch.Tensor:
        """Sample times [frames * symbols] (s) of `frames` frames from frame `clock` of the session."""
        steps = torch.arange(frames * self.symbols, dtype=torch.float64, device=self.device)
        return (clock * self.frame_s + steps * self.symbol_s).to(torch.float32)

    def cir(self, state: FadingState, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Path coefficients [frames, 1, 1, 1, 1, paths, symbols] and delays [frames, 1, 1, paths]."""
        t = self.times(state.clock, frames)
        with sionna_rng(make_generator(state.seed, self.device)):
            a, tau = self._tdl(t) if self.family == "tdl" else self._cdl(t)
        paths = a.shape[5]
        a = a.reshape(1, 1, 1, 1, 1, paths, frames, self.symbols).permute(6, 1, 2, 3, 4, 5, 7, 0)[..., 0]
        return a, tau.reshape(1, 1, 1, paths).expand(frames, 1, 1, paths)

    def _tdl(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sionna TDL.__call__ for one link with the time axis `t` (same draws, same order)."""
        m = self.model
        rng = m.torch_rng
        pi = math.pi
        n = m._num_sinusoids
        doppler = torch.rand((1, 1, 1, 1, 1, 1, 1, 1), dtype=m.dtype, device=m.device, generator=rng) \
            * (m._max_doppler - m._min_doppler) + m._min_doppler
        theta = torch.rand((1, 1, 1, 1, 1, m._num_clusters, 1, n), dtype=m.dtype, device=m.device,
                           generator=rng) * (2 * pi / n) - pi / n
        alpha = m._alpha_const + theta
        phi = torch.rand((1, 1, 1, 1, 1, m._num_clusters, 1, n), dtype=m.dtype, device=m.device,
                         generator=rng) * 2 * pi - pi
        times = t.reshape(1, 1, 1, 1, 1, 1, -1, 1)
        argument = doppler * times * torch.cos(alpha) + phi
        h = torch.complex(torch.cos(argument), torch.sin(argument)).sum(dim=-1) / math.sqrt(n)
        h = torch.sqrt(m._mean_powers).reshape(1, 1, 1, 1, 1, -1, 1) * h
        if m._los:
            phi_0 = torch.rand((1, 1, 1, 1, 1, 1, 1), dtype=m.dtype, device=m.device, generator=rng) * 2 * pi - pi
            arg = doppler.squeeze(-1) * t.reshape(1, 1, 1, 1, 1, 1, -1) * math.cos(float(m._los_angle_of_arrival)) \
                + phi_0
            spec = torch.complex(torch.cos(arg), torch.sin(arg)) * torch.sqrt(m._los_power)
            h = torch.cat([spec + h[:, :, :, :, :, :1], h[:, :, :, :, :, 1:]], dim=5)
        delays = m._delays * m._delay_spread if m._scale_delays else m._delays * 1e-9
        return h, delays

    def _cdl(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sionna CDL.__call__ for one link with the time axis `t` and a horizontal velocity."""
        m = self.model
        direction = float(torch.rand((), generator=m.torch_rng, device=m.device)) * 2 * math.pi
        velocity = torch.tensor([[self.speed * math.cos(direction), self.speed * math.sin(direction), 0.0]],
                                dtype=m.dtype, device=m.device)
        topology = m._create_topology(1, velocity)
        rays = m._create_rays(1)
        k_factor = m._get_k_factor(1)
        gen = m._cir_gen
        phi = gen._step_10(rays.aoa.shape)
        h, delays = gen._step_11(phi, topology, k_factor, rays, t.to(gen.dtype), None)
        return h.permute(0, 2, 4, 1, 5, 3, 6), delays.permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, no: torch.Tensor, state: FadingState) -> tuple[torch.Tensor, torch.Tensor]:
        a, tau = self.cir(state, int(x.shape[0]))
        h = self.cir_to_ofdm(self.frequencies, a, tau, normalize=False)
        y = self.apply_channel(x, h, no)  # the noise from the generator lent at the time (the payload's)
        return y, h
