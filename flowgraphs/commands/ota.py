"""`meg-phy ota loopback|tx|rx`: the over-the-air frame through a simulated radio, a Pluto or a SigMF file.

    meg-phy ota loopback --radio sim --cfo-ppm 40 --sco-ppm -40 --snr-db 8 --frames 20 --out runs/ota
    meg-phy ota loopback --radio pluto --uri ip:192.168.2.1 --record runs/ota/rec --out runs/ota
    meg-phy ota tx --radio sigmf --frames 10 --out runs/ota-tx          # writes runs/ota-tx/tx.sigmf-*
    meg-phy ota rx --radio sigmf --in runs/ota-tx/tx --out runs/ota-rx   # decodes it (any recording)

Each writes OUT/ota.json (frames_sent, frames_detected, frames_crc_ok, false_alarms, cfo_hz_est,
snr_est_db, ber, bler, payload_ok, config, versions) and OUT/ota.png (constellation, CFO and SNR per
frame). Registration imports argparse only; the work imports Sionna and the radios lazily.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

CHANNELS = ("awgn", "ideal", "tdl-a", "tdl-b", "tdl-c", "tdl-d", "tdl-e")
MODULATIONS = ("bpsk", "qpsk", "16qam", "64qam", "256qam")


def register(subparsers) -> None:
    ota = subparsers.add_parser("ota", help="over-the-air frames: loopback, transmit, receive (sim, Pluto, SigMF)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ota.add_subparsers(dest="ota_command", metavar="ACTION", parser_class=type(ota))
    loop = sub.add_parser("loopback", help="send frames through a radio and decode them")
    loop.add_argument("--radio", choices=("sim", "pluto"), default="sim")
    _radio_options(loop)
    _payload_options(loop)
    loop.add_argument("--record", metavar="DIR", help="also record TX and RX as SigMF in DIR (tx.*, rx.*)")
    loop.add_argument("--out", required=True, metavar="DIR")
    loop.set_defaults(func=run_loopback)

    tx = sub.add_parser("tx", help="write frames to a SigMF recording, or transmit them with a Pluto")
    tx.add_argument("--radio", choices=("sigmf", "pluto"), default="sigmf")
    _radio_options(tx)
    _payload_options(tx)
    tx.add_argument("--seconds", type=float, default=10.0,
                    help="pluto: transmit the burst cyclically this long (Ctrl-C stops earlier); default 10")
    tx.add_argument("--out", required=True, metavar="DIR")
    tx.set_defaults(func=run_tx)

    rx = sub.add_parser("rx", help="decode frames from a SigMF recording or a Pluto capture")
    rx.add_argument("--radio", choices=("sigmf", "pluto"), default="sigmf")
    rx.add_argument("--in", dest="input", metavar="BASE", help="sigmf: recording BASE (BASE.sigmf-meta/-data)")
    rx.add_argument("--reference", metavar="FILE",
                    help="payload that was sent (default: payload.bin next to the recording, if any) for BER")
    rx.add_argument("--capture-seconds", type=float, default=0.5, help="pluto: capture length (default 0.5 s)")
    _radio_options(rx, sim=False)
    rx.add_argument("--ldpc-iterations", type=int, default=20)
    rx.add_argument("--out", required=True, metavar="DIR")
    rx.set_defaults(func=run_rx)


def _radio_options(p, sim: bool = True) -> None:
    g = p.add_argument_group("radio")
    g.add_argument("--uri", help="Pluto URI for TX and RX (one device cabled to itself), e.g. ip:192.168.2.1")
    g.add_argument("--tx-uri", help="Pluto URI of the transmitter (two devices)")
    g.add_argument("--rx-uri", help="Pluto URI of the receiver (two devices)")
    g.add_argument("--sample-rate", type=float, default=2e6, help="samples/s (default 2e6)")
    g.add_argument("--center-frequency", type=float, default=2.4e9, help="carrier in Hz (default 2.4e9)")
    g.add_argument("--tx-attenuation-db", type=float, default=-10.0, help="Pluto TX gain, -89.75..0 dB")
    g.add_argument("--rx-gain-mode", default="manual", help="manual, slow_attack, fast_attack, hybrid")
    g.add_argument("--rx-gain-db", type=float, default=30.0, help="Pluto RX gain in manual mode, -3..71 dB")
    g.add_argument("--timeout", type=float, default=5.0, help="seconds before a silent device is an error")
    if sim:
        s = p.add_argument_group("simulated radio (--radio sim)")
        s.add_argument("--snr-db", type=float, default=15.0, help="Es/N0 per used subcarrier (default 15)")
        s.add_argument("--cfo-ppm", type=float, default=20.0, help="carrier offset between TX and RX (default 20)")
        s.add_argument("--sco-ppm", type=float, default=20.0, help="sample-clock offset (default 20)")
        s.add_argument("--channel", choices=CHANNELS, default="awgn")
        s.add_argument("--delay-spread-ns", type=float, default=100.0)
        s.add_argument("--dc-offset", type=float, default=0.02, help="DC offset, fraction of full scale")
        s.add_argument("--iq-gain-db", type=float, default=0.5)
        s.add_argument("--iq-phase-deg", type=float, default=3.0)
        s.add_argument("--seed", type=int, default=0)


def _payload_options(p) -> None:
    g = p.add_argument_group("payload and frame")
    g.add_argument("--payload", default="random", help="'random' or a FILE to send (default random)")
    g.add_argument("--frames", type=int, default=None, help="random payload: this many frames (default 10)")
    g.add_argument("--scheme", choices=("digital", "analog"), default="digital")
    g.add_argument("--modulation", choices=MODULATIONS, default="qpsk")
    g.add_argument("--code", choices=("ldpc", "none"), default="ldpc")
    g.add_argument("--k", type=int, default=1024, help="LDPC information bits per codeword (default 1024)")
    g.add_argument("--n", type=int, default=2048, help="LDPC codeword bits (default 2048)")
    g.add_argument("--ldpc-iterations", type=int, default=20)
    g.add_argument("--codewords-per-frame", type=int, default=2)


# --- commands ------------------------------------------------------------------------------------------------
def run_loopback(args) -> int:
    from meg_common.io import prepare_out_dir

    radio = _make_radio(args)              # settings are validated before anything else
    out = prepare_out_dir(args.out)
    radio.open()                           # an unreachable device fails now, before the codecs are built
    frame, cfg = _frame_config(args), _link_config(args)
    payload, values = _payload(args, frame, cfg)
    from flowgraphs.radio_link import RadioLink

    started = time.perf_counter()
    if args.record:
        from sdr_drivers.sigmf_io import RecordingRadio

        radio = RecordingRadio(radio, args.record)
    with radio:
        link = RadioLink(getattr(radio, "radio", radio), cfg, frame, seed=getattr(args, "seed", 0),
                         recorder=radio if args.record else None)
        if args.scheme == "digital":
            received, stats = link.send_bytes(payload)
            ok = received == payload
        else:
            import torch

            est, var, stats = link.send_values(torch.from_numpy(values))
            ok = link.last_transfer.frames_crc_ok == len(link.last_transfer.sent)
    report = _report(link.last_transfer, stats.to_dict(), ok, args, frame, cfg, radio,
                     time.perf_counter() - started)
    _write(out, report, link.last_transfer)
    _summary(report)
    return 0


def run_tx(args) -> int:
    from link_models.ota.frame import FrameBuilder
    from meg_common.io import atomic_write_bytes, prepare_out_dir

    radio = _make_radio(args).open() if args.radio == "pluto" else None    # fail fast on a bad device
    out = prepare_out_dir(args.out)
    frame, cfg = _frame_config(args), _link_config(args)
    payload, values = _payload(args, frame, cfg)
    from flowgraphs.radio_link import RadioLink, shared_codec

    codec = shared_codec(frame, cfg.ldpc_iterations)
    builder = FrameBuilder(codec, cfg.modulation, cfg.code, cfg.k, cfg.n)
    msg_id = int(getattr(args, "seed", 0) or 0) % 256
    frames = builder.digital_frames(payload, msg_id) if args.scheme == "digital" else \
        builder.analog_frames(values, msg_id)
    burst = builder.burst(frames)
    if args.radio == "sigmf":
        from sdr_drivers.sigmf_io import SigMFSink

        sink = SigMFSink(out / "tx", frame.sample_rate, args.center_frequency, description="meg-phy ota tx frames")
        samples = RadioLink(sink, cfg, frame)._scale(burst)
        pos = 0
        for f in frames:
            sink.annotate(pos, f.samples.size, {"core:label": f"frame {f.header.seq}", "meg_phy:msg_id": msg_id,
                                                 "meg_phy:scheme": f.header.scheme})
            pos += f.samples.size + frame.gap_samples
        with sink:
            sink.transmit(samples)
        where = str(sink.meta_path)
    else:
        samples = RadioLink(radio, cfg, frame)._scale(burst)
        with radio:
            radio.transmit(samples, cyclic=True)
            print(f"transmitting {len(frames)} frames cyclically for {args.seconds:g} s (Ctrl-C stops)",
                  file=sys.stderr)
            time.sleep(max(0.0, args.seconds))
        where = radio.uri
    if payload is not None:
        atomic_write_bytes(out / "payload.bin", payload)
    else:
        import numpy as np

        np.save(out / "values.npy", values)
    from meg_common.io import atomic_write_json
    from meg_common.provenance import versions

    atomic_write_json(out / "tx.json", {"frames_sent": len(frames), "samples": int(burst.size), "written_to": where,
                                        "msg_id": msg_id, "config": _config(args, frame, cfg),
                                        "versions": versions()})
    print(f"ota tx: {len(frames)} frames, {burst.size} samples -> {where}")
    return 0


def run_rx(args) -> int:
    import numpy as np

    from meg_common.errors import InputError
    from meg_common.io import prepare_out_dir

    out = prepare_out_dir(args.out)
    started = time.perf_counter()
    if args.radio == "sigmf":
        if not args.input:
            raise InputError("ota rx --radio sigmf needs --in BASE (the recording, e.g. runs/ota-tx/tx)")
        from sdr_drivers.sigmf_io import SigMFSource, base_path

        source = SigMFSource(args.input)
        capture = source.recording.samples
        rate = source.sample_rate
        reference = Path(args.reference) if args.reference else base_path(args.input).parent / "payload.bin"
    else:
        radio = _make_radio(args).open()
        rate = radio.sample_rate
        with radio:
            capture = radio.receive(int(args.capture_seconds * rate))
        reference = Path(args.reference) if args.reference else None
    from flowgraphs.radio_link import shared_codec
    from link_models.ota.config import FrameConfig
    from link_models.ota.reassembly import reassemble
    from link_models.ota.receiver import FrameReceiver

    frame = FrameConfig(sample_rate=float(rate))
    result = FrameReceiver(shared_codec(frame, args.ldpc_iterations)).receive(capture)
    message = reassemble(result.frames)
    sent = None
    if reference is not None and reference.is_file():
        sent = reference.read_bytes()
    elif args.reference:
        raise InputError(f"--reference {args.reference}: no such file")
    ber = None
    if sent is not None and message.payload is not None:
        a = np.unpackbits(np.frombuffer(sent, np.uint8))
        b = np.unpackbits(np.frombuffer(message.payload, np.uint8))
        n = min(a.size, b.size)
        ber = float((np.sum(a[:n] != b[:n]) + abs(a.size - b.size)) / max(a.size, 1))
    frames = sorted(result.frames, key=lambda f: f.start)
    digital = bool(frames) and frames[0].header.scheme == "digital"
    ok = message.complete and (not digital or sent is None or message.payload == sent)
    if message.payload is not None:
        from meg_common.io import atomic_write_bytes

        atomic_write_bytes(out / "payload.bin", message.payload)
    report = {
        "frames_sent": message.total if message.total else None,
        "frames_detected": len(frames), "frames_crc_ok": sum(f.crc_ok for f in frames),
        "false_alarms": result.rejected, "missing_frames": message.missing,
        "cfo_hz_est": [round(f.cfo_hz, 1) for f in frames], "snr_est_db": [round(f.snr_est_db, 2) for f in frames],
        "ber": ber, "bler": (1 - sum(f.crc_ok for f in frames) / message.total) if message.total else None,
        "payload_ok": bool(ok and message.total > 0),
        "payload_sha256": hashlib.sha256(message.payload).hexdigest() if message.payload else None,
        "samples": int(capture.size), "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "wall_s": round(time.perf_counter() - started, 3),
        "config": {"radio": args.radio, "input": args.input, "frame": frame.to_dict()},
    }
    _write(out, report, None, frames)
    _summary(report)
    return 0


# --- helpers -------------------------------------------------------------------------------------------------
def _frame_config(args):
    from link_models.ota.config import FrameConfig

    return FrameConfig(sample_rate=float(args.sample_rate), codewords_per_frame=args.codewords_per_frame)


def _link_config(args):
    from link_models.config import LinkConfig

    return LinkConfig(modulation=args.modulation, code=args.code, k=args.k, n=args.n,
                      snr_db=getattr(args, "snr_db", None) or 0.0, ldpc_iterations=args.ldpc_iterations)


def _make_radio(args):
    from meg_common.errors import InputError

    if args.radio == "sim":
        from sdr_drivers.sim import SimRadio

        return SimRadio(sample_rate=args.sample_rate, center_frequency=args.center_frequency, snr_db=args.snr_db,
                        cfo_ppm=args.cfo_ppm, sco_ppm=args.sco_ppm, dc_offset=args.dc_offset,
                        iq_gain_db=args.iq_gain_db, iq_phase_deg=args.iq_phase_deg, channel=args.channel,
                        delay_spread_ns=args.delay_spread_ns, seed=args.seed)
    if args.radio == "pluto":
        from sdr_drivers.pluto import PlutoRadio

        if args.uri and (args.tx_uri or args.rx_uri):
            raise InputError("give either --uri (one Pluto) or --tx-uri and --rx-uri (two Plutos), not both")
        if bool(args.tx_uri) != bool(args.rx_uri):
            raise InputError("two Plutos need both --tx-uri and --rx-uri (or use --uri for one cabled Pluto)")
        uri = args.uri or args.tx_uri or "ip:192.168.2.1"
        return PlutoRadio(uri, rx_uri=args.rx_uri, sample_rate=args.sample_rate,
                          center_frequency=args.center_frequency, tx_attenuation_db=args.tx_attenuation_db,
                          rx_gain_mode=args.rx_gain_mode, rx_gain_db=args.rx_gain_db, timeout_s=args.timeout)
    raise InputError(f"radio '{args.radio}' cannot do this; see meg-phy ota --help")


def _payload(args, frame, cfg):
    """(bytes, None) for digital, (None, float64 values) for analog."""
    import numpy as np

    from meg_common.errors import InputError

    rng = np.random.default_rng(getattr(args, "seed", 0) or 0)
    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames {args.frames}: must be >= 1")
    if args.payload != "random":
        path = Path(args.payload)
        if not path.is_file():
            raise InputError(f"--payload {args.payload}: no such file; give a file or 'random'")
        data = path.read_bytes()
        if not data:
            raise InputError(f"--payload {args.payload}: the file is empty")
        if args.scheme == "digital":
            return data, None
        return None, np.frombuffer(data, np.uint8).astype(np.float64) - 127.5
    frames = args.frames or 10
    if args.scheme == "digital":
        per = frame.codewords_per_frame * cfg.k // 8 - 4
        if per < 1:
            raise InputError(f"--k {cfg.k}: too small for a frame; raise --k or --codewords-per-frame")
        return rng.integers(0, 256, per * frames, dtype=np.uint8).tobytes(), None
    return None, rng.standard_normal(frame.values_per_frame * frames)


def _config(args, frame, cfg) -> dict:
    keep = {k: v for k, v in vars(args).items() if k not in ("func",) and not callable(v)}
    return {"args": keep, "frame": frame.to_dict(), "link": cfg.to_dict()}


def _report(transfer, stats: dict, ok: bool, args, frame, cfg, radio, wall: float) -> dict:
    from meg_common.provenance import versions

    found = sorted(transfer.decoded.values(), key=lambda f: f.header.seq)
    timings: dict[str, float] = {}
    for r in transfer.captures:
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    settings = getattr(getattr(radio, "radio", radio), "settings", lambda: {})()
    return {
        "frames_sent": len(transfer.sent), "frames_detected": transfer.frames_detected,
        "frames_crc_ok": transfer.frames_crc_ok, "false_alarms": transfer.false_alarms,
        "missing_frames": transfer.missing,
        "cfo_hz_est": [round(f.cfo_hz, 1) for f in found], "snr_est_db": [round(f.snr_est_db, 2) for f in found],
        "ber": stats.get("ber"), "bler": stats.get("bler"), "nmse": stats.get("nmse"), "payload_ok": bool(ok),
        "cfo_hz_true": getattr(getattr(radio, "radio", radio), "cfo_hz", None),
        "link_stats": stats, "timings_s": {k: round(v, 4) for k, v in timings.items()}, "wall_s": round(wall, 3),
        "config": {**_config(args, frame, cfg), "radio": settings}, "versions": versions(),
    }


def _write(out: Path, report: dict, transfer, frames=None) -> None:
    from meg_common.io import atomic_write_json

    atomic_write_json(out / "ota.json", _finite(report))
    found = frames if frames is not None else sorted(transfer.decoded.values(), key=lambda f: f.header.seq)
    _plot(out / "ota.png", found)


def _plot(path: Path, frames) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from meg_common.io import atomic_write

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


def _summary(report: dict) -> None:
    cfo = report["cfo_hz_est"]
    print(f"ota: {report['frames_crc_ok']}/{report['frames_sent']} frames CRC-ok, detected "
          f"{report['frames_detected']}, false alarms {report['false_alarms']}, "
          f"CFO {(sum(cfo) / len(cfo) / 1e3 if cfo else float('nan')):.2f} kHz, payload_ok={report['payload_ok']}")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj

