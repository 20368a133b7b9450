"""`meg-phy run --protocol NAME --out DIR`: one MEG protocol end to end over simulated links (or a radio).

Writes DIR/output.png, DIR/reference.png (same task, ideal links), DIR/result.json and DIR/report.md.
Every option can also come from `--config FILE.toml` (options given on the command line win), which
adds per-direction and per-hop link overrides (see flowgraphs.config). `--config runs/x/result.json` runs
the configuration of an earlier run again (same images and numbers; only timings differ).
"""

from __future__ import annotations

import argparse


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The task and link options shared by `run` (None = not given, so a TOML value stays)."""
    from flowgraphs.config import IMAGE_FORMATS, IMAGE_PLACES, RADIOS, RESUME_MODES, SEED_FORMATS
    from meg_common.cli import OneLineParser  # noqa: F401  (argparse only)
    from meg_common.vocabulary import AIR_SCHEMES, Channel, Estimator, Modulation, values
    from meg_phy.runtime import RUNTIMES

    task = parser.add_argument_group("task")
    task.add_argument("--prompt", help="text prompt (default: a prompt of the embedded vocabulary)")
    task.add_argument("--image", help="input image file (default: a rendered scene that differs from the prompt)")
    task.add_argument("--strength", type=float, help="img2img strength in (0, 1] (default 0.75)")
    task.add_argument("--steps", type=int, help="denoising steps of the full schedule (default 20)")
    task.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's, "
                                                         "as meg-phy generate)")
    task.add_argument("--seed", type=int, help="random seed: noise, link noise, rendered input (default 0)")
    task.add_argument("--model", help="Stable-Diffusion diffusers folder (default: the embedded model)")
    task.add_argument("--image-at", choices=IMAGE_PLACES, help="who holds the input image (default ue)")
    task.add_argument("--runtime", choices=RUNTIMES, default="torch",
                      help="where the UNet runs: torch (default), onnx (ONNX Runtime, pip install "
                           "'meg-phy[fast]'; within 1e-4 of torch) or auto (onnx where installed, on a CPU)")
    proto = parser.add_argument_group("protocol")
    proto.add_argument("--n-es", type=int, help="number of edge servers for multi-ES protocols, 1..4 (default 2)")
    proto.add_argument("--split", type=float, help="fraction of the steps done before the seed changes hands (default 0.5)")
    proto.add_argument("--resume", choices=RESUME_MODES, help="how a noisy analog seed is resumed")
    proto.add_argument("--seed-format", choices=SEED_FORMATS, help="quantisation of digital seeds")
    proto.add_argument("--image-format", choices=IMAGE_FORMATS, help="codec of digital images and sketches")
    proto.add_argument("--image-quality", type=int, help="image codec quality 1..100 (default 75)")
    link = parser.add_argument_group("links (defaults for every hop; per-hop settings in --config)")
    link.add_argument("--scheme", choices=values(AIR_SCHEMES),
                      help="analog values, coded bytes, the capacity bound (digital payloads over the fewest channel "
                           "uses), or softcast (analog; images as SoftCast) (default analog)")
    link.add_argument("--snr-db", type=float, help="Es/N0 per resource element, dB (default 10)")
    link.add_argument("--channel", help=f"{', '.join(values(Channel))} (default awgn; any case, checked by the "
                                        "run configuration)")
    link.add_argument("--mcs", help="digital hops: 'auto' (link adaptation per SNR, the default), a TS 38.214 MCS "
                                    "index, or 'none' (--modulation and --code-rate as given)")
    link.add_argument("--modulation", choices=values(Modulation),
                      help="with --mcs none (default qpsk)")
    link.add_argument("--code-rate", type=float, help="LDPC code rate with --mcs none (default 0.5)")
    link.add_argument("--estimator", choices=values(Estimator),
                      help="channel estimation: perfect (true channel and N0), ls or lmmse (N0 estimated from the "
                           "pilots) (default lmmse)")
    link.add_argument("--max-attempts", type=int, help="HARQ transmissions per codeword of a digital payload "
                                                       "(whole-payload tries on a radio link) (default 4)")
    link.add_argument("--softcast-uses", type=int, help="channel uses of an image on a softcast hop (default 512)")
    link.add_argument("--radio", choices=RADIOS,
                      help="link: link_models simulation (default); sim/pluto: IQ radio via link_models.ota.RadioLink")
    link.add_argument("--uri", help="Pluto URI, e.g. ip:192.168.2.1")
    link.add_argument("--low-snr-below-db", type=float,
                      help="radios: hops below this SNR use the low-SNR burst mode (default 2 dB; docs/over-the-air.md)")
    link.add_argument("--cfo-ppm", type=float, help="--radio sim: carrier frequency offset in ppm (default 20)")
    link.add_argument("--sco-ppm", type=float, help="--radio sim: sample-clock offset in ppm (default 20)")
    parser.add_argument("--config", help="TOML file with any of these settings plus [link], [uplink], "
                                         "[downlink], [backhaul], [hops.NAME] tables; or a result.json "
                                         "to run its configuration again")


def options(args) -> dict:
    """The run settings given on the command line (argparse dest -> RunConfig/LinkSpec field)."""
    keys = ("protocol", "prompt", "image", "strength", "steps", "guidance", "seed", "model", "image_at", "n_es",
            "split", "resume", "seed_format", "image_format", "image_quality", "scheme", "snr_db", "channel",
            "mcs", "modulation", "code_rate", "estimator", "max_attempts", "softcast_uses", "radio", "uri")
    return {k: getattr(args, k, None) for k in keys}


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run one MEG protocol end to end over simulated links",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", help="UIEG, EIUG, CIAG, ESUC, UIDG, DIUG, DSUC, UIDCG, DCSUC or CENTRALIZED "
                                            "(see meg-phy protocols); required unless --config sets it")
    add_run_options(parser)
    parser.add_argument("--out", required=True, help="folder for output.png, reference.png, result.json, report.md")
    from flowgraphs.placement import add_placement_arguments  # argparse only

    add_placement_arguments(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    import sys

    from flowgraphs.config import load_config
    from flowgraphs.placement import placement_from_args
    from flowgraphs.report import write_run
    from flowgraphs.runner import evaluate
    from flowgraphs.session import Session
    from meg_common.errors import InputError
    from meg_common.io import prepare_out_dir

    config = load_config(args.config, **options(args))
    if args.protocol is None and not args.config:
        raise InputError("--protocol is required (or a --config that sets protocol); see meg-phy protocols")
    placement = placement_from_args(args)
    out = prepare_out_dir(args.out)
    with placement:  # --placement ray: each ES on its own Ray actor (flowgraphs.placement)
        radio_options = {k: v for k, v in (("low_snr_below_db", args.low_snr_below_db), ("cfo_ppm", args.cfo_ppm),
                                           ("sco_ppm", args.sco_ppm)) if v is not None}
        session = Session(placement=placement, runtime=args.runtime, radio_options=radio_options)
        result, run, reference = evaluate(config, session)
    write_run(out, result, run.image, reference.image)
    if result.unused_hop_overrides:
        print(f"meg-phy run: note: {result.protocol} has no hop {', '.join(result.unused_hop_overrides)}; "
              f"those [hops.*] settings were not used", file=sys.stderr)
    q, t = result.quality, result.totals
    ratio = t["symbols_ratio_to_centralized"]
    print(f"{result.protocol}: prompt match {q.prompt_match}, PSNR {_db(q.psnr_db)} dB, SSIM {q.ssim:.3f}; "
          f"{t['symbols']} symbols on air ({ratio:.3f} of CENTRALIZED); wrote {out}/")
    return 0


def _db(value: float | None) -> str:
    return "inf" if value is None else f"{value:.2f}"
