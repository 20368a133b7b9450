#!/usr/bin/env python3
"""meg-phy over any SoapySDR device (gr-soapy): ZeroMQ from meg-phy's TX -> device TX; device RX -> ZeroMQ.

    /usr/bin/python3 gr_flowgraphs/soapy.py --device driver=hackrf --freq 2.4e9 --tx-gain 30 --rx-gain 30
    meg-phy ota tx --radio zmq --mode low-snr --scheme analog --seconds 30 --out runs/soapy-tx
    meg-phy ota rx --radio zmq --capture-seconds 0.5 --out runs/soapy-rx

Debian ships SoapySDR modules for UHD, HackRF, LimeSDR, bladeRF and RTL-SDR (receive only); there is no
SoapyPlutoSDR package: use pluto.py for a Pluto. --role tx / rx for half-duplex devices (HackRF) or two
devices.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parser, run, zmq_in, zmq_out  # noqa: E402
from gnuradio import gr, soapy  # noqa: E402


class Soapy(gr.top_block):
    def __init__(self, a):
        gr.top_block.__init__(self, "meg-phy SoapySDR")
        bw = a.bandwidth or a.sample_rate
        def tuned(block, gain):
            """A SoapySDR block on channel 0 at the run's rate, bandwidth, frequency and `gain`."""
            block.set_sample_rate(0, a.sample_rate)
            block.set_bandwidth(0, bw)
            block.set_frequency(0, a.freq)
            block.set_gain(0, gain)
            return block

        if a.role in ("tx", "both"):
            self.sink = tuned(soapy.sink(a.device, "fc32", 1, a.device_args, "", [""], [""]), a.tx_gain)
            self.connect(zmq_in(a.from_address), self.sink)
        if a.role in ("rx", "both"):
            self.source = tuned(soapy.source(a.device, "fc32", 1, a.device_args, "", [""], [""]), a.rx_gain)
            self.connect(self.source, zmq_out(a.to_address))


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--device", default="driver=hackrf", help='SoapySDR device string, e.g. "driver=lime"')
    p.add_argument("--device-args", default="", help="extra device arguments")
    p.add_argument("--freq", type=float, default=2.4e9)
    p.add_argument("--bandwidth", type=float, default=None, help="analog bandwidth (default: the sample rate)")
    p.add_argument("--tx-gain", type=float, default=30.0)
    p.add_argument("--rx-gain", type=float, default=30.0)
    p.add_argument("--role", choices=("tx", "rx", "both"), default="both")
    return run(Soapy(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
