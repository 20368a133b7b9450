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
    """A 120-TB warm-up on TDL-A at 20 dB (visits of one payload, idle in between); a resumed copy starts from an offset of the warm-up's converged part
    (after its first third; drawn per task from its own seed: tasks differ, the same seed gives the same), keeps
    the channel seed, starts later by an idle time drawn from its seed, without history, its first transport
    block chosen from a fresh CSI report of its channel at that time (not the warm-up's stale one); the
    warm-up leaves the link's generator as it found it."""
    link = DigitalLink(LinkConfig(snr_db=20.0, mcs="auto", **PEDESTRIAN, **HOP), seed=0)
    link.reseed(5)
    before = link.generator.get_state()
    warm = warm_up(link, 120, seed=11)
    assert torch.equal(link.generator.get_state(), before)
    assert warm.first_tx_bler()[1] >= 120
    gaps = [b.frame - a.frame for a, b in zip(warm.history[:-1], warm.history[1:], strict=True)]  # visits
    assert sum(g >= RESUME_GAP_FRAMES[0] for g in gaps) >= 120 // 10
    assert [r.offset_db for r in warm_up(link, 120, seed=11).history] == [r.offset_db for r in warm.history]
    converged = {r.offset_db for r in warm.history[len(warm.history) // 3:]}
    resumed = [warm.resumed(seed) for seed in range(12)]
    assert all(s.olla.offset_db in converged for s in resumed)
    assert len({s.olla.offset_db for s in resumed}) > 3 and any(abs(s.olla.offset_db) > 1.0 for s in resumed)
    a, b, again = resumed[1], resumed[2], warm.resumed(1)
    for s in (a, b):
        assert s.olla.reported_snr_db is None and s.resumed_report
        assert s.fading.seed == warm.fading.seed and not s.history and not s.pending_reports
        assert RESUME_GAP_FRAMES[0] <= s.clock - warm.clock < RESUME_GAP_FRAMES[1]
    assert (a.clock, a.olla.offset_db) == (again.clock, again.olla.offset_db) and a.clock != b.clock
    report, start = csi_report_db(link, a), a.olla.offset_db   # the UE's periodic CSI report of its channel then
    link.send_bytes(bytes(range(200)), state=a)          # a task advances its own copy, not the warm-up
    assert a.history and not warm.resumed(3).history and warm.clock < a.clock
    assert a.history[0].reported_snr_db == report != csi_report_db(link, b) and abs(report - 20.0) > 0.1
    assert a.history[0].offset_db == start and not a.resumed_report


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
    (and 1 and 3) start the uplink and the downlink from a non-zero offset of the warm-up's converged part,
    recorded in the hop record; the batch equals the tasks run one by one in another session in reverse order (uplink records
    whole; the downlink's start and, where the image bytes agree, everything); without a warm-up every task
    starts from 0 dB."""
    seeds = (1, 2, 3)
    session, batched = _run({"link_warmup_tbs": 150}, seeds, batched=True)
    _, alone = _run({"link_warmup_tbs": 150}, seeds[::-1], batched=False)
    alone = alone[::-1]
    starts = {}
    for b, a in zip(batched, alone, strict=True):
        assert [r.to_dict() for r in _hops(b, "uplink")] == [r.to_dict() for r in _hops(a, "uplink")]
        for (src, dst, spec), state in b.graph._link_states.items():  # the same UE's channel, at the task's own time
            warm = session.warm_link_state(spec, src, dst)
            if warm is None:
                continue
            resumed = warm.resumed(hop_seed(b.config.seed, f"{src}-{dst}-session"))
            assert state.fading.seed == warm.fading.seed and state.history[0].frame == resumed.clock
            starts.setdefault((src, dst), []).append((resumed.clock, resumed.olla.offset_db))
            direction = "uplink" if src == "UE" else "downlink"
            rb, ra = _hops(b, direction), _hops(a, direction)   # the first payload on the link starts there
            assert rb[0].olla_offset_start_db == resumed.olla.offset_db
            assert resumed.olla.offset_db in {r.offset_db for r in warm.history[len(warm.history) // 3:]}
            assert [r.olla_offset_start_db for r in rb] == [r.olla_offset_start_db for r in ra]
    assert sorted(starts) == [("ES1", "UE"), ("UE", "ES1")]
    for link in starts.values():     # task 2 is not task 1 later: its own time, and a converged non-zero offset
        assert len({clock for clock, _ in link}) == len(seeds) and abs(link[1][1]) > 0.1
    _, fresh = _run({}, seeds[:2], batched=True)
    for o in fresh:
        for direction in ("uplink", "downlink"):
            assert _hops(o, direction)[0].olla_offset_start_db == 0.0
