"""The UNet on ONNX Runtime (meg_phy.runtime): the same images as PyTorch within the campaign tolerance, an
export cached by the model's hash, and a fallback that says what to install."""

import pytest
import torch

from meg_common.errors import InputError
from meg_phy import runtime

TOL = 1e-4          # images in [0, 1], as the batched campaigns (benchmarks/bench_campaign.py)


@pytest.fixture()
def ldm(tmp_path, monkeypatch):
    from meg_phy.ldm import load_ldm

    monkeypatch.setenv("MEG_PHY_CACHE", str(tmp_path))
    return load_ldm(None, device="cpu")


def _images(ldm, seeds=(1, 2, 3)):
    cond = ldm.encode_prompt(["a red circle", "a small blue square at the top", "two green stars"],
                             guidance=ldm.default_guidance)
    latents = ldm.start(None, None, steps=10, generator=[torch.Generator().manual_seed(s) for s in seeds])
    half = ldm.denoise(latents, cond, until=[5, 6, 4])                    # per-latent schedules
    one = ldm.encode_prompt("a red circle", guidance=ldm.default_guidance)
    return ldm.decode(ldm.denoise(half, cond)), ldm.decode(ldm.denoise(latents[0], one, region=(0, 0, 8, 4)))


@pytest.mark.skipif(not runtime.has_onnxruntime(), reason="ONNX Runtime is not installed (pip install 'meg-phy[fast]')")
def test_onnx_gives_the_torch_images_within_tolerance_and_caches_its_export(ldm, tmp_path):
    torch_images, torch_tile = _images(ldm)
    assert ldm.set_runtime("onnx") == "onnx" and ldm.runtime == "onnx"
    onnx_images, onnx_tile = _images(ldm)
    assert (onnx_images - torch_images).abs().max() <= TOL
    assert (onnx_tile - torch_tile).abs().max() <= TOL                    # a tile: other spatial size
    exports = list((tmp_path / "onnx").glob("unet-*.onnx"))
    assert len(exports) == 1 and runtime.unet_key(ldm.unet) in exports[0].name
    before = exports[0].stat().st_mtime_ns
    assert ldm.set_runtime("torch") == "torch" and ldm.set_runtime("onnx") == "onnx"
    assert exports[0].stat().st_mtime_ns == before                        # made once, then read


def test_auto_falls_back_to_torch_without_onnxruntime_and_onnx_says_what_to_install(ldm, monkeypatch):
    monkeypatch.setattr(runtime, "has_onnxruntime", lambda: False)
    assert ldm.set_runtime("auto") == "torch"
    with pytest.raises(InputError, match=r"meg-phy\[fast\]"):
        ldm.set_runtime("onnx")
    with pytest.raises(InputError, match="not known"):
        ldm.set_runtime("tensorrt")
    assert runtime.resolve_runtime("auto", torch.device("cpu"), torch.float16) == "torch"
