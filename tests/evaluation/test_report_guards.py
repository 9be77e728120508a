"""What converse-compare reports beyond PSNR: the analytic FFT FLOPs (padding on both sides, an SR model's input
side divided by its scale), the automatic crop of the grids (an image no larger than the crop, texture in the
last row and column) and a missing dataset (a required one stops the run naming it, an optional one is skipped)."""
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import yaml

from converse_basicsr import compare as cli
from converse_basicsr.evaluation.figures import choose_crop
from converse_basicsr.evaluation.measurement import count_flops, fft_flops
from converse_basicsr.ops import Converse2D


def _real_fft(points):
    """FLOPS_NOTE's count of one real 2-D FFT of ``points`` points: 2.5·N·log2(N)."""
    return 2.5 * points * math.log2(points)


def test_fft_flops_count_the_padding_on_both_sides_and_the_output_at_the_scale():
    layer = Converse2D(3, 3, kernel_size=3, scale=2, padding=3)
    x = torch.rand(2, 3, 10, 12)
    padded = (10 + 2 * 3) * (12 + 2 * 3)
    expected = 2 * 3 * (_real_fft(padded) + _real_fft(padded * 4))  # rfft2 of the padded input, irfft2 at 2x
    assert fft_flops(layer, (x, )) == pytest.approx(expected, rel=1e-12)


class _UpThenSolve(torch.nn.Module):
    """A ×2 model: one Converse2D (scale 2, padding 2) on a 1-channel input."""

    def __init__(self):
        super().__init__()
        self.layer = Converse2D(1, 1, kernel_size=3, scale=2, padding=2)

    def forward(self, x):
        return self.layer(x)


@pytest.mark.parametrize('size', [32, 33])
def test_flops_of_an_sr_model_are_counted_at_the_input_size(size):
    """``count_flops`` at a ``size`` output runs an SR model on a ``size // scale`` input."""
    model = _UpThenSolve().eval()
    sizes = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape)))
    info = SimpleNamespace(device=torch.device('cpu'), model=model, forward=lambda x, kernel: model(x))
    _, fft = count_flops(info, 1, size, 2, None)
    assert sizes == [(1, 1, 16, 16)]
    padded = (16 + 4)**2
    assert fft == pytest.approx(_real_fft(padded) + _real_fft(padded * 4), rel=1e-12)


def test_the_crop_of_an_image_no_larger_than_it_is_the_whole_image():
    gt = np.random.RandomState(0).randint(0, 256, (30, 40, 3), dtype=np.uint8)
    top, left, side = choose_crop(gt, 48)
    assert side == 30 and top == 0 and 0 <= left <= 40 - 30
    assert choose_crop(gt[:30, :30], 30) == (0, 0, 30)


@pytest.mark.parametrize('corner', ['bottom right', 'top left'])
def test_the_crop_reaches_the_last_row_and_column(corner):
    """All texture in one 8×8 corner of a flat 40×50 image: the 16-pixel crop with the most gradient energy holds
    that corner, up to the image's last row and column."""
    gt = np.full((40, 50, 3), 128, np.uint8)
    texture = np.random.RandomState(1).randint(0, 256, (8, 8, 3), dtype=np.uint8)
    if corner == 'bottom right':
        gt[-8:, -8:] = texture
        assert choose_crop(gt, 16) == (40 - 16, 50 - 16, 16)
    else:
        gt[:8, :8] = texture
        assert choose_crop(gt, 16) == (0, 0, 16)


@pytest.fixture
def present(tmp_path):
    folder = tmp_path / 'present'
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f'{i}.png'), np.random.RandomState(i).randint(0, 256, (24, 24), dtype=np.uint8))
    return folder


def _config(tmp_path, present, optional):
    config = tmp_path / 'compare.yml'
    gone = {'dataroot_gt': str(tmp_path / 'gone'), 'optional': True} if optional else str(tmp_path / 'gone')
    config.write_text(
        yaml.safe_dump({
            'name': 'missing', 'protocol': {'task': 'denoise', 'sigma': 25, 'color': 'gray'},
            'datasets': {'Present': str(present), 'Gone': gone}, 'models': ['input'], 'warmup': 0
        }))
    return config


def test_a_missing_required_dataset_stops_the_comparison_naming_it(tmp_path, present, capsys):
    status = cli.main(['-opt', str(_config(tmp_path, present, False)), '--results-root', str(tmp_path / 'results')])
    err = capsys.readouterr().err
    assert status == 2
    assert 'Gone' in err and str(tmp_path / 'gone') in err
    assert not (tmp_path / 'results' / 'missing' / 'comparison.csv').exists()


def test_a_missing_optional_dataset_is_skipped_with_a_warning(tmp_path, present, capsys):
    status = cli.main(['-opt', str(_config(tmp_path, present, True)), '--results-root', str(tmp_path / 'results')])
    err = capsys.readouterr().err
    assert status == 0 and 'skipping optional datasets that are not present: Gone' in err
    rows = (tmp_path / 'results' / 'missing' / 'comparison.csv').read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith('Present,')
