"""On a real Pluto (marked 'hardware'; run with `pytest -m hardware --uri ip:192.168.2.1 [--rx-uri ...]`).

Lab setup (docs/over-the-air.md): TX and RX ports joined by an SMA cable with a 30-40 dB attenuator, or two
Plutos with antennas a few metres apart (--rx-uri for the second one).
"""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.hardware


@pytest.fixture
def radio(pluto_uri, request):
    from sdr_drivers.pluto import PlutoRadio

    with PlutoRadio(pluto_uri, rx_uri=request.config.getoption("--rx-uri"), tx_attenuation_db=-20.0,
                    rx_gain_mode="slow_attack") as r:
        yield r


def test_pluto_loopback_decodes_every_frame_and_measures_a_plausible_cfo(radio):
    from link_models import LinkConfig
    from link_models.ota.radio_link import RadioLink

    link = RadioLink(radio, LinkConfig(modulation="qpsk", k=1024, n=2048, snr_db=20.0))
    payload = bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))
    received, stats = link.send_bytes(payload)
    transfer = link.last_transfer
    assert received == payload, (stats.to_dict(), transfer.missing)
    cfo = [f.cfo_hz for f in transfer.decoded.values()]
    assert max(abs(c) for c in cfo) < 60e-6 * radio.center_frequency          # within 2 x 25 ppm + margin
    assert np.std(cfo) < 2e3                                                    # one oscillator pair, one burst


def test_pluto_analog_values_arrive_with_calibrated_variance(radio):
    from link_models import LinkConfig
    from link_models.ota.radio_link import RadioLink

    link = RadioLink(radio, LinkConfig(snr_db=20.0))
    values = torch.randn(8000)
    est, var, _ = link.send_values(values)
    ratio = float((est - values).square().mean() / var.mean())
    assert 0.5 < ratio < 2.0


def test_cyclic_transmission_stops_when_the_radio_closes(pluto_uri):
    from sdr_drivers.pluto import PlutoRadio

    with PlutoRadio(pluto_uri, tx_attenuation_db=-20.0) as radio:
        radio.transmit(np.full(4096, 0.5, np.complex64), cyclic=True)
        loud = np.mean(np.abs(radio.receive(8192)) ** 2)
    with PlutoRadio(pluto_uri, tx_attenuation_db=-20.0) as radio:
        quiet = np.mean(np.abs(radio.receive(8192)) ** 2)
    assert quiet < loud / 10
