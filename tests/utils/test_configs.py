"""``--config NAME``: shipped option files found by name (converse_basicsr/configs.py)."""
import pytest

from converse_basicsr.utils import configs
from tests.helpers.shared_files import REPO_ROOT

OPTIONS = REPO_ROOT / 'options'


@pytest.mark.parametrize('name, kind, path', [
    ('test_converse_dncnn_sigma25', 'test', 'test/test_converse_dncnn_sigma25.yml'),
    ('test_converse_dncnn_sigma25.yml', 'test', 'test/test_converse_dncnn_sigma25.yml'),
    ('denoising/train_ConverseDnCNN_gray_sigma25', 'train', 'train/denoising/train_ConverseDnCNN_gray_sigma25.yml'),
    ('train_demo_dncnn', 'demo', 'demo/train_demo_dncnn.yml'),
])
def test_shipped_name_resolves_to_the_checkouts_file(name, kind, path):
    assert configs.resolve_config(name, kind) == str(OPTIONS / path)


def test_existing_path_is_taken_as_is(tmp_path, monkeypatch):
    own = tmp_path / 'mine.yml'
    own.write_text('name: mine\n')
    monkeypatch.chdir(tmp_path)
    assert configs.resolve_config('mine.yml', 'train') == str(own)


def test_every_shipped_file_is_listed():
    for kind in ('train', 'test', 'demo'):
        expected = sorted(str(p.relative_to(OPTIONS / kind).with_suffix('')) for p in (OPTIONS / kind).rglob('*.yml'))
        assert expected and configs.available_configs(kind) == expected


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match=r"'test_nothing'.*test_converse_dncnn_sigma25"):
        configs.resolve_config('test_nothing', 'test')
    with pytest.raises(FileNotFoundError, match='train_ConverseDnCNN_gray_sigma25'):  # a test name is no train name
        configs.resolve_config('test_converse_dncnn_sigma25', 'train')


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"kind.*'tests'"):
        configs.resolve_config('test_converse_dncnn_sigma25', 'tests')


def test_installed_copy_ignores_a_foreign_options_folder(tmp_path, monkeypatch):
    """An installed copy (no setup.py beside the package) reads its own options/ only, not an ``options/``
    that happens to lie beside it in site-packages."""
    package = tmp_path / 'site' / 'converse_basicsr'
    (package / 'options' / 'test').mkdir(parents=True)
    (package / 'options' / 'test' / 'ours.yml').write_text('name: ours\n')
    (tmp_path / 'site' / 'options' / 'test').mkdir(parents=True)
    (tmp_path / 'site' / 'options' / 'test' / 'foreign.yml').write_text('name: foreign\n')
    monkeypatch.setattr(configs, '__file__', str(package / 'utils' / 'configs.py'))
    assert configs.resolve_config('ours', 'test') == str(package / 'options' / 'test' / 'ours.yml')
    assert configs.available_configs('test') == ['ours']
    with pytest.raises(FileNotFoundError):
        configs.resolve_config('foreign', 'test')
