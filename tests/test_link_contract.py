"""The one link contract: every link is a `link_models.Link` (round trips, reseed, the sim_ber call), the
unit-power analog mapping, the missing-frame rule, and the radio capability that picks cyclic transmission."""

import math

import numpy as np
import pytest
import torch

from link_models import AnalogLink, DigitalLink, Link, LinkConfig
from link_models.mapping import from_symbols, nothing_received, power_scale, to_symbols
from meg_common.errors import InputError
from sdr_drivers.sim import SimRadio

PAYLOAD = bytes(range(256)) * 2
VALUES = torch.randn(501, generator=torch.Generator().manual_seed(0)) * 2.5 + 1  # latent-like: OFDM of a ramp clips


def radio_link(snr_db=30.0, seed=0, radio_seed=None, **radio_settings):
    from link_models.ota.radio_link import RadioLink

    radio = SimRadio(snr_db=snr_db, cfo_ppm=10, sco_ppm=10, seed=seed if radio_seed is None else radio_seed,
                     **radio_settings)
    return RadioLink(radio, LinkConfig(modulation="qpsk", k=512, n=1024, snr_db=snr_db), seed=seed)


def links():
    ideal = {"channel": "ideal", "estimator": "perfect"}
    return {"digital": DigitalLink(LinkConfig(k=256, n=512, **ideal), seed=0),
            "analog": AnalogLink(LinkConfig(**ideal), seed=0),
            "radio": radio_link()}


@pytest.fixture(scope="module")
def every_link():
    return links()


def test_every_link_is_a_link_and_round_trips_what_it_carries(every_link):
    for name, link in every_link.items():
        assert isinstance(link, Link), name
        if "digital" in link.schemes:
            received, stats = link.send_bytes(PAYLOAD)
            assert received == PAYLOAD and stats.bit_errors == 0 and stats.frames_lost == 0, name
        if "analog" in link.schemes:
            est, noise_var, stats = link.send_values(VALUES)
            assert est.shape == noise_var.shape == VALUES.shape and est.dtype == VALUES.dtype, name
            assert torch.allclose(est, VALUES, atol=0.05 * float(VALUES.abs().max())), name
            assert stats.values == VALUES.numel() and stats.frames_lost == 0, name
    assert every_link["radio"].schemes == ("digital", "analog")


def test_a_link_refuses_what_it_does_not_carry(every_link):
    with pytest.raises(InputError, match="AnalogLink"):
        every_link["digital"].send_values(VALUES)
    with pytest.raises(InputError, match="DigitalLink"):
        every_link["analog"].send_bytes(PAYLOAD)


def test_forward_is_the_sim_ber_call_on_every_link(every_link):
    for name in ("digital", "radio"):
        bits, decoded = every_link[name](3)
        assert bits.shape == decoded.shape == (3, every_link[name].cfg.k) and torch.equal(bits, decoded), name
    values, est = every_link["analog"](100)
    assert values.shape == est.shape == (100,) and torch.allclose(values, est, atol=1e-5)


def _noisy(link, call):
    link.reseed(11)
    first = call(link)
    call(link)  # the stream moves on ...
    link.reseed(11)
    again = call(link)  # ... and reseed restarts it
    link.reseed(12)
    other = call(link)
    return first, again, other


def test_reseed_restarts_every_simulated_link():
    digital = DigitalLink(LinkConfig(code="none", k=2000, channel="awgn", snr_db=3.0), seed=0)
    first, again, other = _noisy(digital, lambda link: link.send_bytes(PAYLOAD)[0])
    assert first == again and first != other
    analog = AnalogLink(LinkConfig(channel="tdl-a", estimator="ls", snr_db=10.0), seed=0)
    first, again, other = _noisy(analog, lambda link: link.send_values(VALUES)[0])
    assert torch.equal(first, again) and not torch.equal(first, other)
    with pytest.raises(InputError, match="seed"):
        analog.reseed(-1)


def test_a_reseeded_radio_link_is_a_fresh_one():
    link = radio_link(snr_db=8.0, seed=0)
    first, again, other = _noisy(link, lambda link: link.send_values(VALUES)[0])
    assert torch.equal(first, again) and not torch.equal(first, other)
    link.reseed(12)
    assert torch.equal(link.send_values(VALUES)[0], radio_link(snr_db=8.0, seed=12).send_values(VALUES)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num", [1, 2, 7, 1000])
def test_mapping_round_trip_and_unit_power_on_air(dtype, num):
    values = (torch.randn(num, generator=torch.Generator().manual_seed(num), dtype=dtype) * 4 + 3)
    scale = power_scale(values)
    assert scale.dtype == torch.float32 and float(scale) == pytest.approx(float(values.pow(2).mean().sqrt()), rel=1e-6)
    symbols = to_symbols(values, scale.to(dtype))
    assert symbols.shape == (math.ceil(num / 2),)
    energy = symbols.abs().square().sum() * 2 / num    # mean energy per value pair: 1 (the odd pad adds 0)
    assert float(energy) == pytest.approx(1.0, rel=1e-5)
    back, var = from_symbols(symbols, scale.to(dtype), num, torch.full(symbols.shape, 0.5))
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14
    assert back.dtype == dtype and torch.allclose(back, values, rtol=tolerance, atol=tolerance * float(scale))
    assert torch.allclose(var, torch.full((num,), 0.5 * float(scale) ** 2, dtype=dtype), rtol=1e-6)


def test_mapping_handles_zeros_and_one_scale_per_frame():
    zeros = torch.zeros(6)
    assert float(power_scale(zeros)) == 1.0
    assert torch.equal(from_symbols(to_symbols(zeros, power_scale(zeros)), 1.0, 6)[0], zeros)
    frames = torch.stack([torch.full((4,), 2.0), torch.full((4,), -8.0)])
    scales = torch.tensor([[2.0], [8.0]])
    back, _ = from_symbols(to_symbols(frames, scales), scales, 3)
    assert torch.allclose(back, frames[:, :3], rtol=1e-6)


def test_a_missing_analog_frame_comes_back_as_nothing_received():
    est, var = nothing_received(3, 2.0, torch.float64)
    assert torch.equal(est, torch.zeros(3, dtype=torch.float64)) and torch.equal(var, torch.full((3,), 4.0,
                                                                                                   dtype=torch.float64))
    link = radio_link(snr_db=-15.0, seed=1)    # far below the header's threshold: no frame is found
    values = torch.randn(3000, generator=torch.Generator().manual_seed(0)) * 2
    est, noise_var, stats = link.send_values(values)
    scale2 = float(power_scale(values)) ** 2
    assert stats.frames_lost == stats.frames == 2
    assert torch.equal(est, torch.zeros_like(values))
    assert torch.allclose(noise_var, torch.full_like(values, scale2))


def test_reassembly_fills_a_missing_analog_frame_the_same_way():
    from link_models.ota import FrameBuilder, FrameReceiver, reassemble, shared_codec
    from link_models.ota.config import FrameConfig

    codec = shared_codec(FrameConfig(), 20)
    builder = FrameBuilder(codec, "qpsk")
    values = np.random.default_rng(0).standard_normal(3 * codec.cfg.values_per_frame) * 3
    frames = builder.analog_frames(values, msg_id=5)
    message = reassemble(FrameReceiver(codec).receive(builder.burst([frames[0], frames[2]])).frames, msg_id=5)
    per = codec.cfg.values_per_frame
    assert message.missing == [1]
    assert np.all(message.values[per:2 * per] == 0)
    assert np.allclose(message.value_var[per:2 * per], frames[0].header.scale ** 2)
    received = np.r_[message.values[:per], message.values[2 * per:]]
    sent = np.r_[values[:per], values[2 * per:]]
    assert np.mean((received - sent) ** 2) < 0.01 * np.mean(sent ** 2)


def test_cyclic_transmission_is_a_capability_of_the_radio(tmp_path):
    from link_models.ota.radio_link import RadioLink
    from sdr_drivers.base import Radio
    from sdr_drivers.pluto import PlutoRadio
    from sdr_drivers.sigmf_io import RecordingRadio, SigMFSink

    assert Radio.cyclic_tx is False and PlutoRadio.cyclic_tx is True and SimRadio().cyclic_tx is False
    assert SigMFSink.cyclic_tx is False

    class CyclicSimRadio(SimRadio):
        """The simulated pair plays a cyclic buffer into the whole capture, like a Pluto."""

        cyclic_tx = True

    cyclic = CyclicSimRadio(snr_db=25.0, seed=3)
    assert RecordingRadio(cyclic, tmp_path).cyclic_tx is True and RecordingRadio(SimRadio(), tmp_path).cyclic_tx is False
    link = RadioLink(cyclic, LinkConfig(k=512, n=1024, snr_db=25.0), seed=3)
    assert link.cyclic and not radio_link().cyclic
    received, stats = link.send_bytes(PAYLOAD)
    assert received == PAYLOAD and stats.frames_lost == 0
