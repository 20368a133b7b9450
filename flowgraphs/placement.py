"""Where the ESs of a run compute: in this process (`local`, the default), or each ES on its own Ray actor (`ray`).

    placement = RayPlacement()                      # a private local Ray; address="HOST:PORT" or "auto": a cluster
    with placement:
        result, run, reference = evaluate(config, Session(placement=placement))

With `ray`, ESi is one Ray actor (`EdgeServer`) that loads the model once and keeps it for every run of the
session (a campaign's thousands of runs included). Every model call a protocol places on ESi runs there:
text encoding, the img2img start, denoising (a chain's step range, a joint step), decoding. The UE's stages,
the hops (link simulation or a radio) and the small bookkeeping between stages (the blend of exchanged
tiles, the rescaling of a received seed, merges) stay in this process, which stands for the UE and the
network between the nodes.

**Concurrency.** A protocol's stages run one after another, as its module reads; what runs concurrently
is what the protocol does in parallel: joint tiled denoising (UIDG, DIUG, DSUC), where every step of every
ES is submitted at once (`run_all`) and the n actors run their UNet calls at the same time. A chain (UIDCG,
DCSUC) hands its seed from ES to ES, so its ESs run on their actors one after another by nature.

**Granularity.** Joint denoising exchanges tiles every `exchange_every` steps (every step by default), so
one remote call per ES per exchange interval: the actor gets its full-size copy of the latent, its
condition and the number of steps, and returns the advanced copy; the exchange (hops and blending) runs
here. State lives in the driver, so an actor that Ray restarts loses nothing, and a call's inputs are a few
kB on the embedded model. benchmarks/bench_ray.py measures the round trip (about 0.6 ms) against an ES's
step (30-75 ms on the loaded 2-core machine): the calls do not dominate (`diug_*` in bench_ray.json).

**Identical results.** An actor runs the same functions on the same inputs with the same weights (loaded
from the same folder, on the same device kind and dtype) and one PyTorch thread (`threads=1`): a run with
`--placement ray` equals, bit for bit, the same run with `--placement local` and one PyTorch thread
(`OMP_NUM_THREADS=1`; `meg-phy reproduce` always runs its units with one). With more threads here, float
reductions may round differently in the last digits.

**Accounting.** An ES's compute seconds are the time its model calls took: around the remote call for a
single stage (round trip included), and the actor's own time for a joint step (the steps overlap).

Ray stays optional: it is imported when a `RayPlacement` connects, never by `local`.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from meg_common.errors import InputError

PLACEMENTS = ("local", "ray")
ES_THREADS = 1
"""PyTorch threads of every ES actor: one, so actors use one core each and match a one-thread local run."""


class LocalPlacement:
    """Every node's model calls in this process, one after another (the default)."""

    name = "local"

    def prepare(self, nodes: Sequence[str], ldm) -> None:
        """Get the ESs of a run ready (nothing to do here)."""

    def model(self, node: str, ldm):
        """The model as `node` runs it: this process's."""
        return ldm

    def run_all(self, ldm, calls: Sequence[tuple[str, Callable, tuple]]) -> list[tuple[Any, float]]:
        """`fn(ldm, *args)` of every (node, fn, args), one after another: [(result, seconds)], in order."""
        out = []
        for _, fn, args in calls:
            start = time.perf_counter()
            result = fn(ldm, *args)
            out.append((result, time.perf_counter() - start))
        return out

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


LOCAL = LocalPlacement()


class EdgeServer:
    """One ES as a Ray actor: its own copy of the model, loaded once, and the model calls placed on it."""

    def __init__(self, path: str, scheduler: str, device: str, dtype, threads: int = ES_THREADS):
        import torch

        from meg_phy.ldm import load_ldm

        self.threads = int(threads)
        torch.set_num_threads(self.threads)
        self.ldm = load_ldm(path, device=device, scheduler=scheduler, dtype=dtype)

    def call(self, fn: str | Callable, args: tuple, kwargs: dict) -> tuple[Any, float]:
        """`ldm.fn(*args, **kwargs)` (a method name) or `fn(ldm, *args, **kwargs)`: (result, seconds it took)."""
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        out = getattr(self.ldm, fn)(*args, **kwargs) if isinstance(fn, str) else fn(self.ldm, *args, **kwargs)
        return out, time.perf_counter() - start

    def info(self) -> dict[str, Any]:
        """Where this ES runs: process id, node, PyTorch threads (for tests and logs)."""
        import socket

        import torch

        return {"pid": os.getpid(), "host": socket.gethostname(), "threads": torch.get_num_threads()}


class RemoteModel:
    """An ES's model on its actor: method calls run there and wait for their result; attributes (sizes,
    scheduler name) are read from this process's copy of the same model."""

    def __init__(self, placement: RayPlacement, actor, node: str, ldm):
        self._placement, self._actor, self._node, self._ldm = placement, actor, node, ldm

    def __getattr__(self, name: str):
        local = getattr(self._ldm, name)
        if not callable(local):
            return local

        def remote(*args, **kwargs):
            self._placement.calls[self._node] += 1
            return self._placement.fetch([self._actor.call.remote(name, args, kwargs)])[0][0]

        return remote


class RayPlacement:
    """Each ES on its own Ray actor (`EdgeServer`), one per ES name and model, kept for the whole session.

    address: None starts a private local Ray for the session (with at least `MAX_ES` CPUs, so every ES of a
    run gets an actor even on a 2-core machine: they then share the cores); "auto" or "HOST:PORT" joins a
    cluster (as `--executor ray --address`). cpus_per_es / gpus_per_es: Ray resources each actor holds
    (with gpus_per_es > 0 the actors run the model on CUDA, so this process's model must be on CUDA too).
    Use as a context manager (or call `close`): it kills its actors and stops a private Ray.
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_es: float = 1.0, gpus_per_es: float = 0.0,
                 threads: int = ES_THREADS, num_cpus: int | None = None):
        from flowgraphs.config import MAX_ES
        from meg_common.executors import RayExecutor

        if not (isinstance(threads, int) and threads >= 1):
            raise InputError(f"threads={threads}: PyTorch threads per ES actor must be an integer >= 1")
        if num_cpus is None:
            num_cpus = max(os.cpu_count() or 1, math.ceil(MAX_ES * cpus_per_es))
        self._ray_session = RayExecutor(address=address, cpus_per_unit=cpus_per_es, gpus_per_unit=gpus_per_es,
                                        num_cpus=num_cpus)  # checks the resources; connects like --executor ray
        self.address = address
        self.threads = threads
        self._actors: dict[tuple, Any] = {}
        self.calls: Counter[str] = Counter()
        """Model calls sent to each ES's actor (single stages and joint steps)."""

    # -- connection --------------------------------------------------------------------------------
    def connect(self):
        """Import Ray and join (or start) the cluster; returns the `ray` module (one-line errors otherwise)."""
        if self._ray_session._ray is None:
            try:
                import ray  # noqa: F401  (only to say clearly that it is missing)
            except ImportError as exc:
                from meg_common.executors import RAY_EXTRA_HINT

                raise InputError(f"--placement ray needs Ray, which is not installed ({exc.name or 'ray'}); "
                                 f"install it with {RAY_EXTRA_HINT}, or use --placement local") from None
        return self._ray_session.connect()

    def close(self) -> None:
        """Kill the ES actors and leave the cluster (stopping a private Ray)."""
        ray = self._ray_session._ray
        if ray is not None:
            for actor in self._actors.values():
                ray.kill(actor)
        self._actors.clear()
        self._ray_session.close()

    def __enter__(self) -> RayPlacement:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- placement ---------------------------------------------------------------------------------
    def prepare(self, nodes: Sequence[str], ldm) -> None:
        """Start the actors of a run's ESs at once (they load their models concurrently) and wait until they
        are ready, so no stage's compute time counts a model load."""
        new = [self._actor(node, ldm) for node in nodes if node != "UE" and not self._has(node, ldm)]
        self.fetch([actor.info.remote() for actor in new])

    def model(self, node: str, ldm):
        """The model as `node` runs it: the UE's here, an ES's on its actor."""
        return ldm if node == "UE" else RemoteModel(self, self._actor(node, ldm), node, ldm)

    def run_all(self, ldm, calls: Sequence[tuple[str, Callable, tuple]]) -> list[tuple[Any, float]]:
        """`fn(ldm, *args)` of every (node, fn, args) on that node's actor, all submitted before waiting:
        [(result, seconds on the actor)], in order."""
        refs = []
        for node, fn, args in calls:
            self.calls[node] += 1
            refs.append(self._actor(node, ldm).call.remote(fn, args, {}))
        return self.fetch(refs)

    def actor_info(self) -> dict[str, dict[str, Any]]:
        """{ES name: where its actor runs} for the actors started so far."""
        ray = self.connect()
        return {key[0]: info for key, info in zip(self._actors, ray.get([a.info.remote() for a in self._actors.values()]),
                                                  strict=True)}

    def fetch(self, refs: list) -> list:
        """The results of remote calls, with the actor's own error types (InputError, DeviceError) kept."""
        if not refs:
            return []
        from meg_common.executors import ray_get

        return ray_get(self.connect(), refs, lost="an ES actor was lost",
                       then="run again (campaigns resume from their saved units)")

    def _key(self, node: str, ldm) -> tuple:
        return (node, str(ldm.path), ldm.scheduler_name, str(ldm.dtype))

    def _has(self, node: str, ldm) -> bool:
        return self._key(node, ldm) in self._actors

    def _actor(self, node: str, ldm):
        device = "cuda" if self._ray_session.gpus_per_unit > 0 else "cpu"
        if ldm.device.type != device:
            raise InputError(f"--placement ray: this process runs the model on {ldm.device.type} but the ES actors "
                             f"would run it on {device}, so results would differ; "
                             + ("give the actors GPUs (gpus_per_es > 0)" if device == "cpu" else
                                "load the model on CUDA here too"))
        key = self._key(node, ldm)
        if key not in self._actors:
            ray = self.connect()
            rt = self._ray_session
            cls = ray.remote(num_cpus=rt.cpus_per_unit, num_gpus=rt.gpus_per_unit, max_restarts=rt.max_retries,
                             max_task_retries=rt.max_retries)(EdgeServer)
            self._actors[key] = cls.remote(str(ldm.path), ldm.scheduler_name, device, ldm.dtype, self.threads)
        return self._actors[key]


# -- command line ------------------------------------------------------------------------------------
def add_placement_arguments(parser: argparse.ArgumentParser, address: bool = True) -> None:
    """--placement (and --address, unless the command already has it from its executor options)."""
    group = parser.add_argument_group("placement (where the ESs of a run compute)")
    group.add_argument("--placement", choices=PLACEMENTS, default="local",
                       help="local: every node in this process; ray: each ES on its own Ray actor that loads the "
                            "model once, joint denoising steps of the ESs concurrently (needs the ray extra)")
    if address:
        group.add_argument("--address", default=None,
                           help="with --placement ray: HOST:PORT of a Ray head, 'auto', or ray://HOST:10001; "
                                "None: a local Ray started for the run")


def placement_from_args(args: argparse.Namespace, address: str | None = None) -> LocalPlacement | RayPlacement:
    """The placement the options ask for (`address` overrides args.address)."""
    address = address if address is not None else getattr(args, "address", None)
    if args.placement == "local":
        if address is not None:
            raise InputError("--address only applies with --placement ray (or --executor ray); add it or drop it")
        return LOCAL
    return RayPlacement(address=address)


def placed_setup(setup: Callable[[], Any], placement) -> Callable[[], Any]:
    """A campaign worker's `setup` whose session places its ESs with `placement` (a case-study Harness);
    `setup` itself for the local placement."""
    if placement.name == "local":
        return setup

    def build():
        state = setup()
        state.session.placement = placement
        return state

    return build


__all__ = ["ES_THREADS", "LOCAL", "PLACEMENTS", "EdgeServer", "LocalPlacement", "RayPlacement", "RemoteModel",
           "add_placement_arguments", "placed_setup", "placement_from_args"]
