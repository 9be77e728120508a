"""The tile size has a floor: ``--tile`` below 8 pixels (a tile smaller than the operator's padding context) is a
usage error of converse-restore, before any model runs; 8 itself is accepted."""
import cv2
import numpy as np

from converse_basicsr.restore import main


def test_restore_refuses_tiles_below_eight_pixels(zoo_dir, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((24, 20, 3), 90, np.uint8))
    common = ['--model', 'converse_dncnn', '--model-dir', str(zoo_dir), '-i', str(tmp_path / 'a.png')]
    assert main(common + ['-o', str(tmp_path / 'small'), '--tile', '7']) == 2
    err = capsys.readouterr().err
    assert "tile must be None, 'auto' or an integer >= 8, got 7" in err and 'Traceback' not in err
    assert not (tmp_path / 'small').exists() or not any((tmp_path / 'small').iterdir())  # nothing written
    assert main(common + ['-o', str(tmp_path / 'eight'), '--tile', '8']) == 0
    assert (tmp_path / 'eight' / 'a.png').is_file()
