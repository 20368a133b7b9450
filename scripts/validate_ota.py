"""Validate the over-the-air frame on the simulated radio; write the figures of docs/over-the-air.md.

    .venv/bin/python scripts/validate_ota.py --out docs/figures            (about 10 minutes on 2 cores)
    .venv/bin/python scripts/validate_ota.py --out runs/ota-validate --quick

Writes OUT/ota-detection.png (frame detection vs SNR at +-40 ppm CFO and SCO with DC offset, 1 dB / 5 deg
IQ imbalance and a 12-bit ADC; detector crossings and decoded headers), OUT/ota-bler.png (coded BLER over
the air vs the link-level simulation, QPSK, 5G LDPC 1024/2048, AWGN) and OUT/ota-validation.json with the
numbers: detection rates, false alarms on 10^4 noise-only buffers, the SNR gap at BLER 0.1.

The low-SNR mode alone (OUT/ota-lowsnr.json, its figures, and every burst's record as it is measured in
OUT/ota-lowsnr-bursts.jsonl; an interrupted run goes on where it stopped with the same options and --resume):

    .venv/bin/python scripts/validate_ota.py --low-snr-only --out runs/low10 --low-snr-db=-10 --bursts 1200 \
        --frames-per-burst 1 --first-seed 1000 --noise-seconds 0                (about 3 minutes on 2 cores)

Rates are given per frame and per burst with Wilson and Clopper-Pearson 95 % intervals; RMS CFO and timing
errors and the NMSE against the link level with percentile-bootstrap 95 % intervals over bursts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IMPAIRED = {"dc_offset": 0.03 - 0.02j, "iq_gain_db": 1.0, "iq_phase_deg": 5.0, "adc_bits": 12}


def frame_outcomes(receiver, radio, frames, capture, cp: int, gap: int) -> dict:
    """Per sent frame, from the simulated radio's ground truth: detected (a detection within a cyclic
    prefix of its true start), header (its header decoded), payload (its CRC passed); and the detections
    that matched no frame (noise triggers)."""
    from link_models.ota.radio_link import frame_starts

    result = receiver.receive(capture)
    truth = np.asarray(frame_starts(radio, frames, gap), float)
    found = [f.start for f in result.frames] + list(result.rejected_starts)
    near = [bool(np.any(np.abs(np.asarray(found, float) - t) <= cp)) if found else False for t in truth]
    by_seq = {f.header.seq: f for f in result.frames}
    header = [f.header.seq in by_seq for f in frames]
    payload = [f.header.seq in by_seq and by_seq[f.header.seq].crc_ok for f in frames]
    noise = sum(1 for d in found if not np.any(np.abs(truth - d) <= cp))
    cfo = [by_seq[f.header.seq].cfo_hz - radio.cfo_hz for f in frames if f.header.seq in by_seq]
    return {"detected": sum(near), "header": sum(header), "payload": sum(payload), "noise_triggers": noise,
            "cfo_error_hz": cfo, "frames": len(frames)}


def detection_curve(snrs, buffers, codec, progress) -> dict:
    from link_models.ota.frame import FrameBuilder
    from link_models.ota.radio_link import RadioLink
    from link_models.ota.receiver import FrameReceiver
    from meg_common.stats import rate
    from sdr_drivers.sim import SimRadio

    builder = FrameBuilder(codec, "qpsk", "ldpc", 1024, 2048)
    frames = builder.digital_frames(bytes(builder.bytes_per_frame * 10), msg_id=1)
    burst = RadioLink(SimRadio(), frame=codec.cfg)._scale(builder.burst(frames))
    receiver = FrameReceiver(codec)
    keys = ("detected", "header", "payload")
    out = {"snr_db": [], "frames": [], "noise_triggers": [], **{k: [] for k in keys},
           **{f"{k}_ci95": [] for k in keys}, "header_failed_given_detected": []}
    for snr in snrs:
        total = dict.fromkeys((*keys, "noise_triggers", "frames"), 0)
        for seed in range(buffers):
            radio = SimRadio(snr_db=snr, cfo_ppm=40 * (-1) ** seed, sco_ppm=40 * (-1) ** (seed // 2), seed=seed,
                             **IMPAIRED)
            radio.transmit(burst)
            o = frame_outcomes(receiver, radio, frames, radio.receive(burst.size + 3000), codec.cfg.cp_length,
                               codec.cfg.gap_samples)
            for k in total:
                total[k] += o[k]
        n = total["frames"]
        out["snr_db"].append(snr)
        out["frames"].append(n)
        out["noise_triggers"].append(total["noise_triggers"])
        for k in keys:
            out[k].append(total[k] / n)
            r = rate(total[k], n)
            out[f"{k}_ci95"].append([r["ci_low"], r["ci_high"]])
        out["header_failed_given_detected"].append(1 - total["header"] / total["detected"] if total["detected"] else None)
        progress(f"frames {snr:+.1f} dB: detected {total['detected']}/{n}, header {total['header']}/{n}, "
                 f"payload {total['payload']}/{n}, noise triggers {total['noise_triggers']}")
    return out


LOW_SNR_IMPAIRED = {"dc_offset": 0.01 + 0.005j, "iq_gain_db": 0.5, "iq_phase_deg": 3.0, "adc_bits": 12}
LOW_SNR_MSG_ID = 9


class LowSnrRun:
    """The low-SNR mode's analog burst through the simulated radio: one burst of `frames_per_burst` analog
    frames (2048 values each), the receiver and the values, built once and measured per (SNR, seed)."""

    def __init__(self, codec, frames_per_burst: int, ppm: float):
        from link_models.ota.frame import FrameBuilder
        from link_models.ota.lowsnr import LowSnrCodec, LowSnrReceiver, low_snr_frames
        from link_models.ota.radio_link import scale_burst

        self.codec, self.ppm, self.frames_per_burst = codec, float(ppm), int(frames_per_burst)
        low = LowSnrCodec.shared(codec)
        builder = FrameBuilder(codec, "qpsk", "none", 2, 2)
        self.values = np.random.default_rng(5).standard_normal(codec.cfg.values_per_frame * frames_per_burst)
        self.frames = low_snr_frames(builder, builder.analog_frames(self.values, msg_id=LOW_SNR_MSG_ID))
        self.burst = scale_burst(low.burst(self.frames))
        self.receiver = LowSnrReceiver(codec)

    def measure(self, snr: float, seed: int) -> dict:
        """One burst with ground truth (SimRadio.last_bursts): detected (a detection within a cyclic prefix
        of the true start), header (the burst header decoded), delivered (frames whose values came back),
        noise triggers (detections elsewhere), the CFO and timing errors, the squared error of the values
        (a lost frame's values count as 0) and the link level's (AnalogLink, perfect CSI, same SNR)."""
        from link_models import AnalogLink, LinkConfig
        from sdr_drivers.sim import SimRadio

        cfg = self.codec.cfg
        radio = SimRadio(snr_db=snr, cfo_ppm=self.ppm * (-1) ** seed, sco_ppm=self.ppm * (-1) ** (seed // 2),
                         seed=seed, **LOW_SNR_IMPAIRED)
        radio.transmit(self.burst)
        capture = radio.receive(self.burst.size + 3000)
        result = self.receiver.receive(capture)
        truth = float(radio.last_bursts[0][0])
        starts = {getattr(f, "burst_start", None) for f in result.frames} | set(result.rejected_starts)
        starts.discard(None)
        found = sorted(d for d in starts if abs(d - truth) <= cfg.cp_length)
        by_seq = {f.header.seq: f for f in result.frames if f.header.msg_id == LOW_SNR_MSG_ID}
        est = np.concatenate([by_seq[f.header.seq].values[:f.header.units] if f.header.seq in by_seq
                              else np.zeros(f.header.units) for f in self.frames])
        _, _, stats = AnalogLink(LinkConfig(snr_db=snr), seed=seed).send_values(torch.from_numpy(self.values))
        first = next(iter(by_seq.values()), None)
        return {"snr_db": float(snr), "seed": int(seed), "frames": len(self.frames), "detected": bool(found),
                "header": bool(by_seq), "delivered": len(by_seq), "noise_triggers": len(starts) - len(found),
                "detections": int(result.detections), "header_rejected": int(result.header_rejected),
                "true_start": truth, "true_cfo_hz": float(radio.cfo_hz),
                "found_starts": [int(d) for d in found],
                "detector_metric": float(first.sync.metric) if first is not None else None,
                "cfo_error_hz": float(first.cfo_hz - radio.cfo_hz) if first is not None else None,
                "timing_error_samples": float(first.burst_start - truth) if first is not None else None,
                "sq_error": float(np.sum((est - self.values) ** 2)),
                "sq_error_link_level": float(stats.nmse * np.sum(self.values ** 2)),
                "energy": float(np.sum(self.values ** 2))}


def _bootstrap_ci(data: np.ndarray, statistic, resamples: int = 4000, seed: int = 20241) -> list[float] | None:
    """Percentile bootstrap 95 % interval of `statistic` over the rows of `data` (bursts are the unit)."""
    if len(data) < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), (resamples, len(data)))
    stats = np.asarray([statistic(data[i]) for i in idx])
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))]


def _rates(k: int, n: int) -> dict:
    """k of n with the Wilson and the Clopper-Pearson (exact) 95 % intervals."""
    from scipy.stats import binomtest

    if n <= 0:
        return {"k": int(k), "n": int(n), "value": None, "wilson95": None, "clopper_pearson95": None}
    test = binomtest(int(k), int(n))
    w, cp = test.proportion_ci(method="wilson"), test.proportion_ci(method="exact")
    return {"k": int(k), "n": int(n), "value": k / n, "wilson95": [float(w.low), float(w.high)],
            "clopper_pearson95": [float(cp.low), float(cp.high)]}


def summarize_low_snr(records: list[dict], snr: float) -> dict:
    """One SNR point from its burst records: rates per frame and per burst (Wilson and Clopper-Pearson), RMS
    CFO and timing errors and the NMSE against the link level with bootstrap intervals over bursts, and
    the bursts that lost anything (for diagnosis)."""
    rs = [r for r in records if r["snr_db"] == snr]
    bursts, frames = len(rs), sum(r["frames"] for r in rs)
    det_b = sum(r["detected"] for r in rs)
    head_b = sum(r["header"] for r in rs)
    det_f = sum(r["frames"] for r in rs if r["detected"])
    head_f = sum(r["frames"] for r in rs if r["header"])
    deliv_f = sum(r["delivered"] for r in rs)
    cfo = np.asarray([r["cfo_error_hz"] for r in rs if r["cfo_error_hz"] is not None], float)
    tim = np.asarray([r["timing_error_samples"] for r in rs if r["timing_error_samples"] is not None], float)
    rms = lambda v: float(np.sqrt(np.mean(np.square(v))))  # noqa: E731
    sq = np.asarray([[r["sq_error"], r["sq_error_link_level"], r["energy"]] for r in rs], float)
    db = lambda rows, j: 10 * math.log10(rows[:, j].sum() / rows[:, 2].sum())  # noqa: E731
    return {
        "snr_db": snr, "bursts": bursts, "frames": frames,
        "detected": _rates(det_f, frames), "header": _rates(head_f, frames), "delivered": _rates(deliv_f, frames),
        "detected_bursts": _rates(det_b, bursts), "header_bursts": _rates(head_b, bursts),
        "header_failed_given_detected": _rates(sum(1 for r in rs if r["detected"] and not r["header"]), det_b),
        "noise_triggers": sum(r["noise_triggers"] for r in rs),
        "cfo_error_rms_hz": {"value": rms(cfo) if cfo.size else None, "n": int(cfo.size),
                             "bootstrap95": _bootstrap_ci(cfo, rms)},
        "timing_error_rms_samples": {"value": rms(tim) if tim.size else None, "n": int(tim.size),
                                     "bootstrap95": _bootstrap_ci(tim, rms)},
        "nmse_db": {"value": db(sq, 0), "n": bursts, "bootstrap95": _bootstrap_ci(sq, lambda s: db(s, 0))},
        "nmse_link_level_db": {"value": db(sq, 1), "n": bursts, "bootstrap95": _bootstrap_ci(sq, lambda s: db(s, 1))},
        "nmse_gap_db": {"value": db(sq, 0) - db(sq, 1), "n": bursts,
                        "bootstrap95": _bootstrap_ci(sq, lambda s: db(s, 0) - db(s, 1))},
        "failures": [r for r in rs if not r["detected"] or not r["header"] or r["delivered"] < r["frames"]
                     or r["noise_triggers"]],
    }


def _read_checkpoint(path: Path, config: dict) -> list[dict]:
    """Burst records of an earlier run with the same configuration (first line of the file)."""
    import json

    from meg_common.errors import InputError

    if not path.exists():
        raise InputError(f"--resume: no checkpoint at {path}")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0].get("config") != config:
        raise InputError(f"--resume: {path} was written with another configuration "
                         f"({lines[0].get('config') if lines else 'empty'}); start without --resume")
    return lines[1:]


def low_snr_curve(snrs, bursts, frames_per_burst, codec, progress, ppm: float = 50.0, first_seed: int = 0,
                  checkpoint: Path | None = None, resume: bool = False) -> dict:
    """The low-SNR mode through the simulated radio, analog seed frames, +-`ppm` CFO and SCO (signs
    alternating over seeds first_seed .. first_seed + bursts - 1), DC offset, IQ imbalance, 12-bit ADC
    (LOW_SNR_IMPAIRED). Every burst's record goes to `checkpoint` (JSON lines) as it is measured; with
    `resume` the records already there are kept and their bursts skipped."""
    import json

    config = {"snr_db": [float(s) for s in snrs], "bursts": int(bursts), "frames_per_burst": int(frames_per_burst),
              "ppm": float(ppm), "first_seed": int(first_seed), "impairments": repr(LOW_SNR_IMPAIRED)}
    records = _read_checkpoint(checkpoint, config) if checkpoint is not None and resume else []
    done = {(r["snr_db"], r["seed"]) for r in records}
    if records:
        progress(f"resumed: {len(records)} bursts from {checkpoint}")
    sink = None
    if checkpoint is not None:
        sink = open(checkpoint, "a" if resume else "w")  # noqa: SIM115 (kept open over the run)
        if not resume:
            sink.write(json.dumps({"config": config}) + "\n")
    run = LowSnrRun(codec, frames_per_burst, ppm)
    out = {"snr_db": [], "frames": [], "bursts": bursts, "frames_per_burst": frames_per_burst, "ppm": ppm,
           "first_seed": first_seed, "noise_triggers": [], "detected": [], "header": [], "delivered": [],
           "detected_ci95": [], "header_ci95": [], "delivered_ci95": [], "header_failed_given_detected": [],
           "header_failed_given_detected_ci95": [], "cfo_error_rms_hz": [], "timing_error_rms_samples": [],
           "nmse_db": [], "nmse_link_level_db": [], "points": []}
    try:
        for snr in snrs:
            snr = float(snr)
            for seed in range(first_seed, first_seed + bursts):
                if (snr, seed) in done:
                    continue
                record = run.measure(snr, seed)
                records.append(record)
                if sink is not None:
                    sink.write(json.dumps(record) + "\n")
                    sink.flush()
                count = len([r for r in records if r["snr_db"] == snr])
                if count % 100 == 0:
                    lost = sum(r["frames"] - r["delivered"] for r in records if r["snr_db"] == snr)
                    progress(f"low-SNR {snr:+.1f} dB: {count}/{bursts} bursts, {lost} frames lost so far")
            p = summarize_low_snr(records, snr)
            out["points"].append(p)
            out["snr_db"].append(snr)
            out["frames"].append(p["frames"])
            out["noise_triggers"].append(p["noise_triggers"])
            for k in ("detected", "header", "delivered"):
                out[k].append(p[k]["value"])
                out[f"{k}_ci95"].append(p[k]["wilson95"])
            hf = p["header_failed_given_detected"]
            out["header_failed_given_detected"].append(hf["value"])
            out["header_failed_given_detected_ci95"].append(hf["wilson95"])
            out["cfo_error_rms_hz"].append(p["cfo_error_rms_hz"]["value"])
            out["timing_error_rms_samples"].append(p["timing_error_rms_samples"]["value"])
            out["nmse_db"].append(p["nmse_db"]["value"])
            out["nmse_link_level_db"].append(p["nmse_link_level_db"]["value"])
            d = p["delivered"]
            progress(f"low-SNR {snr:+.1f} dB: detected {p['detected']['k']}/{p['frames']}, header "
                     f"{p['header']['k']}/{p['frames']}, delivered {d['k']}/{d['n']} (Clopper-Pearson 95 % "
                     f"[{d['clopper_pearson95'][0]:.4f}, {d['clopper_pearson95'][1]:.4f}]), noise triggers "
                     f"{p['noise_triggers']}, CFO error {p['cfo_error_rms_hz']['value']} Hz RMS, timing "
                     f"{p['timing_error_rms_samples']['value']} samples RMS, NMSE {p['nmse_db']['value']:.2f} dB "
                     f"(link level {p['nmse_link_level_db']['value']:.2f} dB)")
    finally:
        if sink is not None:
            sink.close()
    return out


RADIO_TABLE_PAYLOAD = 600       # bytes per digital send (the size of the factory check in docs/over-the-air.md)
RADIO_TABLE_VALUES = 256        # analog values per send (a seed: one frame)


def radio_table_record(factory, mode: str, scheme: str, snr: float, seed: int) -> dict:
    """One send through `meg-phy run --radio sim`'s link factory (flowgraphs.radio_link: a fresh SimRadio
    with sdr_drivers.sim.REALISTIC impairments, the hop's defaults: MCS from the radio's BLER table, ARQ up
    to 4 transmissions for digital). Digital: a RADIO_TABLE_PAYLOAD-byte payload: frames, frames that failed
    their first transmission, delivered intact after ARQ; analog: RADIO_TABLE_VALUES values: frames lost and
    the NMSE."""
    from flowgraphs.config import LinkSpec

    link = factory(LinkSpec(scheme=scheme, channel="awgn", snr_db=snr), seed)
    rng = np.random.default_rng(seed)
    out = {"mode": link.mode, "scheme": scheme, "snr_db": float(snr), "seed": int(seed)}
    if scheme == "digital":
        payload = rng.integers(0, 256, RADIO_TABLE_PAYLOAD, dtype=np.uint8).tobytes()
        received, stats = link.send_bytes(payload)
        t = link.last_transfer
        c = link.cfg
        out.update(frames=len(t.sent), first_failed=len({f.header.seq for f in t.retransmitted}),
                   delivered=received == payload, transmissions=stats.transmissions,
                   samples_on_air=t.samples_on_air, mcs=c.mcs_index, modulation=c.modulation, k=c.k, n=c.n,
                   repetitions=int(getattr(t.sent[0], "repetitions", 1)), max_transmissions=c.max_transmissions)
    else:
        values = torch.from_numpy(rng.standard_normal(RADIO_TABLE_VALUES))
        _, _, stats = link.send_values(values)
        t = link.last_transfer
        out.update(frames=len(t.sent), lost=stats.frames_lost, nmse=stats.nmse, samples_on_air=t.samples_on_air)
    if mode != out["mode"]:
        raise RuntimeError(f"asked for mode {mode}, the factory gave {out['mode']}")
    return out


def summarize_radio_table(records: list[dict]) -> list[dict]:
    rows = []
    for key in sorted({(r["mode"], r["scheme"], r["snr_db"]) for r in records}):
        rs = [r for r in records if (r["mode"], r["scheme"], r["snr_db"]) == key]
        row = {"mode": key[0], "scheme": key[1], "snr_db": key[2], "sends": len(rs),
               "frames": sum(r["frames"] for r in rs),
               "mean_samples_on_air": float(np.mean([r["samples_on_air"] for r in rs]))}
        if key[1] == "digital":
            first = rs[0]
            row.update({k: first[k] for k in ("mcs", "modulation", "k", "n", "repetitions", "max_transmissions")})
            row["first_transmission_frames_failed"] = _rates(sum(r["first_failed"] for r in rs), row["frames"])
            row["first_transmission_sends_with_a_failed_frame"] = _rates(sum(r["first_failed"] > 0 for r in rs),
                                                                          len(rs))
            row["delivered"] = _rates(sum(r["delivered"] for r in rs), len(rs))
            row["mean_transmissions"] = float(np.mean([r["transmissions"] for r in rs]))
        else:
            row["frames_delivered"] = _rates(row["frames"] - sum(r["lost"] for r in rs), row["frames"])
            nmse = np.asarray([r["nmse"] for r in rs], float)
            row["nmse_db"] = {"value": 10 * math.log10(nmse.mean()), "n": len(rs),
                              "bootstrap95": _bootstrap_ci(nmse, lambda v: 10 * math.log10(v.mean()))}
        rows.append(row)
    return rows


def radio_table(snrs, sends: int, progress, checkpoint: Path | None = None, resume: bool = False,
                legacy_sends: int | None = None) -> list[dict]:
    """The radio's BLER/delivery rows: both modes (legacy: the factory with the low-SNR mode off, for
    comparison, `legacy_sends` sends per point (default `sends`); low-snr: below its 2 dB threshold, `sends`
    sends per point), digital and analog, seeds 0 .. sends-1."""
    import json

    from flowgraphs.radio_link import LOW_SNR_BELOW_DB, radio_link_factory

    legacy_sends = sends if legacy_sends is None else legacy_sends
    config = {"radio_table_snr_db": [float(s) for s in snrs], "sends": int(sends), "legacy_sends": int(legacy_sends),
              "payload": RADIO_TABLE_PAYLOAD, "values": RADIO_TABLE_VALUES}
    records = _read_checkpoint(checkpoint, config) if checkpoint is not None and resume else []
    done = {(r["mode"], r["scheme"], r["snr_db"], r["seed"]) for r in records}
    sink = None
    if checkpoint is not None:
        sink = open(checkpoint, "a" if resume else "w")  # noqa: SIM115 (kept open over the run)
        if not resume:
            sink.write(json.dumps({"config": config}) + "\n")
    factories = {"legacy": radio_link_factory("sim", low_snr_below_db=None),
                 "low-snr": radio_link_factory("sim", low_snr_below_db=LOW_SNR_BELOW_DB)}
    try:
        for snr in snrs:
            for mode, factory in factories.items():
                if mode == "low-snr" and float(snr) >= LOW_SNR_BELOW_DB:
                    continue
                count = legacy_sends if mode == "legacy" else sends
                for scheme in ("digital", "analog"):
                    for seed in range(count):
                        if (mode, scheme, float(snr), seed) in done:
                            continue
                        record = radio_table_record(factory, mode, scheme, float(snr), seed)
                        records.append(record)
                        if sink is not None:
                            sink.write(json.dumps(record) + "\n")
                            sink.flush()
                    progress(f"radio table {mode} {scheme} {snr:+.1f} dB: {count} sends")
    finally:
        if sink is not None:
            sink.close()
    return summarize_radio_table(records)

def low_snr_noise(codec, seconds: float, progress) -> dict:
    """Noise only, impaired like the radio (DC, IQ imbalance, 12-bit ADC), through the low-SNR receiver
    (chirp-pair matched filter, then the burst header): every detection is a noise trigger."""
    from link_models.ota.lowsnr import LowSnrReceiver
    from sdr_drivers.impairments import iq_imbalance, quantize

    receiver = LowSnrReceiver(codec)
    detector = receiver.codec.detector
    rng = np.random.default_rng(123)
    block, done, triggers, headers = 1 << 20, 0, 0, 0
    total = int(seconds * codec.cfg.sample_rate)
    while done < total:
        n = min(block, total - done)
        noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.05
        capture = quantize(iq_imbalance(noise, 0.5, 3.0) + (0.01 + 0.005j), 12).astype(np.complex64)
        result = receiver.receive(capture)
        triggers += result.detections
        headers += len(result.frames)
        done += n
    progress(f"low-SNR noise: {triggers} noise triggers, {headers} headers in {done / codec.cfg.sample_rate:.1f} s")
    return {"seconds": done / codec.cfg.sample_rate, "noise_triggers": triggers, "headers_decoded": headers,
            "threshold_rho": detector.threshold, "confirm_threshold_rho": detector.confirm_threshold,
            "closed_form_false_alarms_per_hour": detector.false_alarms_per_hour,
            "closed_form_expected_in_run": detector.false_alarms_per_hour * done / codec.cfg.sample_rate / 3600}


def plot_low_snr(out: Path, low: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meg_common.stats import rate

    snr = low["snr_db"]
    fig, ax = plt.subplots(figsize=(5.8, 3.8))
    for key, label, style in (("detected", "burst detected (chirp matched filter)", "o-"),
                              ("header", "burst header decoded", "s-"),
                              ("delivered", "analog frame delivered", "^-")):
        v = np.asarray(low[key])
        # the frames of a burst share its detection and header: intervals per burst (n = bursts)
        cis = [rate(int(round(x * low["bursts"])), low["bursts"]) for x in v]
        ci = np.asarray([[c["ci_low"], c["ci_high"]] for c in cis], float)
        ax.errorbar(snr, v, yerr=[np.clip(v - ci[:, 0], 0, None), np.clip(ci[:, 1] - v, 0, None)], fmt=style,
                    capsize=3, label=label)
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.axvline(-10, color="grey", ls=":", lw=1)
    ax.set(xlabel="SNR Es/N0 (dB)", ylabel="fraction (95 % Wilson, per burst)",
           title=f"Low-SNR mode, +-{low['ppm']:g} ppm CFO and SCO, DC, IQ, 12-bit ADC "
                 f"({low['bursts']} bursts of {low['frames_per_burst']} frames per point)")
    _finish(ax)
    _save(fig, out / "ota-lowsnr-detection.png")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label, style in (("cfo_error_rms_hz", "CFO error, RMS (Hz)", "o-"),
                              ("timing_error_rms_samples", "timing error, RMS (samples)", "s-")):
        v = np.asarray([np.nan if x is None else x for x in low[key]], float)
        # bootstrap 95 % over bursts, where the run kept them (low["points"])
        cis = [p[key]["bootstrap95"] or [np.nan, np.nan] for p in low.get("points", [])] or [[np.nan] * 2] * len(v)
        ci = np.asarray(cis, float)
        a1.errorbar(snr, v, yerr=[np.clip(v - ci[:, 0], 0, None), np.clip(ci[:, 1] - v, 0, None)], fmt=style,
                    capsize=3, label=label + (", 95 % bootstrap" if "points" in low else ""))
    a1.set_yscale("log")
    a1.axhline(300, color="tab:blue", ls=":", lw=1, label="target: 300 Hz")
    a1.axhline(1, color="tab:orange", ls=":", lw=1, label="target: 1 sample")
    a1.set_ylim(0.1, 1000)
    a1.set(xlabel="SNR Es/N0 (dB)", title=f"sync errors ({low['bursts']} bursts per point)")
    _finish(a1, which="both")
    a2.plot(snr, low["nmse_db"], "o-", label="over the air (low-SNR mode)")
    a2.plot(snr, low["nmse_link_level_db"], "s--", label="link level AnalogLink (perfect CSI)")
    a2.set(xlabel="SNR Es/N0 (dB)", ylabel="NMSE (dB)", title="analog values")
    _finish(a2)
    _save(fig, out / "ota-lowsnr-sync-nmse.png")


def _finish(ax, which: str = "major") -> None:
    """Small title, grid and legend, as every panel of these figures has them."""
    ax.title.set_fontsize(8)
    ax.grid(alpha=0.3, which=which)
    ax.legend(fontsize=7)


def _save(fig, path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def false_alarms(codec, count: int) -> dict:
    from link_models.ota.frontend import front_end
    from link_models.ota.preamble import detect, noise_false_alarm_probability, schmidl_cox_metric
    from sdr_drivers.impairments import iq_imbalance, quantize

    cfg = codec.cfg
    window = (cfg.preamble_repeats - 1) * cfg.preamble_period
    rng = np.random.default_rng(0)
    alarms, length = 0, 2048
    for start in range(0, count, 1000):
        n = min(1000, count - start)
        noise = (rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))) * 0.05
        buffers = quantize(iq_imbalance(noise, 1.0, 5.0) + (0.03 - 0.02j), 12)
        for b in buffers:
            metric, _ = schmidl_cox_metric(front_end(b), cfg.preamble_period, window)
            alarms += len(detect(metric, cfg.detection_threshold, cfg.sync_length))
    per_position = noise_false_alarm_probability(cfg.detection_threshold, window - 1)
    return {"buffers": count, "samples_per_buffer": length, "false_alarms": alarms,
            "closed_form_per_position": per_position,
            "closed_form_expected_upper_bound": per_position * count * length}


def bler_curves(snrs, codewords, progress) -> dict:
    from link_models import DigitalLink, LinkConfig
    from link_models.ota.radio_link import RadioLink
    from sdr_drivers.sim import SimRadio

    out = {"snr_db": list(snrs), "ota": [], "link_perfect": [], "link_ls": [], "codewords": codewords}
    done = {"ota": False, "link_perfect": False, "link_ls": False}
    for i, snr in enumerate(snrs):
        cfg = LinkConfig(modulation="qpsk", k=1024, n=2048, snr_db=snr)
        if not done["ota"]:
            radio = SimRadio(snr_db=snr, cfo_ppm=40 * (-1) ** i, sco_ppm=-40 * (-1) ** i, seed=100 + i, **IMPAIRED)
            link = RadioLink(radio, cfg, seed=i)
            per = link.frame.codewords_per_frame * 1024 // 8 - 4
            payload = np.random.default_rng(i).integers(0, 256, per * codewords // 2, dtype=np.uint8).tobytes()
            _, stats = link.send_bytes(payload)
            out["ota"].append(stats.block_errors / stats.codewords)
        else:
            out["ota"].append(0.0)
        for est in ("perfect", "ls"):
            key = f"link_{est}"
            if done[key]:
                out[key].append(0.0)
                continue
            dl = DigitalLink(LinkConfig(modulation="qpsk", k=1024, n=2048, snr_db=snr, estimator=est), seed=i)
            bits, decoded = dl(codewords)
            out[key].append(float((bits != decoded).any(dim=1).float().mean()))
        for key in done:
            done[key] = done[key] or (i > 0 and out[key][-1] == 0.0 and out[key][-2] == 0.0)
        progress(f"BLER {snr:.1f} dB: ota {out['ota'][-1]:.4f}, link perfect {out['link_perfect'][-1]:.4f}, "
                 f"link LS {out['link_ls'][-1]:.4f}")
    return out


def snr_at(snrs, bler, target=0.1) -> float | None:
    """SNR where BLER crosses `target` (log-linear interpolation); None if it does not."""
    for (s0, b0), (s1, b1) in zip(zip(snrs, bler, strict=True), zip(snrs[1:], bler[1:], strict=True), strict=False):
        if b0 >= target > b1:
            l0, l1 = math.log10(max(b0, 1e-6)), math.log10(max(b1, 1e-6))
            return s0 + (math.log10(target) - l0) / (l1 - l0) * (s1 - s0)
    return None


def plot(out: Path, det: dict, bler: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(det["snr_db"], det["detected"], "o-", label="detected (within a CP of the true start)")
    ax.plot(det["snr_db"], det["header"], "s-", label="header CRC ok")
    ax.plot(det["snr_db"], det["payload"], "^-", label="payload CRC ok")
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.axvline(5, color="grey", ls=":", lw=1)
    ax.set(xlabel="SNR Es/N0 (dB)", ylabel="fraction of frames",
           title="Frame detection, +-40 ppm CFO and SCO, DC, IQ 1 dB/5 deg, 12-bit ADC")
    ax.title.set_fontsize(8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ota-detection.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, label, style in (("ota", "over the air (sim radio, +-40 ppm, impairments)", "o-"),
                              ("link_perfect", "link level, perfect CSI", "s--"),
                              ("link_ls", "link level, LS (2 pilot symbols)", "^:")):
        values = [max(v, 1e-4) for v in bler[key]]
        ax.semilogy(bler["snr_db"], values, style, label=label)
    ax.set(xlabel="SNR Es/N0 (dB)", ylabel="BLER", ylim=(1e-3, 1.2),
           title=f"QPSK, 5G LDPC 1024/2048, AWGN ({bler['codewords']} codewords per point)")
    ax.title.set_fontsize(8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ota-bler.png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--quick", action="store_true", help="fewer frames and codewords (a smoke run)")
    parser.add_argument("--low-snr-only", action="store_true",
                        help="only the low-SNR mode (curves, noise run): OUT/ota-lowsnr.json and its figures")
    parser.add_argument("--bursts", type=int, default=50, help="low-SNR: bursts per SNR point")
    parser.add_argument("--frames-per-burst", type=int, default=4,
                        help="low-SNR: analog frames per burst (1: every frame an independent draw)")
    parser.add_argument("--low-snr-db", default="-14,-13,-12,-11,-10,-8,-5,0",
                        help="low-SNR: SNR points, comma-separated (default %(default)s)")
    parser.add_argument("--ppm", type=float, default=50.0, help="low-SNR: CFO and SCO magnitude (signs alternate)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="low-SNR: the bursts use radio seeds FIRST .. FIRST + bursts - 1")
    parser.add_argument("--resume", action="store_true",
                        help="low-SNR: keep the bursts already in OUT/ota-lowsnr-bursts.jsonl (same options) "
                             "and measure the rest")
    parser.add_argument("--noise-seconds", type=float, default=100.0, help="low-SNR: seconds of noise (0: none)")
    parser.add_argument("--radio-table", metavar="SNRS",
                        help="only the radio's BLER/delivery rows at these SNRs (e.g. -10,-5,0): both modes, digital "
                             "and analog, through meg-phy run's --radio sim factory: OUT/ota-radio-table.json")
    parser.add_argument("--sends", type=int, default=200, help="radio table: sends per point")
    parser.add_argument("--legacy-sends", type=int, default=50,
                        help="radio table: sends per point of the legacy rows (for comparison)")
    args = parser.parse_args(argv)
    from meg_common.errors import InputError

    try:
        low_snrs = [float(v) for v in args.low_snr_db.split(",") if v.strip()]
    except ValueError:
        low_snrs = []
    if not low_snrs:
        parser.error(f"--low-snr-db {args.low_snr_db!r}: give numbers separated by commas, e.g. -10,-5,0")
    for name in ("bursts", "frames_per_burst"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: use 1 or more")
    if args.first_seed < 0 or args.noise_seconds < 0 or args.ppm < 0:
        parser.error("--first-seed, --noise-seconds and --ppm cannot be negative")
    os.environ.setdefault("MPLBACKEND", "Agg")
    torch.set_num_threads(1)
    from link_models.ota.config import FrameConfig
    from link_models.ota.radio_link import shared_codec
    from meg_common.io import atomic_write_json, prepare_out_dir
    from meg_common.provenance import versions

    out = prepare_out_dir(args.out)
    started = time.time()

    def progress(line: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {line}", file=sys.stderr, flush=True)

    if args.radio_table:
        try:
            snrs = [float(v) for v in args.radio_table.split(",") if v.strip()]
        except ValueError:
            snrs = []
        if not snrs or args.sends < 1 or args.legacy_sends < 0:
            print(f"error: --radio-table {args.radio_table!r} --sends {args.sends} --legacy-sends "
                  f"{args.legacy_sends}: give SNRs separated by commas, 1 or more sends (legacy: 0 or more)",
                  file=sys.stderr)
            return 2
        try:
            rows = radio_table(snrs, args.sends, progress, out / "ota-radio-table-sends.jsonl", args.resume,
                               legacy_sends=args.legacy_sends)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        atomic_write_json(out / "ota-radio-table.json", {"rows": rows, "wall_s": round(time.time() - started, 1),
                                                         "command": sys.argv, "versions": versions()})
        for row in rows:
            progress(json.dumps({k: v for k, v in row.items()}))
        return 0
    codec = shared_codec(FrameConfig(), 20)
    try:
        low = low_snr_curve(low_snrs, 4 if args.quick else args.bursts, args.frames_per_burst, codec, progress,
                            ppm=args.ppm, first_seed=args.first_seed, checkpoint=out / "ota-lowsnr-bursts.jsonl",
                            resume=args.resume)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = 5.0 if args.quick else args.noise_seconds
    noise = low_snr_noise(codec, seconds, progress) if seconds > 0 else None
    plot_low_snr(out, low)
    atomic_write_json(out / "ota-lowsnr.json", {"curves": low, "noise": noise, "wall_s": round(time.time() - started, 1),
                                                "command": sys.argv, "versions": versions()})
    if args.low_snr_only:
        return 0
    det = detection_curve([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 8.0], 4 if args.quick else 20, codec, progress)
    fa = false_alarms(codec, 2000 if args.quick else 10_000)
    progress(f"false alarms: {fa['false_alarms']} in {fa['buffers']} noise-only buffers")
    bler = bler_curves([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.5, 5.5, 6.5], 100 if args.quick else 400, progress)
    gap = None
    ota_snr, perfect_snr, ls_snr = (snr_at(bler["snr_db"], bler[k]) for k in ("ota", "link_perfect", "link_ls"))
    if ota_snr is not None and perfect_snr is not None:
        gap = ota_snr - perfect_snr
    plot(out, det, bler)
    summary = {"detection": det, "false_alarms": fa, "bler": bler,
               "snr_at_bler_0.1_db": {"ota": ota_snr, "link_perfect": perfect_snr, "link_ls": ls_snr},
               "gap_vs_perfect_csi_db": gap, "gap_vs_link_ls_db": None if ota_snr is None or ls_snr is None
               else ota_snr - ls_snr,
               "wall_s": round(time.time() - started, 1), "versions": versions()}
    atomic_write_json(out / "ota-validation.json", summary)
    progress(f"gap at BLER 0.1 vs perfect-CSI link level: {gap} dB; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
