"""Campaign executors: run a campaign's independent units in this process or as Ray tasks/actors.

A campaign is a list of `Unit(key, fn, args)`: independent pieces of work (a sweep point, a design point of
a case study) whose result depends only on `args` (each unit carries its own seed, see `unit_seed`), never
on where or in which order it runs. So `LocalExecutor` and `RayExecutor` give identical results.

The driver (the process that calls `Executor.run`) is the only writer: it saves each finished unit to a
`UnitStore` (atomic files, keyed by unit key) the moment it arrives, and skips the units already stored
when it is started again. A driver killed with kill -9 therefore loses at most the units that were running,
and a unit Ray retried after a worker died arrives once (one result per key, the store keeps one file per
key), so it is counted once.

Heavy state (a model, a link) goes in `setup`: a callable run once per worker whose return value is
passed as the first argument to every unit that worker runs (`fn(state, *args)`); on Ray each worker is an
actor, so a worker never reloads its model per unit.

Ray is optional (`pip install meg-phy[ray]`) and imported only when a `RayExecutor` connects.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meg_common.errors import DeviceError, InputError
from meg_common.io import atomic_write_json, read_json

EXECUTORS = ("local", "ray")
RAY_EXTRA_HINT = "pip install 'meg-phy[ray]'"


@dataclass(frozen=True)
class Unit:
    """One independent piece of a campaign: `fn(*args)` (or `fn(state, *args)` with a setup).

    `fn` must be importable by module and name (a function at module level) so Ray workers can load it;
    `args` must be picklable. `key` names the unit in checkpoints and must be unique in its campaign.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = field(default=())


def unit_seed(seed: int, key: str) -> int:
    """A seed of its own for unit `key` of a campaign seeded with `seed`: stable across processes and
    machines (SHA-256, not Python's salted hash), independent of the order in which units run."""
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63 - 1)


class UnitStore:
    """Where the driver checkpoints finished units: `load()` returns {key: result}; `save` is atomic."""

    def load(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, key: str, result: Any) -> None:
        raise NotImplementedError


class JsonUnitStore(UnitStore):
    """One JSON file per unit in `folder` (`<key>.json`, written atomically); results must be JSON-able."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._=+-]", "_", key)
        tag = hashlib.sha256(key.encode()).hexdigest()[:8]  # keeps keys that differ only in odd characters apart
        return self.folder / f"{safe}.{tag}.json"

    def load(self) -> dict[str, Any]:
        if not self.folder.is_dir():
            return {}
        found = {}
        for p in sorted(self.folder.glob("*.json")):
            entry = read_json(p)
            if isinstance(entry, dict) and "key" in entry:
                found[entry["key"]] = entry.get("result")
        return found

    def save(self, key: str, result: Any) -> None:
        atomic_write_json(self.path(key), {"key": key, "result": result})


class Executor:
    """Runs a campaign's units and checkpoints each finished one (see the module docstring)."""

    name = "executor"
    in_process = False  # True when units run in the driver (so they may show their own progress bars)

    def run(self, units: Sequence[Unit], store: UnitStore | None = None, *,
            setup: Callable[[], Any] | None = None, on_result: Callable[[str, Any], None] | None = None,
            progress: bool = True, desc: str = "units") -> dict[str, Any]:
        """Run every unit not yet in `store`; return {key: result} for all units, in the order given.

        `on_result(key, result)` is called in the driver after each new result is saved.
        """
        units = list(units)
        keys = [u.key for u in units]
        if len(set(keys)) != len(keys):
            dup = sorted(k for k, n in Counter(keys).items() if n > 1)
            raise InputError(f"campaign has duplicate unit keys ({', '.join(dup[:3])}); every unit needs its own key")
        stored = store.load() if store is not None else {}
        results = {k: stored[k] for k in keys if k in stored}
        todo = [u for u in units if u.key not in results]
        if todo:
            self._open()
        from tqdm import tqdm

        bar = tqdm(total=len(units), initial=len(results), desc=desc, unit="unit", disable=not progress,
                   leave=True, dynamic_ncols=True)
        finished = self._execute(todo, setup)
        try:
            for key, result in finished:
                if key in results:  # a unit counts once, whatever the retries
                    continue
                if store is not None:
                    store.save(key, result)
                results[key] = result
                if on_result is not None:
                    on_result(key, result)
                bar.update(1)
        finally:
            finished.close()  # an executor's own clean-up (its workers) before it lets go of the cluster
            bar.close()
            if todo:
                self._release()
        return {k: results[k] for k in keys}

    def _open(self) -> None:
        """Get ready to run units (connect to a cluster); errors here come before any progress output."""

    def _release(self) -> None:
        """Undo `_open` unless the caller keeps the executor open (context manager)."""

    def _execute(self, units: list[Unit], setup: Callable[[], Any] | None) -> Iterator[tuple[str, Any]]:
        raise NotImplementedError


class LocalExecutor(Executor):
    """Units one after another in this process (setup called once)."""

    name = "local"
    in_process = True

    def _execute(self, units, setup):
        state = setup() if setup is not None and units else None
        for u in units:
            yield u.key, (u.fn(state, *u.args) if setup is not None else u.fn(*u.args))


class _UnitActor:
    """A Ray worker holding `setup()`'s state (built once, and again only if Ray restarts the actor)."""

    def __init__(self, setup: Callable[[], Any]):
        self.state = setup()

    def run(self, fn: Callable[..., Any], args: tuple) -> Any:
        return fn(self.state, *args)


def _call_unit(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args)


class RayExecutor(Executor):
    """Units as Ray tasks (no setup) or on a pool of Ray actors, one `setup` each (with setup).

    address: None starts a private local Ray for the run with this machine's cores (`num_cpus` to change);
    "auto" joins the cluster this machine already belongs to (RAY_ADDRESS or the last `ray start`);
    "HOST:PORT" joins that cluster's head (GCS port, 6379 by default); "ray://HOST:PORT" uses Ray Client.
    cpus_per_unit / gpus_per_unit: Ray resources each unit (or actor) holds; Ray sets OMP_NUM_THREADS and
    CUDA_VISIBLE_DEVICES of the worker to match. workers: actors in the pool (default: as many as the
    cluster's current resources hold, at most one per unit). max_retries: how often a unit whose worker died
    is run again (a unit that raises is not retried: its error is the campaign's).
    Use as a context manager to keep one connection for several campaigns.
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_unit: float = 1.0, gpus_per_unit: float = 0.0,
                 workers: int | None = None, max_retries: int = 3, num_cpus: int | None = None,
                 connect_timeout_s: float = 5.0):
        if not (isinstance(cpus_per_unit, int | float) and math.isfinite(cpus_per_unit) and cpus_per_unit > 0):
            raise InputError(f"--cpus-per-unit {cpus_per_unit}: must be a number > 0 (fractions share a core)")
        if not (isinstance(gpus_per_unit, int | float) and math.isfinite(gpus_per_unit) and gpus_per_unit >= 0):
            raise InputError(f"--gpus-per-unit {gpus_per_unit}: must be a number >= 0 (fractions share a GPU)")
        if workers is not None and workers < 1:
            raise InputError(f"--workers {workers}: must be >= 1")
        if max_retries < 0:
            raise InputError(f"max_retries={max_retries}: must be >= 0")
        self.address = address or None
        self.cpus_per_unit = float(cpus_per_unit)
        self.gpus_per_unit = float(gpus_per_unit)
        self.workers = workers
        self.max_retries = int(max_retries)
        self.num_cpus = num_cpus
        self.connect_timeout_s = connect_timeout_s
        self._ray = None
        self._owns_session = False
        self._entered = False

    # -- connection --------------------------------------------------------------------------------
    def __enter__(self) -> RayExecutor:
        self.connect()
        self._entered = True
        return self

    def __exit__(self, *exc) -> None:
        self._entered = False
        self.close()

    def connect(self):
        """Import Ray and join (or start) the cluster; returns the `ray` module."""
        if self._ray is not None:
            return self._ray
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():  # the caller's own session: use it
            self._ray = sys.modules["ray"]
            return self._ray
        _prepare_auth(private=self.address is None)
        ray = import_ray()
        import logging

        where = self.address or "a local Ray"
        kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address is None:
            kwargs.update(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1,
                          include_dashboard=False)
            # Ray renices its workers by 15 to keep its own daemons responsive; a campaign's workers are the
            # work, and at +15 any other job on the machine starves them (seen: a core run on 2 shared cores
            # starved beside tests at nice 0-5). The Ray started for the run gives them the driver's priority;
            # set RAY_worker_niceness to choose otherwise.
            os.environ.setdefault("RAY_worker_niceness", "0")
        else:
            kwargs["address"] = self.address if self.address.startswith("ray://") else \
                resolve_ray_address(self.address, self.connect_timeout_s)
        try:
            ray.init(**kwargs)
        except (ConnectionError, TimeoutError, OSError, RuntimeError, ValueError) as exc:
            hint = "" if os.environ.get("RAY_AUTH_MODE") == "token" else \
                "; if the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN"
            raise DeviceError(f"cannot use Ray at {where}: {_first_line(exc)}{hint}") from exc
        self._ray, self._owns_session = ray, True
        if self.address is None:
            self._check_fits(ray)
        return ray

    def close(self) -> None:
        if self._ray is not None and self._owns_session:
            self._ray.shutdown()
        self._ray, self._owns_session = None, False

    def _check_fits(self, ray) -> None:
        """A unit that needs more than the private local Ray has would wait forever: say so instead."""
        have = ray.cluster_resources()
        for name, need in (("CPU", self.cpus_per_unit), ("GPU", self.gpus_per_unit)):
            if need > have.get(name, 0.0):
                self.close()
                raise DeviceError(f"a unit needs {need:g} {name}(s) but this machine offers {have.get(name, 0.0):g} "
                                  f"to Ray; lower --{name.lower()}s-per-unit or give --address of a cluster")

    def capacity(self) -> int:
        """How many units the cluster's current resources run at once (>= 1)."""
        have = self.connect().cluster_resources()
        fits = have.get("CPU", 0.0) / self.cpus_per_unit
        if self.gpus_per_unit > 0:
            fits = min(fits, have.get("GPU", 0.0) / self.gpus_per_unit)
        return max(1, int(math.floor(fits + 1e-9)))

    # -- execution ---------------------------------------------------------------------------------
    def _open(self) -> None:
        self.connect()

    def _release(self) -> None:
        if not self._entered:
            self.close()

    def _execute(self, units, setup):
        ray = self.connect()
        if setup is None:
            yield from self._run_tasks(ray, units)
        else:
            yield from self._run_actors(ray, units, setup)

    def _run_tasks(self, ray, units: list[Unit]) -> Iterator[tuple[str, Any]]:
        remote = ray.remote(num_cpus=self.cpus_per_unit, num_gpus=self.gpus_per_unit,
                            max_retries=self.max_retries)(_call_unit)
        window = 4 * (self.workers or self.capacity())  # bounded submission: args of unsent units stay here
        queue = list(reversed(units))
        pending: dict[Any, str] = {}
        while queue or pending:
            while queue and len(pending) < window:
                u = queue.pop()
                pending[remote.options(name=f"unit:{u.key}"[:100]).remote(u.fn, u.args)] = u.key
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                key = pending.pop(ref)
                yield key, self._get(ray, ref, key)

    def _run_actors(self, ray, units: list[Unit], setup) -> Iterator[tuple[str, Any]]:
        actor_cls = ray.remote(num_cpus=self.cpus_per_unit, num_gpus=self.gpus_per_unit,
                               max_restarts=self.max_retries, max_task_retries=self.max_retries)(_UnitActor)
        n = min(len(units), self.workers or self.capacity())
        actors = [actor_cls.remote(setup) for _ in range(n)]
        idle = list(actors)
        queue = list(reversed(units))
        pending: dict[Any, tuple[Any, str]] = {}
        try:
            while queue or pending:
                while queue and idle:
                    actor, u = idle.pop(), queue.pop()
                    pending[actor.run.remote(u.fn, u.args)] = (actor, u.key)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    actor, key = pending.pop(ref)
                    idle.append(actor)
                    yield key, self._get(ray, ref, key)
        finally:
            for actor in actors:
                ray.kill(actor)

    def _get(self, ray, ref, key: str) -> Any:
        return ray_get(ray, ref, lost=f"unit {key}: its Ray worker was lost {self.max_retries + 1} times",
                       then="finished units are saved, run the same command again to resume")


def import_ray():
    """The `ray` module, or InputError saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise InputError(f"--executor ray needs Ray, which is not installed ({exc.name or 'ray'}); "
                         f"install it with {RAY_EXTRA_HINT}") from None
    return ray


def _prepare_auth(private: bool) -> None:
    """Ray 2.5x+ token authentication without surprises.

    `ray start` turns token authentication on when it finds a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token), but `ray.init(address=...)` does not, so joining such a head fails after a long
    wait: with a token at hand and RAY_AUTH_MODE unset, we turn it on too (harmless on a cluster without
    authentication). A private local Ray gets a token for this run in the environment, instead of Ray
    writing a new one into the home folder, which would switch on authentication for later `ray start`s.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    have_token = bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                      or (Path.home() / ".ray" / "auth_token").is_file())
    if have_token:
        os.environ["RAY_AUTH_MODE"] = "token"
    elif private:
        import secrets

        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    else:
        return
    if "ray._raylet" in sys.modules:  # Ray read its settings at import: let it read them again
        sys.modules["ray._raylet"].Config.initialize("")


def resolve_ray_address(address: str, timeout_s: float = 5.0) -> str:
    """HOST:PORT of the cluster `address` names ("auto" or HOST[:PORT]), checked to accept connections
    within `timeout_s` (ray.init itself waits minutes on an address where nothing listens)."""
    given = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die

            address = canonicalize_bootstrap_address_or_die("auto")
        except Exception as exc:  # ConnectionError when no cluster is known on this machine
            raise DeviceError(f"--address auto: no Ray cluster found on this machine ({_first_line(exc)}); "
                              "start one with `ray start --head` or give --address HOST:PORT") from None
    host, _, port_text = address.rpartition(":")
    if not host:
        host, port_text = address, "6379"
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise InputError(f"--address {given}: expected HOST:PORT (e.g. 10.0.0.5:6379), 'auto' or "
                         "ray://HOST:10001") from None
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else (exc.strerror or str(exc))
        resolved = "" if given == address else f" (resolved to {address})"
        raise DeviceError(f"cannot reach a Ray cluster at {given}{resolved}: {why} after {timeout_s:g} s; "
                          "check the head's address and port (`ray start --head` prints it)") from None
    return f"{host}:{port}"


def ray_get(ray, refs, lost: str, then: str):
    """`ray.get(refs)` with the remote side's own error types: an InputError or DeviceError raised remotely is
    raised here as itself, any other remote exception as its own class; a lost worker or actor becomes one
    DeviceError line, `lost (what Ray said); then`."""
    from ray import exceptions as rex

    try:
        return ray.get(refs)
    except rex.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, InputError | DeviceError):
            raise cause from None
        raise exc.as_instanceof_cause() from None
    except rex.RayError as exc:
        raise DeviceError(f"{lost} ({type(exc).__name__}: {_first_line(exc)}); {then}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- command line ------------------------------------------------------------------------------------
def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """--executor, --address, --cpus-per-unit, --gpus-per-unit, --workers (see `executor_from_args`)."""
    group = parser.add_argument_group("executor (where the campaign's units run)")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: units one after another in this process; ray: units on a Ray cluster "
                            f"(needs {RAY_EXTRA_HINT})")
    group.add_argument("--address", default=None,
                       help="Ray cluster: HOST:PORT of its head, 'auto' (the cluster this machine is in) or "
                            "ray://HOST:10001; None: a local Ray started for the run with this machine's cores")
    group.add_argument("--cpus-per-unit", type=float, default=1.0, help="CPUs each unit holds on Ray")
    group.add_argument("--gpus-per-unit", type=float, default=0.0,
                       help="GPUs each unit holds on Ray (fractions share a GPU, e.g. 0.25)")
    group.add_argument("--workers", type=int, default=None,
                       help="Ray workers holding a model or link; None: as many as the cluster fits")


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The executor the options of `add_executor_arguments` ask for (InputError for contradictions)."""
    if args.executor == "local":
        ray_only = [flag for flag, value, default in (("--address", args.address, None),
                                                      ("--gpus-per-unit", args.gpus_per_unit, 0.0),
                                                      ("--workers", args.workers, None)) if value != default]
        if ray_only:
            raise InputError(f"{', '.join(ray_only)} only apply with --executor ray; add it or drop them")
        return LocalExecutor()
    return RayExecutor(address=args.address, cpus_per_unit=args.cpus_per_unit, gpus_per_unit=args.gpus_per_unit,
                       workers=args.workers)


__all__ = ["EXECUTORS", "Executor", "JsonUnitStore", "LocalExecutor", "RayExecutor", "Unit", "UnitStore",
           "add_executor_arguments", "executor_from_args", "import_ray", "resolve_ray_address", "unit_seed"]
