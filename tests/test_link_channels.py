"""Channels: every model builds with unit average gain; TDL-A with LS is worse than perfect CSI, and both converge."""

import pytest
import torch

from link_models import DigitalLink, LinkConfig
from link_models.channels import build_channel
from link_models.ofdm import build_resource_grid
from meg_common.rng import make_generator, sionna_rng


@pytest.mark.parametrize("channel", ["rayleigh", "tdl-a", "tdl-b", "tdl-c", "tdl-d", "tdl-e",
                                     "cdl-a", "cdl-c", "cdl-e"])
def test_fading_channels_have_unit_average_gain(channel):
    cfg = LinkConfig(channel=channel, snr_db=10.0, speed_mps=3.0, delay_spread_ns=300.0)
    gen = make_generator(0, "cpu")
    with sionna_rng(gen):
        rg = build_resource_grid(cfg, "cpu")
        y, h = build_channel(cfg, rg, "cpu")(torch.ones(400, 1, 1, 14, 128, dtype=torch.complex64),
                                             torch.tensor(0.0))
    assert h.shape == (400, 1, 1, 1, 1, 14, 128)
    assert float(h.abs().square().mean()) == pytest.approx(1.0, rel=0.15)
    assert torch.allclose(y, h[:, :, :, 0, 0])  # no noise at no=0: y = h x with x = 1


def test_tdl_frequency_selectivity_grows_with_delay_spread():
    def spread(ns):
        cfg = LinkConfig(channel="tdl-a", snr_db=10.0, delay_spread_ns=ns)
        with sionna_rng(make_generator(1, "cpu")):
            _, h = build_channel(cfg, build_resource_grid(cfg, "cpu"), "cpu")(
                torch.ones(200, 1, 1, 14, 128, dtype=torch.complex64), torch.tensor(0.0))
        h = h[..., 0, :]  # first OFDM symbol, all subcarriers
        return float((h - h.mean(-1, keepdim=True)).abs().square().mean())

    assert spread(10.0) < 0.5 * spread(1000.0)


def ber(cfg, snr_db, min_errors=400, max_frames=1500):
    link = DigitalLink(cfg.with_snr(snr_db=snr_db), seed=5)
    errors = bits = frames = 0
    while errors < min_errors and frames < max_frames:
        b = link.random_bits(link.codewords_per_batch)
        p = link.transmit(b)
        errors += int((p.bits_hat != b).sum())
        bits += b.numel()
        frames += p.frames
    return errors / bits


def test_tdl_a_ls_is_worse_than_perfect_csi_and_both_converge():
    base = dict(modulation="qpsk", code="none", k=1024, channel="tdl-a", snr_db=0.0, batch=64)
    perfect = LinkConfig(**base, estimator="perfect")
    ls = LinkConfig(**base, estimator="ls")
    snrs = (5.0, 15.0, 30.0)
    b_perfect = [ber(perfect, s) for s in snrs]
    b_ls = [ber(ls, s) for s in snrs]
    for p, e in zip(b_perfect, b_ls, strict=True):
        assert e > 1.2 * p  # estimation noise costs SNR at every point
    gaps = [e - p for p, e in zip(b_perfect, b_ls, strict=True)]
    assert gaps[0] > gaps[1] > gaps[2]  # the absolute gap closes
    assert b_ls[-1] < 2e-3 and b_perfect[-1] < 1e-3  # both reach low error rates: no LS error floor
