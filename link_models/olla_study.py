"""OLLA and ARQ on fading channels: first-transmission BLER over time and image delivery (docs/link-models.md).

    python -m link_models.olla_study --out runs/olla --channels tdl-a,cdl-a --snr-db=-5,0,5,10,15,20 --images 200

Per channel and SNR: one UE session (one LinkState) on the case-study hop's link (one resource block, LMMSE,
n = 1008, HARQ 4 transmissions, mcs 'auto' = OLLA, RLC ARQ `--arq-max`, continuous fading at `--speed-mps`),
sending `--images` random payloads of `--image-bytes` one after the other. Writes DIR/olla.json (per point:
first-transmission BLER over TBs [0, 200) and [200, 400) with Wilson 95 % intervals, images delivered,
symbols, latency in slots, the offset and ACKs per TB) and DIR/olla.png (offset and windowed BLER over time).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from meg_common.cli import number_list
from meg_common.stats import rate


def run_point(channel: str, snr_db: float, images: int, image_bytes: int, speed: float, arq_max: int, seed: int,
              estimator: str = "lmmse") -> dict:
    from link_models.config import LinkConfig
    from link_models.digital import DigitalLink
    from link_models.state import LinkState

    cfg = LinkConfig(channel=channel, snr_db=snr_db, estimator=estimator, fft_size=12, cp_length=1, k=512, n=1024,
                     mcs="auto", max_transmissions=4, arq_max=arq_max, fading="continuous", speed_mps=speed)
    link = DigitalLink(cfg, seed=0)
    link.reseed(seed)
    state = LinkState(seed=seed)
    rng = np.random.default_rng(seed)
    delivered, symbols, latency, arq = 0, [], [], 0
    t0 = time.time()
    for _ in range(images):
        payload = rng.integers(0, 256, image_bytes, dtype=np.uint8).tobytes()
        received, stats = link.send_bytes(payload, state=state)
        delivered += received == payload
        symbols.append(stats.total_symbols)
        latency.append(stats.latency_slots)
        arq += stats.arq_retransmissions
    acks = [r.ack for r in state.history]
    out = {"channel": channel, "snr_db": snr_db, "images": images, "delivered": int(delivered),
           "delivery": rate(int(delivered), images), "tbs": len(acks),
           "bler_first_200": rate(sum(not a for a in acks[:200]), len(acks[:200])),
           "bler_200_400": rate(sum(not a for a in acks[200:400]), len(acks[200:400])),
           "bler_after_200": rate(sum(not a for a in acks[200:]), len(acks[200:])),
           "symbols_mean": float(np.mean(symbols)), "latency_slots_mean": float(np.mean(latency)),
           "latency_slots_max": int(np.max(latency)), "arq_retransmissions": int(arq),
           "offset_db": [round(r.offset_db, 3) for r in state.history], "ack": [bool(a) for a in acks],
           "mcs": [r.mcs_index for r in state.history], "mcs_table": [r.mcs_table for r in state.history],
           "aggregation": [r.aggregation for r in state.history], "seconds": round(time.time() - t0, 1)}
    return out


def plot(points: list[dict], path: Path, window: int = 50) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meg_common.stats import rate as wilson

    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for p in points:
        label = f"{p['channel']} {p['snr_db']:g} dB"
        axes[0].plot(p["offset_db"], label=label, lw=0.8)
        nack = 1 - np.array(p["ack"], dtype=float)
        xs, mid, lo, hi = [], [], [], []
        for start in range(0, len(nack) - window + 1, window):
            r = wilson(int(nack[start:start + window].sum()), window)
            xs.append(start + window / 2)
            mid.append(r["value"])
            lo.append(r["ci_low"])
            hi.append(r["ci_high"])
        line, = axes[1].plot(xs, mid, marker="o", ms=3, lw=0.8, label=label)
        axes[1].fill_between(xs, lo, hi, color=line.get_color(), alpha=0.12)
    axes[1].axhline(0.1, color="k", ls="--", lw=0.8)
    axes[0].set_ylabel("OLLA offset [dB]")
    axes[1].set_ylabel(f"first-tx BLER per {window} TBs\n(95 % Wilson)")
    axes[1].set_xlabel("transport block of the UE's session")
    axes[0].legend(fontsize=6, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--channels", default="tdl-a,cdl-a")
    p.add_argument("--snr-db", type=number_list("--snr-db"), default=[-5.0, 0.0, 5.0, 10.0, 15.0, 20.0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--image-bytes", type=int, default=318, help="the CENTRALIZED WebP image of the hop tests: 318 B")
    p.add_argument("--speed-mps", type=float, default=3 / 3.6)
    p.add_argument("--arq-max", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "olla.json"
    done = json.loads(path.read_text()) if path.is_file() else {"points": []}
    have = {(d["channel"], d["snr_db"]) for d in done["points"]}
    for channel in args.channels.split(","):
        for snr in args.snr_db:
            if (channel, float(snr)) in have:
                continue
            point = run_point(channel, float(snr), args.images, args.image_bytes, args.speed_mps, args.arq_max,
                              args.seed)
            done["points"].append(point)
            path.write_text(json.dumps(done))
            b = point["bler_after_200"]
            print(f"{channel} {snr:g} dB: {point['tbs']} TBs, first-tx BLER after 200 {b['value']:.3f} "
                  f"[{b['ci_low']:.3f}, {b['ci_high']:.3f}], delivered {point['delivered']}/{point['images']}, "
                  f"{point['seconds']} s", flush=True)
    plot(done["points"], out / "olla.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
