"""converse-restore's folder loop at its edges: a sub-folder named like an image is not an input, a ``--compare``
file that would collide with another input's output stops the run before anything is written, the report line
gives the size as width x height, ``--arch-kwargs`` must be a JSON object, and ``--max-pixels`` is an inclusive
limit."""

import cv2
import numpy as np
import pytest

from tests.helpers.restore_cli import restore as _restore
from tests.helpers.restore_cli import tiny_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path)


def _image(path, h=12, w=10):
    assert cv2.imwrite(str(path), np.random.RandomState(0).randint(0, 256, (h, w), dtype=np.uint8))
    return path


def test_a_folder_named_like_an_image_is_not_an_input(tmp_path, checkpoint, capsys):
    folder = tmp_path / 'in'
    (folder / 'album.png').mkdir(parents=True)
    _image(folder / 'a.png')
    out = tmp_path / 'out'
    assert _restore(checkpoint, folder, out) == 0
    assert 'restored 1/1 images' in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ['a.png']


def test_a_compare_file_colliding_with_another_output_stops_the_run(tmp_path, checkpoint, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    _image(folder / 'a.png'), _image(folder / 'a_compare.jpg')  # a's compare file and a_compare's output
    out = tmp_path / 'out'
    assert _restore(checkpoint, folder, out, '--compare') == 2
    assert "would both be written as output 'a_compare.png'" in capsys.readouterr().err
    assert not out.exists()
    assert _restore(checkpoint, folder, out) == 0  # without --compare the names do not collide


def test_the_report_gives_width_by_height(tmp_path, checkpoint, capsys):
    image = _image(tmp_path / 'tall.png', h=16, w=10)
    assert _restore(checkpoint, image, tmp_path / 'out') == 0
    assert f'{image} -> {tmp_path / "out" / "tall.png"} (10x16, uint8)' in capsys.readouterr().out


@pytest.mark.parametrize('kwargs', ['[1, 2]', '"text"', '3'])
def test_arch_kwargs_must_be_a_json_object(tmp_path, checkpoint, capsys, kwargs):
    image = _image(tmp_path / 'a.png')
    assert _restore(checkpoint, image, tmp_path / 'out', kwargs=kwargs) == 2
    assert f'--arch-kwargs must be a JSON object, got {kwargs!r}' in capsys.readouterr().err


def test_max_pixels_is_an_inclusive_limit(tmp_path, checkpoint, capsys):
    image = _image(tmp_path / 'a.png', h=12, w=10)
    assert _restore(checkpoint, image, tmp_path / 'out', '--max-pixels', '120') == 0
    assert _restore(checkpoint, image, tmp_path / 'out2', '--max-pixels', '119') == 1
    assert 'declares 120 pixels, more than the limit of 119' in capsys.readouterr().err
