"""The OFDM part shared by the digital and the analog link: symbols in, equalised symbols out.

`OFDMTransport` places a stream of unit-energy complex symbols on the data resource elements of as many
frames (Sionna ResourceGrids) as needed, sends them through the channel, estimates the channel (perfect or
LS from the pilots, linearly interpolated) and equalises with LMMSE. It returns per symbol the unbiased
estimate and the effective noise variance the equaliser reports, which is what soft demapping and analog
estimation need.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from link_models.channels import build_channel
from link_models.config import LinkConfig
from meg_common.rng import import_sionna

# The receiver never divides by a zero noise variance (ideal channel): it assumes at least this much.
RECEIVER_NOISE_FLOOR = 1e-10


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
        self.estimator = (sn.ofdm.LSChannelEstimator(self.resource_grid, interpolation_type="lin", device=device)
                          if cfg.estimator == "ls" else None)
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
        """x: [N] complex symbols; no: scalar N0 per RE. Returns x_hat [N], no_eff [N], number of frames."""
        num = x.shape[0]
        frames = self.frames_for(num)
        nd = self.data_symbols_per_frame
        x = torch.nn.functional.pad(x, (0, frames * nd - num)).reshape(frames, 1, 1, nd)
        x_grid = self.grid_mapper(x)
        y, h = self.channel(x_grid, no)
        no_rx = torch.clamp(no, min=RECEIVER_NOISE_FLOOR)
        if self.estimator is None:
            h_hat, err_var = h, torch.zeros((), dtype=no.dtype, device=no.device)
        else:
            h_hat, err_var = self.estimator(y, no_rx)
        x_hat, no_eff = self.equalizer(y, h_hat, err_var, no_rx)
        return x_hat.reshape(-1)[:num], no_eff.reshape(-1)[:num], frames
