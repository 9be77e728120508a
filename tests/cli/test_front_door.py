"""The entry points share the front door's rules: one device check, one base error (exit 2, nothing written), and
"not a known arch" saying how to import one."""
import cv2
import numpy as np
import pytest
import torch

from converse_basicsr import restore
from converse_basicsr.inference.restorer import Restorer
from converse_basicsr.training.basicsr_keys import basicsr_key_errors
from converse_basicsr.utils.options import OptionError, check_device


@pytest.fixture
def image_dir(tmp_path):
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), np.full((16, 16), 128, np.uint8))
    return tmp_path / 'in'


@pytest.mark.parametrize('device', ['mps', 'cpu'])
def test_flag_check_and_restorer_agree_on_devices(device, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: True)  # as on a Mac
    try:
        check_device(device)
        flag_ok = True
    except OptionError:
        flag_ok = False
    try:
        Restorer(torch.nn.Identity(), device=device)
        restorer_ok = True
    except ValueError:
        restorer_ok = False
    assert flag_ok == restorer_ok == (device == 'cpu')


def test_restore_refuses_mps_at_the_flag(monkeypatch, tmp_path, image_dir, capsys):
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: True)
    with pytest.raises(SystemExit) as exit_status:
        restore.main(['--model', 'converse_dncnn', '--device', 'mps', '-i', str(image_dir), '-o', str(tmp_path / 'o')])
    assert exit_status.value.code == 2 and 'argument --device' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_unknown_base_arch_is_a_usage_error_and_writes_nothing(tmp_path, image_dir, capsys):
    torch.save(torch.nn.Conv2d(1, 1, 3).state_dict(), tmp_path / 'w.pth')
    rc = restore.main([
        '--model',
        str(tmp_path / 'w.pth'), '--arch', 'ConverseUp', '--arch-kwargs', '{"base": {"type": "TinySR"}}', '-i',
        str(image_dir), '-o',
        str(tmp_path / 'out')
    ])
    err = capsys.readouterr().err
    assert rc == 2 and "'TinySR' is not a registered arch" in err and '--import' in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()


def test_not_a_known_arch_says_how_to_import_one():
    errors = basicsr_key_errors({'network_g': {'type': 'TinySR'}, 'custom_imports': ['my_arch']}, is_train=False)
    line = next(e for e in errors if 'TinySR' in e)
    assert 'not a known arch' in line and 'custom_imports: [my_module]' in line and '--import my_module' in line
    assert not any('custom_imports' in e and 'TinySR' not in e for e in errors)  # the key itself is accepted
