"""Tiles: layouts cover the plane with the requested overlap, merge(split(x)) == x exactly, weights sum to one."""

import pytest
import torch

from meg_common.errors import InputError
from meg_phy.tiles import blend_weights, grid_shape, merge, split, tile_layout, tile_windows


@pytest.mark.parametrize("n,shape", [(1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (4, (2, 2)), (6, (2, 3))])
def test_grid_shape(n, shape):
    assert grid_shape(n) == shape


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("size,overlap,multiple", [((8, 8), 2, 2), ((8, 8), 1, 2), ((64, 64), 8, 8), ((16, 24), 2, 2)])
def test_layout_covers_with_overlap_on_the_unet_grid(n, size, overlap, multiple):
    layout = tile_layout(*size, n, overlap=overlap, multiple=multiple)
    assert layout.n == n
    cover = torch.zeros(size)
    for top, left, h, w in layout.boxes:
        assert h % multiple == 0 and w % multiple == 0 and top % multiple == 0 and left % multiple == 0
        assert top >= 0 and left >= 0 and top + h <= size[0] and left + w <= size[1]
        cover[top:top + h, left:left + w] += 1
    assert bool((cover >= 1).all())
    # neighbours along each axis overlap by at least `overlap`
    for a in layout.boxes:
        for b in layout.boxes:
            if a[0] == b[0] and b[1] > a[1] and not any(c[0] == a[0] and a[1] < c[1] < b[1] for c in layout.boxes):
                assert a[1] + a[3] - b[1] >= overlap
            if a[1] == b[1] and b[0] > a[0] and not any(c[1] == a[1] and a[0] < c[0] < b[0] for c in layout.boxes):
                assert a[0] + a[2] - b[0] >= overlap


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_merge_of_split_is_exact(n):
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(n))
    layout = tile_layout(8, 8, n)
    assert torch.equal(merge(split(x, layout), layout), x)
    pixels = layout.scaled(4)
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(merge(split(image, pixels), pixels), image)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_weights_sum_to_one_and_define_the_merge(n):
    layout = tile_layout(8, 8, n, overlap=2)
    weights = blend_weights(layout)
    assert torch.allclose(sum(weights), torch.ones(8, 8, dtype=torch.float64), atol=1e-12)
    assert all(bool((w >= 0).all()) for w in weights)
    # distinct tiles: the merge is the weighted sum with these weights (independent computation)
    tiles = [torch.full((1, box[2], box[3]), float(i + 1)) + torch.rand(1, box[2], box[3])
             for i, box in enumerate(layout.boxes)]
    expected = torch.zeros(1, 8, 8, dtype=torch.float64)
    for tile, (top, left, h, w), weight in zip(tiles, layout.boxes, weights, strict=True):
        padded = torch.zeros(1, 8, 8, dtype=torch.float64)
        padded[:, top:top + h, left:left + w] = tile.double()
        expected += weight * padded
    assert torch.allclose(merge(tiles, layout).double(), expected, atol=1e-6)


def test_windows_taper_only_at_shared_edges():
    layout = tile_layout(8, 8, 2, overlap=2)
    left, right = tile_windows(layout)
    assert torch.all(left[:, 0] == 1) and left[0, -1] < 0.5  # image border keeps full weight
    assert torch.all(right[:, -1] == 1) and right[0, 0] < 0.5
    assert bool((left > 0).all()) and bool((right > 0).all())


def test_bad_layouts_and_tiles():
    with pytest.raises(InputError, match="multiples"):
        tile_layout(7, 8, 2)
    with pytest.raises(InputError, match="do not fit"):
        tile_layout(4, 4, 3, overlap=2)
    with pytest.raises(InputError, match="overlap"):
        tile_layout(8, 8, 2, overlap=0)
    layout = tile_layout(8, 8, 2)
    with pytest.raises(InputError, match="tiles given"):
        merge([torch.zeros(1, 8, 6)], layout)
    with pytest.raises(InputError, match="does not match"):
        merge([torch.zeros(1, 8, 5), torch.zeros(1, 8, 6)], layout)
    with pytest.raises(InputError, match="does not match"):
        split(torch.zeros(1, 6, 6), layout)
