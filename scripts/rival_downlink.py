"""The rival re-measured: CENTRALIZED's image downlink with OLLA and RLC ARQ on AWGN, TDL-A and CDL-A.

    python scripts/rival_downlink.py --out runs/rival --snr-db=-10,-5,0,5,10,20 --images 200 [--low-images 50]

Payloads: the embedded model's renders as CENTRALIZED sends them down: the text-to-image reference images of
the case study's first `--images` tasks (the campaign world's prompts, seed 1000 + i, 20 steps, the model's
guidance; flowgraphs.experiments.campaign.reference_image), WebP quality 75 (the run default), kept in
OUT/payloads.json. Per channel and SNR, every image goes down its own task's hop ES1-UE-image (the protocol
hop, flowgraphs.hops.Hop: one resource block, LMMSE, MCS 'auto' = OLLA, HARQ 4 transmissions, RLC ARQ up to
`--arq-max`, on TDL/CDL continuous fading at 3 km/h), its UE mid-session as in the case study
(flowgraphs.session: a `--warmup-tbs` warm-up per cell, each task's LinkState resumed from it at its own
idle time). Capacity: the fewest channel uses of the payload (link_models.capacity; AWGN's on AWGN, the
ergodic Rayleigh capacity on TDL-A and CDL-A, whose per-subcarrier gain is Rayleigh).

Writes OUT/rival.json (per cell: n, delivered with its Wilson 95 % interval, mean symbols with a bootstrap
95 % interval, capacity symbols, the ratio of means with its interval, first-transmission BLER, latency,
ARQ retransmissions, the warm-up's last offset and the tasks' mean start offset, seconds) and OUT/rival.md (the table of docs/link-models.md).
Resumable: a cell's images are checkpointed every 10. `--compare-open-loop SNRS`: on AWGN, the open loop
against OLLA for one render, 32 draws a point (OUT/open-loop.json).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", "/tmp/mpl")

from meg_common.io import atomic_write_json  # noqa: E402

SPEED_MPS = 3 / 3.6
SESSION_NAME = "ES1-UE-session"


def payloads(out: Path, n: int, quality: int = 75) -> list[bytes]:
    """The first n tasks' reference images as WebP (made once, then read from OUT/payloads.json)."""
    path = out / "payloads.json"
    stored = json.loads(path.read_text()) if path.is_file() else {"webp": [], "prompts": []}
    if len(stored["webp"]) < n:
        import torch

        from flowgraphs.experiments.campaign import reference_image
        from flowgraphs.experiments.world import load_world
        from flowgraphs.session import Session
        from flowgraphs.task import Task
        from meg_phy import codecs

        torch.set_num_threads(1)
        session = Session()
        ldm = session.model(None)
        prompts = load_world(None, session).prompts(n)
        for i in range(len(stored["webp"]), n):
            task = Task(prompt=prompts[i], image=None, image_source="none (text-to-image)", ldm=ldm, seed=1000 + i,
                        steps=20, strength=1.0, guidance=ldm.default_guidance)
            data = codecs.encode_image(reference_image(task), fmt="webp", quality=quality)
            stored["webp"].append(base64.b64encode(data).decode())
            stored["prompts"].append(prompts[i])
        atomic_write_json(path, stored)
    return [base64.b64decode(b) for b in stored["webp"][:n]]


def spec_of(channel: str, snr_db: float, arq_max: int):
    from flowgraphs.config import LinkSpec

    fading = {"fading": "continuous", "speed_mps": SPEED_MPS} if channel.startswith(("tdl", "cdl")) else {}
    return LinkSpec(scheme="digital", channel=channel, snr_db=snr_db, arq_max=arq_max, **fading)


def run_cell(session, channel: str, snr_db: float, images: list[bytes], arq_max: int, done: list[dict],
             save) -> list[dict]:
    """Each image down its own task's hop from the warmed-up UE state; records appended to `done`."""
    from flowgraphs.config import LinkSpec
    from flowgraphs.hops import Hop
    from flowgraphs.ledger import hop_seed
    from meg_phy import codecs

    spec = spec_of(channel, snr_db, arq_max)
    warm = session.warm_link_state(spec, "ES1", "UE")
    bound = LinkSpec(scheme="capacity", channel="awgn" if channel == "awgn" else "rayleigh", snr_db=snr_db)
    for i in range(len(done), len(images)):
        task_seed = 1000 + i
        state = warm.resumed(hop_seed(task_seed, SESSION_NAME))
        hop = Hop("ES1-UE-image", "ES1", "UE", "image", spec, hop_seed(task_seed, "ES1-UE-image"), session.link,
                  link_state=lambda state=state: state)
        t0 = time.perf_counter()
        _, r = hop.send_bytes(images[i], codecs.decode_image)
        _, c = Hop("ES1-UE-image", "ES1", "UE", "image", bound, hop_seed(task_seed, "ES1-UE-image"),
                   session.link).send_bytes(images[i], codecs.decode_image)
        done.append({"task": i, "bytes": len(images[i]), "delivered": bool(r.delivered), "symbols": r.symbols,
                     "capacity_symbols": c.symbols, "first_tx_nacks": r.first_tx_nacks,
                     "first_tx_blocks": r.first_tx_blocks, "latency_slots": r.latency_slots,
                     "arq": r.arq_retransmissions, "mcs_index": r.mcs_index, "mcs_table": r.mcs_table,
                     "offset_start_db": r.olla_offset_start_db, "offset_end_db": r.olla_offset_db,
                     "seconds": round(time.perf_counter() - t0, 2)})
        if len(done) % 10 == 0:
            save()
    return done


def summary(channel: str, snr_db: float, records: list[dict], warm_offset: float | None) -> dict:
    from meg_common import stats

    n = len(records)
    delivered = sum(r["delivered"] for r in records)
    nacks = sum(r["first_tx_nacks"] or 0 for r in records)
    blocks = sum(r["first_tx_blocks"] or 0 for r in records)
    return {"channel": channel, "snr_db": snr_db, "n": n, "delivered": stats.rate(delivered, n),
            "payload_bytes": stats.mean([r["bytes"] for r in records]),
            "symbols": stats.mean([r["symbols"] for r in records]),
            "capacity_symbols": stats.mean([r["capacity_symbols"] for r in records]),
            "ratio": stats.ratio_of_means([r["symbols"] for r in records], [r["capacity_symbols"] for r in records]),
            "first_tx_bler": stats.rate(nacks, blocks), "latency_slots_mean": stats.mean([r["latency_slots"] for r in records]),
            "latency_slots_max": max(r["latency_slots"] for r in records),
            "arq_retransmissions": sum(r["arq"] or 0 for r in records), "warmup_offset_db": warm_offset,
            "start_offset_db": stats.mean([r["offset_start_db"] for r in records]),
            "seconds": round(sum(r["seconds"] for r in records), 1)}


def table(cells: list[dict]) -> str:
    def ci(d, fmt):
        return f"{fmt.format(d['value'])} [{fmt.format(d['ci_low'])}, {fmt.format(d['ci_high'])}]"

    lines = ["| channel | SNR | n | delivered [95 %] | mean symbols [95 %] | capacity | × capacity [95 %] | "
             "first-tx BLER [95 %] | mean / max latency (slots) | ARQ retx | mean start offset |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = {"awgn": 0, "tdl-a": 1, "cdl-a": 2}
    for c in sorted(cells, key=lambda c: (order.get(c["channel"], 9), c["snr_db"])):
        d = c["delivered"]
        lines.append(
            f"| {c['channel']} | {c['snr_db']:g} dB | {c['n']} | {d['k']}/{c['n']} [{d['ci_low']:.3f}, {d['ci_high']:.3f}] | "
            f"{ci(c['symbols'], '{:.0f}')} | {c['capacity_symbols']['value']:.0f} | {ci(c['ratio'], '{:.2f}')} | "
            f"{ci(c['first_tx_bler'], '{:.3f}')} | {c['latency_slots_mean']['value']:.0f} / {c['latency_slots_max']} | "
            f"{c['arq_retransmissions']} | {c['start_offset_db']['value']:+.2f} dB |")
    return "\n".join(lines) + "\n"


def compare_open_loop(snrs: list[float], draws: int = 32) -> list[dict]:
    """On AWGN, one render (scripts/plot_image_link.py's scene, WebP q75) down the hop `draws` times per SNR:
    the open loop (`mcs='table'`), OLLA from a fresh session, and OLLA + ARQ mid-session (this script's
    cells); mean symbols with bootstrap 95 % intervals."""
    from flowgraphs.config import LinkSpec
    from flowgraphs.hops import Hop
    from flowgraphs.ledger import hop_seed
    from flowgraphs.session import Session
    from meg_common import stats
    from meg_phy import codecs
    from meg_phy.scenes import render

    attrs = {"objects": [{"shape": "circle", "colour": "red", "size": "large", "position": "left"}],
             "background": "white"}
    data = codecs.encode_image(render(attrs, 0)[None], fmt="webp", quality=75)
    out = []
    for snr in snrs:
        for name, settings, warmup in (("open loop (mcs table)", {"mcs": "table"}, 0), ("OLLA, fresh session", {}, 0),
                                       ("OLLA + ARQ, mid-session", {"arq_max": 8}, 300)):
            session = Session(link_warmup_tbs=warmup)
            spec = LinkSpec(scheme="digital", channel="awgn", snr_db=snr, **settings)
            warm = session.warm_link_state(spec, "ES1", "UE") if warmup else None
            records = []
            for seed in range(draws):
                state = warm.resumed(hop_seed(seed, SESSION_NAME)) if warm else None
                hop = Hop("ES1-UE-image", "ES1", "UE", "image", spec, seed, session.link,
                          link_state=(lambda state=state: state) if state else None)
                records.append(hop.send_bytes(data, codecs.decode_image)[1])
            row = {"snr_db": snr, "scheme": name, "bytes": len(data), "n": draws,
                   "symbols": stats.mean([r.symbols for r in records]),
                   "delivered": sum(r.delivered for r in records)}
            out.append(row)
            m = row["symbols"]
            print(f"{snr:g} dB {name}: {m['value']:.0f} [{m['ci_low']:.0f}, {m['ci_high']:.0f}] symbols, "
                  f"{row['delivered']}/{draws} delivered ({len(data)} bytes)", flush=True)
    return out


def main(argv=None) -> int:
    from meg_common.cli import number_list

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--channels", default="awgn,tdl-a,cdl-a")
    p.add_argument("--snr-db", type=number_list("--snr-db"), default=[-10.0, -5.0, 0.0, 5.0, 10.0, 20.0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--low-images", type=int, default=None,
                   help="images per cell below --low-below dB on fading channels (default --images)")
    p.add_argument("--low-below", type=float, default=0.0)
    p.add_argument("--arq-max", type=int, default=8)
    p.add_argument("--warmup-tbs", type=int, default=300)
    p.add_argument("--table-only", action="store_true", help="rewrite OUT/rival.md from OUT/rival.json")
    p.add_argument("--compare-open-loop", type=number_list("--compare-open-loop"), default=None, metavar="SNRS",
                   help="only the AWGN comparison of the open loop and OLLA at these SNRs (OUT/open-loop.json)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.compare_open_loop:
        import torch

        torch.set_num_threads(1)
        atomic_write_json(args.out / "open-loop.json", compare_open_loop([float(v) for v in args.compare_open_loop]))
        return 0
    path = args.out / "rival.json"
    saved = json.loads(path.read_text()) if path.is_file() else {"cells": {}, "records": {}}
    if args.table_only:   # the summaries again from the records (the warm-up's own numbers kept)
        for key, cell in saved["cells"].items():
            n = cell["n"]
            again = summary(cell["channel"], cell["snr_db"], saved["records"][key][:n], cell["warmup_offset_db"])
            saved["cells"][key] = {**again, "warmup_seconds": cell.get("warmup_seconds")}
    else:
        import torch

        from flowgraphs.session import Session

        images = payloads(args.out, args.images)
        torch.set_num_threads(1)
        session = Session(link_warmup_tbs=args.warmup_tbs)
        for snr in sorted(args.snr_db, reverse=True):   # the quick cells first
            for channel in args.channels.split(","):
                n = args.images
                if args.low_images is not None and channel != "awgn" and snr < args.low_below:
                    n = min(n, args.low_images)
                key = f"{channel}|{snr:g}"
                done = saved["records"].setdefault(key, [])
                if len(done) >= n and key in saved["cells"]:
                    continue

                def save():
                    atomic_write_json(path, saved)

                t0 = time.perf_counter()
                warm = session.warm_link_state(spec_of(channel, float(snr), args.arq_max), "ES1", "UE")
                warm_s = time.perf_counter() - t0
                run_cell(session, channel, float(snr), images[:n], args.arq_max, done, save)
                cell = summary(channel, float(snr), done[:n], warm.olla.offset_db)
                cell["warmup_seconds"] = round(warm_s, 1)
                saved["cells"][key] = cell
                save()
                print(f"{key}: n {n}, delivered {cell['delivered']['k']}/{n}, symbols {cell['symbols']['value']:.0f}, "
                      f"x{cell['ratio']['value']:.2f} capacity, first-tx BLER {cell['first_tx_bler']['value']:.3f}, "
                      f"warm-up {warm.olla.offset_db:+.2f} dB in {warm_s:.0f} s, {cell['seconds']} s", flush=True)
    (args.out / "rival.md").write_text(table(list(saved["cells"].values())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
