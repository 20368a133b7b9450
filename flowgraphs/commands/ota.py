"""`meg-phy ota loopback|tx|rx`: the over-the-air frame through a simulated radio, a Pluto or a SigMF file.

    meg-phy ota loopback --radio sim --cfo-ppm 40 --sco-ppm -40 --snr-db 8 --frames 20 --out runs/ota
    meg-phy ota loopback --radio pluto --uri ip:192.168.2.1 --record runs/ota/rec --out runs/ota
    meg-phy ota tx --radio sigmf --frames 10 --out runs/ota-tx          # writes runs/ota-tx/tx.sigmf-*
    meg-phy ota rx --radio sigmf --in runs/ota-tx/tx --out runs/ota-rx   # decodes it (any recording)
    meg-phy ota tx --radio zmq --mode low-snr --scheme analog --seconds 5 --out runs/zmq-tx   # PUSH, cf32
    meg-phy ota rx --radio zmq --capture-seconds 0.5 --out runs/zmq-rx    # PULL, from a GNU Radio flowgraph

Each writes OUT/ota.json (frames_sent, frames_detected, frames_crc_ok, header_rejected, noise_triggers, cfo_hz_est,
snr_est_db, ber, bler, payload_ok, config, versions) and OUT/ota.png (constellation, CFO and SNR per
frame). Registration imports argparse only; the work (link_models.ota.experiment) imports Sionna and the
radios lazily.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from meg_common.vocabulary import CARRIERS, SIM_RADIO_CHANNELS, Code, Modulation, values

CHANNELS = values(SIM_RADIO_CHANNELS)
MODULATIONS = values(Modulation)


def register(subparsers) -> None:
    ota = subparsers.add_parser("ota", help="over-the-air frames: loopback, transmit, receive (sim, Pluto, SigMF)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ota.add_subparsers(dest="ota_command", metavar="ACTION", parser_class=type(ota))
    loop = sub.add_parser("loopback", help="send frames through a radio and decode them")
    loop.add_argument("--radio", choices=("sim", "pluto", "zmq"), default="sim")
    _radio_options(loop)
    _payload_options(loop)
    loop.add_argument("--record", metavar="DIR", help="also record TX and RX as SigMF in DIR (tx.*, rx.*)")
    loop.add_argument("--out", required=True, metavar="DIR")
    loop.set_defaults(func=run_loopback)

    tx = sub.add_parser("tx", help="write frames to a SigMF recording, or transmit them with a Pluto")
    tx.add_argument("--radio", choices=("sigmf", "pluto", "zmq"), default="sigmf")
    _radio_options(tx)
    _payload_options(tx)
    tx.add_argument("--seconds", type=float, default=10.0,
                    help="pluto, zmq: transmit the burst cyclically this long (Ctrl-C stops earlier); default 10")
    tx.add_argument("--out", required=True, metavar="DIR")
    tx.set_defaults(func=run_tx)

    rx = sub.add_parser("rx", help="decode frames from a SigMF recording or a Pluto capture")
    rx.add_argument("--radio", choices=("sigmf", "pluto", "zmq"), default="sigmf")
    rx.add_argument("--in", dest="input", metavar="BASE", help="sigmf: recording BASE (BASE.sigmf-meta/-data)")
    rx.add_argument("--reference", metavar="FILE",
                    help="payload that was sent (default: payload.bin next to the recording, if any) for BER")
    rx.add_argument("--capture-seconds", type=float, default=0.5, help="pluto, zmq: capture length (default 0.5 s)")
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
    g.add_argument("--tx-address", default="tcp://127.0.0.1:5555",
                   help="zmq: where the transmitter binds its PUSH socket (cf32); default tcp://127.0.0.1:5555")
    g.add_argument("--rx-address", default="tcp://127.0.0.1:5556",
                   help="zmq: where the receiver connects its PULL socket (cf32); default tcp://127.0.0.1:5556")
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
    g.add_argument("--scheme", choices=values(CARRIERS), default="digital")
    g.add_argument("--modulation", choices=MODULATIONS, default="qpsk")
    g.add_argument("--code", choices=values(Code), default="ldpc")
    g.add_argument("--k", type=int, default=1024, help="LDPC information bits per codeword (default 1024)")
    g.add_argument("--n", type=int, default=2048, help="LDPC codeword bits (default 2048)")
    g.add_argument("--ldpc-iterations", type=int, default=20)
    g.add_argument("--codewords-per-frame", type=int, default=2)
    g.add_argument("--mode", choices=("legacy", "low-snr"), default="legacy",
                   help="legacy: a Schmidl-Cox preamble and header per frame (from about +1 dB); low-snr: one "
                        "chirp preamble and a repetition-coded header per burst, frames at announced offsets "
                        "(analog frames to -10 dB and below); `ota rx` decodes either")


# --- commands (the work is link_models.ota.experiment) --------------------------------------------------
def run_loopback(args) -> int:
    from link_models.ota import experiment
    from meg_common.io import prepare_out_dir

    radio = _make_radio(args)              # settings are validated before anything else
    out = prepare_out_dir(args.out)
    radio.open()                           # an unreachable device fails now, before the codecs are built
    frame, cfg = _frame_config(args), _link_config(args)
    payload, values = experiment.make_payload(args.scheme, frame, cfg, args.payload, args.frames,
                                              getattr(args, "seed", 0))
    report, frames = experiment.loopback(radio, cfg, frame, payload, values, seed=getattr(args, "seed", 0),
                                         record=args.record, args=_args(args), mode=args.mode)
    experiment.write_report(out, report, frames)
    print(experiment.summary(report))
    return 0


def run_tx(args) -> int:
    from link_models.ota import experiment
    from meg_common.io import prepare_out_dir

    radio = _make_radio(args, role="tx").open() if args.radio in ("pluto", "zmq") else None   # fail fast
    out = prepare_out_dir(args.out)
    frame, cfg = _frame_config(args), _link_config(args)
    payload, values = experiment.make_payload(args.scheme, frame, cfg, args.payload, args.frames,
                                              getattr(args, "seed", 0))
    tx = experiment.transmit(out, frame, cfg, payload, values, msg_id=int(getattr(args, "seed", 0) or 0) % 256,
                             radio=radio, seconds=args.seconds, center_frequency=args.center_frequency,
                             args=_args(args), say=lambda line: print(line, file=sys.stderr), mode=args.mode)
    print(f"ota tx: {tx['frames_sent']} frames, {tx['samples']} samples -> {tx['written_to']}")
    return 0


def run_rx(args) -> int:
    from link_models.ota import experiment
    from meg_common.errors import InputError
    from meg_common.io import atomic_write_bytes, prepare_out_dir

    out = prepare_out_dir(args.out)
    started = time.perf_counter()
    if args.radio == "sigmf":
        if not args.input:
            raise InputError("ota rx --radio sigmf needs --in BASE (the recording, e.g. runs/ota-tx/tx)")
        from sdr_drivers.sigmf_io import SigMFSource, base_path

        source = SigMFSource(args.input)
        capture, rate = source.recording.samples, source.sample_rate
        reference = Path(args.reference) if args.reference else base_path(args.input).parent / "payload.bin"
    else:
        radio = _make_radio(args, role="rx").open()
        rate = radio.sample_rate
        with radio:
            capture = radio.receive(int(args.capture_seconds * rate))
        reference = Path(args.reference) if args.reference else None
    if args.reference and not reference.is_file():
        raise InputError(f"--reference {args.reference}: no such file")
    sent = reference.read_bytes() if reference is not None and reference.is_file() else None
    report, frames, payload = experiment.receive(capture, rate, sent, args.ldpc_iterations,
                                                 config={"radio": args.radio, "input": args.input}, started=started)
    if payload is not None:
        atomic_write_bytes(out / "payload.bin", payload)
    experiment.write_report(out, report, frames)
    print(experiment.summary(report))
    return 0


# --- from arguments to configurations and radios ---------------------------------------------------------
def _frame_config(args):
    from link_models.ota.config import FrameConfig

    return FrameConfig(sample_rate=float(args.sample_rate), codewords_per_frame=args.codewords_per_frame)


def _link_config(args):
    from link_models.config import LinkConfig

    return LinkConfig(modulation=args.modulation, code=args.code, k=args.k, n=args.n,
                      snr_db=getattr(args, "snr_db", None) or 0.0, ldpc_iterations=args.ldpc_iterations)


def _args(args) -> dict:
    """The arguments as recorded in the report's config."""
    return {k: v for k, v in vars(args).items() if k not in ("func",) and not callable(v)}


def _make_radio(args, role: str = "both"):
    from meg_common.errors import InputError

    if args.radio == "zmq":
        from sdr_drivers.zmq_radio import ZmqRadio

        return ZmqRadio(tx_address=args.tx_address if role in ("tx", "both") else None,
                        rx_address=args.rx_address if role in ("rx", "both") else None,
                        sample_rate=args.sample_rate, center_frequency=args.center_frequency, timeout_s=args.timeout)
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
