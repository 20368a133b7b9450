"""Shared test setup: offline model loading, a writable matplotlib cache, the --uri option for Pluto tests."""

import os

import pytest
from hypothesis import settings

# CI runs must be reproducible: the same examples every run (a failure found locally is kept in the
# example database and replayed; CI starts from a clean clone without one).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "mpl"))
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    parser.addoption("--uri", default=None,
                     help="PlutoSDR URI (ip:192.168.2.1, usb:1.2.5) for tests marked 'hardware'")
    parser.addoption("--rx-uri", default=None, help="second Pluto as receiver for two-device hardware tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--uri"):
        return
    skip = pytest.mark.skip(reason="needs a PlutoSDR: run with --uri ip:192.168.2.1")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pluto_uri(request):
    return request.config.getoption("--uri")
