"""``--import`` / ``custom_imports`` edges (``utils/imports.py``): a module of the user's that exists but fails on
one of its own imports raises that error as it is (the user's traceback, naming the module really missing), and a
blank module name is one OptionError naming the option, not a ``ValueError`` from importlib."""
import sys

import pytest

from converse_basicsr.utils.imports import import_user_modules, import_yaml_modules
from converse_basicsr.utils.options import OptionError


def test_a_module_that_fails_on_its_own_import_raises_that_error(tmp_path, monkeypatch):
    (tmp_path / 'my_broken_arch_xyz.py').write_text('import not_installed_dependency_xyz\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', [str(tmp_path)] + [p for p in sys.path if p not in ('', str(tmp_path))])
    monkeypatch.delitem(sys.modules, 'my_broken_arch_xyz', raising=False)
    with pytest.raises(ModuleNotFoundError) as failed:
        import_user_modules(['my_broken_arch_xyz'])
    assert failed.value.name == 'not_installed_dependency_xyz' and not isinstance(failed.value, OptionError)


@pytest.mark.parametrize('names', [[''], ['  '], ['os', ''], 'os', [3]])
def test_blank_or_non_text_module_names_are_an_option_error(names):
    with pytest.raises(OptionError) as refused:
        import_user_modules(names, '--import')
    assert str(refused.value) == f'--import must be a list of module names such as [my_arch], got {names!r}'
    with pytest.raises(OptionError, match=r'^f.yml: custom_imports must be a list of module names'):
        import_yaml_modules({'custom_imports': names}, 'f.yml')
