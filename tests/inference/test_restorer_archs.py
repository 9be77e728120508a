"""``Restorer`` and ``converse-restore`` with BasicSR's own SR archs: the scale is measured, not
assumed, and tiles give the whole-image result, at the size the scale implies.

Small random-weight models (widths 8-16) keep this fast; the images are random. The networks are
local (convolutions, 4x4 attention windows) with a receptive field well inside the 16-pixel tile
context, so tiled and whole-image runs must agree to float32 rounding (1e-5), far tighter than the
seam tolerance the README states for the global Converse2D operator.
"""
import json

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.edsr_arch import EDSR
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srvgg_arch import SRVGGNetCompact
from basicsr.archs.swinir_arch import SwinIR
from converse_basicsr.inference.restorer import Restorer
from converse_basicsr.restore import main

ARCHS = {
    'RRDBNet': lambda s: dict(num_in_ch=3, num_out_ch=3, scale=s, num_feat=8, num_block=1, num_grow_ch=4),
    'EDSR': lambda s: dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=s),
    'SwinIR': lambda s: dict(upscale=s, in_chans=3, img_size=16, window_size=4, depths=[1], embed_dim=8, num_heads=[2],
                             mlp_ratio=1, upsampler='pixelshuffledirect', drop_path_rate=0.0),
    'SRVGGNetCompact': lambda s: dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=s),
}
CLASSES = {'RRDBNet': RRDBNet, 'EDSR': EDSR, 'SwinIR': SwinIR, 'SRVGGNetCompact': SRVGGNetCompact}
CASES = [(arch, scale) for arch in ARCHS for scale in (2, 4)]
H, W, TILE, PAD = 40, 56, 16, 16  # 3 x 4 tiles (the last ones 8 wide)

pytestmark = pytest.mark.usefixtures('one_thread')


def build(arch, scale):
    torch.manual_seed(0)
    return CLASSES[arch](**ARCHS[arch](scale)).eval()


def image(seed=0):
    return (np.random.RandomState(seed).rand(H, W, 3) * 255).astype(np.uint8)


@pytest.mark.parametrize('arch, scale', CASES, ids=[f'{a}-x{s}' for a, s in CASES])
def test_restorer_measures_the_scale_and_tiles_match(arch, scale):
    model = build(arch, scale)
    whole = Restorer(model).restore(image())
    assert whole.image.shape == (H * scale, W * scale, 3)
    with torch.no_grad():  # the restorer's output is the model's own
        direct = model(torch.from_numpy(image().transpose(2, 0, 1).astype(np.float32) / 255)[None])
    np.testing.assert_allclose(whole.float_image, direct[0].clamp(0, 1).numpy().transpose(1, 2, 0), atol=1e-6)
    tiled = Restorer(model, tile=TILE, tile_pad=PAD, scale=scale).restore(image())
    assert tiled.tile == TILE and tiled.image.shape == whole.image.shape
    assert np.abs(tiled.float_image - whole.float_image).max() < 1e-5


@pytest.mark.parametrize('arch, scale', CASES, ids=[f'{a}-x{s}' for a, s in CASES])
def test_cli_with_a_basicsr_checkpoint(arch, scale, tmp_path, capsys):
    checkpoint = tmp_path / 'net.pth'
    torch.save({'params': build(arch, scale).state_dict()}, checkpoint)
    cv2.imwrite(str(tmp_path / 'in.png'), image(1))
    outputs = {}
    for tile in (None, TILE):
        out = tmp_path / f'out_{tile}'
        argv = [
            '--model',
            str(checkpoint), '--arch', arch, '--arch-kwargs',
            json.dumps(ARCHS[arch](scale)), '-i',
            str(tmp_path / 'in.png'), '-o',
            str(out)
        ]
        if tile:
            argv += ['--tile', str(tile), '--tile-pad', str(PAD)]
        assert main(argv) == 0, capsys.readouterr().err
        outputs[tile] = cv2.imread(str(out / 'in.png'), cv2.IMREAD_UNCHANGED)
        assert outputs[tile].shape == (H * scale, W * scale, 3)
    assert np.abs(outputs[None].astype(int) - outputs[TILE]).max() <= 1  # uint8 rounding of a 1e-5 difference


def test_scale_mismatches_name_both_values(tmp_path, capsys):
    model = build('EDSR', 4)  # EDSR declares no scale: measured 4
    with pytest.raises(ValueError, match=r'scale 2 .*upscales by 4'):
        Restorer(model, scale=2)
    model.upscale = 2  # a declared attribute (unused by EDSR's forward) that contradicts the measurement
    with pytest.raises(ValueError, match='declares scale 2 but its output is 4x'):
        Restorer(model)
    checkpoint = tmp_path / 'edsr.pth'
    torch.save(build('EDSR', 4).state_dict(), checkpoint)
    cv2.imwrite(str(tmp_path / 'in.png'), image())
    rc = main([
        '--model',
        str(checkpoint), '--arch', 'EDSR', '--arch-kwargs',
        json.dumps(ARCHS['EDSR'](4)), '-i',
        str(tmp_path / 'in.png'), '-o',
        str(tmp_path / 'out'), '--scale', '3'
    ])
    err = capsys.readouterr().err
    assert rc == 2 and 'scale 3' in err and 'upscales by 4' in err
    assert not (tmp_path / 'out' / 'in.png').exists()
    assert main([
        '--model',
        str(checkpoint), '--arch', 'EDSR', '--arch-kwargs',
        json.dumps(ARCHS['EDSR'](4)), '-i',
        str(tmp_path / 'in.png'), '-o',
        str(tmp_path / 'out'), '--scale', '4'
    ]) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'in.png')).shape == (H * 4, W * 4, 3)


def test_non_integer_or_unequal_scale_is_refused():

    class Stretch(torch.nn.Module):  # 2x on one axis only

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return torch.nn.functional.interpolate(self.conv(x), scale_factor=(1, 2))

    with pytest.raises(ValueError, match='not an integer scale equal on both axes'):
        Restorer(Stretch())
