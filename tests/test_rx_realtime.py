"""The over-the-air receiver's speed work: the per-axis APP demapper equals Sionna's, the receiver keeps
PyTorch's thread setting, and `meg-phy ota loopback` reports how fast it decoded (real-time factor)."""

import json

import pytest
import torch

from link_models.demapping import SeparableDemapper
from link_models.modulation import build_modem
from meg_phy.cli import main


@pytest.mark.parametrize("modulation", ["bpsk", "qpsk", "16qam", "64qam", "256qam"])
def test_separable_demapper_matches_sionna(modulation):
    _, sionna = build_modem(modulation, "cpu")
    fast = SeparableDemapper(sionna.constellation())
    g = torch.Generator().manual_seed(1)
    y = torch.randn(3, 500, dtype=torch.complex64, generator=g)
    for no in (torch.rand(3, 500, generator=g) * 0.3 + 0.01, torch.tensor(0.05)):
        ref, got = sionna(y, no), fast(y, no)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-3)
        assert torch.equal(got > 0, ref > 0)


def test_receiver_restores_torch_threads(tmp_path):
    from link_models.ota.config import FrameConfig
    from link_models.ota.radio_link import shared_codec
    from link_models.ota.receiver import FrameReceiver

    before = torch.get_num_threads()
    receiver = FrameReceiver(shared_codec(FrameConfig(), 20))
    assert receiver.warm_up() > 0
    assert torch.get_num_threads() == before


def test_loopback_json_has_the_realtime_factor(tmp_path):
    assert main(["ota", "loopback", "--radio", "sim", "--frames", "4", "--snr-db", "12", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "ota.json").read_text())
    assert report["payload_ok"] and report["frames_crc_ok"] == 4
    airtime = report["link_stats"]["airtime_s"]
    assert report["signal_s"] >= 0.9 * airtime > 0          # the capture holds at least the frames sent
    assert report["receive_s"] > 0 and report["warmup_s"] > 0
    assert report["realtime_factor"] == pytest.approx(report["signal_s"] / report["receive_s"], rel=1e-2)
    assert sum(report["timings_s"].values()) <= report["receive_s"] * 1.01 + 1e-3
