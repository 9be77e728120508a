"""The tile size has a floor: ``--tile`` below 8 pixels is a usage error of converse-restore, before any model
runs (exit status 2, one line naming the value); 8 itself is a valid tile."""
import cv2
import numpy as np
import pytest

from converse_basicsr.inference.tiling import MIN_TILE, check_tile
from converse_basicsr.restore import main


def test_restore_refuses_tiles_below_eight_pixels(zoo_dir, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((24, 20, 3), 90, np.uint8))
    argv = [
        '--model', 'converse_dncnn', '--model-dir',
        str(zoo_dir), '-i',
        str(tmp_path / 'a.png'), '-o',
        str(tmp_path / 'out'), '--tile', '7'
    ]
    try:
        code = main(argv)
    except SystemExit as stop:  # the checked parser ends the run itself
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert '--tile' in err and '>= 8' in err and 'got 7' in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())  # nothing written


def test_the_floor_is_eight():
    assert MIN_TILE == 8 and check_tile(8, 0) == (8, 0) and check_tile('auto', 4) == ('auto', 4)
    for tile in (7, 0, -8, 7.5, True):
        with pytest.raises(ValueError, match='tile must be'):
            check_tile(tile, 0)
