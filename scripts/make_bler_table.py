"""Measure BLER against SNR for every 5G NR MCS with the project's DigitalLink and write the JSON tables that
`link_models.mcs.LinkAdaptation` uses, one per channel estimator.

    python scripts/make_bler_table.py        # all three: link_models/data/bler_table_{perfect,lmmse,ls}.json

Link: the one a protocol hop uses (flowgraphs.config.LinkSpec defaults): the MCS's modulation and 5G LDPC
code with n = 1008 coded bits (the hop's 1024, rounded to 24) and k = round(R n), built by
`LinkConfig(mcs=index)` itself, so rates below 1/5 repeat the rate-1/5 mother code as the hop does; AWGN;
one resource block per frame (12 subcarriers x 14 OFDM symbols, pilots on symbols 2 and 11, CP 1); the
estimator of the file (perfect: true channel and N0; ls, lmmse: both estimated from the pilots). SNR is
Es/N0 per resource element (`snr_db`). Equal rows of different tables (same modulation and rate) share one
curve. Tables 1, 2 and 3 by default (3 adds the low-rate QPSK rows).

Scan per curve, on a 0.5 dB grid starting at the Shannon threshold 10 log10(2^(m R) - 1) rounded up:
down while BLER < 0.95, then up until BLER <= 0.01. A point stops at --target-errors block errors or
--max-codewords codewords; a point whose first 64 or more codewords all fail is recorded as BLER 1 at once.
The file is rewritten atomically after every point; run the same command again to resume (each point has
its own random stream, derived from --seed, the curve and the SNR, so a resumed run gives the same numbers).

    python scripts/make_bler_table.py --channel tdl-a --speed-mps 0.833 --estimator lmmse --tables 1 \
        --mcs 0,4,8,12,16,20,24,28 --step-db 2      # link_models/data/bler_table_lmmse_tdl-a.json

`--channel tdl-a|cdl-a|...`: the table of a fading channel (block fading: a new draw every frame, at
`--speed-mps`), which the open-loop link adaptation (`mcs="table"`) on that channel reads at the mean SNR
(`BlerTable.shipped(estimator, channel)`); OLLA (`mcs="auto"`) keeps the AWGN table for its reported,
instantaneous SNR. Fading curves span more SNR, so their scan goes twice as far and may use a coarser grid.

    python scripts/make_bler_table.py --radio sim --tables 1   # link_models/data/bler_table_radio-sim.json

`--radio sim`: the table of a radio link (what `--radio sim|pluto` hops adapt with, flowgraphs.radio_link):
codewords sent as payloads through link_models.ota.RadioLink over a SimRadio with the realistic impairments
(sdr_drivers.sim.REALISTIC; AWGN), decoded by the OTA receiver (LS from the frame's pilots, CFO and timing
recovery), first transmissions only (no ARQ). The OFDM frame is the OTA one; the code is the MCS's with
n = --n. MCSs below rate 1/5 are left out (the radio frame has no repetition; a radio hop never picks them).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", "/tmp/mpl")

from meg_common.cli import number_list  # noqa: E402
from meg_common.errors import InputError  # noqa: E402
from meg_common.io import atomic_write_json, read_json  # noqa: E402
from meg_common.provenance import versions  # noqa: E402
from meg_common.vocabulary import NOISY_CHANNELS, Decoder, Modulation, values  # noqa: E402

STEP_DB = 0.5
BLER_HIGH, BLER_LOW = 0.95, 0.01
MAX_SPAN_DB = 15.0
MIN_ALL_LOST = 64  # codewords, all lost, that end a point at BLER 1 early


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None,
                   help="output JSON; '{estimator}' is replaced by the estimator (needed with several); default "
                        "the shipped file link_models/data/bler_table_{estimator}[_{channel}].json")
    p.add_argument("--channel", choices=values(NOISY_CHANNELS), default="awgn",
                   help="channel of the table (fading channels: block fading, a new draw per frame, at "
                        "--speed-mps; the open-loop link adaptation on that channel reads it)")
    p.add_argument("--speed-mps", type=float, default=3 / 3.6, help="UE speed on TDL/CDL (default 3 km/h)")
    p.add_argument("--step-db", type=float, default=STEP_DB, help="SNR grid of a curve (default 0.5 dB)")
    p.add_argument("--estimator", default="perfect,lmmse,ls",
                   help="channel estimators, one table each, in this order (default perfect,lmmse,ls)")
    p.add_argument("--tables", type=number_list("--tables"), default=[1, 2, 3],
                   help="TS 38.214 MCS tables (1, 2, 3); default 1,2,3")
    p.add_argument("--mcs", type=number_list("--mcs"), default=None,
                   help="only these MCS indices (default: all of each table)")
    p.add_argument("--n", type=int, default=1008,
                   help="coded bits per codeword (default 1008: a hop's 1024 rounded to 24 bits)")
    p.add_argument("--fft-size", type=int, default=12, help="subcarriers per frame (default 12: one RB)")
    p.add_argument("--cp-length", type=int, default=1, help="cyclic prefix samples (default 1, as hops)")
    p.add_argument("--target-errors", type=int, default=300)
    p.add_argument("--max-codewords", type=int, default=3000)
    p.add_argument("--decoder", choices=("auto", *values(Decoder)), default="auto",
                   help="LDPC decoder: fast (numba) when LinkConfig has it, else Sionna's (auto)")
    p.add_argument("--ldpc-iterations", type=int, default=20)
    p.add_argument("--batch", type=int, default=32, help="OFDM frames per batched pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", type=Path, default=None,
                   help="also draw the curves and the link adaptation's throughput to this PNG")
    p.add_argument("--radio", choices=("none", "sim"), default="none",
                   help="sim: measure over the simulated radio with the OTA receiver (the radio table; "
                        "--estimator does not apply)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def decoder_setting(choice: str) -> str | None:
    """The LinkConfig.decoder value to use, or None where LinkConfig has no such field (Sionna's decoder)."""
    from link_models.config import LinkConfig

    has = "decoder" in LinkConfig.__dataclass_fields__
    if choice == "fast" and not has:
        raise InputError("this LinkConfig has no 'decoder' field (no fast decoder yet); use --decoder sionna")
    if not has:
        return None
    return "sionna" if choice == "sionna" else "fast"


def settings_of(args, decoder: str | None, estimator: str) -> dict:
    """What a table was measured with (a resumed file must match): the scan's settings, then the link's."""
    scan = {"channel": args.channel, "n": args.n, "target_errors": args.target_errors,
            "max_codewords": args.max_codewords, "ldpc_iterations": args.ldpc_iterations, "seed": args.seed,
            "step_db": args.step_db, "bler_high": BLER_HIGH, "bler_low": BLER_LOW}
    if args.channel != "awgn":
        scan.update(speed_mps=args.speed_mps, fading="block", delay_spread_ns=100.0, carrier_frequency_hz=3.5e9)
    if args.radio == "sim":
        from link_models.ota.config import FrameConfig
        from sdr_drivers.sim import REALISTIC

        return {**scan, "radio": "sim", "estimator": "radio-sim", "impairments": {k: str(v) for k, v in REALISTIC.items()},
                "frame": str(FrameConfig()), "receiver": "link_models.ota (LS from pilots, CFO/timing recovery)",
                "snr": "Es/N0 per used subcarrier (dB)", "method": "RadioLink.forward, first transmissions",
                "decoder": "the OTA frame codec's"}
    return {**scan, "estimator": estimator, "snr": "Es/N0 per resource element (dB)", "fft_size": args.fft_size,
            "cp_length": args.cp_length, "num_ofdm_symbols": 14, "pilot_symbols": [2, 11],
            "method": "LinkConfig(mcs=index): repetition below rate 1/5", "decoder": decoder or "sionna"}


def link_config(m, args, estimator: str, decoder: str | None, snr_db: float = 0.0):
    """The LinkConfig a hop with MCS `m` uses (the code, its repetition below rate 1/5 and the grid)."""
    from link_models import LinkConfig
    from link_models.config import ESTIMATORS

    fields = {"decoder": decoder} if decoder else {}
    estimator = estimator if estimator in ESTIMATORS else "ls"   # a radio's receiver estimates by itself
    fading = {"speed_mps": args.speed_mps} if args.channel != "awgn" else {}
    return LinkConfig(mcs=m.index, mcs_table=m.table, n=args.n, channel=args.channel, estimator=estimator,
                      snr_db=snr_db, fft_size=args.fft_size, cp_length=args.cp_length, batch=args.batch,
                      ldpc_iterations=args.ldpc_iterations, device="cpu", **fading, **fields)


def curve_plan(m, args, estimator: str = "perfect", decoder: str | None = None) -> dict:
    """How the curve of MCS `m` is measured: the link's (k, n) and the mother code's length `ldpc_n`."""
    cfg = link_config(m, args, estimator, decoder).resolved()
    return {"modulation": m.modulation, "bits_per_symbol": m.bits_per_symbol, "code_rate": m.code_rate,
            "spectral_efficiency": m.spectral_efficiency, "shannon_snr_db": m.shannon_snr_db, "k": cfg.k,
            "n": cfg.n, "ldpc_n": cfg.ldpc_n, "mcs": [m.table, m.index],
            "method": "repetition" if cfg.ldpc_n < cfg.n else "measured"}


class RadioCodewords:
    """Random codewords over the simulated radio (`--radio sim`), with the calls `measure` makes of a link."""

    codewords_per_batch = 64

    def __init__(self, cfg, seed: int):
        import dataclasses

        from link_models.ota.radio_link import RadioLink
        from sdr_drivers.sim import REALISTIC, SimRadio

        cfg = dataclasses.replace(cfg, max_transmissions=1)
        self.snr_db = 0.0
        self.link = RadioLink(SimRadio(snr_db=self.snr_db, channel="awgn", seed=seed, **REALISTIC), cfg, seed=seed)

    def set_operating_point(self, snr_db: float) -> None:
        self.snr_db = float(snr_db)

    def reseed(self, seed: int) -> None:
        self.link.reseed(seed)

    def __call__(self, num: int):
        return self.link(num, snr_db=self.snr_db)


def point_seed(seed: int, key: str, snr_db: float) -> int:
    digest = hashlib.sha256(f"{seed}|{key}|{snr_db:.2f}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def measure(link, plan: dict, snr_db: float, seed: int, args) -> dict:
    """One SNR point: passes of random codewords until target errors / max codewords / a first pass all lost."""
    link.set_operating_point(snr_db=snr_db)
    (link.reseed if hasattr(link, "reseed") else link.generator.manual_seed)(seed)
    step = link.codewords_per_batch
    codewords = errors = 0
    start = time.perf_counter()
    while errors < args.target_errors and codewords < args.max_codewords:
        num = min(step, args.max_codewords - codewords)
        bits, bits_hat = link(num)
        errors += int((bits != bits_hat).any(dim=1).sum())
        codewords += num
        if errors == codewords >= MIN_ALL_LOST:  # every codeword so far lost: BLER 1, no need for more
            break
    return {"snr_db": round(snr_db, 2), "codewords": codewords, "block_errors": errors,
            "bler": errors / codewords, "wall_s": round(time.perf_counter() - start, 2)}


def scan(key: str, plan: dict, store: dict, save, args, decoder: str | None, bar, estimator: str) -> None:
    """Measure the curve `key` into store['curves'][key], saving after every point."""
    from link_models import DigitalLink
    from link_models.mcs import mcs

    curve = store["curves"].setdefault(key, {**plan, "points": [], "done": False})
    if curve["done"]:
        return
    cfg = link_config(mcs(plan["mcs"][1], plan["mcs"][0]), args, estimator, decoder)
    link = RadioCodewords(cfg, args.seed) if args.radio == "sim" else DigitalLink(cfg, seed=args.seed)
    step = args.step_db
    start = math.ceil(plan["shannon_snr_db"] / step) * step

    def at(snr_db: float) -> float:
        snr_db = round(snr_db, 2)
        done = {p["snr_db"]: p for p in curve["points"]}
        if snr_db not in done:
            bar.set_postfix_str(f"{key} at {snr_db:+.1f} dB")
            done[snr_db] = measure(link, plan, snr_db, point_seed(args.seed, key, snr_db), args)
            curve["points"] = sorted(done.values(), key=lambda p: p["snr_db"])
            save()
        return done[snr_db]["bler"]

    snr = start
    span = MAX_SPAN_DB if args.channel == "awgn" else 2 * MAX_SPAN_DB  # fading curves are wide
    while at(snr) < BLER_HIGH and snr > start - span:
        snr -= step
    snr = start
    while at(snr) > BLER_LOW and snr < start + span:
        snr += step
    curve["done"] = True
    save()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    from link_models.config import ESTIMATORS

    if args.n < 24 or args.target_errors < 1 or args.max_codewords < 1:
        raise InputError("--n must be >= 24, --target-errors and --max-codewords >= 1")
    estimators = [e.strip().lower() for e in str(args.estimator).split(",") if e.strip()]
    if args.radio == "sim":  # one table, named after the radio; the receiver estimates from its pilots
        estimators = ["radio-sim"]
    bad = [e for e in estimators if e not in (*ESTIMATORS, "radio-sim")]
    if bad or not estimators:
        raise InputError(f"--estimator {args.estimator!r}: give one or more of {', '.join(ESTIMATORS)}, comma-separated")
    if args.out is not None and len(estimators) > 1 and "{estimator}" not in str(args.out):
        raise InputError("several estimators need '{estimator}' in --out (one table each)")
    if args.radio == "sim" and args.channel != "awgn":
        raise InputError("--radio sim measures on AWGN; leave --channel out")
    if args.step_db <= 0 or args.speed_mps < 0:
        raise InputError("--step-db must be > 0 and --speed-mps >= 0")
    from link_models.mcs import shipped_table_path

    for estimator in estimators:
        out = (Path(str(args.out).replace("{estimator}", estimator)) if args.out is not None
               else shipped_table_path(estimator, args.channel))
        run_one(args, estimator, out)
    return 0


def run_one(args, estimator: str, out: Path) -> None:
    """Measure (or resume) the table of one estimator into `out`."""
    from tqdm import tqdm

    from link_models.mcs import mcs_table

    decoder = decoder_setting(args.decoder)
    settings = settings_of(args, decoder, estimator)
    link = "link_models.ota.RadioLink over sdr_drivers.sim.SimRadio" if args.radio == "sim" else "link_models.DigitalLink"
    store = {"about": f"BLER vs Es/N0 per MCS, measured with {link}; see scripts/make_bler_table.py",
             "command": "python scripts/make_bler_table.py " + " ".join(sys.argv[1:]),
             "settings": settings, "versions": versions(), "curves": {}, "tables": {}, "mcs": {}}
    if out.is_file():
        saved = read_json(out)
        differ = sorted(k for k in settings | saved.get("settings", {})
                        if settings.get(k) != saved.get("settings", {}).get(k))
        if differ:
            raise InputError(f"{out} was made with other settings ({', '.join(differ)}); use another "
                             "--out or delete it to start over")
        store["curves"] = saved.get("curves", {})
        store["tables"] = saved.get("tables", {})
        store["mcs"] = saved.get("mcs", {})

    todo: dict[str, dict] = {}
    for table in args.tables:
        for m in mcs_table(int(table)):
            if args.mcs is not None and m.index not in {int(i) for i in args.mcs}:
                continue
            if args.radio == "sim" and m.code_rate < 0.2:   # no repetition on the radio frame
                continue
            store["tables"].setdefault(str(m.table), {})[str(m.index)] = m.key
            store["mcs"].setdefault(str(m.table), {})[str(m.index)] = m.to_dict()
            todo.setdefault(m.key, curve_plan(m, args, estimator, decoder))
    ordered = sorted(todo.items(), key=lambda kv: kv[1]["spectral_efficiency"])
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        atomic_write_json(out, store)

    save()
    bar = tqdm(ordered, desc=f"BLER table ({estimator})", unit="curve", disable=args.no_progress)
    for key, plan in bar:
        scan(key, plan, store, save, args, decoder, bar, estimator)
    bar.close()
    done = sum(store["curves"][k]["done"] for k in todo)
    print(f"{out}: {done} of {len(todo)} curves done ({estimator}, {settings['decoder']} decoder, n={args.n})",
          flush=True)
    if args.plot:
        png = Path(str(args.plot).replace("{estimator}", estimator))
        plot(store, out, png, [int(t) for t in args.tables])


def plot(store: dict, table_path: Path, png: Path, tables: list[int]) -> None:
    """Left: BLER against SNR per MCS of the first table; right: the link adaptation's spectral efficiency
    m R (1 - BLER) at the BLER target against capacity log2(1 + SNR)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from link_models.mcs import BlerTable, LinkAdaptation
    from meg_common.io import atomic_write

    table = BlerTable(table_path)
    colours = dict(zip(values(Modulation)[1:], ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    first = tables[0]
    for index in table.indices(first):
        curve = store["curves"][store["tables"][str(first)][str(index)]]
        pts = [p for p in curve["points"] if p["block_errors"] > 0]
        ax1.semilogy([p["snr_db"] for p in pts], [p["bler"] for p in pts], ".-", lw=1,
                     color=colours[curve["modulation"]], alpha=0.8)
    for name, colour in colours.items():
        ax1.plot([], [], color=colour, label=name)
    ax1.axhline(0.1, color="k", ls=":", lw=1)
    ax1.set(xlabel="Es/N0 per RE (dB)", ylabel="BLER", ylim=(1e-3, 1.1),
            title=f"MCS table {first}: BLER, n = {store['settings']['n']}, AWGN, {store['settings']['estimator']}")
    snr = np.arange(-10, 30.01, 0.1)
    ax2.plot(snr, np.log2(1 + 10 ** (snr / 10)), "k-", label="capacity log2(1 + SNR)")
    for t in tables:
        if not table.indices(t):
            continue
        la = LinkAdaptation(table=t, bler_table=table)
        se = []
        for s in snr:
            m = la.mcs(s)  # below the table's MCS 0: table 3's low-SE rows, where measured
            se.append(m.spectral_efficiency * (1 - table.bler(m.index, s, m.table)))
        ax2.plot(snr, se, label=f"link adaptation, table {t} (BLER <= 10 %)")
    ax2.set(xlabel="Es/N0 per RE (dB)", ylabel="bits per channel use",
            title="throughput m R (1 - BLER) of the selected MCS")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(png, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
