"""Channel factory: the frequency-domain channel of a resource grid, returning (y, h) per resource element.

ideal: y = x. awgn: y = x + n. rayleigh: one flat Rayleigh coefficient per frame (block fading).
tdl-a..e / cdl-a..e: 3GPP TR 38.901 models via Sionna, with delay spread, UE speed and carrier frequency
(CDL with single omnidirectional antennas at both ends). All have unit average energy over realisations, so
Es/N0 is the average SNR; the channel is not renormalised per frame, so frames fade. The channel is applied per
subcarrier (`OFDMChannel`), which assumes the cyclic prefix covers the delay spread; the CP is accounted in
the statistics and airtime.
"""

from __future__ import annotations

import torch
from torch import nn

from link_models.config import LinkConfig
from meg_common.rng import import_sionna


class FlatChannel(nn.Module):
    """y = h x + n with h = 1: the ideal (noiseless) and AWGN channels, with the same outputs as OFDMChannel."""

    def __init__(self, noisy: bool, device: str):
        super().__init__()
        self.awgn = import_sionna().channel.AWGN(device=device) if noisy else None

    def forward(self, x: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [batch, num_tx, num_tx_ant, num_ofdm_symbols, fft_size] -> h: [batch, 1, 1, 1, 1, symbols, fft]
        y = self.awgn(x, no) if self.awgn is not None else x
        h = torch.ones((x.shape[0], 1, 1, 1, 1, *x.shape[-2:]), dtype=x.dtype, device=x.device)
        return y, h


def build_channel(cfg: LinkConfig, resource_grid, device: str) -> nn.Module:
    """The channel block for `cfg.channel`: call (x, no) -> (y, h_freq)."""
    sn = import_sionna()
    if cfg.channel in ("ideal", "awgn"):
        return FlatChannel(noisy=cfg.channel == "awgn", device=device)
    if cfg.channel == "rayleigh":
        model = sn.channel.RayleighBlockFading(num_rx=1, num_rx_ant=1, num_tx=1, num_tx_ant=1, device=device)
    else:
        family, letter = cfg.channel.split("-")
        delay_spread = cfg.delay_spread_ns * 1e-9
        speed = float(cfg.speed_mps)
        if family == "tdl":
            model = sn.channel.tr38901.TDL(letter.upper(), delay_spread=delay_spread,
                                           carrier_frequency=cfg.carrier_frequency_hz,
                                           min_speed=speed, max_speed=speed, device=device)
        else:
            tr = sn.channel.tr38901
            ut, bs = (tr.AntennaArray(num_rows=1, num_cols=1, polarization="single", polarization_type="V",
                                      antenna_pattern="omni", carrier_frequency=cfg.carrier_frequency_hz,
                                      device=device) for _ in range(2))
            model = tr.CDL(letter.upper(), delay_spread=delay_spread, carrier_frequency=cfg.carrier_frequency_hz,
                           ut_array=ut, bs_array=bs, direction="downlink",
                           min_speed=speed, max_speed=speed, device=device)
    return sn.channel.OFDMChannel(model, resource_grid, normalize_channel=False, return_channel=True,
                                  device=device)
