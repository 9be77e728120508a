"""mmengine: every arch of the package builds from mmengine's root MODELS as ``converse.<Name>``.

Skipped without mmengine (the optional extra ``converse-basicsr[mmengine]``), except under ``CI=true``,
where ``make test`` has installed it and its absence fails the module."""
import os
import subprocess
import sys

import pytest
import torch

from basicsr.utils.registry import ARCH_REGISTRY
from tests.helpers.shared_files import REPO_ROOT

try:
    from mmengine.registry import MODELS
except ImportError as err:  # mmengine is the optional extra converse-basicsr[mmengine]
    if os.environ.get('CI', '').lower() == 'true':  # `make test` installs it: missing there is a failure
        pytest.fail(f'mmengine is not installed under CI=true: {err}', pytrace=False)
    pytest.skip("mmengine is not installed (pip install 'converse-basicsr[mmengine]')", allow_module_level=True)

from converse_basicsr import mm_registry  # noqa: E402

# small configs so the builds stay cheap; constructor keys are the archs' own
ARCHS = {
    'ConverseDnCNN': dict(num_in_ch=1, num_block=2),
    'ConverseMSRResNet': dict(num_block=1, upscale=2),
    'ConverseUpMSRResNet': dict(num_block=1, upscale=2),
    'ConverseNet': dict(num_in_ch=3, num_block=1, num_iter=2),
    'ConverseUSRNet': dict(num_block=1, num_iter=2),
}


def test_registry_scope_parent_and_contents():
    assert mm_registry.MODELS.scope == 'converse' and mm_registry.MODELS.parent is MODELS
    ours = sorted(name for name, cls in ARCH_REGISTRY if cls.__module__.split('.')[0] == 'converse_basicsr')
    assert set(ARCHS) <= set(ours)
    assert sorted(mm_registry.MODELS.module_dict) == ours


@pytest.mark.parametrize('name', sorted(mm_registry.converse_archs()))
def test_build_every_arch_from_root_models(name, tmp_path):
    kwargs = ARCHS.get(name, {})  # an arch added later builds with its defaults
    if name == 'SpandrelNet':  # the network of a checkpoint file: a small Real-ESRGAN Compact one
        from spandrel.architectures.Compact import Compact
        torch.manual_seed(0)
        kwargs = dict(path=str(tmp_path / 'compact_x2.pth'))
        torch.save(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).state_dict(), kwargs['path'])
    model = MODELS.build(dict(type=f'converse.{name}', **kwargs))
    reference = ARCH_REGISTRY.get(name)(**kwargs)
    assert type(model) is type(reference)
    assert [(k, v.shape) for k, v in model.state_dict().items()] == \
        [(k, v.shape) for k, v in reference.state_dict().items()]


def test_built_model_runs():
    model = MODELS.build(dict(type='converse.ConverseNet', num_in_ch=1, num_block=1, num_iter=1)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_config_file_with_custom_imports(tmp_path):
    """The README's snippet: a fresh process, a config file, custom_imports, MODELS.build."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['converse_basicsr.mm_registry'], allow_failed_imports=False)\n"
                   "model = dict(type='converse.ConverseDnCNN', num_in_ch=1, num_block=2)\n")
    code = ('from mmengine.config import Config\nfrom mmengine.registry import MODELS\n'
            f'cfg = Config.fromfile({str(cfg)!r})\nprint(type(MODELS.build(cfg.model)).__name__)')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith('ConverseDnCNN')
