"""The Pluto path without hardware, through the real pyadi-iio/libiio stack as far as it goes."""

import subprocess
import sys
import time

import numpy as np
import pytest

from meg_common.errors import DeviceError, InputError
from meg_phy.cli import main
from sdr_drivers import pluto
from sdr_drivers.pluto import PlutoRadio


@pytest.fixture
def no_io(monkeypatch):
    """Fail the test if anything tries to reach pyadi-iio."""
    def forbidden():
        raise AssertionError("pyadi-iio was touched before the settings were validated")

    monkeypatch.setattr(pluto, "_import_adi", forbidden)


@pytest.mark.parametrize("settings,fragment", [
    ({"sample_rate": 100e3}, "sample_rate"), ({"sample_rate": 80e6}, "sample_rate"),
    ({"center_frequency": 6e9}, "tx_lo"), ({"rx_lo": 100e6}, "rx_lo"), ({"tx_lo": float("nan")}, "tx_lo"),
    ({"tx_attenuation_db": 3}, "tx_attenuation_db"), ({"tx_attenuation_db": -95}, "tx_attenuation_db"),
    ({"tx_attenuation_db": -10.1}, "0.25 dB"), ({"rx_gain_mode": "auto"}, "rx_gain_mode"),
    ({"rx_gain_db": 80}, "rx_gain_db"), ({"rx_buffer_size": 10}, "rx_buffer_size"),
    ({"rx_buffer_size": 1.5}, "rx_buffer_size"), ({"uri": "192.168.2.1"}, "URI"), ({"uri": "ip:"}, "URI"),
    ({"rf_bandwidth": 100e6}, "rf_bandwidth"), ({"flush_buffers": -1}, "flush_buffers"),
])
def test_invalid_settings_are_refused_before_any_io(no_io, settings, fragment):
    with pytest.raises(InputError, match=fragment):
        PlutoRadio(**settings)


def test_settings_are_validated_properties_and_extended_lo_is_opt_in(no_io):
    radio = PlutoRadio()
    radio.configure(sample_rate=4e6, tx_attenuation_db=-30.25, rx_gain_mode="slow_attack")
    assert (radio.sample_rate, radio.tx_attenuation_db, radio.rx_gain_mode) == (4e6, -30.25, "slow_attack")
    with pytest.raises(InputError):
        radio.rx_gain_db = 100
    with pytest.raises(InputError):
        radio.configure(not_a_setting=1)
    assert PlutoRadio(center_frequency=5.8e9, allow_extended_lo=True).tx_lo == 5.8e9
    with pytest.raises(InputError):                          # refused samples never reach the device
        radio.transmit(np.array([1.5 + 0j]))


def test_unreachable_device_gives_one_line_naming_uri_and_cause_through_real_pyadi_iio():
    start = time.perf_counter()
    with pytest.raises(DeviceError) as info:
        with PlutoRadio("ip:127.0.0.1", timeout_s=2.0) as radio:
            radio.receive(1024)
    message = str(info.value)
    assert "\n" not in message and message.startswith("ip:127.0.0.1:")
    assert "refused" in message.lower()                      # the cause pyadi-iio hides on __context__
    assert time.perf_counter() - start < 10


def test_cli_exits_3_with_one_line_and_no_traceback(tmp_path):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "meg_phy.cli", "ota", "loopback", "--radio", "pluto", "--uri",
                          "ip:127.0.0.1", "--timeout", "2", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "ip:127.0.0.1" in lines[0] and "Traceback" not in out.stderr
    assert time.perf_counter() - start < 60


def test_cli_refuses_invalid_pluto_settings_with_exit_2(tmp_path, capsys):
    assert main(["ota", "loopback", "--radio", "pluto", "--uri", "ip:127.0.0.1", "--tx-attenuation-db", "5",
                 "--out", str(tmp_path / "o")]) == 2
    assert "tx_attenuation_db" in capsys.readouterr().err
    assert main(["ota", "loopback", "--radio", "pluto", "--tx-uri", "ip:1.2.3.4", "--out", str(tmp_path)]) == 2


class _FakeDevice:
    """Records what the driver asks of pyadi-iio; raises on rx() to simulate a dropped connection."""

    def __init__(self, uri):
        self.uri, self.calls, self._ctx = uri, [], None

    def __setattr__(self, name, value):
        if name not in ("uri", "calls", "_ctx"):
            self.calls.append((name, value))
        object.__setattr__(self, name, value)

    def tx(self, data):
        self.calls.append(("tx", len(data)))

    def rx(self):
        raise OSError(110, "Connection timed out")

    def tx_destroy_buffer(self):
        self.calls.append(("tx_destroy_buffer", None))

    def rx_destroy_buffer(self):
        self.calls.append(("rx_destroy_buffer", None))


def test_cyclic_buffer_is_destroyed_when_receive_fails(monkeypatch):
    device = {}

    class FakeAdi:
        @staticmethod
        def Pluto(uri):  # noqa: N802 - pyadi-iio's name
            device["dev"] = _FakeDevice(uri)
            return device["dev"]

    monkeypatch.setattr(pluto, "_import_adi", lambda: FakeAdi)
    monkeypatch.setattr(pluto, "_probe", lambda uri, timeout: None)
    with pytest.raises(DeviceError, match="timed out"):
        with PlutoRadio("usb:1.2.5") as radio:
            radio.transmit(np.full(100, 0.5, np.complex64), cyclic=True)
            radio.receive(4096)
    calls = [name for name, _ in device["dev"].calls]
    assert ("tx_cyclic_buffer", True) in device["dev"].calls and "tx" in calls
    assert calls.count("tx_destroy_buffer") == 1 and calls.index("tx_destroy_buffer") > calls.index("tx")
    applied = dict(device["dev"].calls)
    assert applied["sample_rate"] == 2_000_000 and applied["tx_hardwaregain_chan0"] == -10.0
    assert applied["gain_control_mode_chan0"] == "manual" and applied["rx_lo"] == 2_400_000_000
