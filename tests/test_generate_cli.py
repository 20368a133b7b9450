"""`meg-phy generate` end to end on the tiny SD folder, and its one-line errors (exit 2)."""

import json

import pytest
import torch
from PIL import Image
from tiny_sd import tiny_sd_folder

from meg_phy.cli import main
from meg_phy.images import load_image


def generate(*extra, model=None):
    return main(["generate", "--model", str(model or tiny_sd_folder()), "--steps", "4", *extra])


def test_text_to_image_writes_image_and_record(tmp_path):
    out = tmp_path / "sub" / "img.png"
    assert generate("--prompt", "a red circle", "--seed", "3", "--out", str(out)) == 0
    image, _ = load_image(out)
    assert image.shape == (1, 3, 32, 32)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["prompt"] == "a red circle" and record["seed"] == 3 and record["steps"] == 4
    assert record["mode"] == "text-to-image" and record["strength"] is None and record["denoising_steps"] == 4
    assert set(record["timings_s"]) >= {"load", "text", "start", "denoise", "decode", "generation"}
    assert record["model"]["path"] == str(tiny_sd_folder()) and record["model"]["default"] is False
    assert "evaluator" not in record and record["versions"]["torch"]
    # same seed, same image; another seed, another image
    again = tmp_path / "again.png"
    generate("--prompt", "a red circle", "--seed", "3", "--out", str(again))
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.png"
    generate("--prompt", "a red circle", "--seed", "4", "--out", str(other))
    assert other.read_bytes() != out.read_bytes()


def test_image_to_image_accepts_any_rgb_image(tmp_path):
    src = tmp_path / "photo.jpg"
    Image.new("RGBA", (97, 41), (200, 30, 30, 128)).convert("RGB").save(src)
    out = tmp_path / "edit.webp"
    assert generate("--prompt", "a blue square", "--image", str(src), "--strength", "0.5", "--out", str(out)) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["mode"] == "image-to-image" and record["strength"] == 0.5 and record["denoising_steps"] == 2
    info = record["input_image"]
    assert info["original_size"] == [41, 97] and info["resized_to"] == [32, 32]
    assert info["crop_box_ltrb"] == [28, 0, 69, 41] and "Lanczos" in info["method"]
    png = tmp_path / "palette.png"
    Image.new("P", (20, 300)).save(png)
    assert generate("--prompt", "x", "--image", str(png), "--out", str(tmp_path / "p.png")) == 0


@pytest.mark.parametrize("case", ["missing image", "not an image", "bad model", "unwritable out", "bad suffix",
                                  "bad strength", "bad steps"])
def test_errors_are_one_line_exit_2(tmp_path, capsys, case):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    good = tmp_path / "in.png"
    Image.new("RGB", (32, 32)).save(good)
    out = ["--out", str(tmp_path / "o.png")]
    args = {
        "missing image": ["--image", str(tmp_path / "none.png"), *out],
        "not an image": ["--image", str(junk), *out],
        "bad model": ["--model", str(tmp_path), *out],
        "unwritable out": ["--out", str(junk / "o.png")],  # below a file: no folder can be made there
        "bad suffix": ["--out", str(tmp_path / "o.txt")],
        "bad strength": ["--image", str(good), "--strength", "1.5", *out],
        "bad steps": ["--steps", "0", *out],
    }[case]
    code = main(["generate", "--model", str(tiny_sd_folder()), "--steps", "4", "--prompt", "a", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("meg-phy: error:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_prompt_outside_the_embedded_vocabulary(tmp_path, capsys):
    from meg_phy.models import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "model_index.json").exists():
        pytest.skip("the embedded default model is not committed yet")
    code = main(["generate", "--prompt", "a purple elephant", "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and not (tmp_path / "o.png").exists()


def test_default_model_records_the_evaluator(tmp_path):
    from meg_phy.models import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "model_index.json").exists():
        pytest.skip("the embedded default model is not committed yet")
    from meg_phy import scenes

    prompt = scenes.make_prompt(scenes.sample_attributes(torch.Generator().manual_seed(0), 1)[0])
    out = tmp_path / "d.png"
    assert main(["generate", "--prompt", prompt, "--out", str(out)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["model"]["default"] is True
    assert set(record["evaluator"]) >= {"read", "prompt_match"}
