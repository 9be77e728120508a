"""``module:callable`` options: found on PYTHONPATH or in the current folder (as ``python -m`` does), never shadowing
an installed package; a missing module or attribute is one OptionError naming the target."""
import sys

import pytest

from converse_basicsr.utils.imports import import_target
from converse_basicsr.utils.options import OptionError


def test_module_in_the_current_folder_is_found(tmp_path, monkeypatch):
    (tmp_path / 'my_fuzz_models.py').write_text('def make(scale=1):\n    return ("made", scale)\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', [p for p in sys.path if p not in ('', str(tmp_path))])
    assert import_target('my_fuzz_models:make')(scale=3) == ('made', 3)
    assert sys.path[-1] == str(tmp_path)  # appended: an installed package of the same name wins


@pytest.mark.parametrize('target, message', [
    ('no_such_module_xyz:make', "no module 'no_such_module_xyz' on PYTHONPATH or in the current folder"),
    ('os:no_such_function', "os has no attribute 'no_such_function'"),
    ('just_a_name', "must be written 'package.module:callable'"),
])
def test_missing_targets_are_one_line(tmp_path, monkeypatch, target, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OptionError, match=message):
        import_target(target, 'models[0]')
