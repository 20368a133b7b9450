"""`meg-phy ota` end to end over the simulated radio: the ota.json contract, the plot, recording, errors."""

import json

import pytest

from meg_phy.cli import main

KEYS = {"frames_sent", "frames_detected", "frames_crc_ok", "header_rejected", "noise_triggers", "cfo_hz_est", "snr_est_db", "ber",
        "bler", "payload_ok", "config", "versions"}


def test_loopback_sim_writes_the_report_plot_and_a_sigmf_recording(tmp_path):
    out, rec = tmp_path / "out", tmp_path / "rec"
    code = main(["ota", "loopback", "--radio", "sim", "--frames", "3", "--snr-db", "12", "--cfo-ppm", "-40",
                 "--sco-ppm", "40", "--record", str(rec), "--out", str(out)])
    assert code == 0
    report = json.loads((out / "ota.json").read_text())
    assert KEYS <= set(report)
    assert report["frames_sent"] == report["frames_crc_ok"] == 3 and report["payload_ok"]
    assert report["ber"] == 0.0 and report["bler"] == 0.0 and report["header_rejected"] == report["noise_triggers"] == 0 and report["ground_truth"]
    assert all(abs(c + 96e3) < 2e3 for c in report["cfo_hz_est"])
    assert all(8 < s < 16 for s in report["snr_est_db"])
    assert (out / "ota.png").stat().st_size > 1000
    meta = json.loads((rec / "rx.sigmf-meta").read_text())
    assert meta["global"]["core:sample_rate"] == 2e6 and len(meta["annotations"]) == 3
    assert json.loads((rec / "tx.sigmf-meta").read_text())["captures"][0]["core:frequency"] == 2.4e9


def test_loopback_analog_payload(tmp_path):
    assert main(["ota", "loopback", "--radio", "sim", "--scheme", "analog", "--frames", "2", "--snr-db", "10",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "ota.json").read_text())
    assert report["payload_ok"] and 0.05 < report["nmse"] < 0.2       # NMSE ~ 1/SNR = 0.1


@pytest.mark.parametrize("argv", [
    ["--radio", "sim", "--cfo-ppm", "900"],
    ["--radio", "sim", "--modulation", "16qam", "--k", "1000", "--n", "2002"],
    ["--radio", "sim", "--payload", "/no/such/file"],
    ["--radio", "sim", "--frames", "0"],
])
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv):
    assert main(["ota", "loopback", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("meg-phy: error:") and "\n" not in err


def test_low_snr_mode_written_to_sigmf_decodes_with_ota_rx(tmp_path):
    """`ota tx --mode low-snr` writes one burst (chirp preamble, burst header, frames); `ota rx` finds the
    mode by itself (both receivers run) and decodes every frame."""
    tx, rx = tmp_path / "tx", tmp_path / "rx"
    assert main(["ota", "tx", "--radio", "sigmf", "--mode", "low-snr", "--frames", "2", "--out", str(tx)]) == 0
    meta = json.loads((tx / "tx.sigmf-meta").read_text())
    assert [a["meg_phy:mode"] for a in meta["annotations"]] == ["low-snr", "low-snr"]
    assert main(["ota", "rx", "--radio", "sigmf", "--in", str(tx / "tx"), "--out", str(rx)]) == 0
    report = json.loads((rx / "ota.json").read_text())
    assert report["frames_crc_ok"] == 2 and report["payload_ok"] and report["ber"] == 0.0
    assert report["header_rejected"] == 0 and report["noise_triggers"] is None
