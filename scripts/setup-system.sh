#!/usr/bin/env bash
# System packages outside the venv (`make test` runs this; CI too, through .ci/run -> make test):
# - the libiio C library for the Pluto path (Debian 12 ships 0.24);
# - GNU Radio 3.10 for the live flowgraph test (gr_flowgraphs/, tests/test_sdr_zmq.py). It is not on PyPI:
#   Debian's `gnuradio` installs it for the system python3 (/usr/bin/python3), which runs the flowgraphs.
# Installs only what is missing, and only where it can (root + apt); otherwise it says what to do.
# MEG_PHY_NO_GNURADIO=1 skips GNU Radio (a few hundred MB); the live test then skips with its reason.
set -euo pipefail

have_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
updated=0
apt_install() {
  if [ "$updated" = 0 ]; then apt-get update -qq >/dev/null; updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! ldconfig -p 2>/dev/null | grep -q 'libiio\.so\.0'; then
  if have_apt; then
    echo "setup-system: installing libiio0 (Debian) for the Pluto path" >&2
    apt_install libiio0 libiio-utils
  else
    echo "setup-system: libiio0 is missing; install it (sudo apt-get install libiio0 libiio-utils)" \
         "to use a PlutoSDR; everything else works without it" >&2
  fi
fi

if [ "${MEG_PHY_NO_GNURADIO:-0}" != 1 ] && \
   ! /usr/bin/python3 -c 'from gnuradio import gr, zeromq, channels' >/dev/null 2>&1; then
  if have_apt; then
    echo "setup-system: installing gnuradio (Debian, GNU Radio 3.10) for the live flowgraph test" >&2
    apt_install gnuradio
  else
    echo "setup-system: GNU Radio is missing; install it (sudo apt-get install gnuradio) to run" \
         "gr_flowgraphs/ and the live ZeroMQ test; everything else works without it" >&2
  fi
fi
