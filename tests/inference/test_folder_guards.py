"""converse-restore's folder loop on bad input: an empty folder or a missing input (exit 2 naming it), a folder
with one unreadable image (exit 1; the others restored, nothing written for it), ``--arch-kwargs`` without
``--arch`` (exit 2)."""
import cv2
import numpy as np
import pytest

from converse_basicsr.restore import main as restore_main
from tests.helpers.restore_cli import KWARGS
from tests.helpers.restore_cli import restore as _restore
from tests.helpers.restore_cli import tiny_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path)


def test_a_folder_without_images_is_a_usage_error(tmp_path, checkpoint, capsys):
    folder = tmp_path / 'empty'
    folder.mkdir()
    (folder / 'readme.txt').write_text('no images here')
    assert _restore(checkpoint, folder, tmp_path / 'out') == 2
    assert f'--input {folder} holds no images' in capsys.readouterr().err


def test_a_missing_input_is_a_usage_error(tmp_path, checkpoint, capsys):
    assert _restore(checkpoint, tmp_path / 'nowhere', tmp_path / 'out') == 2
    assert f'--input {tmp_path / "nowhere"} does not exist' in capsys.readouterr().err


def test_one_unreadable_image_fails_alone_with_exit_status_1(tmp_path, checkpoint, capsys):
    folder = tmp_path / 'mixed'
    folder.mkdir()
    cv2.imwrite(str(folder / 'good.png'), np.random.RandomState(0).randint(0, 256, (12, 12), dtype=np.uint8))
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n cut short')
    out = tmp_path / 'out'
    assert _restore(checkpoint, folder, out) == 1
    err = capsys.readouterr().err
    assert f'error: {folder / "broken.png"}' in err and 'failed: ' in err
    assert sorted(p.name for p in out.iterdir()) == ['good.png']


def test_arch_kwargs_need_an_arch(tmp_path, checkpoint, capsys):
    image = tmp_path / 'in.png'
    cv2.imwrite(str(image), np.zeros((12, 12), np.uint8))
    status = restore_main(
        ['--model',
         str(checkpoint), '--arch-kwargs', KWARGS, '--input',
         str(image), '--output',
         str(tmp_path / 'out')])
    assert status == 2 and '--arch-kwargs needs --arch' in capsys.readouterr().err
