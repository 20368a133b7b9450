#!/usr/bin/env python3
"""meg-phy over an ADALM-Pluto (gr-iio): ZeroMQ from meg-phy's TX -> Pluto TX; Pluto RX -> ZeroMQ to meg-phy.

    /usr/bin/python3 gr_flowgraphs/pluto.py --uri ip:192.168.2.1 --freq 2.4e9 --attenuation 10 --rx-gain 30
    meg-phy ota tx --radio zmq --mode low-snr --scheme analog --seconds 30 --out runs/pluto-tx
    meg-phy ota rx --radio zmq --capture-seconds 0.5 --out runs/pluto-rx

For meg-phy alone `--radio pluto` (pyadi-iio) needs no GNU Radio; this flowgraph is for labs that want the
Pluto inside their own GNU Radio graph. --role tx / rx with two Plutos (--uri each). Cable through a 30-40 dB
attenuator. Below 2.08 MS/s the AD9361 needs its FIR filter: the blocks load one ('Auto').
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parser, run, zmq_in, zmq_out  # noqa: E402
from gnuradio import gr, iio  # noqa: E402

BUFFER = 32768


class Pluto(gr.top_block):
    def __init__(self, a):
        gr.top_block.__init__(self, "meg-phy Pluto")
        uri = a.uri or iio.get_pluto_uri()
        fs, bw = int(a.sample_rate), int(a.bandwidth or a.sample_rate)
        if a.role in ("tx", "both"):
            self.sink = iio.fmcomms2_sink_fc32(uri, [True, True], BUFFER, False)
            self.sink.set_len_tag_key("")
            self.sink.set_bandwidth(bw)
            self.sink.set_frequency(int(a.freq))
            self.sink.set_samplerate(fs)
            self.sink.set_attenuation(0, a.attenuation)
            self.sink.set_filter_params("Auto", "", 0, 0)
            self.connect(zmq_in(a.from_address), self.sink)
        if a.role in ("rx", "both"):
            self.source = iio.fmcomms2_source_fc32(uri, [True, True], BUFFER)
            self.source.set_len_tag_key("packet_len")
            self.source.set_frequency(int(a.freq))
            self.source.set_samplerate(fs)
            self.source.set_gain_mode(0, a.gain_mode)
            self.source.set_gain(0, a.rx_gain)
            self.source.set_quadrature(True)
            self.source.set_rfdc(True)
            self.source.set_bbdc(True)
            self.source.set_filter_params("Auto", "", 0, 0)
            self.connect(self.source, zmq_out(a.to_address))


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--uri", default="", help="ip:192.168.2.1, usb:1.2.5, ...; default: the first Pluto found")
    p.add_argument("--freq", type=float, default=2.4e9, help="LO in Hz (default 2.4e9)")
    p.add_argument("--bandwidth", type=float, default=None, help="RF bandwidth in Hz (default: the sample rate)")
    p.add_argument("--attenuation", type=float, default=10.0, help="TX attenuation in dB, 0..89.75 (default 10)")
    p.add_argument("--gain-mode", default="manual", choices=("manual", "slow_attack", "fast_attack", "hybrid"))
    p.add_argument("--rx-gain", type=float, default=30.0, help="RX gain in dB in manual mode (default 30)")
    p.add_argument("--role", choices=("tx", "rx", "both"), default="both")
    return run(Pluto(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
