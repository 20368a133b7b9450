#!/usr/bin/env python3
"""meg-phy over a USRP (gr-uhd): ZeroMQ from meg-phy's TX -> USRP TX; USRP RX -> ZeroMQ to meg-phy's RX.

    /usr/bin/python3 gr_flowgraphs/usrp.py --device "type=b200" --freq 2.4e9 --tx-gain 50 --rx-gain 40
    meg-phy ota tx --radio zmq --mode low-snr --scheme analog --seconds 30 --out runs/usrp-tx
    meg-phy ota rx --radio zmq --capture-seconds 0.5 --out runs/usrp-rx

--role tx or rx runs one direction (two USRPs on two hosts: one flowgraph each). Cable TX to RX through a
30-40 dB attenuator, as for a Pluto (docs/over-the-air.md, lab procedure).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parser, run, zmq_in, zmq_out  # noqa: E402
from gnuradio import gr, uhd  # noqa: E402


class Usrp(gr.top_block):
    def __init__(self, a):
        gr.top_block.__init__(self, "meg-phy USRP")
        stream = uhd.stream_args(cpu_format="fc32", args="", channels=[0])
        if a.role in ("tx", "both"):
            self.sink = uhd.usrp_sink(a.device, stream, "")
            self.sink.set_samp_rate(a.sample_rate)
            self.sink.set_center_freq(a.freq, 0)
            self.sink.set_gain(a.tx_gain, 0)
            self.sink.set_antenna(a.tx_antenna, 0)
            self.connect(zmq_in(a.from_address), self.sink)
        if a.role in ("rx", "both"):
            self.source = uhd.usrp_source(a.device, stream)
            self.source.set_samp_rate(a.sample_rate)
            self.source.set_center_freq(a.freq, 0)
            self.source.set_gain(a.rx_gain, 0)
            self.source.set_antenna(a.rx_antenna, 0)
            self.connect(self.source, zmq_out(a.to_address))


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--device", default="", help='UHD device arguments, e.g. "type=b200" or "addr=192.168.10.2"')
    p.add_argument("--freq", type=float, default=2.4e9, help="carrier in Hz (default 2.4e9)")
    p.add_argument("--tx-gain", type=float, default=40.0)
    p.add_argument("--rx-gain", type=float, default=30.0)
    p.add_argument("--tx-antenna", default="TX/RX")
    p.add_argument("--rx-antenna", default="RX2")
    p.add_argument("--role", choices=("tx", "rx", "both"), default="both")
    return run(Usrp(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
