"""Multi-ES protocols: joint tiled denoising, the wired backhaul, uplink broadcast, where the image
must be, and compute as work. Real split-LDM stages (tiny random SD folder, the embedded model's geometry)
over real link_models links; the seam test uses the embedded model."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_flowgraph_hops import FlakyLink as Flaky  # a link that corrupts its first sends
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.config import LinkSpec, config_from_dict  # noqa: E402
from flowgraphs.hops import Broadcast, Hop  # noqa: E402
from flowgraphs.prompt_codec import decode_prompt, encode_prompt  # noqa: E402
from flowgraphs.runner import run_protocol  # noqa: E402
from flowgraphs.task import make_task  # noqa: E402
from link_models import Link  # noqa: E402
from link_models.wired import WiredLink  # noqa: E402
from meg_common.errors import InputError  # noqa: E402

PROMPT = "a large red circle at the center on a white background"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))


def cfg(model, data=None, **kw):
    base = {"model": model, "steps": 10, "snr_db": 5.0}
    base.update(kw)
    return config_from_dict(data or {}, **base)


def unsplit(config):
    task = make_task(config)
    return task.ldm.generate(task.prompt, task.image, strength=task.strength, steps=task.steps,
                             guidance=task.guidance, generator=torch.Generator().manual_seed(task.seed))


# --- the wired link and the backhaul ----------------------------------------------------------------------
def test_wired_link_is_a_link_error_free_and_counted_in_bits_and_time():
    link = WiredLink(rate_bps=1e6, latency_s=2e-3)
    assert isinstance(link, Link)
    data, stats = link.send_bytes(b"\x01\x02" * 50)
    assert data == b"\x01\x02" * 50 and stats.payload_bits == 800 and stats.total_symbols == 0
    assert stats.airtime_s == 0 and stats.transfer_s == pytest.approx(800 / 1e6 + 2e-3)
    values = torch.randn(300, dtype=torch.float64)
    est, var, stats = link.send_values(values)
    assert torch.equal(est, values.float()) and not bool(var.any()) and stats.payload_bits == 32 * 300
    link.reseed(3)
    with pytest.raises(InputError, match="rate_bps"):
        WiredLink(rate_bps=0)
    with pytest.raises(InputError, match="seed"):
        link.reseed(-1)


def test_backhaul_is_wired_by_default_and_kept_apart_from_the_air(model):
    out = run_protocol(cfg(model, protocol="UIDCG", n_es=3))
    backhaul = [r for r in out.graph.records if r.direction == "backhaul"]
    assert [r.name for r in backhaul] == ["ES1-ES2-seed", "ES2-ES3-seed"]  # the prompt never goes over backhaul
    for r in backhaul:  # the latent as float32 values, exactly, and its header and side information as a second
        # transfer (side_info = "link"): bits and transfer time (two latencies), nothing on air
        assert (r.medium, r.scheme, r.symbols, r.airtime_s, r.delivered) == ("wired", "wired", 0, 0.0, True)
        assert 32 * 4 * 8 * 8 < r.bits < 32 * 4 * 8 * 8 + 8 * 200
        assert r.transfer_s == pytest.approx(r.bits / 1e9 + 2e-4)
    totals = out.graph.totals()
    assert totals["backhaul_symbols"] == 0 and totals["backhaul_bits"] == sum(r.bits for r in backhaul)
    assert totals["air_symbols"] == totals["symbols"] == sum(r.symbols for r in out.graph.records)
    # configured as a wireless (analog) link: symbols on air, counted as backhaul, the air interface unchanged
    wireless = run_protocol(cfg(model, {"backhaul": {"scheme": "analog", "snr_db": 20.0}}, protocol="UIDCG", n_es=3))
    hops = [r for r in wireless.graph.records if r.direction == "backhaul"]
    assert all(r.medium == "air" and r.scheme == "analog" and r.symbols > 0 for r in hops)
    assert wireless.graph.totals()["backhaul_symbols"] == sum(r.symbols for r in hops) > 0
    assert wireless.graph.totals()["air_symbols"] == totals["air_symbols"]


def test_wired_is_for_the_backhaul_only_and_its_rate_is_checked(model):
    with pytest.raises(InputError, match="backhaul hops only"):
        cfg(model, scheme="wired")
    with pytest.raises(InputError, match="backhaul hops only"):
        cfg(model, {"downlink": {"scheme": "wired"}})
    with pytest.raises(InputError, match="rate_bps"):
        cfg(model, {"backhaul": {"rate_bps": 0}})
    slow = cfg(model, {"backhaul": {"rate_bps": 1e6, "latency_s": 0.0}}, protocol="UIDCG", n_es=2)
    hop = next(r for r in run_protocol(slow).graph.records if r.direction == "backhaul")
    assert hop.transfer_s == pytest.approx(hop.bits / 1e6)


def test_the_ratio_to_centralized_uses_air_symbols(model):
    from flowgraphs.runner import evaluate

    result, run, _ = evaluate(cfg(model, protocol="UIDCG", n_es=2, channel="ideal"))
    base = result.baseline["totals"]["air_symbols"]
    assert result.totals["symbols_ratio_to_centralized"] == pytest.approx(result.totals["air_symbols"] / base)
    from flowgraphs.report import run_markdown

    report = run_markdown(result)  # the report keeps air and backhaul apart and shows the work per node
    assert f"- air (uplink + downlink): {result.totals['air_symbols']} channel symbols" in report
    assert f"- backhaul (ES to ES): {result.totals['backhaul_bits']} bits, 0 symbols" in report
    es1 = result.compute["ES1"]
    assert f"| ES1 | {es1['steps']} | {es1['work']} |" in report and es1["work"] > 0


# --- uplink broadcast ------------------------------------------------------------------------------------
def test_one_broadcast_reaches_every_es_each_with_its_own_noise_and_is_counted_once(model):
    shared = run_protocol(cfg(model, protocol="UIDG", n_es=3))
    apart = run_protocol(cfg(model, protocol="UIDG", n_es=3, broadcast=False))
    seeds = [r for r in shared.graph.records if r.payload == "seed" and r.direction == "uplink"]
    assert [r.name for r in seeds] == ["UE-ES1-seed", "UE-ES2-seed", "UE-ES3-seed"]
    assert seeds[0].symbols > 0 and seeds[0].broadcast_of is None
    assert all(r.symbols == 0 and r.bits == 0 and r.broadcast_of == "UE-ES1-seed" for r in seeds[1:])
    assert len({r.noise_var for r in seeds}) == 3  # every receiver its own noise draw and estimate
    alone = [r for r in apart.graph.records if r.payload == "seed" and r.direction == "uplink"]
    assert all(r.symbols == seeds[0].symbols and r.broadcast_of is None for r in alone)
    saved = sum(r.symbols for r in apart.graph.records if r.direction == "uplink") - \
        sum(r.symbols for r in shared.graph.records if r.direction == "uplink")
    prompt = next(r for r in shared.graph.records if r.name == "UE-ES1-prompt")
    assert saved == 2 * seeds[0].symbols + 2 * prompt.symbols  # two of three seed and prompt uploads saved


def test_a_digital_broadcast_is_sent_again_until_every_receiver_has_it_counted_once_per_transmission():
    links = {"ES1": Flaky(0), "ES2": Flaky(2), "ES3": Flaky(5)}
    records = []
    hops = [Hop(f"UE-{es}-prompt", "UE", es, "prompt", LinkSpec(scheme="digital", max_attempts=4), seed=1,
                link_factory=lambda spec, seed, es=es: links[es]) for es in links]
    got = Broadcast(hops, on_record=records.append).send_bytes(encode_prompt(PROMPT), decode_prompt)
    assert got == [PROMPT, PROMPT, None]
    first, second, third = records
    assert (first.attempts, first.symbols, first.broadcast_of) == (4, 400, None)  # 4 transmissions on air
    assert (second.attempts, second.symbols, second.delivered) == (3, 0, True)
    assert (third.attempts, third.symbols, third.delivered, third.broadcast_of) == (4, 0, False, "UE-ES1-prompt")
    assert first.bits == 4 * 8 * len(encode_prompt(PROMPT))


def test_receivers_of_one_broadcast_share_the_waveform(model):
    data = {"hops": {"UE-ES2": {"codeword_bits": 2048}}, "uplink": {"scheme": "digital"}}
    with pytest.raises(InputError, match="broadcast = false"):
        run_protocol(cfg(model, data, protocol="DIUG", n_es=2))
    near = {"hops": {"UE-ES2": {"snr_db": 25.0, "channel": "tdl-a"}}}  # SNR and channel may differ
    out = run_protocol(cfg(model, near, protocol="DIUG", n_es=2))
    assert {r.name: r.snr_db for r in out.graph.records if r.direction == "uplink"}["UE-ES2-image"] == 25.0


# --- where the image is ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["UIEG", "CIAG", "UIDG", "UIDCG"])
def test_a_protocol_that_makes_its_seed_from_the_ues_image_refuses_an_image_at_the_es(model, name):
    with pytest.raises(InputError, match="image at the UE") as err:
        run_protocol(cfg(model, protocol=name, image_at="es"))
    assert "\n" not in str(err.value) and "image_at = 'ue'" in str(err.value)


@pytest.mark.parametrize("name", ["DIUG", "DSUC"])
def test_an_image_at_the_es_reaches_the_other_ess_over_an_accounted_backhaul_hop(model, name):
    out = run_protocol(cfg(model, protocol=name, n_es=3, image_at="es"))
    images = [r for r in out.graph.records if r.payload == "image"]
    assert [(r.src, r.dst, r.medium) for r in images] == [("ES1", "ES2", "wired"), ("ES1", "ES3", "wired")]
    assert all(r.bits > 0 for r in images) and not any(r.direction == "uplink" and r.payload == "image"
                                                       for r in out.graph.records)


# --- joint tiled denoising -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["UIDG", "DIUG"])
@pytest.mark.parametrize("n", [2, 4])
def test_joint_tiles_exchanged_every_step_give_the_single_es_generation(model, name, n):
    config = cfg(model, protocol=name, n_es=n, channel="ideal")
    out = run_protocol(config)
    assert float((out.image - unsplit(config)).abs().max()) <= 1 / 255
    borders = [r for r in out.graph.records if r.payload == "border"]
    assert borders and all(r.direction == "backhaul" and r.medium == "wired" for r in borders)
    # a step costs its window: the whole latent (4 x 8 x 8) at every ES, every step
    steps = out.graph.compute["ES1"]["steps"]
    assert all(out.graph.compute[es]["work"] == 256 * steps for es in out.graph.es)


def test_fewer_exchanges_cost_less_backhaul_and_stay_close(model):
    every = run_protocol(cfg(model, protocol="UIDG", n_es=2, channel="ideal"))
    sparse = run_protocol(cfg(model, protocol="UIDG", n_es=2, channel="ideal", exchange_every=5))
    bits = [g.graph.totals()["backhaul_bits"] for g in (every, sparse)]
    assert bits[1] < bits[0] / 2
    assert 0 < float((sparse.image - every.image).abs().mean()) < 0.05
    # 7 steps: a start round, then after every step (k = 1: 7 rounds) or after steps 5 and 7 (k = 5: 2 rounds)
    rounds = [sum(r.name == "ES1-ES2-border" for r in g.graph.records) for g in (every, sparse)]
    assert rounds == [8, 3]


def test_a_smaller_context_costs_less_work(model):
    out = run_protocol(cfg(model, protocol="DIUG", n_es=2, channel="ideal", tile_context=0))
    steps = out.graph.compute["ES1"]["steps"]
    assert out.graph.compute["ES1"]["work"] == 4 * 8 * 6 * steps  # the 8x6 tile, not the 8x8 latent
    assert out.graph.compute["UE"]["work"] == 256 * out.graph.compute["UE"]["steps"]


def seam_ratio(image, columns):
    """Mean absolute horizontal pixel step across `columns` over the mean step elsewhere."""
    steps = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # step c-1 -> c at index c-1
    at = torch.tensor([c - 1 for c in columns])
    others = torch.ones_like(steps, dtype=torch.bool)
    others[at] = False
    return float(steps[at].mean() / steps[others].mean())


def disagreement(a, b, overlap):
    """Mean absolute difference of two horizontal neighbours' pixel tiles on the columns they share."""
    return float((a[..., overlap[0]] - b[..., overlap[1]]).abs().mean())


@pytest.mark.slow
def test_joint_tiles_agree_where_they_meet_and_add_no_seam():
    """Embedded model, 2 ESs: the two ESs' pixel tiles agree on their overlap (standalone tiles, the former
    method, do not), and the stitched image steps across the tile borders exactly as the single-ES image."""
    from flowgraphs.ledger import RunLedger
    from flowgraphs.session import Session
    from flowgraphs.stages import Stages
    from meg_phy import scenes, tiles

    session = Session()
    for i, attrs in enumerate(scenes.sample_attributes(torch.Generator().manual_seed(7), 2)):
        config = config_from_dict({}, protocol="UIDG", n_es=2, channel="ideal", prompt=scenes.make_prompt(attrs),
                                  seed=100 + i, steps=10)
        task = make_task(config, session)
        g = RunLedger(config.resolved(), session.link_factory(config))
        st, ldm = Stages(g, task), task.ldm     # a batch of one
        received = st.upload_latent("UE", g.es, st.start("UE", st.ue_image()))
        joint = st.joint.start([s for s, _ in received], noise_vars=[v for _, v in received])
        joint = st.joint.denoise(joint, st.prompt_at("UE", g.es), last_exchange=True)
        parts = [st.joint.decode_tile(es, joint, k) for k, es in enumerate(g.es)]   # (1, 3, h, w) each
        stitched = st.stitch("UE", parts, joint.layout)
        # the former method: every tile denoised and decoded on its own
        cond = ldm.encode_prompt(task.prompt, task.guidance)
        base = ldm.start(None, task.image, strength=task.strength, steps=task.steps,
                         generator=torch.Generator().manual_seed(task.seed))
        alone = [ldm.decode(ldm.denoise(base, cond, region=box)) for box in joint.layout.boxes]
        whole = ldm.decode(ldm.denoise(base, cond))
        pixels = joint.layout.scaled(ldm.vae_scale_factor)
        (_, l0, _, w0), (_, l1, _, _) = pixels.boxes
        overlap = slice(l1 - l0, w0), slice(0, l0 + w0 - l1)  # the shared columns in each tile's own frame
        assert disagreement(*parts, overlap) < 1e-3 < 0.01 < disagreement(*alone, overlap)
        edges = [l1, l0 + w0]
        assert seam_ratio(stitched, edges) == pytest.approx(seam_ratio(whole, edges), abs=0.02)
        assert float((stitched - whole).abs().max()) < 1e-3
        assert tiles.tile_layout(8, 8, 2).boxes == joint.layout.boxes
