"""The OFDM part shared by the digital and the analog link: symbols in, equalised symbols out.

`OFDMTransport` places a stream of unit-energy complex symbols on the data resource elements of as many
frames (Sionna ResourceGrids) as needed, sends them through the channel, estimates the channel and equalises
with LMMSE. It returns per symbol the unbiased estimate and the effective noise variance the equaliser
reports, which is what soft demapping and analog estimation need.

Estimators:
- perfect: the true channel, zero estimation error, and the true N0 (a genie receiver).
- ls: LS on the pilots, linearly interpolated (Sionna `LSChannelEstimator`), with N0 estimated.
- lmmse: LMMSE filtering across the frame (Sionna `LMMSEChannelEstimator`, frequency then time) with the
  frequency and time covariance matrices of the channel model (`channel_covariances`), N0 estimated.
The receivers that estimate never see the configured N0: `estimate_noise` measures it from the pilots
(second differences of the LS estimates across neighbouring subcarriers: a channel that is smooth in
frequency cancels, the noise does not, E|h[k-1] - 2h[k] + h[k+1]|^2 = 6 N0 for unit-energy pilots), pooled
over every frame of one call (a receiver's noise floor does not change between frames). `no_est` holds the
last estimate.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from link_models.channels import build_channel
from link_models.config import LinkConfig
from link_models.fading import ContinuousFading, FadingState
from meg_common.rng import import_sionna, sionna_rng

# The receiver never divides by a zero noise variance (ideal channel): it assumes at least this much.
RECEIVER_NOISE_FLOOR = 1e-10
COVARIANCE_FRAMES = 512  # channel draws that estimate the covariance matrices of a fading model
COVARIANCE_SEED = 20261129


def estimate_noise(y: torch.Tensor, pilots: torch.Tensor, pilot_symbols: tuple[int, ...]) -> torch.Tensor:
    """N0 from the pilots of every frame in `y` [frames, 1, 1, symbols, fft] (pilots [len(pilot_symbols), fft]).

    LS estimates h = y / p on each pilot OFDM symbol; their second difference across subcarriers has
    noise variance N0 (1/|p_(k-1)|^2 + 4/|p_k|^2 + 1/|p_(k+1)|^2), and a channel that varies slowly across
    subcarriers contributes almost nothing (its curvature: about 1e-4 of the channel power for TDL-A at
    100 ns and 30 kHz). Returns a real scalar tensor."""
    yp = y[:, 0, 0, list(pilot_symbols), :]                      # [frames, P, F]
    h = yp / pilots
    d = h[..., 2:] - 2 * h[..., 1:-1] + h[..., :-2]
    inv = 1.0 / pilots.abs().square()
    weight = inv[..., 2:] + 4 * inv[..., 1:-1] + inv[..., :-2]    # [P, F - 2]
    return d.abs().square().sum() / (weight.sum() * y.shape[0])


def channel_covariances(cfg: LinkConfig, channel: nn.Module, resource_grid, device: str
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(time [symbols, symbols], frequency [fft, fft]) covariance matrices of the channel model.

    Flat channels (ideal, awgn, rayleigh block fading) are constant over the frame: all-ones matrices.
    TDL/CDL: the sample covariance of COVARIANCE_FRAMES draws of the model (its own fixed-seed generator,
    so the link's random stream is untouched), the frequency matrix averaged over OFDM symbols and the time
    matrix over subcarriers, the time matrix normalised to unit mean diagonal (the power sits in frequency)."""
    s, f = cfg.num_ofdm_symbols, cfg.fft_size
    if cfg.channel in ("ideal", "awgn", "rayleigh"):
        return (torch.ones(s, s, dtype=torch.complex64, device=device),
                torch.ones(f, f, dtype=torch.complex64, device=device))
    generator = torch.Generator(device).manual_seed(COVARIANCE_SEED)
    r_t = torch.zeros(s, s, dtype=torch.complex128, device=device)
    r_f = torch.zeros(f, f, dtype=torch.complex128, device=device)
    chunk = 64
    x = torch.zeros(chunk, 1, 1, s, f, dtype=torch.complex64, device=device)
    zero = torch.zeros((), device=device)
    with sionna_rng(generator):
        for _ in range(COVARIANCE_FRAMES // chunk):
            _, h = channel(x, zero)
            h = h.reshape(chunk, s, f).to(torch.complex128)
            r_f += torch.einsum("bsf,bsg->fg", h, h.conj()) / s
            r_t += torch.einsum("bsf,btf->st", h, h.conj()) / f
    frames = COVARIANCE_FRAMES // chunk * chunk
    r_f, r_t = r_f / frames, r_t / frames
    r_t = r_t / r_t.diagonal().real.mean()
    return r_t.to(torch.complex64), r_f.to(torch.complex64)


def build_resource_grid(cfg: LinkConfig, device: str):
    """One frame: `num_ofdm_symbols` x `fft_size`, one stream, Kronecker pilots on `pilot_symbols`."""
    sn = import_sionna()
    pilots = list(cfg.pilot_symbols)
    return sn.ofdm.ResourceGrid(
        num_ofdm_symbols=cfg.num_ofdm_symbols, fft_size=cfg.fft_size,
        subcarrier_spacing=cfg.subcarrier_spacing_khz * 1e3, num_tx=1, num_streams_per_tx=1,
        cyclic_prefix_length=cfg.cp_length,
        pilot_pattern="kronecker" if pilots else "empty",
        pilot_ofdm_symbol_indices=pilots or None, device=device)


class OFDMTransport(nn.Module):
    """Complex symbols [N] -> frames -> channel -> estimation -> LMMSE -> (x_hat [N], no_eff [N], frames)."""

    def __init__(self, cfg: LinkConfig, device: str):
        super().__init__()
        sn = import_sionna()
        self.cfg = cfg
        self.device = device
        self.resource_grid = build_resource_grid(cfg, device)
        self.grid_mapper = sn.ofdm.ResourceGridMapper(self.resource_grid, device=device)
        self.channel = build_channel(cfg, self.resource_grid, device)
        self.continuous = ContinuousFading(cfg, self.resource_grid, device) \
            if cfg.fading == "continuous" else None
        """The time-correlated channel of a UE session (link_models.fading), used for streams sent with a
        FadingState; `channel` (block fading) otherwise."""
        self.snr_est: list[float] = []
        """Per stream of the last call: the receiver's own SNR estimate, mean |h_hat|^2 / N0_hat over its
        frames (what a UE would report for link adaptation)."""
        self.estimator = None
        if cfg.estimator == "ls":
            self.estimator = sn.ofdm.LSChannelEstimator(self.resource_grid, interpolation_type="lin", device=device)
        elif cfg.estimator == "lmmse":
            cov_time, cov_freq = channel_covariances(cfg, self.channel, self.resource_grid, device)
            self.estimator = sn.ofdm.LMMSEChannelEstimator(self.resource_grid, cov_time, cov_freq, order="f-t",
                                                           device=device)
        if self.estimator is not None:
            pilots = self.resource_grid.pilot_pattern.pilots.reshape(len(cfg.pilot_symbols), cfg.fft_size)
            self.register_buffer("pilots", pilots.to(device))
        self.no_est: float | None = None
        """The N0 the receiver used in the last call: estimated (ls, lmmse) or the true one (perfect)."""
        stream_management = sn.mimo.StreamManagement(np.array([[1]]), 1)
        self.equalizer = sn.ofdm.LMMSEEqualizer(self.resource_grid, stream_management, device=device)

    # --- frame bookkeeping ----------------------------------------------------------------------------------
    @property
    def data_symbols_per_frame(self) -> int:
        return int(self.resource_grid.num_data_symbols)

    @property
    def pilot_symbols_per_frame(self) -> int:
        return int(self.resource_grid.num_pilot_symbols)

    @property
    def samples_per_frame(self) -> int:
        """Time-domain samples of one frame, cyclic prefixes included."""
        return self.cfg.num_ofdm_symbols * (self.cfg.fft_size + self.cfg.cp_length)

    @property
    def frame_duration_s(self) -> float:
        return self.samples_per_frame / (self.cfg.fft_size * self.cfg.subcarrier_spacing_khz * 1e3)

    def frames_for(self, num_symbols: int) -> int:
        return max(1, math.ceil(num_symbols / self.data_symbols_per_frame))

    # --- the transport ---------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """x: [N] complex symbols; no: scalar N0 per RE. Returns x_hat [N], no_eff [N], number of frames.

        The channel draws from whatever Sionna generator is lent at the time (the link's, meg_common.rng)."""
        x_hat, no_eff, frames, _ = self._run([x], no)[0]
        return x_hat, no_eff, frames

    def send_many(self, xs: list[torch.Tensor], no: torch.Tensor, generators: list[torch.Generator],
                  fading: list[FadingState | None] | None = None) -> list[tuple[torch.Tensor, torch.Tensor, int, float]]:
        """Several symbol streams, each on frames of its own and drawing its channel from its own generator,
        received in one pass: per stream (x_hat [N_i], no_eff [N_i], frames, the N0 its receiver used).

        Equal, bit for bit, to `forward` of each stream alone with its generator lent to Sionna
        (tests/test_link_batched.py). Why the channel is still called once per stream: a Sionna block draws
        a whole tensor from one generator (`config.torch_rng`), real parts of every frame first and then the
        imaginary parts (TDL: Doppler, angles and phases of every frame before the noise), so one call over
        the concatenated frames cannot give each stream the draws it gets alone, whatever generator is lent.
        The channel estimators run per stream too, for its own N0 and because their results depend in the
        last bit on how many frames one call holds: Sionna's interpolators (LS and LMMSE) move the frame
        dimension innermost before multiplying complex tensors, and PyTorch multiplies complex numbers in
        its vector (FMA) loop or its scalar loop depending on that innermost extent (measured: TDL-A, LMMSE,
        1 frame alone against the same frame among 4: channel estimates 5.6e-7 apart). The equaliser keeps
        the frames outermost and runs once for all streams, each with its own N0.

        `fading[i]` (a FadingState, with `cfg.fading` "continuous"): stream i goes through its UE's
        time-correlated channel from the state's clock (not advanced here); None: block fading."""
        if len(xs) != len(generators):
            raise ValueError(f"{len(xs)} streams for {len(generators)} generators; give one generator per stream")
        return self._run(xs, no, generators, fading)

    def _run(self, xs: list[torch.Tensor], no: torch.Tensor, generators: list[torch.Generator] | None = None,
             fading: list[FadingState | None] | None = None) -> list[tuple[torch.Tensor, torch.Tensor, int, float]]:
        """`send_many` (generators: one per stream) or, without generators, one channel call for all streams
        drawing from the generator lent at the time (what `forward` does with its one stream)."""
        if not xs:
            return []
        nd = self.data_symbols_per_frame
        counts = [int(x.shape[0]) for x in xs]
        frames = [self.frames_for(n) for n in counts]
        ends = np.cumsum([0, *frames]).tolist()
        spans = list(pairwise(ends))  # each stream's frames
        x = torch.cat([torch.nn.functional.pad(x, (0, f * nd - n)) for x, f, n in zip(xs, frames, counts, strict=True)])
        x_grid = self.grid_mapper(x.reshape(ends[-1], 1, 1, nd))
        if generators is None:
            y, h = self.channel(x_grid, no)
        else:
            parts = []
            states = fading if fading is not None else [None] * len(generators)
            for (a, b), generator, state in zip(spans, generators, states, strict=True):
                with sionna_rng(generator):
                    if state is not None and self.continuous is not None:
                        parts.append(self.continuous(x_grid[a:b], no, state))
                    else:
                        parts.append(self.channel(x_grid[a:b], no))
            y, h = (torch.cat(t) for t in zip(*parts, strict=True)) if len(parts) > 1 else parts[0]
        if self.estimator is None:
            no_rx = torch.clamp(no, min=RECEIVER_NOISE_FLOOR)
            h_hat, err_var = h, torch.zeros((), dtype=no.dtype, device=no.device)
            no_ests = [no_rx] * len(xs)
        else:  # each stream's receiver estimates its own N0 and its channel from its own frames' pilots
            no_ests = [torch.clamp(estimate_noise(y[a:b], self.pilots, self.cfg.pilot_symbols).to(no.dtype),
                                   min=RECEIVER_NOISE_FLOOR) for a, b in spans]
            estimates = [self.estimator(y[a:b], e) for (a, b), e in zip(spans, no_ests, strict=True)]
            h_hat, err_var = (torch.cat(t) for t in zip(*estimates, strict=True)) if len(xs) > 1 else estimates[0]
            no_rx = no_ests[0] if len(xs) == 1 else torch.cat([e.expand(f) for e, f in zip(no_ests, frames, strict=True)])
        x_hat, no_eff = self.equalizer(y, h_hat, err_var, no_rx)
        # a contiguous copy per stream: a reduction over another layout (a lone estimate comes permuted) adds in
        # another order
        self.snr_est = [float(h_hat[a:b].clone(memory_format=torch.contiguous_format).abs().square().mean() / e)
                        for (a, b), e in zip(spans, no_ests, strict=True)]
        # contiguous, as a stream's own call gives them: a sum over a strided view adds in another order
        out = [(x_hat[a:b].reshape(-1)[:n].contiguous(), no_eff[a:b].reshape(-1)[:n].contiguous(), f, float(e))
               for (a, b), n, f, e in zip(spans, counts, frames, no_ests, strict=True)]
        self.no_est = out[-1][3]
        return out
