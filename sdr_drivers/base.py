"""The one small interface every radio implements: configure, transmit, receive, close.

Samples are complex baseband, numpy complex64, full scale |x| <= 1 (the radio maps that onto its DAC/ADC
range). Settings are validated properties (pyadi-iio style), each declared as a `Setting`: assigning an
out-of-range value raises InputError at once, before any hardware is touched. A radio is a context manager;
leaving the `with` block (normally, on an error or on Ctrl-C) stops any transmission and releases the device.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import numpy as np

from meg_common import validate
from meg_common.errors import InputError


class Setting(property):
    """A documented, validated device setting (in the spirit of pyadi-iio's documented properties).

    `name = Setting(check, doc=...)` in a radio's class body: reading `radio.name` gives the accepted value;
    assigning runs `check(radio, "name", value)`, which returns the value to keep or raises InputError, keeps it
    as `radio._name`, then calls `apply(radio, value)` (e.g. pushing it to an open device). It is a property, so
    `Radio.configure` and `isinstance(..., property)` see it as a setting.
    """

    def __init__(self, check: Callable[[Any, str, Any], Any], doc: str | None = None,
                 apply: Callable[[Any, Any], None] | None = None):
        self._check, self._apply_to = check, apply
        super().__init__(self._get, self._set, None, doc)
        self.__doc__ = doc               # property.__init__ leaves a subclass's own docstring in its place

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.attribute = name, f"_{name}"

    def _get(self, radio):
        return getattr(radio, self.attribute)

    def _set(self, radio, value) -> None:
        value = self._check(radio, self.name, value)
        setattr(radio, self.attribute, value)
        if self._apply_to is not None:
            self._apply_to(radio, value)

    @classmethod
    def number(cls, lo: float, hi: float, unit: str = "", doc: str | None = None,
               apply: Callable[[Any, Any], None] | None = None) -> Setting:
        """A finite real number in [lo, hi], kept as float (`validate.number`'s check and message)."""
        return cls(lambda radio, name, value: validate.number(name, value, lo, hi, unit=unit), doc, apply)

    @classmethod
    def integer(cls, lo: int, hi: int, rule: str | None = None, numpy: bool = False,
                doc: str | None = None) -> Setting:
        """A whole number in [lo, hi] (a Python int, or with `numpy` also a numpy integer; never a bool), kept as
        int; otherwise InputError "name=value: must be RULE" (RULE by default "an integer between LO and HI")."""
        types = int | np.integer if numpy else int
        rule = rule or f"an integer between {lo} and {hi}"

        def check(radio, name: str, value) -> int:
            if isinstance(value, bool) or not isinstance(value, types) or not lo <= value <= hi:
                raise InputError(f"{name}={value!r}: must be {rule}")
            return int(value)

        return cls(check, doc)


class Radio(abc.ABC):
    """A source and/or sink of IQ samples."""

    hardware: str = "unknown"
    cyclic_tx: bool = False
    """True when the radio repeats a cyclic TX buffer in hardware while it captures (Pluto): a link then
    sends each burst cyclically, so the capture is sure to hold every frame once. False: one-shot bursts
    (the simulated pair and SigMF files queue what is sent and play it into the next capture)."""

    def configure(self, **settings) -> Radio:
        """Set several validated settings at once: radio.configure(sample_rate=2e6, center_frequency=2.4e9)."""
        for name, value in settings.items():
            if not isinstance(getattr(type(self), name, None), property):
                raise InputError(f"{type(self).__name__} has no setting '{name}'")
            setattr(self, name, value)
        return self

    @property
    @abc.abstractmethod
    def sample_rate(self) -> float: ...

    @property
    @abc.abstractmethod
    def center_frequency(self) -> float: ...

    def open(self) -> Radio:
        """Connect now (devices); a no-op for radios without a connection. Lets a command fail fast."""
        return self

    @abc.abstractmethod
    def transmit(self, samples: np.ndarray, cyclic: bool = False) -> None:
        """Send samples once, or repeat them until `stop_transmit()` / `close()` when cyclic."""

    @abc.abstractmethod
    def receive(self, num_samples: int) -> np.ndarray:
        """Capture `num_samples` complex64 samples."""

    def reseed(self, seed: int) -> None:  # noqa: B027 - hardware draws no random numbers of its own
        """Restart the radio's own random draws (a simulated radio's noise and impairments) from `seed`."""

    def stop_transmit(self) -> None:  # noqa: B027 - a no-op for radios that never transmit cyclically
        """Stop a cyclic transmission (no-op when nothing is being sent)."""

    def close(self) -> None:
        self.stop_transmit()

    def __enter__(self) -> Radio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_samples(samples) -> np.ndarray:
    """1-D finite complex samples within full scale, as complex64; InputError otherwise."""
    x = np.asarray(samples)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"samples must be a non-empty 1-D array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"samples must be numbers, got dtype {x.dtype}")
    x = x.astype(np.complex64)
    if not np.all(np.isfinite(x)):
        raise InputError("samples contain NaN or infinity")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0 + 1e-6:
        raise InputError(f"samples exceed full scale (peak |x| = {peak:.3g} > 1); scale them down before transmitting")
    return x


def check_count(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer) or num_samples < 1:
        raise InputError(f"num_samples={num_samples!r}: must be a positive integer")
    return int(num_samples)
