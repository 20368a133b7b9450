"""meg_phy.images: conversions, the resize choice for any input image, atomic saving."""

import pytest
import torch
from PIL import Image

from meg_common.errors import InputError
from meg_phy.images import fit, from_pil, grid, load_image, resize, save_image, to_pil


def test_pil_round_trip_is_exact_on_8_bit_values():
    image = torch.randint(0, 256, (1, 3, 5, 7)).float() / 255
    assert torch.equal(from_pil(to_pil(image)), image)
    with pytest.raises(InputError):
        to_pil(torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("size,box", [((97, 41), (28, 0, 69, 41)), ((41, 97), (0, 28, 41, 69)), ((64, 64), (0, 0, 64, 64))])
def test_fit_centre_crops_to_the_aspect_then_resizes(size, box):
    pil = Image.new("RGB", size, (10, 20, 30))
    out, info = fit(pil, (32, 32))
    assert out.size == (32, 32) and tuple(info["crop_box_ltrb"]) == box
    assert info["original_size"] == [size[1], size[0]] and info["resized_to"] == [32, 32]
    wide, info = fit(Image.new("RGB", (100, 100)), (16, 32))  # a non-square model resolution
    assert wide.size == (32, 16) and info["crop_box_ltrb"] == [0, 25, 100, 75]


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK", "I;16"])
def test_load_image_takes_any_mode(tmp_path, mode):
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    Image.new(mode, (50, 30)).save(path)
    image, info = load_image(path, size=(32, 32))
    assert image.shape == (1, 3, 32, 32) and info["original_mode"] == mode
    assert 0 <= image.min() and image.max() <= 1


def test_load_and_save_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_text("nope")
    with pytest.raises(InputError, match="cannot be read"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(InputError, match="suffix"):
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / "x.gif2")
    out = save_image(torch.ones(1, 3, 4, 4), tmp_path / "deep" / "x.png")
    assert load_image(out)[0].min() == 1.0


def test_resize_and_grid():
    image = torch.rand(2, 3, 32, 32)
    small = resize(image, (16, 16))
    assert torch.allclose(small, torch.nn.functional.avg_pool2d(image, 2), atol=1e-6)
    assert resize(small, (32, 32)).shape == (2, 3, 32, 32)
    assert grid(image, columns=2, pad=1).shape == (1, 3, 34, 67)
