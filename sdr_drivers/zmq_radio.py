"""A radio over ZeroMQ: IQ samples to and from any process, e.g. a GNU Radio flowgraph (gr_flowgraphs/).

    TX: a PUSH socket bound to `tx_address` (default tcp://127.0.0.1:5555): every transmit() sends the burst as
        messages of raw cf32 (numpy complex64, little endian), what GNU Radio's `zeromq.pull_source`
        (itemsize 8) reads.
    RX: a PULL socket connected to `rx_address` (default tcp://127.0.0.1:5556), where GNU Radio's
        `zeromq.push_sink` (itemsize 8) binds; receive(n) collects n samples.

PUSH/PULL, not PUB/SUB: a PUSH socket blocks (up to its high-water mark) until a reader is there, so nothing
is dropped before the flowgraph starts; PUB drops what is published before a subscriber joins. TX and RX may
live in separate processes (`meg-phy ota tx --radio zmq` and `meg-phy ota rx --radio zmq`) or in one
(`ota loopback --radio zmq`, a flowgraph in between).

A stream carries no gaps: what the flowgraph outputs is what was sent through it, so each burst goes out
with `pad_samples` zeros before and after (room for the receiver to find its start and for a channel
model's noise around it). receive(n) returns n samples; when the stream stops before that (a one-shot burst
through a flowgraph that adds nothing), the rest is zeros once `timeout_s` passes without a sample, and
nothing at all within `timeout_s` is a DeviceError naming the address.
pyzmq (the `sdr` extra) is imported on open(), so meg-phy works without it.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from meg_common.errors import DeviceError, InputError
from sdr_drivers.base import Radio, Setting, check_count, check_samples

CHUNK = 4096           # samples per ZeroMQ message


def _address(name: str, value) -> str:
    value = str(value)
    if not value.startswith(("tcp://", "ipc://", "inproc://")) or len(value) < 8:
        raise InputError(f"{name}={value!r}: give a ZeroMQ endpoint such as tcp://127.0.0.1:5555")
    return value


class ZmqRadio(Radio):
    """TX binds PUSH on `tx_address`, RX connects PULL to `rx_address`; either may be None (RX- or TX-only)."""

    hardware = "ZeroMQ stream (e.g. a GNU Radio flowgraph)"
    cyclic_tx = False

    def __init__(self, tx_address: str | None = "tcp://127.0.0.1:5555",
                 rx_address: str | None = "tcp://127.0.0.1:5556", sample_rate: float = 2e6,
                 center_frequency: float = 2.4e9, timeout_s: float = 5.0, pad_samples: int = 2000,
                 high_water_mark: int = 64):
        self.tx_address = None if tx_address is None else _address("tx_address", tx_address)
        self.rx_address = None if rx_address is None else _address("rx_address", rx_address)
        if self.tx_address is None and self.rx_address is None:
            raise InputError("a ZeroMQ radio needs a tx_address, an rx_address or both")
        self.configure(sample_rate=sample_rate, center_frequency=center_frequency, timeout_s=timeout_s,
                       pad_samples=pad_samples)
        self.high_water_mark = int(high_water_mark)
        self._context = self._tx = self._rx = None
        self._leftover = np.zeros(0, np.complex64)
        self._cyclic: threading.Thread | None = None
        self._stop = threading.Event()

    sample_rate = Setting.number(1e3, 1e9, doc="Sample rate in S/s (the flowgraph's).")
    center_frequency = Setting.number(0, 100e9, doc="Carrier frequency in Hz (recorded; the stream is baseband).")
    timeout_s = Setting.number(0.01, 3600, doc="Seconds to wait for a reader (TX) or for samples (RX).")
    pad_samples = Setting.integer(0, 1 << 24, "an integer >= 0", doc="Zeros sent before and after each burst.")

    @property
    def uri(self) -> str:
        return f"zmq tx={self.tx_address} rx={self.rx_address}"

    def settings(self) -> dict:
        return {"radio": "zmq", "tx_address": self.tx_address, "rx_address": self.rx_address,
                "sample_rate": self.sample_rate, "center_frequency": self.center_frequency,
                "timeout_s": self.timeout_s, "pad_samples": self.pad_samples}

    # --- connection --------------------------------------------------------------------------------------------
    def open(self) -> ZmqRadio:
        if self._context is not None:
            return self
        try:
            import zmq
        except ImportError:
            raise DeviceError("pyzmq is not installed; install the sdr extra (pip install 'meg-phy[sdr]') for "
                              "--radio zmq") from None
        self._zmq = zmq
        self._context = zmq.Context()
        try:
            if self.tx_address is not None:
                self._tx = self._context.socket(zmq.PUSH)
                self._tx.setsockopt(zmq.SNDHWM, self.high_water_mark)
                self._tx.setsockopt(zmq.LINGER, int(1000 * self.timeout_s))
                self._tx.bind(self.tx_address)
            if self.rx_address is not None:
                self._rx = self._context.socket(zmq.PULL)
                self._rx.setsockopt(zmq.RCVHWM, self.high_water_mark)
                self._rx.setsockopt(zmq.LINGER, 0)
                self._rx.connect(self.rx_address)
        except zmq.ZMQError as exc:
            self.close()
            raise DeviceError(f"{self.uri}: cannot open the ZeroMQ sockets ({exc}); is the address in use or "
                              "malformed?") from None
        return self

    def close(self) -> None:
        self.stop_transmit()
        for sock in (self._tx, self._rx):
            if sock is not None:
                sock.close()
        if self._context is not None:
            self._context.term()
        self._context = self._tx = self._rx = None

    def __enter__(self) -> ZmqRadio:
        return self.open()

    # --- samples -----------------------------------------------------------------------------------------------
    def transmit(self, samples: np.ndarray, cyclic: bool = False) -> None:
        x = check_samples(samples)
        if self._tx is None:
            self.open()
            if self._tx is None:
                raise InputError(f"{self.uri}: this ZeroMQ radio has no tx_address; it cannot transmit")
        self.stop_transmit()
        self._drain()
        pad = np.zeros(self.pad_samples, np.complex64)
        burst = np.concatenate([pad, x, pad]).astype("<c8")
        if cyclic:
            self._stop.clear()
            self._cyclic = threading.Thread(target=self._repeat, args=(burst,), daemon=True)
            self._cyclic.start()
        else:
            self._send(burst)

    def _send(self, burst: np.ndarray) -> None:
        deadline = time.monotonic() + self.timeout_s
        for i in range(0, burst.size, CHUNK):
            part = burst[i:i + CHUNK].tobytes()
            while True:
                try:
                    self._tx.send(part, self._zmq.NOBLOCK)
                    break
                except self._zmq.Again:
                    if self._stop.is_set():
                        return
                    if time.monotonic() > deadline:
                        raise DeviceError(f"{self.tx_address}: nobody reads the samples (no PULL socket connected "
                                          f"within {self.timeout_s:g} s); start the flowgraph or the receiver") from None
                    time.sleep(0.001)
            deadline = time.monotonic() + self.timeout_s

    def _repeat(self, burst: np.ndarray) -> None:
        while not self._stop.is_set():
            try:
                self._send(burst)
            except DeviceError:
                time.sleep(0.01)

    def stop_transmit(self) -> None:
        if self._cyclic is not None:
            self._stop.set()
            self._cyclic.join(timeout=2 * self.timeout_s + 1)
            self._cyclic = None

    def _drain(self) -> None:
        """Drop samples of earlier bursts still queued on the RX side (before a new one-shot burst)."""
        self._leftover = np.zeros(0, np.complex64)
        if self._rx is None:
            return
        while True:
            try:
                self._rx.recv(self._zmq.NOBLOCK)
            except self._zmq.Again:
                return

    def receive(self, num_samples: int) -> np.ndarray:
        n = check_count(num_samples)
        if self._rx is None:
            self.open()
            if self._rx is None:
                raise InputError(f"{self.uri}: this ZeroMQ radio has no rx_address; it cannot receive")
        parts, have = [self._leftover], self._leftover.size
        got_any = have > 0
        poller = self._zmq.Poller()
        poller.register(self._rx, self._zmq.POLLIN)
        while have < n:
            if not poller.poll(int(1000 * self.timeout_s)):
                if not got_any:
                    raise DeviceError(f"{self.rx_address}: no samples within {self.timeout_s:g} s; is the flowgraph "
                                      "(or the transmitter) running and pushing to this address?")
                break                                       # the stream stopped: the rest is silence
            msg = self._rx.recv()
            if len(msg) % 8:
                raise DeviceError(f"{self.rx_address}: a message of {len(msg)} bytes is not cf32 samples "
                                  "(set the flowgraph's ZeroMQ item size to 8: gr_complex)")
            part = np.frombuffer(msg, "<c8").astype(np.complex64)
            parts.append(part)
            have += part.size
            got_any = True
        x = np.concatenate(parts) if parts else np.zeros(0, np.complex64)
        self._leftover = x[n:]
        out = np.zeros(n, np.complex64)
        out[:min(n, x.size)] = x[:n]
        return out
