"""`--placement ray`: each ES of a run on its own Ray actor gives the same run, bit for bit,
as every node in this process; ESs really run on their actors (own processes, one PyTorch thread, one model
load each); without Ray, or with an address where no Ray listens, one line says so.

Real local Ray (a private one started by the placement, stopped by it), real split-LDM stages on a tiny random
SD folder (tests/tiny_sd.py), real links. Nothing here depends on the model's image size.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from no_ray import BLOCK_RAY  # noqa: E402
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.config import config_from_dict  # noqa: E402
from flowgraphs.runner import run_protocol  # noqa: E402
from flowgraphs.session import Session  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", "/tmp/mpl"),
       "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))


@pytest.fixture
def one_thread():
    """ES actors run with one PyTorch thread: the local run they are compared with does too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(model, protocol, n_es, **kw):
    return config_from_dict({"link": {"channel": "awgn"}}, protocol=protocol, n_es=n_es, model=model, steps=8,
                            snr_db=5.0, seed=3, **kw)


def same_run(a, b) -> None:
    """Two runs are the same run: the image bit for bit, every hop and every node's steps and work."""
    assert torch.equal(a.image, b.image)
    assert [r.to_dict() for r in a.graph.records] == [r.to_dict() for r in b.graph.records]
    assert {n: (c["steps"], c["work"]) for n, c in a.graph.compute.items()} == \
        {n: (c["steps"], c["work"]) for n, c in b.graph.compute.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- errors: one line ----------------------------------------------------------------------------------
def test_without_ray_local_placement_runs_and_ray_placement_is_one_line(tmp_path, model):
    script = BLOCK_RAY + textwrap.dedent(f"""
        from meg_phy.cli import main
        common = ["run", "--protocol", "DIUG", "--n-es", "2", "--model", {model!r}, "--steps", "4"]
        assert main([*common, "--out", {str(tmp_path / "local")!r}]) == 0
        assert main([*common, "--placement", "local", "--out", {str(tmp_path / "local2")!r}]) == 0
        code = main([*common, "--placement", "ray", "--out", {str(tmp_path / "ray")!r}])
        assert "ray" not in sys.modules, "something imported ray"
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert err[-1].startswith("meg-phy: error: --placement ray needs Ray") and "meg-phy[ray]" in err[-1]
    assert (tmp_path / "local" / "result.json").exists() and not (tmp_path / "ray" / "result.json").exists()


def test_unreachable_address_is_one_line_exit_3(tmp_path, model, capsys):
    pytest.importorskip("ray")
    from meg_phy.cli import main

    port = _free_port()
    code = main(["run", "--protocol", "DIUG", "--n-es", "2", "--model", model, "--steps", "4", "--placement", "ray",
                 "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "x")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(lines) == 1, lines
    assert lines[0].startswith("meg-phy: error: cannot reach a Ray cluster") and f"127.0.0.1:{port}" in lines[0]
    assert not (tmp_path / "x" / "result.json").exists()


def test_address_without_ray_placement_is_refused(tmp_path, model, capsys):
    from meg_phy.cli import main

    code = main(["run", "--protocol", "DIUG", "--model", model, "--address", "127.0.0.1:6379",
                 "--out", str(tmp_path / "x")])
    assert code == 2 and "--placement ray" in capsys.readouterr().err


# -- a private local Ray: every ES on its own actor ----------------------------------------------------
@pytest.fixture(scope="module")
def placement():
    pytest.importorskip("ray")
    from flowgraphs.placement import RayPlacement

    with RayPlacement(num_cpus=4) as p:
        yield p


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("protocol, n_es, extra", [("DIUG", 2, {}), ("DIUG", 4, {}), ("DIUG", 4, {"exchange_every": 3}),
                                                   ("UIDG", 2, {}), ("DSUC", 2, {}), ("DCSUC", 2, {})])
def test_each_es_on_its_actor_gives_the_local_run_bit_for_bit(placement, model, one_thread, protocol, n_es, extra):
    cfg = config(model, protocol, n_es, **extra)
    local = run_protocol(cfg, session=Session())
    calls = dict(placement.calls)
    remote = run_protocol(cfg, session=Session(placement=placement))
    same_run(local, remote)
    es = remote.graph.es
    assert len(es) == n_es and all(placement.calls[n] > calls.get(n, 0) for n in es), placement.calls
    assert all(remote.graph.compute[n]["seconds"] > 0 for n in es)
    info = placement.actor_info()
    pids = {info[n]["pid"] for n in es}
    assert len(pids) == n_es and os.getpid() not in pids  # one process per ES, none of them this one
    assert all(info[n]["threads"] == 1 for n in es)


@pytest.mark.ray
@pytest.mark.slow
def test_a_campaign_unit_with_ray_placement_equals_local(placement, model, one_thread):
    """The case study's worker state with its session's ESs on actors (what `reproduce --placement ray`
    runs), img2img and text-to-image: the same per-task records as the local placement, timings aside."""
    from flowgraphs.experiments import case_study as cs
    from flowgraphs.placement import placed_setup

    plan = cs.Plan(grids=(cs.Grid(("img2img-ue", "text-to-image"), ("proto-DIUG",), ("awgn",), (0.0,), (2,)),),
                   n_tasks=2, chunk=2, steps=6, model=model)
    points = [p for p in cs.points(plan)[0] if p.series == "proto-DIUG"]

    def records(setup):
        harness = setup()
        units = [cs.run_unit(harness, point.__dict__, [0, 1]) for point in points]
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for u in units for r in u["records"]]

    local = records(cs.make_setup(plan))
    calls = sum(placement.calls.values())
    remote = records(placed_setup(cs.make_setup(plan), placement))
    assert sum(placement.calls.values()) > calls  # the ESs' work went to the actors
    assert len(points) == 2 and remote == local and len(local) == 4 and all(r["es_steps"] > 0 for r in local)


@pytest.mark.ray
@pytest.mark.slow
def test_meg_phy_run_with_ray_placement_writes_the_local_result(tmp_path, model):
    """The command end to end (a private Ray started and stopped by the command): same images, same numbers."""
    pytest.importorskip("ray")
    args = ["run", "--protocol", "DIUG", "--n-es", "2", "--model", model, "--steps", "6", "--snr-db", "5"]
    for where in ("local", "ray"):
        proc = subprocess.run([sys.executable, "-m", "meg_phy.cli", *args, "--placement", where,
                               "--out", str(tmp_path / where)], capture_output=True, text=True, env=ENV, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("output.png", "reference.png"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()

    def numbers(where):
        data = json.loads((tmp_path / where / "result.json").read_text())
        return {k: v for k, v in data.items() if k not in ("compute", "versions")}, \
            {n: (c["steps"], c["work"]) for n, c in data["compute"].items()}

    assert numbers("local") == numbers("ray")


def test_reproduce_refuses_ray_placement_with_ray_executor(tmp_path, capsys):
    from meg_phy.cli import main

    code = main(["reproduce", "--quick", "--placement", "ray", "--executor", "ray", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--placement ray with --executor ray" in err[0]
    assert not (tmp_path / "x").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_reproduce_with_ray_placement_gives_the_local_rows(tmp_path, model):
    """`meg-phy reproduce --placement ray` (a private Ray for the campaign): the rows of the local campaign,
    compute seconds aside."""
    pytest.importorskip("ray")
    args = ["reproduce", "--series", "proto-DIUG", "--n-es", "2", "--tasks", "2", "--kinds", "img2img-ue",
            "--channels", "awgn", "--snr-db", "0", "--model", model]
    for where in ("local", "ray"):
        proc = subprocess.run([sys.executable, "-m", "meg_phy.cli", *args, "--placement", where,
                               "--out", str(tmp_path / where)], capture_output=True, text=True, env=ENV, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def rows(where):
        data = json.loads((tmp_path / where / "results.json").read_text())
        assert data["config"]["placement"] == where
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in data["rows"]]

    local = rows("local")
    assert rows("ray") == local and any(r["series"] == "proto-DIUG" for r in local)
