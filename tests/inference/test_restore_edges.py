"""Restorer edges a user relies on, each checked against a tiny model whose right answer is known without the code
under test: a tile as large as the image runs it whole, model outputs of the wrong size or not finite or not a
tensor are refused, the ``tile`` option's values, RGBA and colour-to-gray inputs, float inputs, a thin image below
the model's smallest input, an input never overwritten by the library, and a blind model given a kernel."""
import math
import os

import cv2
import numpy as np
import pytest
import torch

from converse_basicsr.data.io import ImageError, OutputNameError, read_image, write_image
from converse_basicsr.inference.description import ModelInfo
from converse_basicsr.inference.restorer import Restorer, output_names
from converse_basicsr.inference.run import OutputError, run
from converse_basicsr.inference.tiling import check_tile, parse_tile


class _Identity(torch.nn.Module):
    """A 1×1 convolution with identity weights: its output is its input, so every expected value is the input."""

    def __init__(self, channels=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(channels)[..., None, None])
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.conv(x)


class _NeedsThirteen(torch.nn.Module):
    """Identity that runs only on inputs of at least 13 pixels a side (reflection padding by 12 needs 13)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[..., None, None])

    def forward(self, x):
        return self.conv(torch.nn.functional.pad(x, (12, 12, 12, 12), mode='reflect'))[..., 12:-12, 12:-12]


class _Blind(torch.nn.Module):
    """A blind model: its ``forward`` takes no kernel."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)


def _info(fn, scale=1):
    return ModelInfo(fn, 'fake', torch.device('cpu'), torch.float32, 3, 0, scale)


# ----------------------------------------------------------------------------- tiles
def test_a_tile_as_large_as_the_long_side_runs_the_image_whole():
    model = _Identity()
    restorer = Restorer(model, tile=40, tile_pad=4)
    model.sizes.clear()
    image = np.random.RandomState(0).randint(0, 256, (24, 40, 3), dtype=np.uint8)
    result = restorer.restore(image)
    assert result.tile is None and model.sizes == [(24, 40)]
    assert np.array_equal(result.image, image)
    model.sizes.clear()
    assert restorer.restore(image[:, :39]).tile is None and model.sizes == [(24, 39)]


def test_the_tile_option_values():
    assert parse_tile('auto') == 'auto' and parse_tile(None) is None and parse_tile('256') == 256
    assert check_tile('auto', 0) == ('auto', 0) and check_tile(None, 0) == (None, 0)
    assert check_tile(8, 0) == (8, 0)
    with pytest.raises(ValueError, match='tile_pad.*-1'):
        check_tile(16, -1)
    with pytest.raises(ValueError, match="tile.*'big'"):
        parse_tile('big')


def test_a_tile_below_the_models_smallest_input_is_refused():
    with pytest.raises(ValueError, match='tile 8 is smaller than the smallest input .*13x13'):
        Restorer(_NeedsThirteen(), tile=8)


# ----------------------------------------------------------------------------- model outputs
@pytest.mark.parametrize('fn, match', [
    (lambda t: t[..., :-1, :], r'gave a 12x9 output for a 12x10 input'),
    (lambda t: t[..., :-1], r'gave a 11x10 output for a 12x10 input'),
    (lambda t: t / 0, 'produced 360 NaN or infinite'),
    (lambda t: t.masked_fill(t > -1, math.inf), 'produced 360 NaN or infinite'),
    (lambda t: (t, t), 'returned tuple, not a tensor'),
])
def test_unusable_model_outputs_are_refused_naming_the_image(fn, match):
    with pytest.raises(OutputError, match=f'photo.png: model fake {match}'):
        run(_info(fn), torch.rand(1, 3, 10, 12), source='photo.png')


# ----------------------------------------------------------------------------- inputs
def test_an_rgba_png_is_read_as_rgba_and_restored_without_its_alpha(tmp_path):
    rgb = np.random.RandomState(1).randint(0, 256, (14, 18, 3), dtype=np.uint8)
    alpha = np.full((14, 18, 1), 200, np.uint8)
    path = tmp_path / 'logo.png'
    assert cv2.imwrite(str(path), np.concatenate([rgb[..., ::-1], alpha], axis=2))  # OpenCV writes BGRA
    img = read_image(path)
    assert img.shape == (14, 18, 4) and np.array_equal(img[..., :3], rgb) and np.array_equal(img[..., 3], alpha[..., 0])
    result = Restorer(_Identity()).restore(img)
    assert np.array_equal(result.image, rgb) and 'alpha channel dropped' in result.notes


def test_a_colour_image_given_to_a_gray_model_is_its_bt601_luma():
    rng = np.random.RandomState(2)
    image = rng.randint(0, 256, (16, 20, 3), dtype=np.uint8)
    result = Restorer(_Identity(1)).restore(image)
    r, g, b = (image[..., i].astype(np.float64) for i in range(3))
    luma = (0.299 * r + 0.587 * g + 0.114 * b) / 255
    assert result.converted_to_gray and result.image.shape == (16, 20)
    assert np.abs(result.input_image - luma).max() < 1e-3
    assert np.abs(result.image.astype(np.float64) - np.round(luma * 255)).max() <= 1


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_float_input_gives_an_8_bit_output(dtype):
    image = np.random.RandomState(3).rand(12, 12, 3).astype(dtype)
    result = Restorer(_Identity()).restore(image)
    assert result.image.dtype == np.uint8
    assert np.abs(result.image - image.astype(np.float64) * 255).max() <= 0.5 + 1e-3


def test_a_thin_image_below_the_smallest_input_is_an_image_error_naming_it():
    restorer = Restorer(_NeedsThirteen())
    assert restorer.min_size == 13
    with pytest.raises(ImageError, match='strip.png: 40x6 is smaller than the smallest input .*13x13'):
        restorer.restore(np.zeros((6, 40, 3), np.uint8), source='strip.png')
    with pytest.raises(ImageError, match='6x40'):
        restorer.restore(np.zeros((40, 6, 3), np.uint8), source='strip.png')


def test_restore_file_never_overwrites_its_input(tmp_path):
    path = tmp_path / 'a.png'
    write_image(path, np.random.RandomState(4).randint(0, 256, (12, 12, 3), dtype=np.uint8))
    before = path.read_bytes()
    with pytest.raises(OutputNameError, match='a.png'):
        Restorer(_Identity()).restore_file(path, tmp_path)
    assert path.read_bytes() == before


def test_a_blind_model_refuses_a_kernel():
    restorer = Restorer(_Blind())
    assert restorer.kernel_size == 0
    with pytest.raises(ImageError, match='not kernel-conditioned'):
        restorer.restore(np.zeros((12, 12, 3), np.uint8), kernel=np.full((3, 3), 1 / 9))


# ----------------------------------------------------------------------------- outputs
def test_output_names_keep_tiff_for_both_files():
    assert output_names('scan.TIFF', compare=True) == ['scan.tif', 'scan_compare.tif']
    assert output_names('shot.JPG', compare=True) == ['shot.png', 'shot_compare.png']
    assert output_names('x.npy') == ['x.png']


def test_written_images_get_the_permissions_of_a_new_file(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_image(tmp_path / 'out.png', np.zeros((4, 4, 3), np.uint8))
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ['out.png']  # no temporary file left beside it


def test_the_compare_image_shows_the_input_by_nearest_neighbour(tmp_path):
    """A ×2 nearest-neighbour upsampler: its output is the input with every pixel doubled, and so is the left
    half of the compare image (the input resized without interpolation)."""
    image = np.random.RandomState(5).randint(0, 256, (8, 10, 3), dtype=np.uint8)
    write_image(tmp_path / 'a.png', image)
    restorer = Restorer(torch.nn.Upsample(scale_factor=2, mode='nearest'))
    assert restorer.scale == 2
    out_path, _ = restorer.restore_file(tmp_path / 'a.png', tmp_path / 'out', compare=True)
    doubled = image.repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(read_image(out_path), doubled)
    assert np.array_equal(read_image(tmp_path / 'out' / 'a_compare.png'), np.concatenate([doubled, doubled], axis=1))
