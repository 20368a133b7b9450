"""One owner normalises analog power: the link (docs/architecture.md). The codecs only pack values, so every
codec call that turns a payload into analog values outside meg_phy asks for them as they are
(`normalise=False`), and the link's mapping (link_models.mapping) scales them once."""

import ast
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def analog_codec_calls():
    for package in ("flowgraphs", "benchmarks", "scripts"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if name.endswith("_to_analog") or name == "to_analog":
                        yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def test_every_codec_call_leaves_the_power_to_the_link():
    calls = list(analog_codec_calls())
    assert len(calls) >= 3  # the seed, sketch and image transfers at least
    normalising = [where for where, node in calls
                   if not any(k.arg == "normalise" and isinstance(k.value, ast.Constant) and k.value.value is False
                              for k in node.keywords)]
    assert not normalising, f"these calls let the codec normalise power as well as the link: {normalising}"


def test_the_link_normalises_once_and_estimates_come_back_in_payload_units():
    from link_models import AnalogLink, LinkConfig

    link = AnalogLink(LinkConfig(channel="ideal", estimator="perfect", fft_size=12, cp_length=1), seed=0)
    values = 40.0 * torch.randn(300)  # far from unit power: only the link scales it
    est, var, _ = link.send_values(values)
    assert torch.allclose(est, values, atol=1e-3 * 40) and float(var.max()) <= 1e-6
