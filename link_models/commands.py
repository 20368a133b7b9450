"""`meg-phy link ...`: the link-level simulator on the command line (registration imports argparse only)."""

from __future__ import annotations

import argparse

from meg_common.cli import number_list
from meg_common.executors import add_executor_arguments, executor_from_args
from meg_common.vocabulary import CARRIERS, Channel, Code, Decoder, Estimator, Modulation, values

CHANNELS = values(Channel)
DEFAULT_POINTS = {"digital": ("ebno_db", [0.0, 1.0, 2.0, 3.0, 4.0]),
                  "analog": ("snr_db", [0.0, 5.0, 10.0, 15.0, 20.0])}


def register(subparsers) -> None:
    link = subparsers.add_parser("link", help="link-level simulation (Sionna OFDM links): sweep BER/BLER/NMSE vs SNR",
                                 description="Link-level simulation of the digital and analog OFDM links.")
    sub = link.add_subparsers(dest="link_command", metavar="SUBCOMMAND", parser_class=type(link))
    sweep = sub.add_parser(
        "sweep", help="BER/BLER (digital) or NMSE (analog) vs SNR into DIR/sweep.{json,csv,png}; resumes",
        description="Monte-Carlo sweep over SNR. Writes DIR/sweep.json, DIR/sweep.csv and DIR/sweep.png after "
                    "every point; run the same command again to resume an interrupted sweep. With --executor ray "
                    "the points run in parallel on a Ray cluster (docs/distributed.md), with the same results.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sweep.add_argument("--out", required=True, help="output folder (created; resumed if it holds this sweep)")
    sweep.add_argument("--scheme", choices=values(CARRIERS), default="digital",
                       help="digital: bits through LDPC/QAM; analog: real values two per complex symbol")
    sweep.add_argument("--code", choices=values(Code), default="ldpc", help="5G NR LDPC or uncoded")
    sweep.add_argument("--k", type=int, default=1024, help="information bits per codeword (uncoded: block size)")
    sweep.add_argument("--n", type=int, default=2048, help="coded bits per codeword (ignored when uncoded)")
    sweep.add_argument("--modulation", choices=values(Modulation), default="qpsk")
    sweep.add_argument("--channel", choices=CHANNELS, default="awgn")
    sweep.add_argument("--estimator", choices=values(Estimator), default="perfect",
                       help="perfect CSI and N0; ls (linear interpolation) or lmmse (across the frame, with the "
                            "channel model's covariances) from the pilots, with N0 estimated by the receiver")
    sweep.add_argument("--mcs", default=None,
                       help="digital: 'table' (the MCS the shipped BLER table of the channel allows at each SNR; "
                            "needs --snr-db), 'auto' (outer-loop link adaptation on payloads; a sweep of random "
                            "codewords sends its first MCS, the AWGN table's at the SNR) or a TS 38.214 MCS index; "
                            "sets --modulation and --k, --n is the codeword length (default: --modulation/--k/--n "
                            "as given)")
    sweep.add_argument("--mcs-table", type=int, default=1, help="TS 38.214 MCS table for --mcs (1, 2, 3)")
    sweep.add_argument("--bler-target", type=float, default=0.1, help="BLER target of --mcs auto")
    snr = sweep.add_mutually_exclusive_group()
    snr.add_argument("--ebno-db", type=number_list("--ebno-db"), default=None,
                     help="Eb/N0 per information bit [dB]: '0,2,4' or 'start:stop:step' (stop inclusive); "
                          "default 0:4:1 (digital)")
    snr.add_argument("--snr-db", type=number_list("--snr-db"), default=None,
                     help="Es/N0 per resource element [dB], same syntax; default 0:20:5 (analog)")
    sweep.add_argument("--target-errors", type=int, default=100,
                       help="stop a point after this many block errors (bit errors when uncoded)")
    sweep.add_argument("--max-frames", type=int, default=1000, help="stop a point after this many OFDM frames")
    sweep.add_argument("--batch", type=int, default=32, help="frames per batched pass")
    sweep.add_argument("--seed", type=int, default=0, help="random seed (each point has its own stream)")
    grid = sweep.add_argument_group("resource grid (one frame)")
    grid.add_argument("--fft-size", type=int, default=128, help="subcarriers")
    grid.add_argument("--prb", type=int, default=None,
                      help="resource blocks per slot (sets --fft-size to 12 x PRB; with --mcs a codeword is a code "
                           "block of the slot's TS 38.214 transport block)")
    grid.add_argument("--num-ofdm-symbols", type=int, default=14, help="OFDM symbols per frame")
    grid.add_argument("--subcarrier-spacing-khz", type=float, default=30.0)
    grid.add_argument("--cp-length", type=int, default=9, help="cyclic prefix [samples]")
    grid.add_argument("--pilot-symbols", default="2,11", help="OFDM symbols carrying pilots, e.g. '2,11'")
    chan = sweep.add_argument_group("channel and link details")
    chan.add_argument("--delay-spread-ns", type=float, default=100.0, help="TDL/CDL RMS delay spread")
    chan.add_argument("--speed-mps", type=float, default=0.0, help="TDL/CDL UE speed")
    chan.add_argument("--carrier-frequency-hz", type=float, default=3.5e9, help="TDL/CDL carrier")
    chan.add_argument("--repetition", type=int, default=1, help="analog bandwidth expansion by repetition")
    chan.add_argument("--ldpc-iterations", type=int, default=20, help="maximum LDPC decoder iterations")
    chan.add_argument("--decoder", choices=values(Decoder), default="fast",
                      help="LDPC decoder: fast (layered min-sum, early stop; CPU) or sionna (BP; used on CUDA)")
    chan.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    chan.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_arguments(sweep)
    sweep.set_defaults(func=run_sweep_command)


def run_sweep_command(args) -> int:
    from link_models.config import LinkConfig
    from link_models.sweep import run_sweep
    from meg_common.io import prepare_out_dir

    if args.ebno_db is not None:
        axis, values = "ebno_db", args.ebno_db
    elif args.snr_db is not None:
        axis, values = "snr_db", args.snr_db
    else:
        axis, values = DEFAULT_POINTS["analog" if args.mcs is not None else args.scheme]  # an MCS sets Eb/N0
    cfg = LinkConfig(modulation=args.modulation, code=args.code, k=args.k, n=args.n, channel=args.channel,
                     estimator=args.estimator, **{axis: values[0]}, fft_size=args.fft_size,
                     num_ofdm_symbols=args.num_ofdm_symbols, subcarrier_spacing_khz=args.subcarrier_spacing_khz,
                     cp_length=args.cp_length, pilot_symbols=args.pilot_symbols,
                     delay_spread_ns=args.delay_spread_ns, speed_mps=args.speed_mps,
                     carrier_frequency_hz=args.carrier_frequency_hz, repetition=args.repetition,
                     batch=args.batch, device=args.device, ldpc_iterations=args.ldpc_iterations,
                     decoder=args.decoder, mcs=args.mcs, mcs_table=args.mcs_table, bler_target=args.bler_target,
                     prb=args.prb)
    executor = executor_from_args(args)
    out = prepare_out_dir(args.out)
    result = run_sweep(cfg, out, scheme=args.scheme, axis=axis, values=values, target_errors=args.target_errors,
                       max_frames=args.max_frames, seed=args.seed, progress=not args.no_progress,
                       executor=executor)
    for p in result["points"]:
        if args.scheme == "digital":
            mcs = f"MCS {p['mcs_index']} ({p['modulation']}, rate {p['code_rate']:.3f})  " \
                if p.get("mcs_index") is not None else ""
            print(f"{axis}={p[axis]:g} dB: {mcs}BER {p['ber']:.3e}  BLER {p['bler']:.3e}  "
                  f"({p['bit_errors']} bit / {p['block_errors']} block errors, {p['frames']} frames)")
        else:
            print(f"{axis}={p[axis]:g} dB: NMSE {p['nmse']:.3e}  reported {p['noise_var_reported']:.3e}  "
                  f"median/mean {p.get('mse_median_to_mean') or float('nan'):.2f}  ({p['frames']} frames)")
    print(f"wrote {out / 'sweep.json'}, {out / 'sweep.csv'}, {out / 'sweep.png'}")
    return 0
