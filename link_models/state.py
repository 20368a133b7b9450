"""Per-UE link state: what a base station keeps about one UE's link between transmissions.

A link object (DigitalLink) is shared: flowgraphs builds one per configuration and hands it to every hop
with that configuration (Session.link), and a batched send carries the payloads of many tasks at once. So
what belongs to one UE's session cannot live in the link's attributes. It is a `LinkState`, passed with each
payload (`DigitalLink.send_bytes_many(payloads, seeds, states=...)`; `send_bytes(payload, state=...)`):

- `olla`: outer-loop link adaptation (`Olla`): the SNR offset and the last reported SNR;
- `fading`: the UE's time-correlated channel (link_models.fading.FadingState: model seed and clock);
- `history`: one `TbRecord` per transport block's first transmission (its MCS, the offset, the report,
  ACK/NACK), from which first-transmission BLER and the offset over time are read.

Rules: the state is the UE's, advanced by every send that carries it, in the order of the sends; a payload
given no state starts a session of its own (a new state, dropped afterwards); the payloads of one batched
call must carry different states (one UE sends one payload at a time on a link; InputError otherwise), so
`send_bytes_many` is bit for bit the same as `send_bytes` of each payload in turn with its state.

`Olla` is the rule of `sionna.sys.OuterLoopLinkAdaptation` (Pedersen et al.) for one user, as plain Python
numbers (tests/test_link_olla.py holds the two to the same offsets and MCSs on the same feedback): on ACK
the offset falls by delta_down = delta_up * target / (1 - target), on NACK it rises by delta_up, clipped to
[offset_min, offset_max]; the MCS is the inner loop's choice for (last reported SNR - offset). Only the
first transmission of a transport block moves the offset (the target is a first-transmission BLER).

A UE in the middle of its session (`warm_up`, `LinkState.resumed`): a task of a campaign is one payload or a
few of a UE whose session on the link began long before, and whose traffic is bursty: a payload now and then,
idle in between. `warm_up` runs such a session until OLLA has had `blocks` first-transmission feedbacks:
visits of one payload each, separated by idle times (RESUME_GAP_FRAMES, far beyond the coherence time at
pedestrian speed, so each visit sees its own fade; `idle`), each visit starting from a fresh CSI report,
OLLA's offset carried from visit to visit as a base station keeps it for a connected UE. `resumed(seed)` is
one more visit of that UE, all drawn from `seed`: its OLLA offset the warm-up's at a random one of its
transport blocks after the first third (the offset does not settle: it wanders around its converged mean,
so one snapshot shared by every task would bias all of them one way; each task draws its own from the
converged part), the same channel (model seed) advanced by an idle time, no history, and instead of a stale
report the UE's latest periodic CSI report: at its first send the scheduled link reports the wideband SNR of
the UE's channel `report_delay_frames` before the send (`resumed_report`; the true mean |h|^2 / N0 of that
slot, a CSI-RS measurement without the estimator's error; a flat channel reports the configured SNR).
Measured (CENTRALIZED's image downlink, 100 images a point, OLLA + ARQ, 3 km/h): a warm-up of one continuous
session, whose offset is tied to the fades it saw, left tasks at first-transmission BLERs of 0.05-0.43
(TDL-A/CDL-A at 10 and 20 dB); warmed up in visits, 0.10-0.14.
"""

from __future__ import annotations

import dataclasses
import math
import random

from link_models.fading import FadingState

RESUME_GAP_FRAMES = (1_000, 100_000)
"""A resumed task's idle time since the warm-up, uniform in [low, high) frames (0.5 s to 50 s at 30 kHz)."""
WARMUP_BURN_IN = 1 / 3
"""The share of a warm-up's transport blocks before OLLA's offset counts as converged (`resumed` draws from
the rest)."""
WARMUP_PAYLOAD_BYTES = 318
"""The warm-up's payloads: random bytes of the size of the hop tests' WebP image (link_models.olla_study)."""


@dataclasses.dataclass
class TbRecord:
    """One transport block's first transmission as OLLA saw it."""

    frame: int              # session clock (frames) when it went on air
    mcs_index: int
    mcs_table: int
    reported_snr_db: float  # the receiver's report the MCS was chosen from
    offset_db: float        # OLLA's offset when the MCS was chosen
    ack: bool | None = None  # first-transmission outcome (None until its feedback arrived)
    aggregation: int = 1     # slot aggregation factor (below the lowest MCS)


@dataclasses.dataclass
class Olla:
    """Outer-loop link adaptation for one UE (see the module doc)."""

    target: float = 0.1
    delta_up: float = 1.0
    offset_min: float = -20.0
    offset_max: float = 20.0
    offset_db: float = 0.0
    reported_snr_db: float | None = None
    """The last SNR the receiver reported (dB); None before the first report."""

    @property
    def delta_down(self) -> float:
        return self.delta_up * self.target / (1 - self.target)

    def feedback(self, ack: bool) -> None:
        """One HARQ feedback of a first transmission: the offset moves down on ACK, up on NACK."""
        step = -self.delta_down if ack else self.delta_up
        self.offset_db = min(max(self.offset_db + step, self.offset_min), self.offset_max)

    def report(self, snr_db: float) -> None:
        """A new SNR report from the receiver (ignored when not finite, as Sionna ignores non-positive SINR)."""
        if snr_db is not None and math.isfinite(snr_db):
            self.reported_snr_db = float(snr_db)

    def effective_snr_db(self, default_snr_db: float) -> float:
        """What the inner loop is asked for: the last report (or `default_snr_db` before one) minus the offset."""
        report = self.reported_snr_db if self.reported_snr_db is not None else default_snr_db
        return report - self.offset_db


@dataclasses.dataclass
class LinkState:
    """One UE's state on one link over its session (see the module doc)."""

    seed: int = 0
    """Seed of the UE's channel (time-correlated fading): the model parameters of its TDL/CDL."""
    olla: Olla = dataclasses.field(default_factory=Olla)
    fading: FadingState | None = None
    history: list[TbRecord] = dataclasses.field(default_factory=list)
    pending_reports: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    """(frame the estimate is usable from, SNR dB): receiver estimates not yet reported (report delay)."""
    resumed_report: bool = False
    """A resumed UE (`resumed`): its next send starts with the UE's latest periodic CSI report, the wideband
    SNR of its channel `report_delay_frames` before (link_models.scheduled), instead of a stale one."""

    def __post_init__(self) -> None:
        if self.fading is None:
            self.fading = FadingState(seed=int(self.seed))

    @property
    def clock(self) -> int:
        """Frames since the session began."""
        return self.fading.clock

    def advance(self, frames: int) -> None:
        self.fading.clock += int(frames)

    def deliver_reports(self) -> None:
        """Hand OLLA the estimates whose report delay has passed (in the order they were made)."""
        due = [r for r in self.pending_reports if r[0] <= self.clock]
        self.pending_reports = [r for r in self.pending_reports if r[0] > self.clock]
        for _, snr in due:
            self.olla.report(snr)

    def first_tx_bler(self, start: int = 0, stop: int | None = None) -> tuple[int, int]:
        """(NACKs, transport blocks) among first transmissions history[start:stop] with feedback."""
        acks = [r.ack for r in self.history[start:stop] if r.ack is not None]
        return sum(1 for a in acks if not a), len(acks)

    def idle(self, frames: int) -> None:
        """The UE idle for `frames` frames (no traffic on this link): its channel moves on, OLLA keeps its
        offset, the reports of before are stale; the next send starts with a fresh CSI report."""
        self.advance(frames)
        self.pending_reports = []
        self.olla.reported_snr_db = None
        self.resumed_report = True

    def resumed(self, seed: int) -> LinkState:
        """This UE later in its session (see the module doc): an OLLA offset drawn from the converged part of
        this state's history (its current offset without one), the same channel advanced by a random idle time
        (both from `seed`), no history, a fresh CSI report at its first send."""
        rng = random.Random(int(seed))
        low, high = RESUME_GAP_FRAMES
        gap = rng.randrange(low, high)
        converged = [r.offset_db for r in self.history[int(len(self.history) * WARMUP_BURN_IN):]]
        offset = converged[rng.randrange(len(converged))] if converged else self.olla.offset_db
        return LinkState(seed=self.seed, olla=dataclasses.replace(self.olla, offset_db=offset, reported_snr_db=None),
                         fading=FadingState(seed=self.fading.seed, clock=self.fading.clock + gap),
                         resumed_report=True)


def warm_up(link, blocks: int, seed: int, payload_bytes: int = WARMUP_PAYLOAD_BYTES) -> LinkState:
    """A bursty UE's session on a scheduled `link` (DigitalLink) run until `blocks` transport blocks had their
    first-transmission feedback: visits of one random payload of `payload_bytes` each, separated by idle
    times of RESUME_GAP_FRAMES (`LinkState.idle`: the channel decorrelates, each visit starts from a fresh CSI
    report, OLLA's offset carries on), as the tasks that resume from it will be sent; the link reseeded with
    `seed` (its channel seed too) and its generator given back as it was."""
    import numpy as np

    state = LinkState(seed=int(seed))
    saved = link.generator.get_state()
    rng = np.random.default_rng(int(seed))
    low, high = RESUME_GAP_FRAMES
    try:
        link.reseed(int(seed))
        while state.first_tx_bler()[1] < blocks:
            if state.history:
                state.idle(int(rng.integers(low, high)))
            link.send_bytes(rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes(), state=state)
    finally:
        link.generator.set_state(saved)
    return state
