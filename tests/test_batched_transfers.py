"""Transfers of a batch: bit for bit what each task's transfer gives in a batch of one.

A transfer calls no model, so every task of a batch must get exactly what `Stages` gives it alone: the
same received payload and noise variance, the same hop records (retries, HARQ transmissions, symbols,
estimated SNR), while each link is called once per round with the payloads of every task still sending
(flowgraphs.hops.send_bytes_together). Nothing here depends on the model's image size.
"""

import pytest
import torch

from flowgraphs.config import config_from_dict
from flowgraphs.ledger import RunLedger
from flowgraphs.session import Session
from flowgraphs.stages import Stages
from flowgraphs.task import make_task
from link_models import AnalogLink, DigitalLink

SEEDS = [21, 22, 23, 24, 25]


@pytest.fixture(scope="module")
def session():
    return Session()


def _config(seed, uplink, downlink, **options):
    return config_from_dict({"uplink": uplink, "downlink": downlink}, protocol="EIUG", seed=seed, steps=10,
                            strength=0.7, image_at="ue", **options)


def _both(session, configs, send, monkeypatch):
    """(task-by-task (result, records) per task, batched result, batched records per task, the batched link
    calls made: (method, payloads))."""
    tasks = [make_task(c, session) for c in configs]
    alone = []
    for c, t in zip(configs, tasks, strict=True):
        st = Stages(RunLedger(c, session.link_factory(c)), t)
        alone.append((send(st, [t], single=True), st.graphs[0].records))
    graphs = [RunLedger(c, session.link_factory(c)) for c in configs]
    calls = []
    for cls, name in ((DigitalLink, "send_bytes_many"), (AnalogLink, "send_values_many")):
        original = getattr(cls, name)

        def counted(self, payloads, seeds, _original=original, _name=name, **states):
            calls.append((_name, len(payloads)))
            return _original(self, payloads, seeds, **states)

        monkeypatch.setattr(cls, name, counted)
    out = send(Stages(graphs, tasks), tasks, single=False)
    monkeypatch.undo()
    return alone, out, [g.records for g in graphs], calls


def _records(records):
    return [r.to_dict() for r in records]


def test_seed_down_analog_with_side_information_on_the_link(session, monkeypatch):
    """Two link calls per task (the side information digitally, then the analog values), TDL-A, LMMSE."""
    configs = [_config(s, {"scheme": "digital", "snr_db": 20.0},
                       {"scheme": "analog", "channel": "tdl-a", "snr_db": 0.0}, side_info="link") for s in SEEDS]
    ldm = session.model()
    seeds = [ldm.start(None, None, steps=10, generator=torch.Generator().manual_seed(s)) for s in SEEDS]

    def send(st, tasks, single):
        if single:
            got, variances = st.send_latent("ES1", "UE", [seeds[SEEDS.index(tasks[0].seed)]])
            return got[0], variances[0]
        return st.send_latent("ES1", "UE", seeds)

    alone, (got, variances), records, calls = _both(session, configs, send, monkeypatch)
    for i, ((seed1, var1), rec1) in enumerate(alone):
        assert torch.equal(got[i].latents, seed1.latents) and variances[i] == var1
        assert _records(records[i]) == _records(rec1)
    assert calls == [("send_bytes_many", len(SEEDS)), ("send_values_many", len(SEEDS))]
    assert len({v for v in variances}) == len(SEEDS)          # each task its own draws


def test_digital_retries_and_harq_retry_in_rounds(session, monkeypatch):
    """Blind whole-payload retries (harq = false) near the waterfall: tasks need different numbers of link
    calls, so the batch runs several rounds; and HARQ retransmissions inside the link on TDL-A. The payloads
    are texts of their own (prompts go digital), so their size does not depend on the model."""
    texts = [f"task {i}: " + "a large red circle at the center on a white background, " * 5 for i in range(len(SEEDS))]
    for uplink in ({"scheme": "digital", "snr_db": 1.5, "harq": False, "max_attempts": 4, "mcs": "none"},
                   {"scheme": "digital", "channel": "tdl-a", "snr_db": 2.0, "max_attempts": 4}):
        configs = [_config(s, uplink, {"scheme": "analog"}) for s in SEEDS]

        def send(st, tasks, single):
            if single:
                return st.send_prompt("UE", "ES1", [texts[SEEDS.index(tasks[0].seed)]])[0]
            return st.send_prompt("UE", "ES1", texts)

        alone, got, records, calls = _both(session, configs, send, monkeypatch)
        for i, (text1, rec1) in enumerate(alone):
            assert got[i] == text1
            assert _records(records[i]) == _records(rec1)
        attempts = [r[0].attempts for r in records]
        assert len(set(attempts)) > 1, attempts                    # the tasks needed different transmissions
        if not uplink.get("harq", True):   # round k sends the payloads of the tasks still trying
            assert calls == [("send_bytes_many", sum(a > k for a in attempts)) for k in range(max(attempts))]
        else:
            assert calls == [("send_bytes_many", len(SEEDS))]


def test_prompt_and_image_up(session, monkeypatch):
    configs = [_config(s, {"scheme": "digital", "snr_db": 3.0}, {"scheme": "analog"}) for s in SEEDS]

    def send(st, tasks, single):
        if single:
            return st.send_prompt("UE", "ES1", st.task.prompt)[0], st.input_image("UE", "ES1")
        return st.send_prompt("UE", "ES1", [t.prompt for t in tasks]), st.input_image("UE", "ES1")

    alone, (prompts, images), records, calls = _both(session, configs, send, monkeypatch)
    for i, ((prompt1, image1), rec1) in enumerate(alone):
        assert prompts[i] == prompt1 and torch.equal(images[i:i + 1], image1)
        assert _records(records[i]) == _records(rec1)
    assert calls == [("send_bytes_many", len(SEEDS))] * 2
