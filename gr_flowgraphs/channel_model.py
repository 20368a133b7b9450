#!/usr/bin/env python3
"""meg-phy TX -> ZeroMQ -> GNU Radio channel model (AWGN, CFO, SCO, multipath) -> ZeroMQ -> meg-phy RX.

    /usr/bin/python3 gr_flowgraphs/channel_model.py --snr-db -5 --cfo-hz 48e3 --sco-ppm 20 --taps 1,0.3j
    meg-phy ota tx --radio zmq --mode low-snr --scheme analog --seconds 30 --out runs/zmq-tx   # other shell
    meg-phy ota rx --radio zmq --capture-seconds 0.5 --out runs/zmq-rx                         # third shell

`channels.channel_model`: noise_voltage (complex noise of power noise_voltage^2), frequency_offset
(CFO / sample rate), epsilon (1 + SCO), taps (a FIR multipath profile), noise_seed. The SNR is meg-phy's
Es/N0 per used subcarrier: noise power = (TX power / 52 * 64) / SNR, the TX power being meg-phy's
burst level (--tx-level-dbfs, -12 dBFS RMS by default).
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parser, run, zmq_in, zmq_out  # noqa: E402
from gnuradio import channels, gr  # noqa: E402


class ChannelModel(gr.top_block):
    def __init__(self, from_address, to_address, sample_rate, snr_db, cfo_hz, sco_ppm, taps, seed,
                 tx_level_dbfs=-12.0, occupied=52 / 64):
        gr.top_block.__init__(self, "meg-phy channel model")
        power = 10 ** (tx_level_dbfs / 10)
        noise_voltage = math.sqrt(power / occupied / 10 ** (snr_db / 10))
        self.channel = channels.channel_model(noise_voltage=noise_voltage, frequency_offset=cfo_hz / sample_rate,
                                              epsilon=1.0 + sco_ppm * 1e-6, taps=taps, noise_seed=seed,
                                              block_tags=False)
        self.connect(zmq_in(from_address), self.channel, zmq_out(to_address))


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--snr-db", type=float, default=10.0, help="Es/N0 per used subcarrier (default 10)")
    p.add_argument("--cfo-hz", type=float, default=0.0, help="carrier offset in Hz (default 0)")
    p.add_argument("--sco-ppm", type=float, default=0.0, help="sample-clock offset in ppm (default 0)")
    p.add_argument("--taps", default="1", help="multipath FIR taps, complex, comma separated (default 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--tx-level-dbfs", type=float, default=-12.0, help="meg-phy's burst RMS level (default -12)")
    a = p.parse_args(argv)
    try:
        taps = [complex(t.replace(" ", "")) for t in a.taps.split(",")]
    except ValueError:
        p.error(f"--taps {a.taps!r}: give complex numbers separated by commas, e.g. 1,0.3j")
    return run(ChannelModel(a.from_address, a.to_address, a.sample_rate, a.snr_db, a.cfo_hz, a.sco_ppm, taps,
                            a.seed, a.tx_level_dbfs))


if __name__ == "__main__":
    sys.exit(main())
