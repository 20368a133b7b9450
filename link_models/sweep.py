"""Monte-Carlo sweeps over SNR with checkpoint/resume: the engine behind `meg-phy link sweep`.

Each point runs batched passes until `target_errors` errors (block errors when coded, bit errors when
uncoded) or `max_frames` frames. After every point `sweep.json`, `sweep.csv` and `sweep.png` are rewritten
atomically, so an interrupted sweep started again with the same --out continues from its finished points.
Each point has its own random stream (derived from the seed and the point's SNR), so a resumed sweep gives
the same numbers as an uninterrupted one. Points are units of a `meg_common.executors` executor: they run in
this process or on a Ray cluster (`--executor ray`), and only this process (the driver) writes the files.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from link_models.config import LinkConfig
from meg_common.errors import InputError
from meg_common.executors import Executor, LocalExecutor, Unit, UnitStore
from meg_common.io import atomic_write_json, atomic_write_text, read_json
from meg_common.vocabulary import CARRIERS

POINT_FIELDS = ("ebno_db", "snr_db", "ber", "bler", "bit_errors", "bits", "block_errors", "blocks", "frames",
                "nmse", "snr_est_db", "noise_var", "wall_s", "noise_var_reported", "nmse_median",
                "mse_median_to_mean", "no_est", "mcs_index", "modulation", "code_rate")
"""Analog points: `noise_var_reported` is the mean per-value variance the receiver reported, on the scale of
`nmse` (divided by the mean square of the values); `nmse_median` the median over frames of each frame's
squared error on that scale, `mse_median_to_mean` = nmse_median / nmse (heavy tails: far below the 0.9-1 of
equal frames). `no_est` is the mean N0 the receiver used (estimated unless the estimator is perfect).
Digital points record the MCS (`mcs_index`, None without link adaptation), `modulation` and `code_rate`;
their BLER is that of first transmissions (no HARQ), what link adaptation targets."""
# Settings that may change between a run and its resumption without invalidating finished points.
RESUMABLE_KEYS = ("points_db", "device")


def sweep_config(cfg: LinkConfig, scheme: str, axis: str, values: list[float], target_errors: int,
                 max_frames: int, seed: int) -> dict:
    """The JSON-able identity of a sweep (what must match to resume)."""
    if scheme not in CARRIERS:
        raise InputError(f"unknown scheme '{scheme}'; choose {' or '.join(CARRIERS)}")
    if axis not in ("ebno_db", "snr_db"):
        raise InputError(f"unknown SNR axis '{axis}'; use ebno_db or snr_db")
    if scheme == "analog" and axis == "ebno_db":
        raise InputError("an analog link carries no bits, so Eb/N0 is undefined; give --snr-db instead")
    if target_errors < 1 or max_frames < 1:
        raise InputError("--target-errors and --max-frames must be >= 1")
    link = cfg.to_dict()
    link.pop("snr_db"), link.pop("ebno_db")
    if scheme == "analog":
        for key in ("code", "k", "n", "modulation", "ldpc_iterations", "decoder", "mcs", "mcs_table", "bler_target",
                    "bler_table", "max_transmissions"):
            link.pop(key, None)
    return {"scheme": scheme, "axis": axis, "points_db": [float(v) for v in values], "link": link,
            "target_errors": int(target_errors), "max_frames": int(max_frames), "seed": int(seed)}


def check_resumable(saved: dict, config: dict, path: Path) -> None:
    """Refuse to mix points of different sweeps in one folder."""
    a = {k: v for k, v in saved.items() if k not in RESUMABLE_KEYS}
    b = {k: v for k, v in config.items() if k not in RESUMABLE_KEYS}
    a_link = {k: v for k, v in a.pop("link", {}).items() if k not in RESUMABLE_KEYS}
    b_link = {k: v for k, v in b.pop("link", {}).items() if k not in RESUMABLE_KEYS}
    differ = sorted({k for k in a | b if a.get(k) != b.get(k)} | {k for k in a_link | b_link
                                                                   if a_link.get(k) != b_link.get(k)})
    if differ:
        raise InputError(f"{path} holds a sweep with different settings ({', '.join(differ)}); "
                         "use another --out (or delete that file to start over)")


def run_sweep(cfg: LinkConfig, out: Path, scheme: str = "digital", axis: str = "ebno_db",
              values: list[float] | None = None, target_errors: int = 100, max_frames: int = 1000,
              seed: int = 0, progress: bool = True, executor: Executor | None = None) -> dict:
    """Run (or resume) a sweep into folder `out`; returns the result dict also written to out/sweep.json.

    Each SNR point is one unit of `executor` (default: this process, points in order); a worker builds one
    link and reuses it for all its points, and every point draws from its own `point_seed`, so any executor
    gives the same numbers.
    """
    from meg_common.provenance import versions

    values = list(values or [])
    if not values:
        raise InputError("no SNR points to simulate; give --ebno-db or --snr-db")
    config = sweep_config(cfg, scheme, axis, values, target_errors, max_frames, seed)
    executor = executor or LocalExecutor()
    store = SweepStore(out, {"config": config, "versions": versions(), "points": []}, axis, values)
    units, setup = sweep_units(cfg, scheme, axis, values, target_errors, max_frames, seed,
                               progress=progress and executor.in_process)
    executor.run(units, store, setup=setup, progress=progress, desc=f"link sweep ({scheme})")
    _write(out, store.result)
    return store.result


def sweep_units(cfg: LinkConfig, scheme: str, axis: str, values: list[float], target_errors: int, max_frames: int,
                seed: int, progress: bool = False) -> tuple[list[Unit], Callable[[], object]]:
    """The sweep as executor units, one per SNR point, and the per-worker setup that builds the link.

    Each unit is `_run_point(link, ...)` with the point's own seed; `progress` shows a per-point frame bar
    (only useful when the units run in this process).
    """
    units = [Unit(point_key(axis, v), _run_point,
                  (scheme, axis, float(v), target_errors, max_frames, point_seed(seed, v), progress))
             for v in values]
    return units, partial(_build_link, cfg, scheme, axis, values[0], seed)


def point_key(axis: str, value: float) -> str:
    """The unit key (and checkpoint identity) of one SNR point."""
    return f"{axis}={float(value)!r}"


class SweepStore(UnitStore):
    """The sweep's checkpoint is sweep.json itself (with csv and png): each finished point is added and the
    three files rewritten atomically; points already there are the units a resumed sweep skips."""

    def __init__(self, out: Path, result: dict, axis: str, values: list[float]):
        self.out, self.result, self.axis = Path(out), result, axis
        self.keys = {float(v): point_key(axis, v) for v in values}
        json_path = self.out / "sweep.json"
        self.saved: dict[str, dict] = {}
        if json_path.exists():
            saved = read_json(json_path)
            check_resumable(saved.get("config", {}), result["config"], json_path)
            for p in saved.get("points", []):
                key = self.keys.get(float(p[axis]))
                if key is not None:
                    self.saved[key] = p
        result["points"] = sorted(self.saved.values(), key=lambda p: p[axis])

    def load(self) -> dict[str, dict]:
        return dict(self.saved)

    def save(self, key: str, point: dict) -> None:
        self.result["points"] = sorted([*self.result["points"], point], key=lambda p: p[self.axis])
        _write(self.out, self.result)


def point_seed(seed: int, value: float) -> int:
    """Independent, resume-stable stream per point."""
    return (int(seed) * 1_000_003 + int(round(float(value) * 1000))) % (2**63 - 1)


def _build_link(cfg: LinkConfig, scheme: str, axis: str, value: float, seed: int):
    from link_models.analog import AnalogLink
    from link_models.digital import DigitalLink

    cfg = cfg.with_snr(**{axis: value})
    return DigitalLink(cfg, seed=seed) if scheme == "digital" else AnalogLink(cfg, seed=seed)


def _run_point(link, scheme: str, axis: str, value: float, target_errors: int, max_frames: int,
               seed: int, progress: bool) -> dict:
    """One SNR point on `link` (a unit of the sweep: the result depends on the arguments only)."""
    from tqdm import tqdm

    link.set_operating_point(**{axis: value})
    link.reseed(seed)
    start = time.perf_counter()
    frames = 0
    bits = bit_errors = blocks = block_errors = 0
    sq_err = sig = 0.0
    symbols = 0
    sym_err = no_eff = reported = 0.0
    frame_sq_err: list[float] = []
    no_est: list[float] = []
    coded = scheme == "digital" and link.cfg.code != "none"
    inner = tqdm(total=max_frames, desc=f"  {axis}={value:g}", unit="frame", leave=False, disable=not progress)
    while frames < max_frames:
        if scheme == "digital":
            b = link.random_bits(link.codewords_per_batch)
            p = link.transmit(b)
            errors = p.bits_hat != b
            bit_errors += int(errors.sum())
            block_errors += int(errors.any(dim=1).sum())
            bits += b.numel()
            blocks += b.shape[0]
            n_frames, symbols, sym_err, no_eff = p.frames, symbols + p.symbols, sym_err + p.sq_error, \
                no_eff + p.no_eff
            no_est.append(p.no_est)
            reached = (block_errors if coded else bit_errors) >= target_errors
        else:
            v = link.random_values(link.values_per_batch)
            est, var, stats = link.send_values(v)
            err = (est - v).square()
            sq_err += float(err.sum())
            reported += float(var.sum())
            per_frame = max(1, 2 * link.transport.data_symbols_per_frame // link.cfg.repetition)
            whole = err.numel() // per_frame * per_frame
            frame_sq_err += err[:whole].reshape(-1, per_frame).mean(1).tolist()
            no_est.append(stats.no_est)
            sig += float(v.square().sum())
            n_frames = stats.frames
            symbols += v.numel()  # analog: counts values
            no_eff += v.numel() * stats.noise_var
            reached = False
        frames += n_frames
        inner.update(n_frames)
        if reached:
            break
    inner.close()
    point = dict.fromkeys(POINT_FIELDS)
    cfg = link.cfg
    point.update(snr_db=cfg.es_no_db, frames=frames, wall_s=round(time.perf_counter() - start, 3),
                 snr_est_db=10 * math.log10(symbols / sym_err) if sym_err > 0 else None,
                 noise_var=no_eff / symbols if symbols else None,
                 no_est=sum(no_est) / len(no_est) if no_est and None not in no_est else None)
    if scheme == "digital":
        point.update(ebno_db=cfg.eb_no_db, bits=bits, bit_errors=bit_errors, ber=bit_errors / bits,
                     blocks=blocks, block_errors=block_errors, bler=block_errors / blocks,
                     mcs_index=cfg.mcs_index, modulation=cfg.modulation, code_rate=cfg.code_rate)
    else:  # values are unit power on average, so NMSE is the post-combining symbol error: SNR_est = 1/NMSE
        point.update(nmse=sq_err / sig, snr_est_db=-10 * math.log10(sq_err / sig) if sq_err > 0 else None,
                     noise_var_reported=reported / sig)
        if frame_sq_err:
            median = statistics.median(frame_sq_err) * symbols / sig  # per-frame mean -> the nmse scale
            point.update(nmse_median=median, mse_median_to_mean=median / (sq_err / sig) if sq_err > 0 else None)
    return point


def _write(out: Path, result: dict) -> None:
    from link_models.plots import plot_sweep

    out = Path(out)
    atomic_write_json(out / "sweep.json", result)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=POINT_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for p in result["points"]:
        writer.writerow({k: ("" if p.get(k) is None else p[k]) for k in POINT_FIELDS})
    atomic_write_text(out / "sweep.csv", buf.getvalue())
    plot_sweep(result, out / "sweep.png")
