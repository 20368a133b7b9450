"""The ZeroMQ radio: sockets, errors, frames through an in-process relay standing in for a flowgraph, and
the live chain TX -> GNU Radio channel model -> RX as three processes over 127.0.0.1 (skipped with its
reason where the system Python has no GNU Radio; `scripts/setup-system.sh` installs it for CI)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

zmq = pytest.importorskip("zmq", reason="pyzmq (the sdr extra) is not installed")

from meg_common.errors import DeviceError, InputError  # noqa: E402
from sdr_drivers.zmq_radio import ZmqRadio  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Relay(threading.Thread):
    """PULL from meg-phy's TX, add a CFO and complex noise, PUSH to meg-phy's RX (a flowgraph in Python)."""

    def __init__(self, src: str, dst: str, noise_std: float, cfo_hz: float, fs: float = 2e6):
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.connect(src)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.bind(dst)
        self.noise_std, self.step = noise_std, 2 * np.pi * cfo_hz / fs
        self.rng, self.n, self.stop = np.random.default_rng(0), 0, threading.Event()

    def run(self):
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        while not self.stop.is_set():
            if not poller.poll(50):
                continue
            x = np.frombuffer(self.pull.recv(), "<c8")
            t = self.n + np.arange(x.size)
            self.n += x.size
            noise = self.noise_std / np.sqrt(2) * (self.rng.standard_normal(x.size)
                                                   + 1j * self.rng.standard_normal(x.size))
            self.push.send((x * np.exp(1j * self.step * t) + noise).astype("<c8").tobytes())

    def close(self):
        self.stop.set()
        self.join(2)
        self.pull.close(0)
        self.push.close(0)
        self.ctx.term()


def test_bad_addresses_and_silence_are_one_line_errors():
    with pytest.raises(InputError, match="ZeroMQ endpoint"):
        ZmqRadio(tx_address="127.0.0.1:5555")
    with pytest.raises(InputError, match="needs a tx_address"):
        ZmqRadio(tx_address=None, rx_address=None)
    (port,) = free_ports(1)
    with ZmqRadio(tx_address=None, rx_address=f"tcp://127.0.0.1:{port}", timeout_s=0.2) as radio:
        with pytest.raises(DeviceError, match="no samples within 0.2 s"):
            radio.receive(100)


@pytest.mark.parametrize("mode,snr_db", [("legacy", 12.0), ("low-snr", -6.0)])
def test_frames_through_a_relay(mode, snr_db):
    from link_models import LinkConfig
    from link_models.ota.radio_link import RadioLink

    tx_port, rx_port = free_ports(2)
    tx, rx = f"tcp://127.0.0.1:{tx_port}", f"tcp://127.0.0.1:{rx_port}"
    power = 10 ** (-12 / 10)                              # RadioLink's burst level, -12 dBFS RMS
    relay = Relay(tx, rx, np.sqrt(power / (52 / 64) / 10 ** (snr_db / 10)), cfo_hz=31e3)
    try:
        with ZmqRadio(tx, rx, timeout_s=2.0) as radio:
            relay.start()
            link = RadioLink(radio, LinkConfig(modulation="qpsk", k=512, n=1024, snr_db=snr_db), seed=1, mode=mode)
            values = torch.from_numpy(np.random.default_rng(3).standard_normal(3 * 2048))
            _, _, stats = link.send_values(values)
            assert stats.frames_lost == 0
            assert stats.nmse < 2.5 * 10 ** (-snr_db / 10)
            assert all(abs(f.cfo_hz - 31e3) < 1e3 for f in link.last_transfer.decoded.values())
            if mode == "legacy":
                payload = bytes(range(256)) * 2
                received, _ = link.send_bytes(payload)        # a second burst: the first one's tail is gone
                assert received == payload
    finally:
        relay.close()


def _gnuradio_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "from gnuradio import gr, zeromq, channels"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"GNU Radio does not import in {SYSTEM_PYTHON} ({last}); scripts/setup-system.sh installs it"
    return None


def _stop(proc: subprocess.Popen) -> None:
    """Stop one process we started, by its own id: SIGINT, then SIGKILL if it does not leave."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(300)
def test_live_gnuradio_channel_model_between_tx_and_rx_processes(tmp_path):
    reason = _gnuradio_missing()
    if reason:
        pytest.skip(reason)
    a, b = free_ports(2)
    tx, rx = f"tcp://127.0.0.1:{a}", f"tcp://127.0.0.1:{b}"
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl"), "PYTHONUNBUFFERED": "1"}
    meg = [sys.executable, "-m", "meg_phy.cli"]
    procs = []
    try:
        procs.append(subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "gr_flowgraphs" / "channel_model.py"),
                                       "--from-address", tx, "--to-address", rx, "--snr-db", "-10", "--cfo-hz", "48e3",
                                       "--sco-ppm", "20", "--seed", "3"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
        procs.append(subprocess.Popen(meg + ["ota", "tx", "--radio", "zmq", "--tx-address", tx, "--mode", "low-snr",
                                             "--scheme", "analog", "--frames", "3", "--seconds", "120",
                                             "--out", str(tmp_path / "tx")], env=env, cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        rx_out = tmp_path / "rx"
        done = subprocess.run(meg + ["ota", "rx", "--radio", "zmq", "--rx-address", rx, "--capture-seconds", "0.2",
                                     "--timeout", "60", "--out", str(rx_out)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads((rx_out / "ota.json").read_text())
        # a 0.2 s capture of a cyclic stream holds ~14 bursts; the first may be cut inside its preamble
        assert report["frames_crc_ok"] >= 3 * 10 and report["header_rejected"] <= 1, report
        assert all(abs(c - 48e3) < 1e3 for c in report["cfo_hz_est"])
        assert all(-12 < s < -8 for s in report["snr_est_db"]), report["snr_est_db"]
    finally:
        for proc in reversed(procs):
            _stop(proc)
