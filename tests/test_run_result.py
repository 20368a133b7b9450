"""RunResult: result.json loads back into the same RunResult, and `meg-phy run --config runs/x/result.json`
reproduces runs/x bit for bit (same images, same numbers except timings); one quality function."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.result import Quality, RunResult, measure, summarise  # noqa: E402
from meg_phy.cli import main  # noqa: E402

KEYS = ["protocol", "config", "task", "hops", "compute", "totals", "quality", "reference", "baseline",
        "unused_hop_overrides", "versions", "images"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))


def without_timings(result: dict) -> dict:
    return {**result, "compute": {node: c["steps"] for node, c in result["compute"].items()}}


def test_a_result_json_replays_bit_for_bit(model, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(f'protocol = "eiug"\nmodel = "{model}"\nsteps = 6\nseed = 3\n[link]\nsnr_db = 4\n'
                      '[uplink]\nscheme = "digital"\nsnr_db = 12\n[hops.ES1-UE-seed]\nchannel = "tdl-a"\n')
    x, y = tmp_path / "x", tmp_path / "y"
    assert main(["run", "--config", str(config), "--out", str(x)]) == 0
    assert main(["run", "--config", str(x / "result.json"), "--out", str(y)]) == 0
    for name in ("output.png", "reference.png"):
        assert (x / name).read_bytes() == (y / name).read_bytes()
    first, second = (json.loads((d / "result.json").read_text()) for d in (x, y))
    assert list(first) == KEYS and first["images"] == {"output": "output.png", "reference": "reference.png"}
    assert without_timings(first) == without_timings(second)
    assert first["hops"][-1]["channel"] == "tdl-a" and first["hops"][0]["scheme"] == "digital"
    assert (x / "report.md").read_text().replace("\n", "") != ""

    loaded = RunResult.load(x / "result.json")
    assert loaded.to_dict() == first and loaded.protocol == "EIUG" and loaded.config.link.snr_db == 4.0
    assert loaded.symbols() == first["totals"]["symbols"] and loaded.hops[0].payload == "prompt"


def test_quality_is_measured_by_one_function():
    g = torch.Generator().manual_seed(0)
    refs = torch.rand(3, 3, 16, 16, generator=g)
    images = refs.clone()
    images[1] = (images[1] + 0.1).clamp(0, 1)

    class Reader:  # reads every prompt as matched except 'no'; raises on what it cannot parse
        def prompt_match(self, imgs, prompts):
            from meg_common.errors import InputError

            if "???" in prompts:
                raise InputError("unknown word")
            return [p != "no" for p in prompts]

    q = measure(images, refs, ["yes", "no", "???"], Reader())
    assert [x.prompt_match for x in q] == [True, False, None]
    assert q[0].identical and q[0].psnr_db is None and q[0].mse == 0 and q[0].ssim == pytest.approx(1)
    assert not q[1].identical and 10 < q[1].psnr_db < 30 and q[1].mse > 0
    pooled = summarise(q)
    assert pooled["prompt_accuracy"] == pytest.approx(1 / 3)
    assert pooled["psnr_db"] == pytest.approx(10 * torch.log10(1 / ((images - refs) ** 2).double().mean()).item())
    assert Quality.from_dict(q[1].to_dict()) == q[1]
