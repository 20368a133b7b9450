"""Executors: local and Ray give identical campaigns; the driver's checkpoints survive kill -9 of the driver and
of a worker (each unit stored exactly once); an unreachable Ray address is one line; nothing needs Ray unless
`--executor ray` is asked for.

Tests marked `ray` run against a real Ray head started here on 127.0.0.1 (`ray start --head --block` in its
own session, stopped through its own process id and process group, never `ray stop`).
"""

from __future__ import annotations

import inspect
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from no_ray import BLOCK_RAY  # noqa: E402

from meg_common.errors import InputError  # noqa: E402
from meg_common.executors import (  # noqa: E402
    JsonUnitStore,
    LocalExecutor,
    RayExecutor,
    Unit,
    resolve_ray_address,
    unit_seed,
)

FAST_SWEEP = ["--code", "none", "--modulation", "qpsk", "--k", "512", "--target-errors", "400",
              "--max-frames", "32", "--batch", "16", "--no-progress", "--snr-db", "0,3,6"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", "/tmp/mpl"),
       "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


# -- campaign pieces shared by the in-process tests and the driver scripts ------------------------------
def draw(seed: int, n: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


def test_unit_seed_is_stable_and_distinct():
    assert unit_seed(0, "a") == unit_seed(0, "a")
    assert len({unit_seed(s, k) for s in range(3) for k in "abc"}) == 9
    assert 0 <= unit_seed(7, "x") < 2**63 - 1


def test_local_executor_runs_in_order_saves_each_unit_and_resumes(tmp_path):
    calls = []

    def square(x):
        calls.append(x)
        return {"y": x * x}

    store = JsonUnitStore(tmp_path / "units")
    units = [Unit(f"u{i}", square, (i,)) for i in range(4)]
    seen = []
    out = LocalExecutor().run(units[:2], store, on_result=lambda k, r: seen.append(k), progress=False)
    assert out == {"u0": {"y": 0}, "u1": {"y": 1}} and seen == ["u0", "u1"]
    assert len(list((tmp_path / "units").glob("*.json"))) == 2
    out = LocalExecutor().run(units, store, progress=False)  # resume: only u2, u3 run
    assert calls == [0, 1, 2, 3] and list(out) == ["u0", "u1", "u2", "u3"] and out["u3"] == {"y": 9}
    assert store.load() == out


def test_setup_runs_once_per_worker_and_keys_must_be_unique(tmp_path):
    built = []

    def setup():
        built.append(1)
        return 10

    out = LocalExecutor().run([Unit(k, lambda s, x: s + x, (i,)) for i, k in enumerate("abc")], setup=setup,
                              progress=False)
    assert out == {"a": 10, "b": 11, "c": 12} and built == [1]
    with pytest.raises(InputError, match="duplicate unit keys.*a"):
        LocalExecutor().run([Unit("a", abs, (1,)), Unit("a", abs, (2,))], progress=False)
    store = JsonUnitStore(tmp_path)  # keys with odd characters keep distinct files
    store.save("snr=1/2", 1), store.save("snr=1_2", 2)
    assert store.load() == {"snr=1/2": 1, "snr=1_2": 2}


def test_cli_options_check_contradictions():
    from meg_phy.cli import main

    assert main(["link", "sweep", "--out", "/tmp/x", "--address", "127.0.0.1:1"]) == 2
    with pytest.raises(InputError, match="cpus-per-unit"):
        RayExecutor(cpus_per_unit=0)
    with pytest.raises(InputError, match="HOST:PORT"):
        resolve_ray_address("localhost:notaport")




def test_everything_but_executor_ray_works_without_ray(tmp_path):
    script = BLOCK_RAY + textwrap.dedent(f"""
        import meg_phy, meg_common.executors, link_models, link_models.sweep
        from meg_phy.cli import build_parser, main
        build_parser()  # every command registers
        assert main(["link", "sweep", "--out", {str(tmp_path / "local")!r}, *{FAST_SWEEP!r}, "--max-frames", "16",
                     "--snr-db", "4"]) == 0
        code = main(["link", "sweep", "--out", {str(tmp_path / "ray")!r}, *{FAST_SWEEP!r}, "--executor", "ray"])
        assert "ray" not in sys.modules, "something imported ray"
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert err[-1].startswith("meg-phy: error: --executor ray needs Ray") and "meg-phy[ray]" in err[-1]
    assert json.loads((tmp_path / "local" / "sweep.json").read_text())["points"][0]["bits"] > 0


# -- a real Ray head on 127.0.0.1 ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """(address, env) of a 2-CPU Ray head started for these tests, with token authentication whose token
    lives in the environment only (nothing written to ~/.ray); stopped by its own pid, then its group."""
    pytest.importorskip("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's unix sockets live there
    env = {**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex(), "RAY_USAGE_STATS_ENABLED": "0"}
    ray_cli = Path(sys.executable).with_name("ray")
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115 - closed below
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", f"--port={port}",
                             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={temp}", "--object-store-memory=100000000"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Ray head did not start: {Path(temp, 'head.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        head.send_signal(signal.SIGTERM)  # the `ray start` process shuts its own node down
        try:
            head.wait(20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of its session is left (workers), by group id
        except ProcessLookupError:
            pass
        head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


DRIVER = textwrap.dedent("""
    import os, random, sys, time
    from pathlib import Path
    from meg_common.executors import JsonUnitStore, RayExecutor, Unit, unit_seed

    {draw}

    WORK = Path({work!r})

    def setup():
        (WORK / f"setup.{{os.getpid()}}").touch()
        return os.getpid()

    def unit(*args):
        state, (key, seed, hold_s) = (args[0], args[1:]) if len(args) == 4 else (None, args)
        first = not list(WORK.glob(f"{{key}}.*.start"))
        (WORK / f"{{key}}.{{os.getpid()}}.start").touch()  # the pid the test may kill
        deadline = time.monotonic() + (hold_s if first else 0.0)
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return {{"key": key, "draws": draw(seed)}}

    if __name__ == "__main__":
        n, hold, actors = int(sys.argv[1]), {{k: float(v) for k, v in (a.split("=") for a in sys.argv[3:])}}, \\
            sys.argv[2] == "actors"
        fn = unit
        units = [Unit(f"u{{i}}", fn, (f"u{{i}}", unit_seed(5, f"u{{i}}"), hold.get(f"u{{i}}", hold.get("*", 0.0))))
                 for i in range(n)]
        ex = RayExecutor(address={address!r}, cpus_per_unit=1, workers=2 if actors else None)
        ex.run(units, JsonUnitStore(WORK / "store"), setup=setup if actors else None, progress=False)
""")


def _driver(tmp_path: Path, address: str, env: dict, *args: str, wait: bool = True):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(draw=inspect.getsource(draw), work=str(work), address=address))
    cmd = [sys.executable, str(script), *args]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120), work
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env), work


def _expected(n: int) -> dict:
    return {f"u{i}": {"key": f"u{i}", "draws": draw(unit_seed(5, f"u{i}"))} for i in range(n)}


def _wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.ray
def test_link_sweep_on_ray_head_matches_local(ray_head, tmp_path):
    from meg_phy.cli import main

    address, env = ray_head
    assert main(["link", "sweep", "--out", str(tmp_path / "local"), *FAST_SWEEP]) == 0
    proc = subprocess.run([sys.executable, "-m", "meg_phy.cli", "link", "sweep", "--out", str(tmp_path / "ray"),
                           *FAST_SWEEP, "--executor", "ray", "--address", address], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    local, remote = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("local", "ray"))
    assert remote["config"] == local["config"]
    drop_wall = [{k: v for k, v in p.items() if k != "wall_s"} for p in local["points"]]
    assert [{k: v for k, v in p.items() if k != "wall_s"} for p in remote["points"]] == drop_wall
    assert (tmp_path / "ray" / "sweep.csv").read_text().count("\n") == 4 and (tmp_path / "ray" / "sweep.png").exists()


@pytest.mark.ray
def test_driver_killed_mid_campaign_resumes_with_each_unit_once(ray_head, tmp_path):
    address, env = ray_head
    driver, work = _driver(tmp_path, address, env, "6", "tasks", "*=0.7", wait=False)
    store = work / "store"
    _wait_for(lambda: len(list(store.glob("*.json"))) >= 2 or driver.poll() is not None, 90, "two stored units")
    driver.kill()  # kill -9 of the driver, mid-campaign
    driver.wait()
    before = {p.name for p in store.glob("*.json")}
    assert 2 <= len(before) < 6, "the campaign was not interrupted mid-way"
    proc, _ = _driver(tmp_path, address, env, "6", "tasks", "*=0.0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert JsonUnitStore(store).load() == _expected(6) and len(list(store.glob("*.json"))) == 6
    for name in before:  # finished units were not run again
        key = json.loads((store / name).read_text())["key"]
        assert len(list(work.glob(f"{key}.*.start"))) == 1


@pytest.mark.ray
def test_worker_killed_mid_unit_is_retried_and_counted_once(ray_head, tmp_path):
    address, env = ray_head
    driver, work = _driver(tmp_path, address, env, "5", "actors", "u1=60", wait=False)
    _wait_for(lambda: list(work.glob("u1.*.start")) or driver.poll() is not None, 90, "unit u1 to start")
    (victim,) = list(work.glob("u1.*.start"))
    os.kill(int(victim.name.split(".")[1]), signal.SIGKILL)  # the worker running u1, by its own pid
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, err[-3000:]
    assert JsonUnitStore(work / "store").load() == _expected(5)
    assert len(list((work / "store").glob("*.json"))) == 5
    assert len(list(work.glob("u1.*.start"))) == 2  # killed once, run again once
    setups = len(list(work.glob("setup.*")))
    assert setups <= 3, f"{setups} setups for 2 workers and one restart: state was rebuilt per unit"


@pytest.mark.ray
@pytest.mark.slow
def test_private_local_ray_matches_local_and_writes_nothing_to_home(tmp_path):
    """--executor ray without --address: a Ray started for the run, token in its environment only."""
    pytest.importorskip("ray")
    from meg_phy.cli import main

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in ENV.items() if not k.startswith("RAY_")} | {"HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "meg_phy.cli", "link", "sweep", "--out", str(tmp_path / "ray"),
                           *FAST_SWEEP, "--executor", "ray"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main(["link", "sweep", "--out", str(tmp_path / "local"), *FAST_SWEEP]) == 0
    local, remote = (json.loads((tmp_path / d / "sweep.json").read_text())["points"] for d in ("local", "ray"))
    assert [{k: v for k, v in p.items() if k != "wall_s"} for p in remote] == \
        [{k: v for k, v in p.items() if k != "wall_s"} for p in local]
    assert not (home / ".ray").exists()


def niceness() -> int:
    return os.nice(0)


@pytest.mark.ray
@pytest.mark.slow
def test_workers_of_a_private_local_ray_run_at_the_drivers_priority():
    """Ray renices its workers by 15 unless told otherwise: the Ray started for a run tells it 0."""
    pytest.importorskip("ray")
    code = ("import os; from meg_common.executors import RayExecutor, Unit; import tests.test_executors as t; "
            "print(os.nice(0), RayExecutor(workers=1).run([Unit('u', t.niceness)], progress=False)['u'])")
    env = {k: v for k, v in ENV.items() if not k.startswith("RAY_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    driver, worker = proc.stdout.split()[-2:]
    assert worker == driver


def test_unreachable_address_is_one_line_exit_3(tmp_path):
    port = _free_port()
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "meg_phy.cli", "link", "sweep", "--out", str(tmp_path / "x"),
                           *FAST_SWEEP, "--executor", "ray", "--address", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, env=ENV, timeout=120)
    lines = proc.stderr.strip().splitlines()
    if proc.returncode == 2 and "needs Ray" in proc.stderr:
        pytest.skip("ray is not installed")
    assert proc.returncode == 3 and len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and lines[0].startswith("meg-phy: error: cannot reach a Ray cluster")
    assert time.monotonic() - start < 60
    assert not (tmp_path / "x" / "sweep.json").exists()
