"""The output-name collision rule folds case: ``A.png`` and ``a.jpg`` would be one file on macOS / Windows, so
converse-restore refuses them before writing anything, and so does the rule itself."""
import cv2
import numpy as np
import pytest

from converse_basicsr.data.io import OutputNameError, plan_output_names
from converse_basicsr.restore import main


def stem(path):
    return [path.rsplit('.', 1)[0]]


def test_rule_compares_names_case_insensitively():
    with pytest.raises(OutputNameError, match=r"A\.png and a\.jpg would both be written"):
        plan_output_names(['A.png', 'a.jpg'], stem)
    assert plan_output_names(['A.png', 'b.jpg'], stem) == {'A.png': ['A'], 'b.jpg': ['b']}


def test_restore_refuses_inputs_differing_only_in_case(zoo_dir, tmp_path, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    rng = np.random.RandomState(0)
    for name in ('A.png', 'a.jpg'):
        cv2.imwrite(str(inp / name), (rng.rand(12, 10, 3) * 255).astype(np.uint8))
    before = {p.name: p.read_bytes() for p in inp.iterdir()}
    rc = main(['--model', 'converse_srresnet', '--model-dir', str(zoo_dir), '-i', str(inp), '-o', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert rc == 2 and 'A.png' in err and 'a.jpg' in err and 'nothing was written' in err
    assert not (tmp_path / 'o').exists() and {p.name: p.read_bytes() for p in inp.iterdir()} == before
