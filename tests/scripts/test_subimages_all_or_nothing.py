"""prepare_subimages.py decodes every input before the first crop is written: a corrupt image anywhere in the
folder leaves no crops of the images before it (exit status 2, one line naming the file)."""
import importlib.util
from os import path as osp

import cv2
import numpy as np
import pytest

SCRIPTS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'scripts')


def _script(name):
    spec = importlib.util.spec_from_file_location(f'{name}_all_or_nothing', osp.join(SCRIPTS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


subimages = _script('prepare_subimages')


@pytest.mark.parametrize('n_thread', [1, 2])
def test_corrupt_image_after_good_ones_leaves_nothing(tmp_path, capsys, n_thread):
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(src / name), np.random.RandomState(0).randint(0, 256, (40, 40, 3), np.uint8))
    (src / 'z_broken.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')  # sorted last: read after the good ones
    out = tmp_path / 'out'
    status = subimages.main(
        ['--input',
         str(src), '--output',
         str(out), '--crop-size', '16', '--step', '8', '--n-thread',
         str(n_thread)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"prepare_subimages: error: cannot read image '{src / 'z_broken.png'}'" in err
    assert not out.exists()  # no crops of a.png / b.png, not even the folder


@pytest.mark.parametrize('flag, value', [('--crop-size', '0'), ('--step', '-3'), ('--n-thread', '0'),
                                         ('--thresh-size', '-1'), ('--compression-level', '10')])
def test_bad_numbers_are_one_line(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        subimages.main(['--input', str(tmp_path), '--output', str(tmp_path / 'o'), flag, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f'prepare_subimages: error: argument {flag}: ')
    assert err.count('\n') == 1 and not (tmp_path / 'o').exists()
