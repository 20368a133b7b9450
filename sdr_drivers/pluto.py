"""ADALM-Pluto through pyadi-iio: one device cabled to itself, or a TX Pluto and an RX Pluto.

Every setting is a validated property (pyadi-iio style) checked against the Pluto's ranges when it is
assigned, so a wrong value is refused before any hardware is touched; nothing connects until the first
`open()`, `transmit()` or `receive()`. `import adi` happens only then, so the rest of meg-phy works
without pyadi-iio and libiio.

What it takes care of (the known Pluto pitfalls, see docs/over-the-air.md):
- a cyclic TX buffer keeps transmitting until destroyed: it is destroyed on `stop_transmit()`, `close()`,
  leaving a `with` block (error or Ctrl-C included) and at interpreter exit;
- stale RX buffers: `flush_buffers` captures are discarded before each capture;
- pyadi-iio reports an unreachable device as a bare Exception("No device found") with the cause on
  `__context__`; we turn that, and libiio timeouts, into one DeviceError line naming the URI and the cause.
Sample scaling: full scale |x| = 1 maps to the 2^14 DAC scale pyadi-iio expects; received samples are
divided by 2^11 (12-bit ADC), so a full-scale capture has |x| close to 1.
"""

from __future__ import annotations

import atexit
import socket
import weakref

import numpy as np

from meg_common import validate
from meg_common.errors import DeviceError, InputError
from sdr_drivers.base import Radio, Setting, check_count, check_samples

SAMPLE_RATE_RANGE = (521e3, 61.44e6)        # pyadi-iio refuses < 521 kS/s (it loads the FIR below 2.08 MS/s)
LO_RANGE = (325e6, 3.8e9)                   # AD9363 as shipped
LO_RANGE_EXTENDED = (70e6, 6e9)             # AD9364 range of a Pluto switched to it (fw_setenv attr_val ad9364)
RF_BANDWIDTH_RANGE = (200e3, 56e6)
TX_ATTENUATION_RANGE = (-89.75, 0.0)        # tx_hardwaregain_chan0, 0.25 dB steps
RX_GAIN_RANGE = (-3.0, 71.0)                # rx_hardwaregain_chan0 in manual mode
RX_GAIN_MODES = ("manual", "slow_attack", "fast_attack", "hybrid")
BUFFER_RANGE = (256, 1 << 24)
IIOD_PORT = 30431
TX_SCALE, RX_SCALE = 2.0 ** 14, 2.0 ** 11

_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Nothing keeps transmitting after the interpreter exits."""
    for radio in list(_LIVE):
        try:
            radio.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class PlutoRadio(Radio):
    """A Pluto (or a TX + RX pair). Construct with settings, use as a context manager."""

    hardware = "ADALM-Pluto (AD936x) via pyadi-iio"
    cyclic_tx = True

    def __init__(self, uri: str = "ip:192.168.2.1", rx_uri: str | None = None, sample_rate: float = 2e6,
                 center_frequency: float = 2.4e9, tx_lo: float | None = None, rx_lo: float | None = None,
                 tx_attenuation_db: float = -10.0, rx_gain_mode: str = "manual", rx_gain_db: float = 30.0,
                 rf_bandwidth: float | None = None, rx_buffer_size: int = 1 << 16, flush_buffers: int = 4,
                 timeout_s: float = 5.0, allow_extended_lo: bool = False):
        self._tx_dev = self._rx_dev = None
        self._cyclic = False
        self.allow_extended_lo = bool(allow_extended_lo)
        self.uri = uri
        self.rx_uri = rx_uri
        self.configure(sample_rate=sample_rate, center_frequency=center_frequency,
                       tx_attenuation_db=tx_attenuation_db, rx_gain_mode=rx_gain_mode, rx_gain_db=rx_gain_db,
                       rx_buffer_size=rx_buffer_size, flush_buffers=flush_buffers, timeout_s=timeout_s)
        self.tx_lo = center_frequency if tx_lo is None else tx_lo
        self.rx_lo = center_frequency if rx_lo is None else rx_lo
        self.rf_bandwidth = rf_bandwidth if rf_bandwidth is not None else min(max(sample_rate, 200e3), 56e6)

    # --- validated settings ----------------------------------------------------------------------------------
    def _check_lo(self, name: str, value) -> float:
        lo, hi = LO_RANGE_EXTENDED if self.allow_extended_lo else LO_RANGE
        hint = "" if self.allow_extended_lo else " (70 MHz - 6 GHz with allow_extended_lo on an AD9364-mode Pluto)"
        return validate.number(name, value, lo, hi, unit="Hz", hint=hint)

    def _check_tx_attenuation(self, name: str, value) -> float:
        value = validate.number(name, value, *TX_ATTENUATION_RANGE, unit="dB")
        if abs(value * 4 - round(value * 4)) > 1e-9:
            raise InputError(f"{name}={value}: the Pluto sets TX attenuation in 0.25 dB steps "
                             f"(e.g. {round(value * 4) / 4})")
        return value

    def _check_rx_gain_mode(self, name: str, value) -> str:
        if value not in RX_GAIN_MODES:
            raise InputError(f"{name}={value!r}: choose one of {', '.join(RX_GAIN_MODES)}")
        return value

    def _apply_rx_gain(self, value: float) -> None:
        if getattr(self, "_rx_gain_mode", "manual") == "manual":
            self._apply("rx_hardwaregain_chan0", value, tx=False)

    def _apply_rf_bandwidth(self, value: float) -> None:
        self._apply("rx_rf_bandwidth", int(value), tx=False)
        self._apply("tx_rf_bandwidth", int(value), rx=False)

    uri = Setting(lambda self, name, value: _check_uri(value, name), "libiio URI of the (TX) Pluto.")
    rx_uri = Setting(lambda self, name, value: None if value in (None, "") else _check_uri(value, name),
                     "libiio URI of a separate RX Pluto; None: the one at `uri` receives too.")
    sample_rate = Setting.number(*SAMPLE_RATE_RANGE, unit="S/s", doc="Sample rate of TX and RX in S/s.",
                                 apply=lambda self, value: self._apply("sample_rate", int(value)))
    tx_lo = Setting(_check_lo, "TX carrier (LO) frequency in Hz.",
                    apply=lambda self, value: self._apply("tx_lo", int(value), rx=False))
    rx_lo = Setting(_check_lo, "RX carrier (LO) frequency in Hz.",
                    apply=lambda self, value: self._apply("rx_lo", int(value), tx=False))
    rf_bandwidth = Setting.number(*RF_BANDWIDTH_RANGE, unit="Hz", doc="RF bandwidth of TX and RX in Hz.",
                                  apply=_apply_rf_bandwidth)
    tx_attenuation_db = Setting(_check_tx_attenuation,
                                "TX attenuation as hardware gain in dB (-89.75 to 0, 0.25 dB steps).",
                                apply=lambda self, value: self._apply("tx_hardwaregain_chan0", value, rx=False))
    rx_gain_mode = Setting(_check_rx_gain_mode, f"RX gain control: one of {', '.join(RX_GAIN_MODES)}.",
                           apply=lambda self, value: self._apply("gain_control_mode_chan0", value, tx=False))
    rx_gain_db = Setting.number(*RX_GAIN_RANGE, unit="dB", doc="RX gain in dB, applied in manual gain mode.",
                                apply=_apply_rx_gain)
    rx_buffer_size = Setting.integer(*BUFFER_RANGE, f"an integer between {BUFFER_RANGE[0]} and {BUFFER_RANGE[1]} "
                                     "samples", numpy=True, doc="Samples per RX buffer.")
    flush_buffers = Setting.integer(0, 32, doc="Stale RX buffers discarded before each capture.")
    timeout_s = Setting.number(0.1, 600, unit="s", doc="libiio timeout (and connection probe) in seconds.")

    @property
    def center_frequency(self) -> float:
        return self.rx_lo

    @center_frequency.setter
    def center_frequency(self, value) -> None:
        self.tx_lo = value
        self.rx_lo = value

    def settings(self) -> dict:
        return {"radio": "pluto", "uri": self.uri, "rx_uri": self.rx_uri, "sample_rate": self.sample_rate,
                "tx_lo": self.tx_lo, "rx_lo": self.rx_lo, "rf_bandwidth": self.rf_bandwidth,
                "tx_attenuation_db": self.tx_attenuation_db, "rx_gain_mode": self.rx_gain_mode,
                "rx_gain_db": self.rx_gain_db, "rx_buffer_size": self.rx_buffer_size,
                "flush_buffers": self.flush_buffers}

    # --- connection ------------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._tx_dev is not None

    def open(self) -> PlutoRadio:
        """Connect and push every setting to the device(s); DeviceError with the URI and the cause on failure."""
        if self.is_open:
            return self
        adi = _import_adi()
        self._tx_dev = self._connect(adi, self.uri)
        try:
            self._rx_dev = self._connect(adi, self.rx_uri) if self.rx_uri else self._tx_dev
            _LIVE.add(self)
            for name in ("sample_rate", "tx_lo", "rx_lo", "rf_bandwidth", "tx_attenuation_db", "rx_gain_mode",
                         "rx_gain_db"):
                setattr(self, name, getattr(self, name))       # re-assign: validated, then applied
            self._rx_dev.rx_buffer_size = self.rx_buffer_size
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self, adi, uri: str):
        _probe(uri, self.timeout_s)
        try:
            dev = adi.Pluto(uri)
        except Exception as exc:  # noqa: BLE001 - pyadi-iio raises a bare Exception, the cause is on __context__
            cause = exc.__context__ or exc
            raise DeviceError(f"{uri}: cannot open the Pluto ({_describe(cause)}); check the cable or address "
                              "(default ip:192.168.2.1; `iio_info -s` lists USB devices)") from exc
        try:
            (getattr(dev, "ctx", None) or dev._ctx).set_timeout(int(self.timeout_s * 1000))
        except Exception:  # noqa: BLE001 - older pyadi-iio: keep libiio's default timeout
            pass
        return dev

    def _apply(self, attribute: str, value, tx: bool = True, rx: bool = True) -> None:
        """Push one setting to the open device(s); a no-op before open()."""
        devices = []
        if tx and self._tx_dev is not None:
            devices.append((self.uri, self._tx_dev))
        if rx and self._rx_dev is not None and self._rx_dev is not self._tx_dev:
            devices.append((self.rx_uri, self._rx_dev))
        elif rx and self._rx_dev is not None and not devices:
            devices.append((self.uri, self._rx_dev))
        for uri, dev in devices:
            try:
                setattr(dev, attribute, value)
            except Exception as exc:  # noqa: BLE001
                raise DeviceError(f"{uri}: setting {attribute}={value} failed ({_describe(exc)})") from exc

    # --- radio interface -------------------------------------------------------------------------------------
    def transmit(self, samples: np.ndarray, cyclic: bool = False) -> None:
        x = check_samples(samples)
        self.open()
        self.stop_transmit()
        try:
            self._tx_dev.tx_cyclic_buffer = bool(cyclic)
            self._tx_dev.tx(x * TX_SCALE)
            self._cyclic = bool(cyclic)
        except Exception as exc:  # noqa: BLE001
            self.stop_transmit()
            raise DeviceError(f"{self.uri}: transmit failed ({_describe(exc)})") from exc

    def receive(self, num_samples: int) -> np.ndarray:
        n = check_count(num_samples)
        self.open()
        uri = self.rx_uri or self.uri
        dev = self._rx_dev
        try:
            if n != self.rx_buffer_size or int(dev.rx_buffer_size) != n:
                dev.rx_destroy_buffer()
                self.rx_buffer_size = n
                dev.rx_buffer_size = n
            for _ in range(self.flush_buffers):
                dev.rx()
            data = np.asarray(dev.rx())
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"{uri}: receive failed ({_describe(exc)}); check the connection and timeout_s") from exc
        return (data / RX_SCALE).astype(np.complex64)

    def stop_transmit(self) -> None:
        if self._tx_dev is not None and self._cyclic:
            try:
                self._tx_dev.tx_destroy_buffer()
            finally:
                self._cyclic = False

    def close(self) -> None:
        try:
            self.stop_transmit()
        finally:
            for dev in {id(d): d for d in (self._tx_dev, self._rx_dev) if d is not None}.values():
                try:
                    dev.rx_destroy_buffer()
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
            self._tx_dev = self._rx_dev = None
            _LIVE.discard(self)


def _import_adi():
    try:
        import adi
    except (ImportError, OSError) as exc:
        raise DeviceError(f"pyadi-iio/libiio not usable ({exc}); install the 'sdr' extra "
                          "(pip install 'meg-phy[sdr]') and the system libiio (Debian: libiio0)") from exc
    return adi


def _probe(uri: str, timeout: float) -> None:
    """For ip: URIs, fail fast with a clear line when nothing answers within `timeout` (libiio may hang).

    A refused or unreachable address is left to libiio, which reports it at once.
    """
    if not uri.startswith("ip:"):
        return
    host = uri[3:]
    port = IIOD_PORT
    if host.count(":") == 1:
        host, port_text = host.split(":")
        port = int(port_text) if port_text.isdigit() else IIOD_PORT
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except TimeoutError as exc:
        raise DeviceError(f"{uri}: no answer from {host}:{port} within {timeout:g} s; check the address and the "
                          "network link to the Pluto (default ip:192.168.2.1)") from exc
    except OSError:
        pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} [errno {exc.errno}]"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_uri(value, name: str) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise InputError(f"{name}={value!r}: use a libiio URI like ip:192.168.2.1 or usb:1.2.5")
    scheme, _, rest = value.partition(":")
    if scheme not in ("ip", "usb", "local", "serial") or (scheme != "local" and not rest.strip()):
        raise InputError(f"{name}={value!r}: use a libiio URI like ip:192.168.2.1 or usb:1.2.5")
    return value
