"""The OTA frame: header coding, preamble estimators against closed forms, Sionna-equivalence of the
single-stream LMMSE, drift tracking, multi-frame reassembly and the receiver under every impairment."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from link_models.ota.config import FrameConfig
from link_models.ota.header import HEADER_BITS, FrameHeader
from link_models.ota.preamble import (
    fractional_cfo,
    integer_cfo_bins,
    make_preamble,
    noise_false_alarm_probability,
    schmidl_cox_metric,
)
from meg_common.errors import InputError


@pytest.fixture(scope="module")
def codec():
    from link_models.ota.radio_link import shared_codec

    return shared_codec(FrameConfig(), 20)          # one codec per process, shared with the other OTA tests


@pytest.fixture(scope="module")
def builder(codec):
    from link_models.ota.frame import FrameBuilder

    return FrameBuilder(codec, "qpsk", "ldpc", 1024, 2048)


@pytest.fixture(scope="module")
def receiver(codec):
    from link_models.ota.receiver import FrameReceiver

    return FrameReceiver(codec)


def awgn(x, snr_db, rng, occupied=52 / 64):
    power = np.mean(np.abs(x[np.abs(x) > 0]) ** 2)
    no = power / occupied * 10 ** (-snr_db / 10)
    return x + np.sqrt(no / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))


# --- header -------------------------------------------------------------------------------------------------
HEADER = FrameHeader("digital", "16qam", "ldpc", 1024, 2048, 2, 200, 3, 9, 77)


def test_header_round_trip_and_every_single_bit_error_is_caught():
    bits = HEADER.to_bits()
    assert bits.size == HEADER_BITS
    assert FrameHeader.from_bits(bits) == HEADER
    for i in range(HEADER_BITS):
        flipped = bits.copy()
        flipped[i] = 1 - flipped[i]
        assert FrameHeader.from_bits(flipped) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=0, max_size=2 * HEADER_BITS))
def test_header_parser_never_crashes_on_random_bits(bits):
    parsed = FrameHeader.from_bits(np.asarray(bits, np.float32))
    assert parsed is None or parsed.is_consistent()


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(0, HEADER_BITS - 1), min_size=1, max_size=3))
def test_header_crc_rejects_up_to_three_flipped_bits(positions):
    bits = HEADER.to_bits()
    bits[list(positions)] = 1 - bits[list(positions)]
    assert FrameHeader.from_bits(bits) is None   # CRC-16/CCITT: Hamming distance 4 at this length


# --- preamble estimators against closed forms ---------------------------------------------------------------
def test_detection_metric_on_noise_follows_the_beta_tail():
    """For complex white noise M = |P|^2/(E1 E2) over W samples has P(M > t) = (1 - t)^(W - 1)."""
    rng = np.random.default_rng(0)
    window, period = 96, 32
    noise = rng.standard_normal(400_000) + 1j * rng.standard_normal(400_000)
    metric, _ = schmidl_cox_metric(noise, period, window)
    independent = metric[:: window + period]           # non-overlapping windows are independent
    for t in (0.01, 0.03):
        expected = noise_false_alarm_probability(t, window - 1)   # centring the windows costs one degree
        observed = np.mean(independent > t)
        sigma = math.sqrt(expected * (1 - expected) / independent.size)
        assert abs(observed - expected) < 5 * sigma + 1e-3, (t, observed, expected)


@pytest.mark.parametrize("cfo_hz", [-96e3, -40e3, -12e3, 0.0, 15e3, 47e3, 96e3, 140e3])
def test_fractional_plus_integer_cfo_recovers_the_offset(cfo_hz):
    cfg = FrameConfig()
    pre = make_preamble(cfg)
    fs, n = cfg.sample_rate, np.arange(pre.samples.size)
    rx = pre.samples * np.exp(2j * np.pi * cfo_hz / fs * n + 0.7j)
    rx = awgn(rx, 10, np.random.default_rng(1))
    window = (cfg.preamble_repeats - 1) * cfg.preamble_period
    _, corr = schmidl_cox_metric(rx, cfg.preamble_period, window)
    frac = fractional_cfo(corr[cfg.cp_length // 2], cfg.preamble_period, fs)
    assert abs(frac) <= cfg.subcarrier_spacing + 1
    probe = cfg.sync_length + cfg.cp_length // 2
    seg = rx[probe:probe + cfg.fft_size] * np.exp(-2j * np.pi * frac / fs * np.arange(probe, probe + cfg.fft_size))
    shift, quality = integer_cfo_bins(np.fft.fft(seg, norm="ortho"), pre.train_freq, cfg.used_bins, 11)
    estimate = frac + shift * cfg.subcarrier_spacing
    assert abs(estimate - cfo_hz) < 3e3, (estimate, cfo_hz)
    assert quality > 0.5


def test_sync_preamble_has_period_n_over_2_and_no_dc():
    cfg = FrameConfig()
    pre = make_preamble(cfg)
    body = pre.sync[cfg.cp_length:]
    assert np.allclose(body[:-cfg.preamble_period], body[cfg.preamble_period:], atol=1e-6)
    assert abs(np.sum(body)) < 1e-4 and abs(np.sum(pre.train_body)) < 1e-4


# --- OFDM grid ------------------------------------------------------------------------------------------------
def test_single_stream_lmmse_matches_sionnas_lmmse_equalizer():
    from link_models.ota.ofdm import OTAGrid
    from meg_common.rng import import_sionna

    sn = import_sionna()
    grid = OTAGrid(FrameConfig(), 8)
    rg = grid.resource_grid
    gen = torch.Generator().manual_seed(0)
    shape = (3, 1, 1, 8, 64)
    y = torch.complex(torch.randn(shape, generator=gen), torch.randn(shape, generator=gen))
    h = torch.complex(torch.randn(3, 1, 1, 1, 1, 8, 52, generator=gen), torch.randn(3, 1, 1, 1, 1, 8, 52, generator=gen))
    err = torch.rand(3, 1, 1, 1, 1, 8, 52, generator=gen) * 0.1
    no = torch.tensor([0.1, 0.2, 0.05])
    reference = sn.ofdm.LMMSEEqualizer(rg, sn.mimo.StreamManagement(np.array([[1]]), 1))
    x_ref, no_ref = reference(y, h, err, no)
    x_ours, no_ours = grid.equalizer(y, h, err, no)
    assert torch.allclose(x_ours, x_ref, atol=1e-4, rtol=1e-4)
    assert torch.allclose(no_ours, no_ref, atol=1e-4, rtol=1e-4)


def test_grid_round_trip_and_drift_tracking_removes_timing_drift_and_phase_ramp():
    from link_models.ota.ofdm import OTAGrid

    cfg = FrameConfig()
    grid = OTAGrid(cfg, 40)
    gen = torch.Generator().manual_seed(1)
    x = torch.polar(torch.ones(2, grid.num_data), torch.randint(0, 4, (2, grid.num_data), generator=gen) * math.pi / 2
                    + math.pi / 4)
    s = grid.modulate(x)
    pad = torch.zeros(2, cfg.timing_backoff, dtype=s.dtype)
    clean = torch.cat([pad, s], 1)[:, :grid.num_samples]
    out = grid.demodulate(clean, torch.full((2,), 1e-6))
    assert torch.allclose(out["x_hat"], x, atol=1e-3)
    # a residual CFO of 800 Hz and a sample clock 80 ppm fast (band-limited, via the radio's resampler)
    from sdr_drivers.impairments import frequency_shift, resample

    drifted = []
    for row in clean.numpy():
        r = frequency_shift(row, 800.0, cfg.sample_rate, phase=1.0)
        drifted.append(resample(np.concatenate([r, np.zeros(64)]), 1 / (1 + 80e-6), num=row.size))
    out = grid.demodulate(torch.as_tensor(np.stack(drifted), dtype=torch.complex64), torch.full((2,), 1e-5))
    err = (out["x_hat"] - x).abs().square().mean().item()
    assert err < 1e-2, err
    steps = torch.diff(out["phase"][0])
    expected = 2 * math.pi * 800.0 * cfg.symbol_length / cfg.sample_rate
    assert abs(steps.mean().item() - expected) < 0.05 * expected


# --- frames and the receiver ----------------------------------------------------------------------------------
def test_multi_frame_message_reassembles_and_reports_the_missing_frame(builder, receiver):
    from link_models.ota.reassembly import reassemble

    payload = bytes(np.random.default_rng(2).integers(0, 256, 700, dtype=np.uint8))
    frames = builder.digital_frames(payload, msg_id=9)
    assert [f.header.seq for f in frames] == [0, 1, 2] and all(f.header.total == 3 for f in frames)
    rng = np.random.default_rng(3)
    full = awgn(np.concatenate([np.zeros(300), builder.burst(frames)]), 15, rng)
    message = reassemble(receiver.receive(full).frames, msg_id=9)
    assert message.complete and message.payload == payload
    without = awgn(np.concatenate([np.zeros(300), builder.burst([frames[0], frames[2]])]), 15, rng)
    message = reassemble(receiver.receive(without).frames, msg_id=9)
    assert message.missing == [1] and message.received == [0, 2] and message.payload is None


def test_analog_frames_return_unbiased_values_with_calibrated_variance(codec, receiver):
    from link_models.ota.frame import FrameBuilder
    from link_models.ota.reassembly import reassemble

    values = np.random.default_rng(4).standard_normal(5000) * 3 + 1
    frames = FrameBuilder(codec, "qpsk").analog_frames(values, msg_id=1)
    rx = awgn(np.concatenate([np.zeros(200), FrameBuilder(codec).burst(frames)]), 10, np.random.default_rng(5))
    message = reassemble(receiver.receive(rx).frames, msg_id=1)
    assert message.complete and message.values.size == values.size
    err = message.values - values
    assert abs(err.mean()) < 0.05
    ratio = np.mean(err ** 2) / np.mean(message.value_var)
    assert 0.8 < ratio < 1.25, ratio


def test_builder_rejects_bad_input(builder, codec):
    from link_models.ota.frame import FrameBuilder

    with pytest.raises(InputError):
        builder.digital_frames(b"")
    with pytest.raises(InputError):
        FrameBuilder(codec, "qpsk").analog_frames(np.array([1.0, np.nan]))
    with pytest.raises(InputError):
        FrameBuilder(codec, "8psk")
    with pytest.raises(InputError):
        FrameConfig(fft_size=10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), length=st.integers(0, 6000), kind=st.sampled_from(["noise", "mutated"]))
def test_receiver_never_crashes_on_random_or_mutated_buffers(receiver, builder, seed, length, kind):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        buffer = (rng.standard_normal(length) + 1j * rng.standard_normal(length)) * rng.uniform(0, 10)
    else:
        frame = builder.digital_frames(b"fuzz" * 10, msg_id=5)[0].samples.copy()
        cut = rng.integers(0, frame.size)
        frame[cut:cut + rng.integers(1, 2000)] = rng.standard_normal() * 3        # overwrite a piece
        frame = frame[: rng.integers(frame.size // 2, frame.size + 1)]          # maybe truncated
        buffer = np.concatenate([np.zeros(rng.integers(0, 500)), frame, np.zeros(rng.integers(0, 500))])
    result = receiver.receive(buffer.astype(np.complex64))
    for f in result.frames:
        assert f.header.is_consistent()
        assert f.crc_ok in (True, False)
    assert result.detections >= len(result.frames)
