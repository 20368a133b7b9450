"""A UE mid-session: OLLA's converged state carried to every task on a link (link_models.state.warm_up,
LinkState.resumed, flowgraphs.session.Session.link_warmup_tbs), equal batched and task by task."""

import torch

from flowgraphs.ledger import hop_seed
from link_models.config import LinkConfig
from link_models.digital import DigitalLink
from link_models.scheduled import csi_report_db
from link_models.state import RESUME_GAP_FRAMES, warm_up

HOP = dict(estimator="lmmse", fft_size=12, cp_length=1, k=512, n=1024, max_transmissions=4)
PEDESTRIAN = dict(channel="tdl-a", fading="continuous", speed_mps=3 / 3.6, arq_max=8)


def test_warm_up_converges_the_offset_and_resumed_tasks_carry_it_on_the_same_channel_later():
    """A 120-TB warm-up on TDL-A at 20 dB moves OLLA's offset away from 0 (here up: a fade's NACKs); a
    resumed copy keeps the offset and the channel seed, starts later by an idle time drawn from its own seed,
    without history, its first transport block chosen from a fresh CSI report of its channel at that time (not
    the warm-up's stale one); the warm-up leaves the link's generator as it found it."""
    link = DigitalLink(LinkConfig(snr_db=20.0, mcs="auto", **PEDESTRIAN, **HOP), seed=0)
    link.reseed(5)
    before = link.generator.get_state()
    warm = warm_up(link, 120, seed=11)
    assert torch.equal(link.generator.get_state(), before)
    assert warm.first_tx_bler()[1] >= 120 and abs(warm.olla.offset_db) > 1.0
    assert warm_up(link, 120, seed=11).olla.offset_db == warm.olla.offset_db      # reproducible
    a, b, again = warm.resumed(1), warm.resumed(2), warm.resumed(1)
    for s in (a, b):
        assert s.olla.offset_db == warm.olla.offset_db and s.olla.reported_snr_db is None
        assert s.fading.seed == warm.fading.seed and not s.history and not s.pending_reports
        assert RESUME_GAP_FRAMES[0] <= s.clock - warm.clock < RESUME_GAP_FRAMES[1]
    assert a.clock == again.clock != b.clock and a.resumed_report
    report = csi_report_db(link, a)                      # the UE's periodic CSI report of its channel then
    link.send_bytes(bytes(range(200)), state=a)          # a task advances its own copy, not the warm-up
    assert a.history and not warm.resumed(3).history and warm.clock < a.clock
    assert a.history[0].reported_snr_db == report != csi_report_db(link, b) and abs(report - 20.0) > 0.1
    assert a.history[0].offset_db == warm.olla.offset_db and not a.resumed_report


def _run(session_args, seeds, batched):
    from flowgraphs.config import config_from_dict
    from flowgraphs.runner import run_batch, run_protocol
    from flowgraphs.session import Session

    session = Session(**session_args)
    link = {"scheme": "digital", "snr_db": 20.0, **PEDESTRIAN}
    configs = [config_from_dict({"link": link}, protocol="CENTRALIZED", seed=s, steps=2) for s in seeds]
    from flowgraphs.task import make_task

    tasks = [make_task(c, session) for c in configs]
    if batched:
        return session, run_batch(configs, tasks, session)
    return session, [run_protocol(c, t, session) for c, t in zip(configs, tasks, strict=True)]


def _hops(outcome, direction):
    return [r for r in outcome.graph.records if r.direction == direction]


def test_every_task_of_a_unit_starts_from_the_converged_offset_batched_as_task_by_task():
    """Three tasks of a unit (CENTRALIZED on TDL-A at 20 dB, 3 km/h, OLLA + ARQ) with a 150-TB warm-up: task 2
    (and 1 and 3) start the uplink and the downlink from the warm-up's non-zero offset, recorded in the hop
    record; the batch equals the tasks run one by one in another session in reverse order (uplink records
    whole; the downlink's start and, where the image bytes agree, everything); without a warm-up every task
    starts from 0 dB."""
    seeds = (1, 2, 3)
    session, batched = _run({"link_warmup_tbs": 150}, seeds, batched=True)
    _, alone = _run({"link_warmup_tbs": 150}, seeds[::-1], batched=False)
    alone = alone[::-1]
    starts, starts_clock = {}, {}
    for direction in ("uplink", "downlink"):
        ((_, warm),) = [(k, v) for k, v in session._warm.items() if v is not None and
                          (k[1] == "UE") == (direction == "uplink")]
        assert abs(warm.olla.offset_db) > 0.5
        starts[direction] = warm.olla.offset_db
    for b, a in zip(batched, alone, strict=True):
        assert [r.to_dict() for r in _hops(b, "uplink")] == [r.to_dict() for r in _hops(a, "uplink")]
        for direction in ("uplink", "downlink"):   # the first payload on each link starts at the warm-up's offset
            rb, ra = _hops(b, direction), _hops(a, direction)
            assert rb[0].olla_offset_start_db == starts[direction]
            assert [r.olla_offset_start_db for r in rb] == [r.olla_offset_start_db for r in ra]
        for (src, dst, spec), state in b.graph._link_states.items():  # the same UE's channel, at the task's own time
            warm = session.warm_link_state(spec, src, dst)
            if warm is None:
                continue
            start = warm.resumed(hop_seed(b.config.seed, f"{src}-{dst}-session")).clock
            assert state.fading.seed == warm.fading.seed and state.history[0].frame == start
            starts_clock.setdefault((src, dst), set()).add(start)
    assert all(len(c) == len(seeds) for c in starts_clock.values())   # task 2 is not task 1 later
    _, fresh = _run({}, seeds[:2], batched=True)
    for o in fresh:
        for direction in ("uplink", "downlink"):
            assert _hops(o, direction)[0].olla_offset_start_db == 0.0
