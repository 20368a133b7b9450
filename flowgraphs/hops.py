"""A hop: one transmission over one link (uplink, downlink or backhaul), with its own link configuration.

A hop moves bytes (digital) or real values (analog) through a link object that has the link_models
interface: `send_bytes(bytes) -> (bytes, stats)` and `send_values(tensor) -> (est, noise_var, stats)`.
That is a `link_models.DigitalLink` / `AnalogLink` (simulation) or a radio link (over the air); the hop
does not care which. It gets its link from a `LinkFactory` (spec, seed) -> link, normally `Session.link`,
which hands out a link built once per configuration and reseeded for this hop.

Backhaul hops are wired by default (`link_models.wired.WiredLink`: error-free, no symbols on air, counted
in bits and transfer time); the record says `medium = "wired"`. A `Broadcast` is one uplink transmission
that several receivers hear, each through its own link draw (own SNR, noise and decoding): one record per
receiver, and the transmission's cost (bits, symbols, airtime) is carried by the first receiver's record
only, the others say `broadcast_of = <that hop>`, so sums over records count the air once.

Digital payloads carry a CRC: the hop hands what arrived to the payload's decoder. A link that does HARQ
itself (`link.harq`: a DigitalLink with max_transmissions > 1, the default for digital hops, see LinkSpec.harq)
gets the payload once and retransmits failed codewords with chase combining, up to `max_attempts`
transmissions each; any other link (a radio link, `harq = false`) gets the whole payload again when the
decoder rejects it, up to `max_attempts` tries. Every transmission is counted on air. If the payload is still
corrupt the hop says so (`delivered = False`) and returns None; the protocol decides whether it can proceed
with something else. Nothing is ever reported as delivered that was not. Digital records carry the MCS the
link used (`mcs_index`, `modulation`, `code_rate`) and `transmissions` (HARQ: the most any codeword needed).
A `capacity` hop (link_models.capacity.CapacityLink) moves digital payloads over the fewest channel uses the
channel's capacity allows; a `softcast` hop is an analog hop whose images go as SoftCast (flowgraphs.stages).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import torch

from flowgraphs.config import LinkSpec
from meg_common.errors import InputError
from meg_common.vocabulary import Scheme, effective_snr_db

PAYLOADS = ("seed", "sketch", "image", "prompt", "border", "control")
"""border: latent tile values the ESs of a parallel protocol exchange during joint denoising; control: a small
digital message (a noise seed and the schedule that reproduces a run) on the hop's robust control MCS."""
CONTROL_MCS = {"mcs": "table", "mcs_table": 1}
"""Control messages (and the side information of analog payloads) go digitally with HARQ at the MCS the
shipped BLER table gives for the hop's SNR (open loop, as a base station picks a control channel's
aggregation level from the reported channel quality; below table 1, table 3's low-rate rows). Measured
through the link, a 24-byte message, 40 tries per point: AWGN -10 / 0 / 10 dB: 40/40 delivered with about
5540 / 800 / 360 channel symbols (table 3 MCS 0, MCS 5, MCS 17); TDL-A: 40/40 with about 6600 / 1270 / 640."""
SHARED_WAVEFORM = ("channel", "snr_db", "estimator")
"""The settings in which the receivers of one broadcast may differ (the rest is one waveform on air)."""
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
    medium: str = "air"
    """'air' (a radio link: uplink, downlink, wireless backhaul) or 'wired' (backhaul by default)."""
    transfer_s: float = 0.0
    """Wired: bits / rate + latency, summed over tries; 0 on air (see airtime_s)."""
    broadcast_of: str | None = None
    """A receiver of a broadcast whose transmission is accounted on the named hop (its bits, symbols and
    airtime are 0 here); None: this hop carries its own transmission."""
    mcs_index: int | None = None
    """Digital: the TS 38.214 MCS of the payload's link (None: modulation and code as configured)."""
    mcs_table: int | None = None
    """Digital: the TS 38.214 MCS table that `mcs_index` indexes (3 where `auto` used its low-rate rows)."""
    modulation: str | None = None
    """Digital: the constellation of the payload's link."""
    code_rate: float | None = None
    """Digital: information bits per coded bit sent (k / n)."""
    transmissions: int | None = None
    """Digital: transmissions on air, summed over payload tries (with HARQ: the most any codeword needed)."""
    latency_slots: int | None = None
    """Digital over a scheduled link (OLLA, ARQ, continuous fading): slots (frames) from the first
    transmission to the last codeword decoded, summed over payload tries; None elsewhere."""
    olla_offset_db: float | None = None
    """Digital with mcs 'auto': OLLA's SNR offset after the payload (link_models.state)."""
    olla_offset_start_db: float | None = None
    """... and before it (a UE resumed mid-session: the warm-up's converged offset; flowgraphs.session)."""
    first_tx_nacks: int | None = None
    """Digital over a scheduled link: transport blocks whose first transmission failed ..."""
    first_tx_blocks: int | None = None
    """... of the transport blocks sent for the first time (first-transmission BLER = nacks / blocks)."""
    arq_retransmissions: int | None = None
    """Digital with ARQ: codewords RLC sent again after HARQ failed (counted on air in symbols)."""
    budget: dict[str, Any] | None = None
    """A hop with a channel-use budget (`channel_uses`): `uses` (the budget), `spent` (the uses charged to it:
    coded symbols of every codeword transmission, or values / 2), `fits` (False: nothing fitted, nothing
    was sent), what the transfer chose to fit (`setting`: a seed format, an image quality, SoftCast's
    chunks; `side_bits`), an analog payload's `copies` per value, the digital part's `transmissions`, and the
    fit rule's `mcs_index` and `planning_bler`. None (and absent from `to_dict`) without a budget."""

    def to_dict(self) -> dict[str, Any]:
        data = {k: _finite_or_none(v) for k, v in asdict(self).items()}
        if self.budget is None:
            del data["budget"]
        return data


LinkFactory = Callable[[LinkSpec, int], Any]
"""(spec, seed) -> a link object with send_bytes/send_values."""


class Hop:
    """One transmission from `src` to `dst` carrying one payload kind over one configured link."""

    def __init__(self, name: str, src: str, dst: str, payload: str, spec: LinkSpec, seed: int,
                 link_factory: LinkFactory, on_record: Callable[[HopRecord], None] | None = None,
                 link_state: Callable[[], Any] | None = None):
        if payload not in PAYLOADS:
            raise InputError(f"hop {name}: payload {payload!r} is not one of {', '.join(PAYLOADS)}")
        self.name, self.src, self.dst, self.payload = name, src, dst, payload
        self.spec, self.seed = spec, seed
        self.direction = direction_of(src, dst)
        self._factory = link_factory
        self._on_record = on_record or (lambda record: None)
        self._link_state = link_state or (lambda: None)

    def link_state(self):
        """The UE's state on this hop's link (a link_models.state.LinkState: OLLA offset, fading clock),
        kept by the run's ledger across its payloads on the same hop and configuration; None: a session of
        the payload's own."""
        return self._link_state()

    def link(self):
        """This hop's link, as its factory hands it out for the hop's configuration and seed."""
        return self._factory(self.spec, self.seed)

    def budget_plan(self):
        """The fit rule of this hop's channel-use budget (link_models.budget.plan_of: what fits in N uses): its
        own link's on a digital or capacity carrier, its side hop's (the control link that carries an analog
        payload's side information) on an analog one."""
        from link_models.budget import plan_of

        return plan_of((self.side_hop() if self.spec.carrier == Scheme.ANALOG else self).link())

    def side_hop(self) -> Hop:
        """The hop that carries this hop's digital side information: same ends, the control link
        (`control_spec`: digital at CONTROL_MCS; wired stays wired), the next seed."""
        return Hop(self.name, self.src, self.dst, self.payload, control_spec(self.spec), self.seed + 1,
                   self._factory, link_state=self._link_state)

    def send_bytes(self, data: bytes, decode: Callable[[bytes], T]) -> tuple[T | None, HopRecord]:
        """Send `data` until `decode(received)` accepts it (it raises on a CRC or format error) or tries run out."""
        return send_bytes_together([self], [data], decode)[0]

    def send_values(self, values: torch.Tensor, side: bytes | None = None,
                    decode_side: Callable[[bytes], T] | None = None) -> tuple[torch.Tensor, torch.Tensor, HopRecord]:
        """Send real values once (analog: no CRC, no retransmission); returns estimates and their noise variance.

        `side`, when given, is side information that goes digitally on the same hop (with CRC and
        retries, decoded by `decode_side`); its cost is added to this hop's record, and the hop is
        `delivered` only if it arrived. Without it the side information is session state shared in advance
        (the value scale and count travel in the analog link's accounted 64-bit header). A hop whose every
        frame went missing (over a radio) is not delivered either; one that lost some frames is (their
        values come back as nothing received, the link's rule).
        """
        return send_values_together([self], [values], [side], decode_side)[0]

    def _record(self, stats: list[dict[str, Any]], delivered: bool, analog: bool) -> HopRecord:
        def total(key: str, among: list[dict[str, Any]] = stats) -> float:
            return float(sum(s.get(key) or 0 for s in among))

        def _sum_or_none(among: list[dict[str, Any]], key: str) -> int | None:
            """The sum of `key` over the tries that report it (None when none does: a link without it)."""
            values = [s[key] for s in among if s.get(key) is not None]
            return int(sum(values)) if values else None

        if self.spec.carrier == Scheme.WIRED:
            return HopRecord(
                name=self.name, src=self.src, dst=self.dst, direction=self.direction, payload=self.payload,
                scheme="wired", channel="wired", bits=int(total("payload_bits")), values=None, symbols=0,
                airtime_s=0.0, snr_db=None, snr_est_db=None, ber=None if analog else 0.0, bler=None, noise_var=None,
                attempts=len(stats), delivered=delivered, medium="wired", transfer_s=total("transfer_s"))
        digital = [s for s in stats if s.get("codewords")]
        ests = [s["snr_est_db"] for s in stats if _finite_or_none(s.get("snr_est_db")) is not None]
        tries = int(sum(s.get("transmissions") or 1 for s in digital))
        last = digital[-1] if digital and not analog else {}
        return HopRecord(
            name=self.name, src=self.src, dst=self.dst, direction=self.direction, payload=self.payload,
            scheme=("softcast" if self.spec.scheme == "softcast" else "analog") if analog
            else ("capacity" if self.spec.scheme == "capacity" else "digital"),
            channel=self.spec.channel, mcs_index=last.get("mcs_index"),
            mcs_table=last.get("mcs_table"), modulation=last.get("modulation"),
            code_rate=last.get("code_rate"), transmissions=tries if last else None,
            bits=int(total("payload_bits")), values=None,
            symbols=int(total("total_symbols")), airtime_s=total("airtime_s"),
            snr_db=effective_snr_db(self.spec.channel, self.spec.snr_db),
            snr_est_db=float(sum(ests) / len(ests)) if ests else None,
            # an analog hop's digital part is its side information: no bit error rate of the values to report
            ber=_ratio(total("bit_errors", digital), total("payload_bits", digital)) if digital and not analog else None,
            bler=_ratio(total("block_errors", digital), total("codewords", digital)) if digital and not analog else None,
            noise_var=None, attempts=max(1, tries), delivered=delivered,
            latency_slots=_sum_or_none(digital, "latency_slots") if not analog else None,
            olla_offset_db=last.get("olla_offset_db"),
            olla_offset_start_db=digital[0].get("olla_offset_start_db") if last else None,
            first_tx_nacks=_sum_or_none(digital, "first_tx_nacks") if not analog else None,
            first_tx_blocks=_sum_or_none(digital, "first_tx_blocks") if not analog else None,
            arq_retransmissions=_sum_or_none(digital, "arq_retransmissions") if not analog else None,
        )


class Broadcast:
    """One transmission from one sender heard by several receivers (`hops`, one per receiver, same payload).

    Each receiver decodes its own draw of the channel (its hop's link, seed, SNR); the waveform (scheme,
    modulation, code, frame) is one, so the receivers' settings may differ only in SHARED_WAVEFORM. A
    digital payload is sent again until every receiver has it or `max_attempts` transmissions are spent:
    the first receiver's record carries the transmissions (attempts, bits, symbols, airtime, counted once),
    the others carry their own outcome (attempts = tries until they decoded it) and no cost.
    """

    def __init__(self, hops: list[Hop], on_record: Callable[[HopRecord], None] | None = None):
        if not hops:
            raise InputError("a broadcast needs at least one receiver")
        first = hops[0].spec
        for hop in hops[1:]:
            differ = [k for k in LinkSpec.field_names() if k not in SHARED_WAVEFORM
                      and getattr(hop.spec, k) != getattr(first, k)]
            if differ or hop.payload != hops[0].payload or hop.src != hops[0].src:
                raise InputError(f"broadcast {hops[0].name} / {hop.name}: the receivers of one transmission may "
                                 f"differ only in {', '.join(SHARED_WAVEFORM)}, not {', '.join(differ) or 'payload'}; "
                                 f"set the others in [{hop.direction}] or turn broadcast off (broadcast = false)")
        self.hops = hops
        self._on_record = on_record or (lambda record: None)

    @property
    def spec(self) -> LinkSpec:
        return self.hops[0].spec

    def send_bytes(self, data: bytes, decode: Callable[[bytes], T]) -> list[T | None]:
        """What each receiver decoded (None where it never got the payload intact)."""
        return broadcast_bytes([self], [data], decode)[0]

    def send_values(self, values: torch.Tensor, side: bytes | None = None,
                    decode_side: Callable[[bytes], T] | None = None) -> list[tuple[torch.Tensor, torch.Tensor, HopRecord]]:
        """(estimates, noise variance, record) at each receiver (one analog transmission)."""
        return broadcast_values([self], [values], [side], decode_side)[0]

    def _account(self, records: list[HopRecord], transmissions: int | None) -> None:
        carrier = records[0]
        if transmissions is not None and transmissions != carrier.attempts:
            scale = transmissions / carrier.attempts  # every try of one payload costs the same
            carrier.bits = int(round((carrier.bits or 0) * scale))
            carrier.symbols = int(round(carrier.symbols * scale))
            carrier.airtime_s *= scale
            carrier.transfer_s *= scale
            carrier.attempts = transmissions
        for record in records[1:]:
            record.bits, record.symbols, record.airtime_s, record.transfer_s = 0, 0, 0.0, 0.0
            record.broadcast_of = carrier.name
        for record in records:
            self._on_record(record)


DECODE_ERRORS = (InputError, ValueError, OSError, zlib.error)
"""What a payload decoder raises for a payload that did not arrive intact (CRC or format)."""


class _Lane:
    """One hop's payload on its way: the hop's link, the generator its draws come from, the tries left, and
    the UE's link state where the link keeps one (outer-loop adaptation, ARQ, continuous fading)."""

    def __init__(self, index: int, link: Any, generator: torch.Generator | None, tries: int, state: Any = None):
        self.index, self.link, self.generator, self.tries, self.state = index, link, generator, tries, state


def _lane(index: int, hop: Hop, kind: str) -> _Lane:
    """The hop's link as its factory hands it out. A link with batched sends gets a generator of its own for
    this hop, cloned from the link's (the hop's seed), so the payload draws what it would alone whatever
    else shares the call; any other link (generator None) must be used at once, before the factory hands
    the same link to another hop."""
    link = hop.link()
    tries = 1 if (kind == "values" or getattr(link, "harq", False)) else hop.spec.max_attempts
    if not hasattr(link, f"send_{kind}_many"):
        return _Lane(index, link, None, tries)
    own = torch.Generator(device=link.generator.device)
    own.set_state(link.generator.get_state())
    scheduled = kind == "bytes" and getattr(getattr(link, "cfg", None), "scheduled", False)
    return _Lane(index, link, own, tries, hop.link_state() if scheduled else None)


def _by_link(lanes: list[_Lane]) -> list[list[_Lane]]:
    groups: dict[int, list[_Lane]] = {}
    for lane in lanes:
        groups.setdefault(id(lane.link), []).append(lane)
    return list(groups.values())


def _bytes_rounds(hops: Sequence[Hop], payloads: Sequence[bytes | None], decode: Callable[[bytes], Any],
                  limits: Sequence[int | None] | None = None) -> list[tuple[Any, bool, list[dict[str, Any]]]]:
    """Every hop sends its payload until `decode` accepts what arrived or its tries run out: per hop (result,
    delivered, the stats of every transmission). A payload None (it did not fit its budget) is not sent.

    `limits[i]` (default: each hop's `channel_uses`): the channel uses hop i's payload may spend (its link's
    HARQ under a budget, link_models.budget); each transmission's stats then carry `budget_spent`, and a
    codeword that never passed its CRC leaves the payload undelivered.

    The rounds are explicit: in each, the hops still sending on a link with batched sends go in one
    `send_bytes_many` call per link (each payload drawing from its own hop's generator: bit for bit what it
    would draw alone); a link that retransmits by itself (HARQ) gets one round. A link without batched sends
    (a radio, a wired or a capacity link) takes its hop's tries one by one, right after the factory hands it
    out, so its own random stream is the hop's."""
    for hop, data in zip(hops, payloads, strict=True):
        if data is not None and not data:
            raise InputError(f"hop {hop.name}: empty payload; nothing to send")
    limits = [hop.spec.channel_uses for hop in hops] if limits is None else list(limits)
    results: list[Any] = [None] * len(hops)
    delivered = [False] * len(hops)
    stats: list[list[dict[str, Any]]] = [[] for _ in hops]

    def take(lane: _Lane, received: bytes, s: Any) -> None:
        stats[lane.index].append(_stats_dict(s))
        lane.tries -= 1
        if limits[lane.index] is not None:
            stats[lane.index][-1]["budget_spent"] = _budget_spent(lane.link, s)
            if getattr(s, "crc_failures", 0):
                return
        try:
            results[lane.index], delivered[lane.index] = decode(received), True
        except DECODE_ERRORS:
            pass

    together = []
    for i, hop in enumerate(hops):
        if payloads[i] is None:
            continue
        lane = _lane(i, hop, "bytes")
        if lane.generator is not None:
            together.append(lane)
            continue
        while lane.tries and not delivered[i]:
            take(lane, *lane.link.send_bytes(payloads[i]))
    while together:
        for group in _by_link(together):
            states = [lane.state for lane in group]
            budgets = [limits[lane.index] for lane in group]
            sent = group[0].link.send_bytes_many([payloads[lane.index] for lane in group],
                                                 [lane.generator for lane in group],
                                                 **({"states": states} if any(states) else {}),
                                                 **({"budgets": budgets} if any(b is not None for b in budgets) else {}))
            for lane, (received, s) in zip(group, sent, strict=True):
                take(lane, received, s)
        together = [lane for lane in together if lane.tries and not delivered[lane.index]]
    return [(r, d, s) for r, d, s in zip(results, delivered, stats, strict=True)]


def send_bytes_together(hops: Sequence[Hop], payloads: Sequence[bytes | None], decode: Callable[[bytes], T],
                        notes: Sequence[dict[str, Any] | None] | None = None) -> list[tuple[T | None, HopRecord]]:
    """`Hop.send_bytes` of many hops at once (the tasks of a batch): per hop (what decoded or None, record).
    A payload None did not fit its hop's budget (nothing is sent); `notes[i]`: what the transfer says of
    payload i's budget (HopRecord.budget)."""
    out = []
    notes = notes or [None] * len(hops)
    for hop, note, (result, delivered, stats) in zip(hops, notes, _bytes_rounds(hops, payloads, decode),
                                                     strict=True):
        record = hop._record(stats, delivered, analog=False)
        _note_budget(record, hop, note, stats)
        hop._on_record(record)
        out.append((result if delivered else None, record))
    return out


def send_values_together(hops: Sequence[Hop], values: Sequence[torch.Tensor | None], sides: Sequence[bytes | None],
                         decode_side: Callable[[bytes], Any] | None = None,
                         notes: Sequence[dict[str, Any] | None] | None = None
                         ) -> list[tuple[torch.Tensor | None, torch.Tensor | None, HopRecord]]:
    """`Hop.send_values` of many hops at once: the side information that goes digitally first, in rounds of
    its own (`_bytes_rounds`), then the values in one round (one `send_values_many` call per link where the
    link has it); per hop (estimates, per-value noise variance, record).

    With a budget (`channel_uses` N) the side information may spend what the values leave it (N - V/2) and
    the values take every use it left, repeated and combined (link_models.budget.repetition, combine); if
    the side information was lost, the values are not sent (its HARQ feedback tells the sender). Values None
    did not fit (nothing is sent); a hop that sent no values gives (None, None, record)."""
    from link_models import budget

    flat = [None if v is None else v.detach().reshape(-1).float() for v in values]
    notes = notes or [None] * len(hops)
    limits = [None if f is None else hop.spec.channel_uses for hop, f in zip(hops, flat, strict=True)]
    with_side = [i for i, side in enumerate(sides) if side is not None and flat[i] is not None]
    side_out = dict(zip(with_side, _bytes_rounds(
        [hops[i].side_hop() for i in with_side], [sides[i] for i in with_side], decode_side or (lambda b: b),
        [None if limits[i] is None else limits[i] - math.ceil(flat[i].numel() / 2) for i in with_side]), strict=True))
    sent: list[Any] = [None] * len(hops)
    index: list[torch.Tensor | None] = [None] * len(hops)
    together = []
    for i, hop in enumerate(hops):
        if flat[i] is None or (limits[i] is not None and i in side_out and not side_out[i][1]):
            continue
        x = flat[i]
        if limits[i] is not None:
            spent = sum(s.get("budget_spent", 0) for s in side_out[i][2]) if i in side_out else 0
            index[i] = budget.repetition(x.numel(), limits[i] - spent)
            x = x[index[i]]
        lane = _lane(i, hop, "values")
        if lane.generator is None:
            sent[i] = lane.link.send_values(x)
        else:
            together.append((lane, x))
    payload = {id(lane): x for lane, x in together}
    for group in _by_link([lane for lane, _ in together]):
        out = group[0].link.send_values_many([payload[id(lane)] for lane in group], [lane.generator for lane in group])
        for lane, got in zip(group, out, strict=True):
            sent[lane.index] = got
    out = []
    for i, hop in enumerate(hops):
        side_stats = side_out[i][2] if i in side_out else []
        if sent[i] is None:   # nothing fitted, or (with a budget) the side information was lost
            record = hop._record(side_stats, delivered=False, analog=True)
            record.values = None if flat[i] is None else int(flat[i].numel())
            _note_budget(record, hop, notes[i], side_stats)
            hop._on_record(record)
            out.append((None, None, record))
            continue
        est, noise_var, s = sent[i]
        noise_var = torch.as_tensor(noise_var, dtype=torch.float32)
        copies = None
        if index[i] is not None:
            est, noise_var, copies = budget.combine(est, noise_var, index[i], flat[i].numel())
        # nothing arrived (a radio's receiver found none of the frames): the values are not delivered
        stats, delivered = [_stats_dict(s)], not (s.frames and s.frames_lost >= s.frames)
        if index[i] is not None:
            stats[0]["budget_spent"] = index[i].numel() // 2
        if i in side_out:   # the link's header (value scale and count) went for real inside the side message
            _, delivered, _ = side_out[i]
            values_bits = (stats[0].get("payload_bits") or 0) - (stats[0].get("header_bits") or 0)
            stats = [{**stats[0], "payload_bits": values_bits}] + side_stats
        record = hop._record(stats, delivered=delivered, analog=True)
        record.values = int(flat[i].numel())
        record.noise_var = float(noise_var.mean())
        _note_budget(record, hop, notes[i], stats, copies)
        hop._on_record(record)
        out.append((est.reshape(values[i].shape).to(values[i].dtype), noise_var.reshape(-1), record))
    return out


def _budget_spent(link: Any, stats: Any) -> int:
    """Channel uses a digital transmission charged to its budget (link_models.budget.uses_spent), or the
    symbols of a link without codewords (the capacity bound)."""
    from link_models.budget import uses_spent

    return uses_spent(link, stats) if hasattr(link, "uses_per_codeword") else int(stats.total_symbols)


def _note_budget(record: HopRecord, hop: Hop, note: dict[str, Any] | None, stats: list[dict[str, Any]],
                 copies: torch.Tensor | None = None) -> None:
    """HopRecord.budget of a hop with a channel-use budget: the budget, what was charged to it, what the
    transfer said (`note`), an analog payload's copies per value and its digital part's transmissions."""
    if hop.spec.channel_uses is None:
        return
    record.budget = {"uses": hop.spec.channel_uses, "fits": True, **(note or {}),
                     "spent": int(sum(s.get("budget_spent") or 0 for s in stats))}
    digital = [s for s in stats if s.get("codewords")]
    if digital:
        record.budget["transmissions"] = int(sum(s.get("transmissions") or 0 for s in digital))
    if copies is not None:
        record.budget["copies"] = round(float(copies.double().mean()), 4)


def broadcast_bytes(broadcasts: Sequence[Broadcast], payloads: Sequence[bytes | None], decode: Callable[[bytes], T],
                    notes: Sequence[dict[str, Any] | None] | None = None) -> list[list[T | None]]:
    """`Broadcast.send_bytes` of many broadcasts at once: every receiver's hop in the same rounds; per
    broadcast, what each receiver decoded (`notes`: per broadcast, what the transfer says of its budget)."""
    hops = [hop for b in broadcasts for hop in b.hops]
    notes = notes or [None] * len(broadcasts)
    sent = iter(send_bytes_together(hops, [p for b, p in zip(broadcasts, payloads, strict=True) for _ in b.hops],
                                    decode, [n for b, n in zip(broadcasts, notes, strict=True) for _ in b.hops]))
    out = []
    for b in broadcasts:
        outcomes = [next(sent) for _ in b.hops]
        b._account([record for _, record in outcomes], transmissions=max(r.attempts for _, r in outcomes))
        out.append([result for result, _ in outcomes])
    return out


def broadcast_values(broadcasts: Sequence[Broadcast], values: Sequence[torch.Tensor | None],
                     sides: Sequence[bytes | None], decode_side: Callable[[bytes], Any] | None = None,
                     notes: Sequence[dict[str, Any] | None] | None = None
                     ) -> list[list[tuple[torch.Tensor | None, torch.Tensor | None, HopRecord]]]:
    """`Broadcast.send_values` of many broadcasts at once; per broadcast, (estimates, noise variance, record)
    at each receiver (`notes`: per broadcast, what the transfer says of its budget)."""
    hops = [hop for b in broadcasts for hop in b.hops]
    notes = notes or [None] * len(broadcasts)
    pairs = [(v, side, n) for b, v, side, n in zip(broadcasts, values, sides, notes, strict=True) for _ in b.hops]
    sent = iter(send_values_together(hops, [v for v, _, _ in pairs], [side for _, side, _ in pairs], decode_side,
                                     [n for _, _, n in pairs]))
    out = []
    for b in broadcasts:
        outcomes = [next(sent) for _ in b.hops]
        b._account([record for *_, record in outcomes], transmissions=None)
        out.append(outcomes)
    return out


def control_spec(spec: LinkSpec) -> LinkSpec:
    """The hop's link for control messages: digital at CONTROL_MCS (a wired hop stays wired)."""
    if spec.carrier == Scheme.WIRED:
        return spec
    return replace(spec, scheme="digital", **CONTROL_MCS)


def direction_of(src: str, dst: str) -> str:
    if src == "UE" and dst.startswith("ES"):
        return "uplink"
    if src.startswith("ES") and dst == "UE":
        return "downlink"
    if src.startswith("ES") and dst.startswith("ES") and src != dst:
        return "backhaul"
    raise InputError(f"no hop from {src} to {dst}; hops join the UE and an ES, or two different ESs")


def build_link(spec: LinkSpec):
    """A new link_models link for this hop's configuration (`spec.link_config()`), its pilots drawn with seed 0;
    a `WiredLink` for a wired hop.

    Building a link (Sionna's 5G LDPC code above all) costs more than sending a small payload through it:
    `flowgraphs.session.Session.link` builds one per configuration and reseeds it for every hop.
    """
    from link_models import AnalogLink, DigitalLink

    if spec.carrier == Scheme.WIRED:
        from link_models.wired import WiredLink

        return WiredLink(spec.rate_bps, spec.latency_s)
    if spec.carrier == Scheme.CAPACITY:
        return capacity_link(spec)

    return (AnalogLink if spec.carrier == Scheme.ANALOG else DigitalLink)(spec.link_config(), seed=0)


def capacity_link(spec: LinkSpec):
    """The capacity bound as this hop's link: awgn and rayleigh at the hop's SNR; without noise (the ideal
    channel) awgn at meg_common.vocabulary.NOISELESS_SNR_DB, the bound needing a number. Under a channel-use
    budget every other channel too, as AWGN at its average SNR (an upper bound without transmitter CSI on a
    fading channel; link_models.budget.capacity_bits)."""
    from link_models.capacity import CapacityConfig, CapacityLink
    from meg_common.vocabulary import CAPACITY_CHANNELS, Channel, effective_snr_db, noiseless, numeric_snr_db

    if spec.channel not in (*CAPACITY_CHANNELS, Channel.IDEAL) and spec.channel_uses is None:
        raise InputError(f"scheme 'capacity' knows the capacity of {' and '.join(CAPACITY_CHANNELS)} (and ideal) "
                         f"channels, not '{spec.channel}'; use one of those or scheme 'digital'")
    snr_db = effective_snr_db(spec.channel, spec.snr_db)
    channel = spec.channel if spec.channel in CAPACITY_CHANNELS and not noiseless(snr_db) else Channel.AWGN.value
    snr = numeric_snr_db(snr_db)
    rate = spec.fft_size * spec.subcarrier_spacing_khz * 1e3  # resource elements per second of the OFDM links
    return CapacityLink(CapacityConfig(snr_db=snr, channel=channel, symbol_rate_hz=rate), seed=0)


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
