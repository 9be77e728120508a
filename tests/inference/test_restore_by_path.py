"""converse-restore --model PATH with a public checkpoint (arch detected): tiled and untiled, equal to the net."""
import cv2
import numpy as np
import torch
from spandrel.architectures.Compact import Compact

from converse_basicsr import restore
from converse_basicsr.inference.restorer import Restorer


def test_restore_public_checkpoint_tiled_and_untiled(tmp_path, capsys):
    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).eval()
    path = tmp_path / 'compact_x2.pth'
    torch.save({'params_ema': net.state_dict()}, path)
    rng = np.random.default_rng(0)
    image = (rng.random((40, 36, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'in.png'), image)
    outs = []
    for tile in (None, '16'):
        out = tmp_path / f'out_{tile}'
        argv = ['--model', str(path), '-i', str(tmp_path / 'in.png'), '-o',
                str(out)] + (['--tile', tile] if tile else [])
        assert restore.main(argv) == 0
        outs.append(cv2.imread(str(out / 'in.png')))
    x = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = (net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round()
    assert outs[0].shape == (80, 72, 3)
    assert np.abs(outs[0].astype(float) - expected).max() <= 1
    assert np.abs(outs[1].astype(float) - outs[0]).max() <= 1  # Compact is local: tiles with context agree
    assert Restorer(str(path)).scale == 2


def test_restore_refuses_unknown_and_code_carrying_files(tmp_path, capsys):
    image = tmp_path / 'in.png'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    truncated = tmp_path / 'cut.pth'
    torch.save({'params': {'w': torch.zeros(100)}}, tmp_path / 'full.pth')
    truncated.write_bytes((tmp_path / 'full.pth').read_bytes()[:200])
    evil = tmp_path / 'evil.pth'
    torch.save({'params': {'w': torch.zeros(1)}, 'hook': Marker()}, evil)
    for bad in (truncated, evil):
        assert restore.main(['--model', str(bad), '-i', str(image), '-o', str(tmp_path / 'o')]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and err.count('\n') == 1
    assert not Marker.loaded


class Marker:
    """Unpickling it would run ``__setstate__``: a refused pickle leaves ``loaded`` False."""
    loaded = False

    def __setstate__(self, state):
        Marker.loaded = True
