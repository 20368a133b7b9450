"""SigMF record/replay: round trip, malformed recordings refused, and `ota tx` -> outside impairment -> `ota rx`."""

import json

import numpy as np
import pytest
import sigmf
from sigmf import SigMFFile

from meg_common.errors import InputError
from meg_phy.cli import main
from sdr_drivers.sigmf_io import SigMFSource, read_recording, write_recording


@pytest.fixture
def recording(tmp_path):
    x = (np.random.default_rng(0).standard_normal(1000) + 1j).astype(np.complex64) * 0.1
    write_recording(tmp_path / "rec", x, 2e6, 2.4e9, "test rig", [(10, 100, {"core:label": "frame 0"})])
    return tmp_path / "rec", x


def test_round_trip_keeps_samples_rate_frequency_hardware_and_annotations(recording):
    base, x = recording
    rec = read_recording(base)
    assert np.array_equal(rec.samples, x)
    assert (rec.sample_rate, rec.center_frequency, rec.hardware) == (2e6, 2.4e9, "test rig")
    assert rec.annotations[0]["core:sample_start"] == 10 and rec.annotations[0]["core:label"] == "frame 0"
    source = SigMFSource(str(base) + ".sigmf-meta")
    assert np.array_equal(source.receive(600), x[:600])
    tail = source.receive(600)
    assert np.array_equal(tail[:400], x[600:]) and not tail[400:].any()


def _edit_meta(base, edit):
    path = base.with_suffix(".sigmf-meta")
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage,message", [
    (lambda b: b.with_suffix(".sigmf-meta").unlink(), "meta file not found"),
    (lambda b: b.with_suffix(".sigmf-meta").write_text("{not json"), "not valid JSON"),
    (lambda b: _edit_meta(b, lambda m: m["global"].pop("core:sample_rate")), "sample_rate"),
    (lambda b: _edit_meta(b, lambda m: m["global"].update({"core:sample_rate": -5})), "sample_rate"),
    (lambda b: _edit_meta(b, lambda m: m["global"].update({"core:datatype": "rf32_le"})), "not supported"),
    (lambda b: _edit_meta(b, lambda m: m.pop("global")), "global"),
    (lambda b: open(b.with_suffix(".sigmf-data"), "ab").write(b"\0\0\0"), "truncated"),
    (lambda b: open(b.with_suffix(".sigmf-data"), "r+b").truncate(400), "truncated"),
])
def test_malformed_recordings_are_refused_with_a_clear_message(recording, damage, message):
    base, _ = recording
    damage(base)
    with pytest.raises(InputError, match=message):
        read_recording(base)


def test_ota_rx_on_a_missing_recording_exits_2(tmp_path, capsys):
    assert main(["ota", "rx", "--radio", "sigmf", "--in", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_ota_tx_recording_impaired_outside_the_project_then_ota_rx_decodes(tmp_path):
    tx_dir, rx_dir = tmp_path / "tx", tmp_path / "rx"
    assert main(["ota", "tx", "--radio", "sigmf", "--frames", "4", "--seed", "3", "--out", str(tx_dir)]) == 0
    # the impairment, made with numpy and the sigmf library only
    handle = sigmf.fromfile(str(tx_dir / "tx"))
    x = handle.read_samples()
    fs = handle.get_global_field(sigmf.SigMFFile.SAMPLE_RATE_KEY)
    rng = np.random.default_rng(7)
    y = np.concatenate([np.zeros(1234, complex), x, np.zeros(3000, complex)])           # delay + zero padding
    y = y * np.exp(2j * np.pi * 61.3e3 / fs * np.arange(y.size) + 0.4j)                 # frequency shift
    power = np.mean(np.abs(x[np.abs(x) > 0]) ** 2)
    y = y + np.sqrt(power / 10 ** (12 / 10) / 2) * (rng.standard_normal(y.size) + 1j * rng.standard_normal(y.size))
    impaired = tmp_path / "impaired"
    y.astype(np.complex64).tofile(str(impaired) + ".sigmf-data")
    meta = SigMFFile(data_file=str(impaired) + ".sigmf-data",
                     global_info={sigmf.SigMFFile.DATATYPE_KEY: "cf32_le", sigmf.SigMFFile.SAMPLE_RATE_KEY: fs,
                                  sigmf.SigMFFile.DESCRIPTION_KEY: "shifted, delayed, noisy"})
    meta.add_capture(0, metadata={sigmf.SigMFFile.FREQUENCY_KEY: 2.4e9})
    meta.tofile(str(impaired))
    (tmp_path / "payload.bin").write_bytes((tx_dir / "payload.bin").read_bytes())
    assert main(["ota", "rx", "--radio", "sigmf", "--in", str(impaired), "--out", str(rx_dir)]) == 0
    report = json.loads((rx_dir / "ota.json").read_text())
    assert report["frames_crc_ok"] == 4 and report["payload_ok"] and report["ber"] == 0.0
    assert all(abs(c - 61.3e3) < 2e3 for c in report["cfo_hz_est"])
    assert (rx_dir / "payload.bin").read_bytes() == (tx_dir / "payload.bin").read_bytes()
    assert (rx_dir / "ota.png").stat().st_size > 1000
