"""SigMF record and replay: what a radio sent or captured, as `BASE.sigmf-data` + `BASE.sigmf-meta`.

Written with the sigmf library (cf32_le, one capture at the centre frequency, the hardware and the frame
positions as annotations), so any SigMF tool (inspectrum, GNU Radio, sigmf-python) opens it. Read back
with `read_recording` or replayed through `SigMFSource`, a receive-only Radio. A malformed recording
(missing or unreadable meta, an invalid field, an unsupported datatype, a data file shorter than the
meta says or not a whole number of samples) raises InputError naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from meg_common.errors import InputError
from meg_common.io import atomic_write, atomic_write_text
from sdr_drivers.base import Radio, check_count, check_samples

# complex datatypes we replay: sigmf scales integer types to [-1, 1)
SUPPORTED_DATATYPES = ("cf32_le", "cf64_le", "ci32_le", "ci16_le", "ci8", "cu8", "cf32_be", "ci16_be")
SIGMF_VERSION_NOTE = "meg-phy over-the-air"


@dataclass
class Recording:
    samples: np.ndarray                         # complex64
    sample_rate: float
    center_frequency: float | None
    datatype: str
    hardware: str | None = None
    description: str | None = None
    annotations: list[dict] = field(default_factory=list)


def base_path(path: str | os.PathLike) -> Path:
    """BASE from BASE, BASE.sigmf-meta or BASE.sigmf-data."""
    p = Path(path)
    if p.suffix in (".sigmf-meta", ".sigmf-data"):
        return p.with_suffix("")
    return p


def write_recording(base: str | os.PathLike, samples: np.ndarray, sample_rate: float,
                    center_frequency: float, hardware: str, annotations: list[tuple[int, int, dict]] = (),
                    description: str = "", extra: dict | None = None) -> Path:
    """Write cf32_le data and its meta (both atomically); returns the meta path."""
    import sigmf
    from sigmf import SigMFFile

    base = base_path(base)
    data = np.ascontiguousarray(np.asarray(samples, np.complex64))
    data_path = base.with_suffix(".sigmf-data")
    atomic_write(data_path, lambda p: data.tofile(p))
    global_info = {sigmf.DATATYPE_KEY: "cf32_le", sigmf.SAMPLE_RATE_KEY: float(sample_rate),
                   sigmf.HW_KEY: hardware, sigmf.DESCRIPTION_KEY: description or SIGMF_VERSION_NOTE,
                   sigmf.RECORDER_KEY: "meg-phy"}
    meta = SigMFFile(data_file=str(data_path), global_info=global_info, skip_checksum=False)
    for key, value in (extra or {}).items():
        meta.set_global_field(key, value)
    meta.add_capture(0, metadata={sigmf.FREQUENCY_KEY: float(center_frequency)})
    for start, length, info in annotations:
        meta.add_annotation(int(start), int(length), metadata=dict(info))
    meta_path = base.with_suffix(".sigmf-meta")
    atomic_write_text(meta_path, meta.dumps(pretty=True))
    return meta_path


def read_recording(path: str | os.PathLike) -> Recording:
    """Load a recording; InputError for anything malformed (see the module docstring)."""
    import sigmf
    from sigmf import SigMFFile
    from sigmf.error import SigMFError

    base = base_path(path)
    meta_path, data_path = base.with_suffix(".sigmf-meta"), base.with_suffix(".sigmf-data")
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: SigMF meta file not found; give BASE of BASE.sigmf-meta/.sigmf-data")
    if not data_path.is_file():
        raise InputError(f"{data_path}: SigMF data file not found next to {meta_path.name}")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_path}: not valid JSON ({exc}); the recording's meta is corrupt") from None
    glob = metadata.get("global") if isinstance(metadata, dict) else None
    if not isinstance(glob, dict):
        raise InputError(f"{meta_path}: no 'global' object; not a SigMF meta file")
    datatype = glob.get(sigmf.DATATYPE_KEY)
    if datatype not in SUPPORTED_DATATYPES:
        raise InputError(f"{meta_path}: datatype {datatype!r} is not supported; complex types only: "
                         f"{', '.join(SUPPORTED_DATATYPES)}")
    rate = glob.get(sigmf.SAMPLE_RATE_KEY)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not np.isfinite(rate) or rate <= 0:
        raise InputError(f"{meta_path}: {sigmf.SAMPLE_RATE_KEY} missing or invalid ({rate!r}); it must be > 0")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # sigmf warns on a partial sample; we report it below
            handle = SigMFFile(metadata=metadata, data_file=str(data_path), skip_checksum=True)
        item = handle.get_sample_size()          # bytes per (complex) sample, all channels
        size = data_path.stat().st_size
        if size % item:
            raise InputError(f"{data_path}: {size} bytes is not a whole number of {datatype} samples "
                             f"({item} bytes each); the data file is truncated")
        count = size // item
        samples = handle.read_samples(0, count) if count else np.zeros(0, np.complex64)
    except InputError:
        raise
    except (SigMFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise InputError(f"{meta_path}: cannot read the recording ({type(exc).__name__}: {exc})") from None
    samples = np.asarray(samples)
    if not np.iscomplexobj(samples):
        raise InputError(f"{meta_path}: datatype {datatype} did not give complex samples")
    annotations = list(metadata.get("annotations") or [])
    for ann in annotations:
        start = ann.get(sigmf.SAMPLE_START_KEY, 0) if isinstance(ann, dict) else None
        length = ann.get(sigmf.SAMPLE_COUNT_KEY, 0) if isinstance(ann, dict) else None
        if not isinstance(start, int) or not isinstance(length, int) or start < 0 or length < 0:
            raise InputError(f"{meta_path}: annotation {ann!r} has no valid sample_start/sample_count")
        if start + length > count:
            raise InputError(f"{data_path}: holds {count} samples but an annotation ends at {start + length}; "
                             "the data file is truncated")
    captures = metadata.get("captures") or [{}]
    freq = captures[0].get(sigmf.FREQUENCY_KEY) if isinstance(captures[0], dict) else None
    return Recording(samples.astype(np.complex64), float(rate), None if freq is None else float(freq), datatype,
                     glob.get(sigmf.HW_KEY), glob.get(sigmf.DESCRIPTION_KEY), annotations)


class SigMFSink(Radio):
    """A transmit-only Radio that writes what it is given to a SigMF recording on close()."""

    hardware = "SigMF file"

    def __init__(self, base: str | os.PathLike, sample_rate: float, center_frequency: float,
                 hardware: str = "meg-phy frame generator", description: str = ""):
        self.base = base_path(base)
        self._rate, self._freq = float(sample_rate), float(center_frequency)
        self._hardware, self._description = hardware, description
        self._chunks: list[np.ndarray] = []
        self._annotations: list[tuple[int, int, dict]] = []
        self._length = 0
        self.meta_path: Path | None = None

    @property
    def sample_rate(self) -> float:
        return self._rate

    @property
    def center_frequency(self) -> float:
        return self._freq

    def transmit(self, samples: np.ndarray, cyclic: bool = False) -> None:
        x = check_samples(samples)
        self._chunks.append(x)
        self._length += x.size

    def annotate(self, start: int, length: int, info: dict) -> None:
        """Mark samples [start, start+length) of what was transmitted so far or next (e.g. one frame)."""
        self._annotations.append((start, length, info))

    @property
    def num_samples(self) -> int:
        return self._length

    def receive(self, num_samples: int) -> np.ndarray:
        raise InputError("a SigMF sink only records; replay a recording with --radio sigmf --in BASE")

    def close(self) -> None:
        if self._chunks and self.meta_path is None:
            data = np.concatenate(self._chunks)
            self.meta_path = write_recording(self.base, data, self._rate, self._freq, self._hardware,
                                             self._annotations, self._description)


class SigMFSource(Radio):
    """A receive-only Radio replaying a recording: receive(n) returns the next n samples (zeros past the end)."""

    def __init__(self, path: str | os.PathLike):
        self.recording = read_recording(path)
        self.hardware = self.recording.hardware or "SigMF recording"
        self._pos = 0

    @property
    def sample_rate(self) -> float:
        return self.recording.sample_rate

    @property
    def center_frequency(self) -> float:
        return self.recording.center_frequency or 0.0

    @property
    def num_samples(self) -> int:
        return self.recording.samples.size

    @property
    def remaining(self) -> int:
        return max(0, self.num_samples - self._pos)

    def transmit(self, samples: np.ndarray, cyclic: bool = False) -> None:
        raise InputError("a SigMF recording is replayed, not transmitted to; use --radio sim or pluto to send")

    def receive(self, num_samples: int) -> np.ndarray:
        n = check_count(num_samples)
        out = np.zeros(n, np.complex64)
        chunk = self.recording.samples[self._pos:self._pos + n]
        out[:chunk.size] = chunk
        self._pos += n
        return out


class RecordingRadio(Radio):
    """Wraps a radio and records everything it transmits and receives (`--record DIR`): tx and rx SigMF."""

    def __init__(self, radio: Radio, folder: str | os.PathLike):
        self.radio = radio
        self.folder = Path(folder)
        self.hardware = radio.hardware
        self._tx = SigMFSink(self.folder / "tx", radio.sample_rate, radio.center_frequency, radio.hardware,
                             "transmitted samples")
        self._rx = SigMFSink(self.folder / "rx", radio.sample_rate, radio.center_frequency, radio.hardware,
                             "received samples")

    @property
    def sample_rate(self) -> float:
        return self.radio.sample_rate

    @property
    def center_frequency(self) -> float:
        return self.radio.center_frequency

    @property
    def cyclic_tx(self) -> bool:
        return self.radio.cyclic_tx

    def reseed(self, seed: int) -> None:
        self.radio.reseed(seed)

    def annotate_tx(self, start: int, length: int, info: dict) -> None:
        self._tx.annotate(self._tx.num_samples + start, length, info)

    def annotate_rx(self, start: int, length: int, info: dict) -> None:
        """Mark a frame found in the most recent capture (start relative to that capture)."""
        self._rx.annotate(self._rx.num_samples - self._last_rx + start, length, info)

    def transmit(self, samples: np.ndarray, cyclic: bool = False) -> None:
        self.radio.transmit(samples, cyclic)
        self._tx.transmit(samples)

    def receive(self, num_samples: int) -> np.ndarray:
        y = self.radio.receive(num_samples)
        self._last_rx = y.size
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        self._rx.transmit(y / peak if peak > 1 else y)
        return y

    def stop_transmit(self) -> None:
        self.radio.stop_transmit()

    def close(self) -> None:
        try:
            self.radio.close()
        finally:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._tx.close()
            self._rx.close()
