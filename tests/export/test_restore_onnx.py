"""``converse-restore --onnx`` writes the same PNG files as the PyTorch path (Set5, a small Converse-DnCNN)."""
import cv2
import numpy as np
import torch

from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.export import load_onnx
from converse_basicsr.inference.restorer import Restorer
from converse_basicsr.restore import main as restore_main
from tests.helpers.export_models import export
from tests.helpers.shared_files import shared_path

MAX_GREY_LEVELS = 1  # float32 rounding in ONNX Runtime vs PyTorch may move a value across a .5 boundary


def test_restore_onnx_same_pngs_as_pytorch_on_set5(tmp_path):
    set5 = shared_path('testsets', 'Set5')
    torch.manual_seed(0)
    model = ConverseDnCNN(num_in_ch=3, num_feat=8, num_block=2).eval()
    checkpoint = tmp_path / 'net.pth'
    torch.save(model.state_dict(), checkpoint)
    onnx_path, _ = export(model, tmp_path)
    common = ['--input', str(set5), '--tile', '96']  # tiled, so the same tiling runs in both
    assert restore_main([
        '--model',
        str(checkpoint), '--arch', 'ConverseDnCNN', '--arch-kwargs', '{"num_in_ch": 3, "num_feat": 8, "num_block": 2}',
        '--output',
        str(tmp_path / 'torch')
    ] + common) == 0
    assert restore_main(['--onnx', str(onnx_path), '--output', str(tmp_path / 'onnx')] + common) == 0
    names = sorted(p.name for p in set5.glob('*.png'))
    assert names and sorted(p.name for p in (tmp_path / 'onnx').iterdir()) == names
    identical = 0
    for name in names:
        a, b = (tmp_path / 'torch' / name).read_bytes(), (tmp_path / 'onnx' / name).read_bytes()
        identical += a == b
        diff = np.abs(
            cv2.imread(str(tmp_path / 'torch' / name)).astype(int) -
            cv2.imread(str(tmp_path / 'onnx' / name)).astype(int))
        assert diff.max() <= MAX_GREY_LEVELS, name
    print(f'{identical}/{len(names)} PNG files byte-identical')


def test_restorer_probes_an_onnx_model_like_the_module(tmp_path):
    torch.manual_seed(0)
    model = ConverseDnCNN(num_in_ch=1, num_feat=8, num_block=1, kernel_size=5, padding=4).eval()
    onnx_path, _ = export(model, tmp_path)
    by_torch, by_onnx = Restorer(model), Restorer(load_onnx(onnx_path))
    assert (by_onnx.in_channels, by_onnx.scale) == (by_torch.in_channels, by_torch.scale) == (1, 1)
    assert by_onnx.min_size == 4  # circular padding 4 needs at least 4 pixels (the metadata's minimum size)
