"""Time-correlated fading (link_models.fading): Jakes/Clarke correlation, continuity over a UE's session."""

import math

import pytest
import torch
from scipy.special import j0

from link_models.config import LinkConfig
from link_models.digital import DigitalLink
from link_models.fading import ContinuousFading, FadingState, doppler_hz
from link_models.ofdm import build_resource_grid
from link_models.state import LinkState

GRID = dict(fft_size=12, cp_length=1, k=512, n=1024, snr_db=10.0)


def fading(channel: str, speed: float) -> tuple[LinkConfig, ContinuousFading]:
    cfg = LinkConfig(channel=channel, speed_mps=speed, **GRID)
    return cfg, ContinuousFading(cfg, build_resource_grid(cfg, "cpu"), "cpu")


def slot_correlation(model: ContinuousFading, sessions: int, lag: int = 1) -> complex:
    """E[h(t + lag slots) h*(t)] / E|h|^2 of the first tap's frequency response (subcarrier 0, symbol 0),
    over `sessions` independent UEs."""
    x = torch.zeros(lag + 1, 1, 1, 14, 12, dtype=torch.complex64)
    h = torch.stack([model(x, torch.tensor(0.0), FadingState(seed=s, clock=3))[1][:, 0, 0, 0, 0, 0, 0]
                     for s in range(sessions)])
    return complex((h[:, lag] * h[:, 0].conj()).mean() / h[:, 0].abs().square().mean())


@pytest.mark.parametrize("speed, lag", [(3 / 3.6, 1), (30.0, 1), (30.0, 2)])
def test_tdl_slot_correlation_is_jakes(speed, lag):
    """TDL-A: the correlation of the channel coefficient `lag` slots apart is J0(2 pi f_D lag T_slot) (Clarke:
    0.9998 at 3 km/h; 0.71 and 0.10 at 30 m/s and 3.5 GHz, f_D = 350 Hz), over 600 UEs, within three
    standard errors of a sample correlation, 3 (1 - rho^2) / sqrt(600), plus 0.005."""
    _, model = fading("tdl-a", speed)
    cfg = LinkConfig(channel="tdl-a", speed_mps=speed, **GRID)
    sessions = 600
    rho = slot_correlation(model, sessions, lag)
    expected = j0(2 * math.pi * doppler_hz(cfg) * lag * model.frame_s)
    tol = 3 * (1 - expected ** 2) / math.sqrt(sessions) + 0.005
    assert abs(rho.real - expected) <= tol, (rho, expected, tol)
    assert abs(rho.imag) <= tol


def test_cdl_slot_correlation_follows_the_doppler():
    """CDL-A with a horizontal velocity: close to Clarke's J0 (its clusters come from the table, not a uniform
    ring, so within 0.1) at 30 m/s, and continuous (> 0.999) at 3 km/h."""
    _, model = fading("cdl-a", 30.0)
    cfg = LinkConfig(channel="cdl-a", speed_mps=30.0, **GRID)
    assert abs(slot_correlation(model, 300).real - j0(2 * math.pi * doppler_hz(cfg) * model.frame_s)) < 0.1
    _, slow = fading("cdl-a", 3 / 3.6)
    assert slot_correlation(slow, 100).real > 0.999


@pytest.mark.parametrize("channel", ["tdl-a", "cdl-a"])
def test_the_channel_goes_on_where_the_clock_stands(channel):
    """Frame 1 from clock 5 is frame 0 from clock 6: the channel is one function of the session's time."""
    _, model = fading(channel, 3.0)
    x = torch.zeros(2, 1, 1, 14, 12, dtype=torch.complex64)
    a = model(x, torch.tensor(0.0), FadingState(seed=9, clock=5))[1][1]
    b = model(x[:1], torch.tensor(0.0), FadingState(seed=9, clock=6))[1][0]
    assert torch.allclose(a, b, atol=1e-5)
    power = torch.stack([model(x[:1], torch.tensor(0.0), FadingState(seed=s))[1].abs().square().mean()
                         for s in range(200)]).mean()
    assert float(power) == pytest.approx(1.0, abs=0.15)  # unit average energy, as the block-fading models


def test_a_session_moves_the_clock_by_what_went_on_air_and_the_waits():
    cfg = LinkConfig(channel="tdl-a", estimator="lmmse", mcs=5, max_transmissions=2, fading="continuous",
                     speed_mps=0.833, **{k: v for k, v in GRID.items() if k != "snr_db"}, snr_db=15.0)
    link = DigitalLink(cfg, seed=0)
    state = LinkState(seed=2)
    _, first = link.send_bytes(bytes(100), state=state)
    after_one = state.clock
    assert after_one >= first.frames and first.latency_slots <= after_one
    _, second = link.send_bytes(bytes(100), state=state)
    assert state.clock >= after_one + second.frames  # the second payload starts where the first ended


def test_block_fading_stays_the_default_and_flat_channels_ignore_continuous():
    assert LinkConfig(channel="tdl-a", **GRID).fading == "block"
    assert LinkConfig(channel="awgn", fading="continuous", **GRID).fading == "block"
