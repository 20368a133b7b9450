"""The over-the-air experiment behind `meg-phy ota`: loopback, transmit, receive; BER, report and plots.

    from link_models.ota.experiment import loopback, make_payload, summary, write_report
    payload, values = make_payload("digital", frame, cfg, frames=10, seed=0)
    report, frames = loopback(radio, cfg, frame, payload=payload, seed=0)    # the fields of ota.json
    write_report(out, report, frames)                                          # OUT/ota.json, OUT/ota.png
    print(summary(report))

`transmit` writes frames to a SigMF recording (or sends them cyclically through a Pluto) and `receive`
decodes any capture, with the BER against the payload that was sent when it is known. Radios come from
sdr_drivers; argument parsing stays in the command (flowgraphs/commands/ota.py).
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np

from link_models.config import LinkConfig, ResolvedLink, resolve
from link_models.ota.config import FrameConfig
from link_models.ota.radio_link import RadioLink, scale_burst, shared_codec
from meg_common.errors import InputError
from meg_common.io import atomic_write, atomic_write_bytes, atomic_write_json
from meg_common.provenance import versions


def make_payload(scheme: str, frame: FrameConfig, cfg: LinkConfig | ResolvedLink, payload: str = "random",
                 frames: int | None = None, seed: int = 0) -> tuple[bytes | None, np.ndarray | None]:
    """(bytes, None) for digital, (None, float64 values) for analog: random (`frames` frames, default 10)
    or the bytes of the file `payload` (analog: its bytes as values centred on 0)."""
    rng = np.random.default_rng(seed or 0)
    if frames is not None and frames < 1:
        raise InputError(f"--frames {frames}: must be >= 1")
    if payload != "random":
        path = Path(payload)
        if not path.is_file():
            raise InputError(f"--payload {payload}: no such file; give a file or 'random'")
        data = path.read_bytes()
        if not data:
            raise InputError(f"--payload {payload}: the file is empty")
        if scheme == "digital":
            return data, None
        return None, np.frombuffer(data, np.uint8).astype(np.float64) - 127.5
    frames = frames or 10
    if scheme == "digital":
        cfg = resolve(cfg)
        per = frame.codewords_per_frame * cfg.k // 8 - 4
        if per < 1:
            raise InputError(f"--k {cfg.k}: too small for a frame; raise --k or --codewords-per-frame")
        return rng.integers(0, 256, per * frames, dtype=np.uint8).tobytes(), None
    return None, rng.standard_normal(frame.values_per_frame * frames)


def loopback(radio, cfg: LinkConfig, frame: FrameConfig, payload: bytes | None = None,
             values: np.ndarray | None = None, seed: int = 0, record: str | None = None,
             args: dict | None = None, mode: str = "legacy") -> tuple[dict, list]:
    """Send `payload` (digital) or `values` (analog) through `radio` with a RadioLink and decode them.

    `record`: also record TX and RX as SigMF in that folder. Returns the report (ota.json's fields; `args`
    is recorded in its config) and the decoded frames in sequence order."""
    import torch


    started = time.perf_counter()
    recorder = None
    if record:
        from sdr_drivers.sigmf_io import RecordingRadio

        radio = recorder = RecordingRadio(radio, record)
    with radio:
        link = RadioLink(getattr(radio, "radio", radio), cfg, frame, seed=seed, recorder=recorder, mode=mode)
        warmup_s = link.receiver().warm_up()                 # one-time, kept out of the real-time factor
        if values is None:
            received, stats = link.send_bytes(payload)
            ok = received == payload
        else:
            _, _, stats = link.send_values(torch.from_numpy(values))
            ok = link.last_transfer.frames_crc_ok == len(link.last_transfer.sent)
    transfer = link.last_transfer
    found = sorted(transfer.decoded.values(), key=lambda f: f.header.seq)
    timings: dict[str, float] = {}
    for r in transfer.captures:
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    inner = getattr(radio, "radio", radio)
    stats = stats.to_dict()
    speed = realtime(transfer.captures, frame.sample_rate)
    report = {
        "frames_sent": len(transfer.sent), "frames_detected": transfer.frames_detected,
        "frames_crc_ok": transfer.frames_crc_ok, "header_rejected": transfer.header_rejected,
        "noise_triggers": transfer.noise_triggers, "foreign_frames": transfer.foreign_frames,
        "ground_truth": transfer.ground_truth,
        "missing_frames": transfer.missing,
        "cfo_hz_est": [round(f.cfo_hz, 1) for f in found], "snr_est_db": [round(f.snr_est_db, 2) for f in found],
        "ber": stats.get("ber"), "bler": stats.get("bler"), "nmse": stats.get("nmse"), "payload_ok": bool(ok),
        "cfo_hz_true": getattr(inner, "cfo_hz", None),
        "link_stats": stats, "timings_s": {k: round(v, 4) for k, v in timings.items()}, **speed,
        "warmup_s": round(warmup_s, 4),
        "wall_s": round(time.perf_counter() - started, 3),
        "config": {**_config(args, frame, cfg), "radio": getattr(inner, "settings", lambda: {})()},
        "versions": versions(),
    }
    return report, found


def transmit(out: Path, frame: FrameConfig, cfg: LinkConfig | ResolvedLink, payload: bytes | None = None,
             values: np.ndarray | None = None, msg_id: int = 0, radio=None, seconds: float = 10.0,
             center_frequency: float = 2.4e9, args: dict | None = None, say=print, mode: str = "legacy") -> dict:
    """Frames -> OUT/tx.sigmf-* (radio None) or a cyclic transmission through `radio` for `seconds`.

    Also writes what was sent (OUT/payload.bin or OUT/values.npy, for the receiver's BER) and OUT/tx.json;
    returns tx.json's fields."""
    from link_models.ota.frame import FrameBuilder

    cfg = resolve(cfg)
    builder = FrameBuilder(shared_codec(frame, cfg.ldpc_iterations), cfg.modulation, cfg.code, cfg.k, cfg.n)
    frames = builder.digital_frames(payload, msg_id) if values is None else builder.analog_frames(values, msg_id)
    first, gap = 0, frame.gap_samples
    if mode == "low-snr":                 # one burst: chirp preamble, burst header, the frames back to back
        from link_models.ota.lowsnr import LowSnrCodec, low_snr_frames

        frames = low_snr_frames(builder, frames)
        low = LowSnrCodec.shared(builder.codec)
        burst, first, gap = low.burst(frames), low.data_start, 0
    else:
        burst = builder.burst(frames)
    samples = scale_burst(burst)
    if radio is None:
        from sdr_drivers.sigmf_io import SigMFSink

        sink = SigMFSink(out / "tx", frame.sample_rate, center_frequency, description="meg-phy ota tx frames")
        pos = first
        for f in frames:
            sink.annotate(pos, f.samples.size, {"core:label": f"frame {f.header.seq}", "meg_phy:msg_id": msg_id,
                                                 "meg_phy:scheme": f.header.scheme, "meg_phy:mode": mode})
            pos += f.samples.size + gap
        with sink:
            sink.transmit(samples)
        where = str(sink.meta_path)
    else:
        with radio:
            radio.transmit(samples, cyclic=True)
            say(f"transmitting {len(frames)} frames cyclically for {seconds:g} s (Ctrl-C stops)")
            time.sleep(max(0.0, seconds))
        where = radio.uri
    if payload is not None:
        atomic_write_bytes(out / "payload.bin", payload)
    else:
        np.save(out / "values.npy", values)
    tx = {"frames_sent": len(frames), "samples": int(burst.size), "written_to": where, "msg_id": msg_id, "mode": mode,
          "config": _config(args, frame, cfg), "versions": versions()}
    atomic_write_json(out / "tx.json", tx)
    return tx


def receive(capture: np.ndarray, sample_rate: float, sent: bytes | None = None, ldpc_iterations: int = 20,
            config: dict | None = None, started: float | None = None) -> tuple[dict, list, bytes | None]:
    """Decode every frame in `capture`; BER against `sent` (the payload that was sent) when given.

    Returns the report (ota.json's fields), the frames in time order and the reassembled payload (digital,
    when complete). Missing frames are listed, never guessed."""
    from link_models.ota.reassembly import reassemble
    from link_models.ota.receiver import FrameReceiver

    started = time.perf_counter() if started is None else started
    frame = FrameConfig(sample_rate=float(sample_rate))
    receiver = FrameReceiver(shared_codec(frame, ldpc_iterations), modes=("legacy", "low-snr"))   # either mode
    warmup_s = receiver.warm_up()                          # one-time, kept out of the real-time factor
    result = receiver.receive(capture)
    message = reassemble(result.frames)
    ber = None
    if sent is not None and message.payload is not None:
        a = np.unpackbits(np.frombuffer(sent, np.uint8))
        b = np.unpackbits(np.frombuffer(message.payload, np.uint8))
        n = min(a.size, b.size)
        ber = float((np.sum(a[:n] != b[:n]) + abs(a.size - b.size)) / max(a.size, 1))
    frames = sorted(result.frames, key=lambda f: f.start)
    digital = bool(frames) and frames[0].header.scheme == "digital"
    ok = message.complete and (not digital or sent is None or message.payload == sent)
    report = {
        "frames_sent": message.total if message.total else None,
        "frames_detected": len(frames), "frames_crc_ok": sum(f.crc_ok for f in frames),
        "header_rejected": result.header_rejected, "noise_triggers": None, "ground_truth": False,
        "missing_frames": message.missing,
        "cfo_hz_est": [round(f.cfo_hz, 1) for f in frames], "snr_est_db": [round(f.snr_est_db, 2) for f in frames],
        "ber": ber, "bler": (1 - sum(f.crc_ok for f in frames) / message.total) if message.total else None,
        "payload_ok": bool(ok and message.total > 0),
        "payload_sha256": hashlib.sha256(message.payload).hexdigest() if message.payload else None,
        "samples": int(capture.size), "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        **realtime([result], frame.sample_rate), "warmup_s": round(warmup_s, 4),
        "wall_s": round(time.perf_counter() - started, 3),
        "config": {**(config or {}), "frame": frame.to_dict()},
    }
    return report, frames, message.payload


def realtime(captures: list, sample_rate: float) -> dict:
    """How fast the receiver kept up: `signal_s` (captured samples / sample rate), `receive_s` (wall time of
    the receive calls: detection, sync, equalisation, demapping, LDPC decoding, CRCs) and
    `realtime_factor` = signal_s / receive_s (> 1: it decodes faster than the signal lasts). The one-time
    warm-up (`FrameReceiver.warm_up`) is reported apart as `warmup_s`."""
    signal_s = sum(r.samples for r in captures) / sample_rate
    receive_s = sum(r.seconds for r in captures)
    return {"signal_s": round(signal_s, 6), "receive_s": round(receive_s, 6),
            "realtime_factor": round(signal_s / receive_s, 3) if receive_s > 0 else None}


def write_report(out: Path, report: dict, frames: list) -> None:
    """OUT/ota.json (non-finite numbers as null) and OUT/ota.png (constellation, CFO and SNR per frame)."""
    atomic_write_json(Path(out) / "ota.json", _finite(report))
    plot(Path(out) / "ota.png", frames)


def plot(path: Path, frames: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    symbols = np.concatenate([f.symbols for f in frames if f.symbols is not None] or [np.zeros(0, complex)])
    if symbols.size:
        pick = symbols[np.linspace(0, symbols.size - 1, min(4000, symbols.size)).astype(int)]
        axes[0].plot(pick.real, pick.imag, ".", ms=2, alpha=0.5)
    axes[0].set(title="equalised data symbols", xlabel="I", ylabel="Q", aspect="equal")
    seq = [f.header.seq for f in frames]
    ok = [f.crc_ok for f in frames]
    for ax, values, label in ((axes[1], [f.cfo_hz / 1e3 for f in frames], "CFO estimate (kHz)"),
                              (axes[2], [f.snr_est_db for f in frames], "SNR estimate (dB)")):
        ax.scatter(seq, values, c=["tab:green" if o else "tab:red" for o in ok], s=14)
        ax.set(xlabel="frame (seq)", ylabel=label, title=label.split(" (")[0] + " per frame (red: CRC failed)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)


def summary(report: dict) -> str:
    cfo = report["cfo_hz_est"]
    return (f"ota: {report['frames_crc_ok']}/{report['frames_sent']} frames CRC-ok, detected "
            f"{report['frames_detected']}, header rejected {report['header_rejected']}, noise triggers "
            f"{'n/a' if report['noise_triggers'] is None else report['noise_triggers']}, "
            f"CFO {(sum(cfo) / len(cfo) / 1e3 if cfo else float('nan')):.2f} kHz, payload_ok={report['payload_ok']}"
            + (f", decoded at {report['realtime_factor']:g}x real time" if report.get("realtime_factor") else ""))


def _config(args: dict | None, frame: FrameConfig, cfg: LinkConfig) -> dict:
    return {"args": dict(args or {}), "frame": frame.to_dict(), "link": cfg.to_dict()}


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
