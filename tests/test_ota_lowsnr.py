"""The low-SNR burst mode: header code, frames at -10 dB through the impaired simulated radio (+-50 ppm
CFO and SCO), analog NMSE against the link-level AnalogLink, drift over a long burst, SigMF replay to the
same decode, and the mode choice of `meg-phy run --radio`."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sdr_drivers.sim import SimRadio

IMPAIRED = {"dc_offset": 0.01 + 0.005j, "iq_gain_db": 0.5, "iq_phase_deg": 3.0}


def test_burst_header_round_trip_and_garbage():
    from link_models.ota.lowsnr import BURST_HEADER_BITS, BurstHeader

    h = BurstHeader("analog", "qpsk", 2, 2, 2048, 904, 0, 7, 3, 12, 201, scale=0.731)
    bits = h.to_bits()
    assert bits.size == BURST_HEADER_BITS
    back = BurstHeader.from_bits(bits)
    assert back == BurstHeader("analog", "qpsk", 2, 2, 2048, 904, 0, 7, 3, 12, 201,
                               scale=float(np.float32(0.731)))
    heads = back.frame_headers()
    assert [f.seq for f in heads] == list(range(3, 10)) and heads[-1].units == 904 and heads[0].units == 2048
    for i in (0, 17, 100, BURST_HEADER_BITS - 1):
        flipped = bits.copy()
        flipped[i] = 1 - flipped[i]
        assert BurstHeader.from_bits(flipped) is None
    rng = np.random.default_rng(0)
    assert all(BurstHeader.from_bits(rng.integers(0, 2, BURST_HEADER_BITS)) is None for _ in range(300))
    assert BurstHeader.from_bits(bits[:-1]) is None
    digital = BurstHeader("digital", "qpsk", 200, 1000, 1, 1, 21, 1, 0, 1, 7, repetitions=9)
    assert BurstHeader.from_bits(digital.to_bits()) == digital


@pytest.fixture(scope="module")
def codec():
    from link_models.ota.config import FrameConfig
    from link_models.ota.lowsnr import LowSnrCodec
    from link_models.ota.radio_link import shared_codec

    return LowSnrCodec.shared(shared_codec(FrameConfig(), 20))


def test_header_is_coded_below_007_bit_per_resource_element(codec):
    assert codec.header_bits_per_re <= 0.07
    assert codec.preamble.size == 2048


def _link(snr, seed, cfo=50.0, sco=-50.0, **kw):
    from link_models import LinkConfig
    from link_models.ota.radio_link import RadioLink

    radio = SimRadio(snr_db=snr, cfo_ppm=cfo, sco_ppm=sco, seed=seed, **IMPAIRED)
    return RadioLink(radio, LinkConfig(modulation="qpsk", k=512, n=1024, snr_db=snr), seed=seed, mode="low-snr", **kw)


def test_analog_frames_at_minus_10_db_within_1_db_of_the_link_level_analog_link():
    from link_models import AnalogLink, LinkConfig

    values = torch.from_numpy(np.random.default_rng(1).standard_normal(4 * 2048))
    nmse, lost = [], 0
    for seed, (cfo, sco) in enumerate([(50, 50), (-50, 50), (50, -50), (-50, -50)]):
        link = _link(-10.0, seed, cfo, sco)
        _, _, stats = link.send_values(values)
        t = link.last_transfer
        lost += stats.frames_lost
        assert t.noise_triggers == 0 and t.header_rejected == 0
        nmse.append(stats.nmse)
        assert all(abs(f.cfo_hz - link.radio.cfo_hz) < 600 for f in t.decoded.values())
    assert lost == 0
    ref = []
    for seed in range(4):
        _, _, stats = AnalogLink(LinkConfig(snr_db=-10.0), seed=seed).send_values(values)
        ref.append(stats.nmse)
    gap = 10 * math.log10(np.mean(nmse) / np.mean(ref))
    assert abs(gap) < 1.0, (np.mean(nmse), np.mean(ref))


def test_digital_frames_decode_in_the_low_snr_mode():
    link = _link(3.0, 5)
    payload = bytes(range(256)) * 4
    received, stats = link.send_bytes(payload)
    assert received == payload and stats.bler == 0


def test_repetitions_follow_the_snr():
    from link_models.ota.lowsnr import repetitions_for

    assert repetitions_for("qpsk", 0.2, -10.0) == 7            # needs about -2 dB: 10^0.8 = 6.3 copies
    assert repetitions_for("qpsk", 0.2, 5.0) == repetitions_for("qpsk", 0.5, None) == 1
    assert repetitions_for("qpsk", 0.5, -30.0) == 16


def test_digital_control_message_at_minus_10_db_with_repetitions():
    """A short digital message (a hop's side information, rate-1/5 LDPC) at -10 dB: its coded symbols
    are sent 7 times and the copies' LLRs added; one try, no retransmission."""
    from link_models import LinkConfig
    from link_models.ota.radio_link import RadioLink

    delivered = 0
    for seed in range(4):
        radio = SimRadio(snr_db=-10.0, cfo_ppm=50 * (-1) ** seed, sco_ppm=50, seed=seed, **IMPAIRED)
        link = RadioLink(radio, LinkConfig(modulation="qpsk", k=200, n=1000, snr_db=-10.0, max_transmissions=1),
                         seed=seed, mode="low-snr")
        payload = bytes(np.random.default_rng(seed).integers(0, 256, 20, dtype=np.uint8))
        received, _ = link.send_bytes(payload)
        delivered += received == payload
        assert link.last_transfer.sent[0].repetitions == 7
    assert delivered == 4


def test_drift_is_tracked_over_a_long_burst():
    """40 analog frames (~90 000 samples): at 60 ppm the timing drifts by ~5 samples over the burst, so the
    later frames need their FFT windows moved; every frame still decodes near the SNR."""
    values = torch.from_numpy(np.random.default_rng(2).standard_normal(40 * 2048))
    link = _link(12.0, 3, cfo=-60, sco=60)
    est, _, stats = link.send_values(values)
    assert stats.frames_lost == 0 and len(link.last_transfer.captures) == 1
    err = (est - values).square().reshape(40, -1).mean(1) / values.square().mean()
    assert float(err.max()) < 10 ** (-10 / 10), err                    # every frame within 2 dB of 1/SNR


def test_sigmf_recording_replays_to_the_same_decode(tmp_path):
    from link_models.ota.receiver import FrameReceiver
    from sdr_drivers.sigmf_io import RecordingRadio, read_recording

    values = torch.from_numpy(np.random.default_rng(4).standard_normal(3 * 2048))
    radio = SimRadio(snr_db=-8.0, cfo_ppm=40, sco_ppm=-40, seed=9, **IMPAIRED)
    recorder = RecordingRadio(radio, tmp_path)
    from link_models import LinkConfig
    from link_models.ota.radio_link import RadioLink

    with recorder:
        link = RadioLink(radio, LinkConfig(snr_db=-8.0), seed=9, recorder=recorder, mode="low-snr")
        link.send_values(values)
    live = sorted(link.last_transfer.decoded.values(), key=lambda f: f.header.seq)
    assert len(live) == 3
    capture = read_recording(tmp_path / "rx").samples
    replay = FrameReceiver(link.codec, modes=("legacy", "low-snr")).receive(capture)
    again = sorted(replay.frames, key=lambda f: f.header.seq)
    assert [f.header for f in again] == [f.header for f in live]
    for a, b in zip(again, live, strict=True):
        assert a.cfo_hz == b.cfo_hz and a.start == b.start
        np.testing.assert_array_equal(a.values, b.values)


def test_run_radio_factory_uses_the_low_snr_mode_below_its_threshold():
    from flowgraphs.radio_link import radio_link_factory
    from link_models import LinkConfig

    def spec(snr):
        return SimpleNamespace(link_config=lambda bler_table=None: LinkConfig(modulation="qpsk", k=512, n=1024,
                                                                             snr_db=snr),
                               channel="awgn", snr_db=snr)

    factory = radio_link_factory("sim")
    assert factory(spec(-10.0), 0).mode == "low-snr"
    assert factory(spec(1.9), 0).mode == "low-snr"
    assert factory(spec(5.0), 0).mode == "legacy"
    assert radio_link_factory("sim", low_snr_below_db=None)(spec(-10.0), 0).mode == "legacy"
    assert radio_link_factory("sim", low_snr_below_db=-20)(spec(-10.0), 0).mode == "legacy"


def test_drift_line_drops_a_block_that_peaked_on_a_sidelobe():
    """A block whose pilot sum peaked on a sidelobe of the delay search (4.7 samples off) must not tilt the
    drift line; drift within the limit is kept as measured."""
    from link_models.ota.lowsnr import _line

    centres = 8.0 + 16.0 * np.arange(11)
    true = -0.1 - 0.004 * centres
    noisy = true + np.random.default_rng(0).normal(0, 0.15, centres.size)
    weights = np.ones(centres.size)
    with_outlier = noisy.copy()
    with_outlier[-1] = 4.7
    clean = _line(centres, noisy, weights, 175)
    fitted = _line(centres, with_outlier, weights, 175)
    assert np.max(np.abs(fitted - (-0.1 - 0.004 * np.arange(175)))) < 0.3
    without_last = _line(centres[:-1], noisy[:-1], weights[:-1], 175)
    np.testing.assert_allclose(fitted, without_last)
    assert np.max(np.abs(clean - fitted)) < 0.3
    # a real drift of 60 ppm (0.0048 samples per 80-sample symbol) is not taken for outliers
    steep = 0.0048 * centres
    np.testing.assert_allclose(_line(centres, steep, weights, 175), 0.0048 * np.arange(175), atol=1e-9)


@pytest.mark.parametrize("seed", [389, 1085])
def test_headers_lost_to_a_tilted_drift_line_now_decode(seed):
    """The two header failures of the -10 dB validation runs (scripts/validate_ota.py, one-frame bursts,
    +-50 ppm: seed 389 of 0..399 and 1085 of 1000..2199) were a sidelobe drift estimate in the header's last
    block tilting the timing line by about a sample (the equalised header 3 dB below the others). The
    same bursts decode now."""
    from link_models.ota.config import FrameConfig
    from link_models.ota.radio_link import shared_codec

    run = _validate_ota().LowSnrRun(shared_codec(FrameConfig(), 20), 1, 50.0)
    record = run.measure(-10.0, seed)
    assert record["detected"] and record["header"] and record["delivered"] == 1, record
    assert abs(record["timing_error_samples"]) < 1 and abs(record["cfo_error_hz"]) < 300
    assert record["sq_error"] < 2 * record["sq_error_link_level"]


def _validate_ota():
    """scripts/validate_ota.py as a module (its per-burst measurement, with the radio's ground truth)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "validate_ota.py"
    spec = importlib.util.spec_from_file_location("validate_ota", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
