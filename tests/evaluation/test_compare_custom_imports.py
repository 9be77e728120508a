"""converse-compare imports the user's modules named by ``custom_imports:`` in its YAML (as converse-train and
converse-test do), before the models are checked: a user's own arch becomes a row by its registered name."""
import sys

import yaml

from converse_basicsr import compare as cli
from tests.evaluation.compare_fixture import read_rows, write_images

USER_ARCH = '''
import torch
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class CmpUserNet(torch.nn.Module):
    """x * scale: a denoiser a test can predict."""

    def __init__(self, num_in_ch=3, scale=0.5):
        super().__init__()
        self.factor = scale

    def forward(self, x):
        return x * self.factor
'''


def _config(root, custom_imports):
    folder = root / 'd'
    if not folder.exists():
        write_images(folder, {'a.png': (24, 32)}, seed=5)
    opt = dict(name='mine', protocol=dict(task='denoise', sigma=25, color='rgb'), datasets={'D': str(folder)},
               models=['input', dict(name='user arch', type='CmpUserNet')], results_root=str(root / 'res'), warmup=0,
               flops_size=16, **custom_imports)
    path = root / 'compare.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    return path


def test_custom_imports_in_a_compare_yaml_registers_the_users_arch(tmp_path, monkeypatch, capsys):
    (tmp_path / 'cmp_user_arch.py').write_text(USER_ARCH)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, 'cmp_user_arch', raising=False)
    # without the key the arch is unknown: one line naming it and how to import one, exit 2, nothing created
    assert cli.main(['-opt', str(_config(tmp_path, {}))]) == 2
    err = capsys.readouterr().err
    assert 'CmpUserNet' in err and 'import' in err and 'Traceback' not in err
    assert not (tmp_path / 'res').exists()
    assert cli.main(['-opt', str(_config(tmp_path, {'custom_imports': ['cmp_user_arch']}))]) == 0
    rows = {row['model']: row for row in read_rows(tmp_path / 'res' / 'mine' / 'comparison.csv')}
    assert set(rows) == {'input', 'user arch'}


def test_the_compare_yaml_is_read_once(tmp_path, monkeypatch, capsys):
    """The YAML that names the modules to import is the one the run uses: read once, not once per use."""
    from converse_basicsr.evaluation import runner
    from converse_basicsr.utils import safe_yaml
    reads = []

    def counting(path, *args, **kwargs):
        reads.append(str(path))
        return safe_yaml.load_yaml(path, *args, **kwargs)

    monkeypatch.setattr(cli, 'load_yaml', counting)
    monkeypatch.setattr(runner, 'load_yaml', counting)
    path = _config(tmp_path, {})
    path.write_text(path.read_text().replace('CmpUserNet', 'CmpNeverRegisteredNet'), encoding='utf-8')
    assert cli.main(['-opt', str(path)]) == 2  # an unknown arch: stops once the options are read and checked
    assert 'CmpNeverRegisteredNet' in capsys.readouterr().err
    assert reads == [str(path)]
