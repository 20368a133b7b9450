"""Loading and resuming through diffusers' public API only: a model folder cannot make meg-phy run code, and
every supported scheduler resumes bit-exactly at every step from a seed that crossed as JSON."""

import json
import pickle
import shutil
import sys

import pytest
import torch
from tiny_sd import tiny_ldm, tiny_sd_folder

from meg_common.errors import InputError
from meg_phy.ldm import SCHEDULERS, Latent, load_ldm

PROMPT = "a red circle"


def gen(seed):
    return torch.Generator().manual_seed(seed)


def copy_folder(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_sd_folder(), folder)
    return folder


def set_entry(folder, name, entry):
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index[name] = entry
    index_path.write_text(json.dumps(index))


class _Trap:
    """Unpickling this touches a marker file: proof that pickled weights were (not) read."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("component", ["unet", "tokenizer"])
def test_foreign_library_in_model_index_is_refused_without_import(tmp_path, monkeypatch, component):
    folder = copy_folder(tmp_path)
    marker = tmp_path / "imported"
    (tmp_path / "evil_lib.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Boom: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    set_entry(folder, component, ["evil_lib", "Boom"])
    with pytest.raises(InputError, match=f"{component} class evil_lib.Boom is not supported") as info:
        load_ldm(folder, device="cpu")
    assert "\n" not in str(info.value)
    assert "evil_lib" not in sys.modules and not marker.exists()


def test_unsupported_diffusers_class_is_refused(tmp_path):
    folder = copy_folder(tmp_path)
    set_entry(folder, "vae", ["diffusers", "AutoencoderTiny"])
    with pytest.raises(InputError, match="diffusers.AutoencoderKL"):
        load_ldm(folder, device="cpu")


def test_pickled_weights_are_never_read(tmp_path):
    folder = copy_folder(tmp_path)
    marker = tmp_path / "unpickled"
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(InputError, match="no .safetensors weights") as info:
        load_ldm(folder, device="cpu")
    assert "\n" not in str(info.value) and not marker.exists()


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_split_at_every_step_is_bit_exact_on_every_scheduler(scheduler):
    ldm = tiny_ldm(scheduler)
    cond = ldm.encode_prompt(PROMPT, 7.5)
    for image, strength in ((None, 1.0), (torch.rand(1, 3, 32, 32, generator=gen(2)), 0.7)):
        first = ldm.start(cond, image=image, strength=strength, steps=8, generator=gen(1))
        whole = ldm.denoise(first, cond).latents
        for s in range(first.total + 1):
            sent = ldm.denoise(first, cond, until=s)
            received = Latent.from_dict(json.loads(json.dumps(sent.to_dict())))
            assert torch.equal(ldm.denoise(received, cond).latents, whole), (scheduler, strength, s)


def test_resumed_scheduler_is_positioned_through_begin_index():
    ldm = tiny_ldm("euler")
    cond = ldm.encode_prompt(PROMPT, 1.0)
    seed = ldm.denoise(ldm.start(cond, steps=6, generator=gen(0)), cond, until=4)
    sched = ldm._scheduler_for(seed)
    assert sched.begin_index == 4 and sched.step_index is None  # set on its first call, as in diffusers' img2img
    sched.scale_model_input(seed.latents, seed.timesteps[seed.step])
    assert sched.step_index == 4
