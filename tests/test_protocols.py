"""Every MEG protocol and the baseline, run with real split-LDM stages (tiny random SD folder) over real
link_models links: hop structure as in protocols.md, compute split, ideal links = unsplit generation,
determinism, n = 1..4 ESs, the digital cliff, asymmetric links."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.config import config_from_dict  # noqa: E402
from flowgraphs.protocols import PROTOCOLS  # noqa: E402
from flowgraphs.runner import run_protocol  # noqa: E402
from flowgraphs.stages import Stages  # noqa: E402
from flowgraphs.task import make_task  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))


def cfg(model, **kw):
    base = {"model": model, "steps": 10, "snr_db": 5.0}
    base.update(kw)
    return config_from_dict({}, **base)


def exchange_rounds(name, es_steps):
    """Border exchange rounds of a parallel protocol at exchange_every = 1: one to start from a common latent,
    then one after every step but the last (UIDG and DSUC decode with context: after the last too)."""
    return {"UIDG": 1 + es_steps, "DIUG": es_steps, "DSUC": 1 + es_steps}.get(name, 0)


def expected_hops(name, n, es_steps=0):
    """(src, dst, payload) of every hop, in order, as protocols.md describes them (uploads to several ESs are
    one broadcast: a record per receiver)."""
    es = [f"ES{i + 1}" for i in range(n)]
    up = [lambda payload: [("UE", e, payload) for e in es]][0]
    borders = [(a, b, "border") for a in es for b in es if a != b] * exchange_rounds(name, es_steps)
    table = {
        "CENTRALIZED": [("UE", "ES1", "prompt"), ("UE", "ES1", "image"), ("ES1", "UE", "image")],
        "UIEG": [("UE", "ES1", "seed"), ("UE", "ES1", "prompt"), ("ES1", "UE", "image")],
        "EIUG": [("UE", "ES1", "prompt"), ("UE", "ES1", "image"), ("ES1", "UE", "seed")],
        "CIAG": [("UE", "ES1", "seed"), ("UE", "ES1", "prompt"), ("ES1", "UE", "seed")],
        "ESUC": [("UE", "ES1", "prompt"), ("UE", "ES1", "image"), ("ES1", "UE", "sketch")],
        "UIDG": up("seed") + up("prompt") + borders + [(e, "UE", "image") for e in es],
        "DIUG": up("prompt") + up("image") + borders + [(e, "UE", "seed") for e in es],
        "DSUC": up("prompt") + up("image") + borders + [(e, "UE", "sketch") for e in es],
        "UIDCG": [("UE", "ES1", "seed")] + up("prompt")
        + [(a, b, "seed") for a, b in zip(es, es[1:], strict=False)] + [(es[-1], "UE", "image")],
        "DCSUC": up("prompt") + [("UE", "ES1", "image")]
        + [(a, b, "seed") for a, b in zip(es, es[1:], strict=False)] + [(es[-1], "UE", "sketch")],
    }
    return table[name]


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_each_protocol_runs_its_flowgraph_over_real_links(model, name):
    out = run_protocol(cfg(model, protocol=name))
    n = 1 if name in ("CENTRALIZED", "UIEG", "EIUG", "CIAG", "ESUC") else 2
    steps = out.graph.compute["ES1"]["steps"]
    assert [(r.src, r.dst, r.payload) for r in out.graph.records] == expected_hops(name, n, steps)
    assert out.image.shape == (1, 3, 32, 32) and 0 <= float(out.image.min()) <= float(out.image.max()) <= 1
    for r in out.graph.records:
        if r.direction == "backhaul":  # wired by default: bits and transfer time, nothing on air
            assert r.medium == "wired" and r.scheme == "wired" and r.symbols == 0 and r.bits > 0 and r.transfer_s > 0
            continue
        assert r.medium == "air" and r.snr_db == 5.0 and r.attempts >= 1
        assert (r.symbols > 0 and r.airtime_s > 0) == (r.broadcast_of is None)  # a broadcast is counted once
        assert r.scheme == ("digital" if r.payload == "prompt" else "analog")
        assert (r.noise_var is None) == (r.scheme == "digital") and (r.ber is None) == (r.scheme == "analog")
    assert set(out.graph.compute) == {"UE"} | {f"ES{i + 1}" for i in range(n)}
    assert sum(c["steps"] for c in out.graph.compute.values()) >= 7  # 10 steps at strength 0.7
    assert all(c["seconds"] > 0 for node, c in out.graph.compute.items() if c["steps"])


@pytest.mark.parametrize("name", ["CENTRALIZED", "UIEG", "EIUG", "CIAG", "UIDCG"])
def test_ideal_links_give_the_unsplit_generation(model, name):
    config = cfg(model, protocol=name, channel="ideal", n_es=3)
    out = run_protocol(config)
    task = make_task(config)
    whole = task.ldm.generate(task.prompt, task.image, strength=task.strength, steps=task.steps,
                              guidance=task.guidance, generator=torch.Generator().manual_seed(task.seed))
    assert float((out.image - whole).abs().max()) <= 1 / 255
    steps = {node: c["steps"] for node, c in out.graph.compute.items()}
    assert sum(steps.values()) == 7  # no step repeated or skipped when nothing is lost on the way
    if name in ("EIUG", "CIAG"):
        assert steps["ES1"] == round(7 * config.split) and steps["UE"] == 7 - steps["ES1"]


def test_runs_are_deterministic_given_a_seed(model):
    a = run_protocol(cfg(model, protocol="DIUG", n_es=3, snr_db=0.0, channel="tdl-a"))
    b = run_protocol(cfg(model, protocol="DIUG", n_es=3, snr_db=0.0, channel="tdl-a"))
    c = run_protocol(cfg(model, protocol="DIUG", n_es=3, snr_db=0.0, channel="tdl-a", seed=1))
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)
    assert [r.to_dict() for r in a.graph.records] == [r.to_dict() for r in b.graph.records]


@pytest.mark.parametrize("name", ["UIDG", "DIUG", "DSUC", "UIDCG", "DCSUC"])
@pytest.mark.parametrize("n", [1, 4])
def test_multi_es_protocols_scale_from_one_to_four_servers(model, name, n):
    out = run_protocol(cfg(model, protocol=name, n_es=n, scheme="digital", snr_db=20.0))
    steps = out.graph.compute["ES1"]["steps"]
    assert [(r.src, r.dst, r.payload) for r in out.graph.records] == expected_hops(name, n, steps)
    assert all(r.delivered for r in out.graph.records)
    es_steps = [out.graph.compute[f"ES{i + 1}"]["steps"] for i in range(n)]
    assert all(s > 0 for s in es_steps)
    if name in ("UIDCG", "DCSUC"):  # consecutive ranges: the chain shares one run of steps
        total = 7 if name == "UIDCG" else cfg(model).sketch_steps
        assert sum(es_steps) == total and max(es_steps) - min(es_steps) <= 1
    else:  # joint tiles: every ES runs every step of its range on its window (the whole latent): work counts it
        assert len(set(es_steps)) == 1
        assert all(out.graph.compute[e]["work"] == 4 * 8 * 8 * es_steps[0] for e in out.graph.es)


def test_the_digital_cliff_is_reported_not_hidden(model):
    # one fixed waveform (QPSK 1/2) at both SNRs, so every transmission costs the same (HARQ on)
    low = run_protocol(cfg(model, protocol="EIUG", scheme="digital", snr_db=-10.0, max_attempts=2, mcs="none"))
    seed_hop = next(r for r in low.graph.records if r.payload == "seed")
    assert not seed_hop.delivered and seed_hop.attempts == 2 and seed_hop.bler > 0.5
    assert low.image.shape == (1, 3, 32, 32)  # the UE carried on (from fresh noise) instead of crashing
    # a lost seed is the limit of infinite noise: the UE generates from scratch with the whole schedule
    assert low.graph.compute["UE"]["steps"] == low.config.steps
    high = run_protocol(cfg(model, protocol="EIUG", scheme="digital", snr_db=20.0, max_attempts=2, mcs="none"))
    assert all(r.delivered and r.attempts == 1 and r.ber == 0 for r in high.graph.records)
    assert seed_hop.symbols == 2 * next(r for r in high.graph.records if r.payload == "seed").symbols


def test_every_hop_gets_its_own_link(model):
    data = {"link": {"snr_db": 20.0}, "uplink": {"snr_db": -3.0, "scheme": "digital"},
            "hops": {"ES2-UE": {"snr_db": 0.0, "channel": "tdl-a"}}}
    out = run_protocol(config_from_dict(data, model=model, steps=10, protocol="DIUG", n_es=2))
    got = {r.name: (r.scheme, r.channel, r.snr_db) for r in out.graph.records}
    assert got["UE-ES1-image"] == ("digital", "awgn", -3.0)
    assert got["ES1-UE-seed"] == ("analog", "awgn", 20.0)
    assert got["ES2-UE-seed"] == ("analog", "tdl-a", 0.0)


def test_image_held_by_the_es_is_not_uploaded(model):
    out = run_protocol(cfg(model, protocol="EIUG", image_at="es"))
    assert [(r.src, r.dst, r.payload) for r in out.graph.records] == [("UE", "ES1", "prompt"), ("ES1", "UE", "seed")]


def test_channel_aware_resume_spends_extra_steps_on_a_noisy_seed(model):
    config = cfg(model, protocol="EIUG", snr_db=-5.0)
    aware = run_protocol(config)
    naive = run_protocol(replace(config, resume="naive"))
    assert aware.graph.compute["ES1"]["steps"] == naive.graph.compute["ES1"]["steps"]
    assert aware.graph.compute["UE"]["steps"] > naive.graph.compute["UE"]["steps"]


def test_cooperative_ranges_and_tiles_cover_the_work(model):
    config = cfg(model, protocol="UIDG", n_es=4)
    st = Stages(__import__("flowgraphs.ledger", fromlist=["RunLedger"]).RunLedger(config), make_task(config))
    seed = st.start("UE", st.task.image)
    stops = []
    for left in (3, 2, 1):
        stops.append(st.share(seed, left)[0])
        seed = [seed[0].replace(step=stops[-1])]
    assert stops == [3, 5, 7]  # consecutive ranges 0-3, 3-5, 5-7
    layout = st.tiles()
    assert layout.n == 4 and (layout.height, layout.width) == (8, 8)
