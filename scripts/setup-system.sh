#!/usr/bin/env bash
# System packages the Pluto path needs: the libiio C library (Debian 12 ships 0.24).
# Installs only what is missing, and only where it can (root + apt); otherwise it says what to do.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libiio\.so\.0'; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup-system: installing libiio0 (Debian) for the Pluto path" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libiio0 libiio-utils >/dev/null
else
  echo "setup-system: libiio0 is missing; install it (sudo apt-get install libiio0 libiio-utils)" \
       "to use a PlutoSDR; everything else works without it" >&2
fi
