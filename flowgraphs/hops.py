"""A hop: one transmission over one link (uplink, downlink or backhaul), with its own link configuration.

A hop moves bytes (digital) or real values (analog) through a link object that has the link_models
interface: `send_bytes(bytes) -> (bytes, stats)` and `send_values(tensor) -> (est, noise_var, stats)`.
That is a `link_models.DigitalLink` / `AnalogLink` (simulation) or a radio link (over the air); the hop
does not care which. It gets its link from a `LinkFactory` (spec, seed) -> link, normally `Session.link`,
which hands out a link built once per configuration and reseeded for this hop.

Digital payloads carry a CRC: the hop hands what arrived to the payload's decoder, and when the decoder
rejects it the payload is sent again, up to `max_attempts` tries in all, every try counted on air. If the
last try fails too, the hop says so (`delivered = False`) and returns None; the protocol decides whether
it can proceed with something else. Nothing is ever reported as delivered that was not.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import torch

from flowgraphs.config import LinkSpec
from meg_common.errors import InputError

PAYLOADS = ("seed", "sketch", "image", "prompt")
T = TypeVar("T")


@dataclass
class HopRecord:
    """What one hop put on air and how it went; the fields of result.json's `hops` (None = does not apply)."""

    name: str
    src: str
    dst: str
    direction: str
    payload: str
    scheme: str
    channel: str
    bits: int | None
    """Payload bits on air, summed over attempts (digital: the payload bytes; analog: side information)."""
    values: int | None
    """Analog: real values sent (two per channel symbol); digital: None."""
    symbols: int
    """Channel symbols (resource elements incl. pilots and cyclic prefix) summed over attempts."""
    airtime_s: float
    snr_db: float | None
    snr_est_db: float | None
    ber: float | None
    bler: float | None
    noise_var: float | None
    attempts: int
    delivered: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}


LinkFactory = Callable[[LinkSpec, int], Any]
"""(spec, seed) -> a link object with send_bytes/send_values."""


class Hop:
    """One transmission from `src` to `dst` carrying one payload kind over one configured link."""

    def __init__(self, name: str, src: str, dst: str, payload: str, spec: LinkSpec, seed: int,
                 link_factory: LinkFactory, on_record: Callable[[HopRecord], None] | None = None):
        if payload not in PAYLOADS:
            raise InputError(f"hop {name}: payload {payload!r} is not one of {', '.join(PAYLOADS)}")
        self.name, self.src, self.dst, self.payload = name, src, dst, payload
        self.spec, self.seed = spec, seed
        self.direction = direction_of(src, dst)
        self._factory = link_factory
        self._on_record = on_record or (lambda record: None)

    def send_bytes(self, data: bytes, decode: Callable[[bytes], T]) -> tuple[T | None, HopRecord]:
        """Send `data` until `decode(received)` accepts it (it raises on a CRC or format error) or tries run out."""
        if not data:
            raise InputError(f"hop {self.name}: empty payload; nothing to send")
        link = self._factory(self.spec, self.seed)
        stats: list[dict[str, Any]] = []
        result: T | None = None
        delivered = False
        for _ in range(self.spec.max_attempts):
            received, s = link.send_bytes(data)
            stats.append(_stats_dict(s))
            try:
                result = decode(received)
                delivered = True
                break
            except (InputError, ValueError, OSError, zlib.error):
                continue
        record = self._record(stats, delivered, analog=False)
        self._on_record(record)
        return result, record

    def send_values(self, values: torch.Tensor, side: bytes | None = None,
                    decode_side: Callable[[bytes], T] | None = None) -> tuple[torch.Tensor, torch.Tensor, HopRecord]:
        """Send real values once (analog: no CRC, no retransmission); returns estimates and their noise variance.

        `side`, when given, is side information that goes digitally on the same hop (with CRC and
        retries, decoded by `decode_side`); its cost is added to this hop's record, and the hop is
        `delivered` only if it arrived. Without it the side information is session state shared in advance
        (the value scale and count travel in the analog link's accounted 64-bit header).
        """
        link = self._factory(self.spec, self.seed)
        flat = values.detach().reshape(-1).float()
        est, noise_var, s = link.send_values(flat)
        noise_var = torch.as_tensor(noise_var, dtype=torch.float32)
        stats, delivered = [_stats_dict(s)], True
        if side is not None:
            side_link = self._factory(replace(self.spec, scheme="digital"), self.seed + 1)
            delivered = False
            for _ in range(self.spec.max_attempts):
                received, s = side_link.send_bytes(side)
                stats.append(_stats_dict(s))
                try:
                    (decode_side or (lambda b: b))(received)
                    delivered = True
                    break
                except (InputError, ValueError):
                    continue
        record = self._record(stats, delivered=delivered, analog=True)
        record.values = int(flat.numel())
        record.noise_var = float(noise_var.mean())
        self._on_record(record)
        return est.reshape(values.shape).to(values.dtype), noise_var.reshape(-1), record

    def _record(self, stats: list[dict[str, Any]], delivered: bool, analog: bool) -> HopRecord:
        def total(key: str, among: list[dict[str, Any]] = stats) -> float:
            return float(sum(s.get(key) or 0 for s in among))

        digital = [s for s in stats if s.get("codewords")]
        ests = [s["snr_est_db"] for s in stats if _finite_or_none(s.get("snr_est_db")) is not None]
        return HopRecord(
            name=self.name, src=self.src, dst=self.dst, direction=self.direction, payload=self.payload,
            scheme="analog" if analog else "digital", channel=self.spec.channel,
            bits=int(total("payload_bits")), values=None,
            symbols=int(total("total_symbols")), airtime_s=total("airtime_s"),
            snr_db=None if self.spec.channel == "ideal" else float(self.spec.snr_db),
            snr_est_db=float(sum(ests) / len(ests)) if ests else None,
            ber=_ratio(total("bit_errors", digital), total("payload_bits", digital)) if digital else None,
            bler=_ratio(total("block_errors", digital), total("codewords", digital)) if digital else None,
            noise_var=None, attempts=max(1, len(digital)), delivered=delivered,
        )


def direction_of(src: str, dst: str) -> str:
    if src == "UE" and dst.startswith("ES"):
        return "uplink"
    if src.startswith("ES") and dst == "UE":
        return "downlink"
    if src.startswith("ES") and dst.startswith("ES") and src != dst:
        return "backhaul"
    raise InputError(f"no hop from {src} to {dst}; hops join the UE and an ES, or two different ESs")


def build_link(spec: LinkSpec):
    """A new link_models link for this hop's configuration (`spec.link_config()`), its pilots drawn with seed 0.

    Building a link (Sionna's 5G LDPC code above all) costs more than sending a small payload through it:
    `flowgraphs.session.Session.link` builds one per configuration and reseeds it for every hop.
    """
    from link_models import AnalogLink, DigitalLink

    return (AnalogLink if spec.scheme == "analog" else DigitalLink)(spec.link_config(), seed=0)


def simulated_link(spec: LinkSpec, seed: int):
    """A link for one hop, built anew and seeded with `seed` (the same draws as a session's reused link)."""
    link = build_link(spec)
    link.reseed(seed)
    return link


def _stats_dict(stats: Any) -> dict[str, Any]:
    return stats.to_dict() if hasattr(stats, "to_dict") else dict(stats)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
