"""The dependency direction of docs/architecture.md, checked in a fresh interpreter per package."""

import subprocess
import sys

import pytest

FORBIDDEN = {
    "meg_phy.ldm": ["link_models", "sdr_drivers", "flowgraphs", "sionna"],
    "meg_phy.codecs": ["link_models", "sdr_drivers", "flowgraphs", "sionna"],
    "meg_phy.resume": ["link_models", "sdr_drivers", "flowgraphs", "sionna"],
    "meg_phy.training.trainer": ["link_models", "sdr_drivers", "flowgraphs", "sionna"],
    "meg_phy.cli": ["link_models", "sdr_drivers", "flowgraphs", "sionna", "diffusers", "torch"],
    "link_models": ["diffusers", "transformers", "meg_phy.ldm", "flowgraphs"],
    "link_models.digital": ["diffusers", "transformers", "meg_phy.ldm", "flowgraphs"],
    "link_models.ota.receiver": ["diffusers", "transformers", "meg_phy.ldm", "flowgraphs"],
    "sdr_drivers.sim": ["diffusers", "transformers", "meg_phy.ldm", "flowgraphs"],
    "sdr_drivers.pluto": ["diffusers", "transformers", "meg_phy.ldm", "flowgraphs"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_does_not_import_the_other_side(module):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"bad = [m for m in {FORBIDDEN[module]!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"
