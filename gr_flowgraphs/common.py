"""Shared parts of the meg-phy GNU Radio 3.10 flowgraphs: ZeroMQ ports, options, run until a signal.

Every flowgraph here talks to meg-phy over ZeroMQ PUSH/PULL with cf32 items (gr_complex, 8 bytes):
meg-phy's TX (`--radio zmq`) binds PUSH on --from-address (default tcp://127.0.0.1:5555), the flowgraph
pulls from it; the flowgraph binds PUSH on --to-address (default tcp://127.0.0.1:5556), meg-phy's RX
connects PULL to it. Run with the system Python that has GNU Radio (Debian: apt-get install gnuradio), not
meg-phy's virtual environment: /usr/bin/python3 gr_flowgraphs/channel_model.py --help
"""

import argparse
import signal
import sys

from gnuradio import gr, zeromq

FROM_ADDRESS = "tcp://127.0.0.1:5555"
TO_ADDRESS = "tcp://127.0.0.1:5556"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--from-address", default=FROM_ADDRESS,
                   help=f"ZeroMQ address meg-phy's TX binds (PUSH, cf32); the flowgraph pulls. Default {FROM_ADDRESS}")
    p.add_argument("--to-address", default=TO_ADDRESS,
                   help=f"ZeroMQ address the flowgraph binds (PUSH, cf32); meg-phy's RX pulls. Default {TO_ADDRESS}")
    p.add_argument("--sample-rate", type=float, default=2e6, help="samples/s (default 2e6, meg-phy's frame)")
    return p


def zmq_in(address: str):
    """PULL source of cf32 samples (timeout 100 ms, no tags, default high-water mark)."""
    return zeromq.pull_source(gr.sizeof_gr_complex, 1, address, 100, False, -1)


def zmq_out(address: str):
    """PUSH sink of cf32 samples: blocks (back-pressure) instead of dropping while nobody reads."""
    return zeromq.push_sink(gr.sizeof_gr_complex, 1, address, 100, False, -1)


def run(tb) -> int:
    """Start the flowgraph and run until SIGINT or SIGTERM (then stop it cleanly)."""
    def stop(*_):
        tb.stop()
        tb.wait()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    tb.start()
    print(f"{type(tb).__name__}: running (Ctrl-C stops)", file=sys.stderr, flush=True)
    signal.pause()
    return 0
