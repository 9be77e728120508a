"""A non-editable install works on its own: the wheel holds the code, the shipped configs, the LICENSE and the
console scripts; installed where the checkout cannot shadow it, ``converse-test --config`` runs on one Set12
image and ``converse-demo`` runs its first step, from a folder outside the repository.

The wheel is built from a copy of the checkout's sources (nothing is written into the checkout) and installed
with ``pip install --no-deps --target``; its dependencies come from the running environment.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests.helpers.demo import OPERATOR_LINE, operator_step_reference
from tests.helpers.shared_files import REPO_ROOT, shared_path

SOURCES = ('setup.py', 'setup.cfg', 'README.md', 'LICENSE', 'converse_basicsr', 'options')


def run(args, **kwargs):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f'{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """``(site folder, wheel path, environment)``: the wheel installed into a folder of its own; the
    environment puts only that folder on ``PYTHONPATH`` (not the checkout)."""
    root = tmp_path_factory.mktemp('packaging')
    src = root / 'src'
    src.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy2(REPO_ROOT / name, src / name)
    pip = [sys.executable, '-m', 'pip', '--quiet']
    run(pip + ['wheel', '--no-deps', '--no-build-isolation', '--wheel-dir', f'{root}/dist', f'{src}'], cwd=root)
    (wheel, ) = (root / 'dist').glob('converse_basicsr-*.whl')
    site = root / 'site'
    run(pip + ['install', '--no-deps', '--no-index', '--target', f'{site}', f'{wheel}'], cwd=root)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS='1')
    return site, wheel, env


def version_in_source():
    text = (REPO_ROOT / 'converse_basicsr' / 'version.py').read_text(encoding='utf-8')
    return re.search(r"^__version__ = '([^']+)'$", text, re.M).group(1)


def test_wheel_contents(installed):
    _, wheel, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = f'converse_basicsr-{version_in_source()}.dist-info'
        metadata = zf.read(f'{dist_info}/METADATA').decode()
        entry_points = zf.read(f'{dist_info}/entry_points.txt').decode()
        license_text = zf.read(f'{dist_info}/licenses/LICENSE').decode()
    shipped = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / 'options').rglob('*.yml')}
    assert shipped and {'converse_basicsr/' + name for name in shipped} <= names
    assert 'Apache License' in license_text and 'Version 2.0, January 2004' in license_text
    assert re.search(rf'^Version: {re.escape(version_in_source())}$', metadata, re.M)
    requirements = re.findall(r'^Requires-Dist: (.+)$', metadata, re.M)
    assert 'mmengine; extra == "mmengine"' in requirements  # an optional extra, not a hard dependency
    assert not any(r.startswith('mmengine') and 'extra ==' not in r for r in requirements)
    for script in ('converse-train', 'converse-test', 'converse-restore', 'converse-demo'):
        assert re.search(rf'^{script} = converse_basicsr\.', entry_points, re.M), script


def test_installed_copy_is_the_one_imported(installed, tmp_path):
    """The installed copy (not the checkout) is imported, finds its configs, leaves mmengine alone and
    names the extra when mmengine is missing; the README's snippet for one's own BasicSR script works."""
    site, _, env = installed
    code = textwrap.dedent("""\
        import sys
        import converse_basicsr
        from converse_basicsr.utils.configs import resolve_config
        print(converse_basicsr.__file__)
        print(converse_basicsr.__version__)
        print(resolve_config('train_demo_dncnn', 'demo'))
        print(resolve_config('denoising/train_ConverseDnCNN_gray_sigma25', 'train'))
        print('mmengine' in sys.modules)
        # the README's snippet for one's own BasicSR script
        from basicsr.archs import build_network
        net = build_network({'type': 'ConverseDnCNN', 'num_in_ch': 1, 'num_block': 1})
        converse_basicsr.training.compat.apply_training_fixes()
        print(type(net).__module__)
        sys.modules['mmengine'] = None  # as if the [mmengine] extra were not installed
        try:
            import converse_basicsr.mm_registry
        except ImportError as err:
            print(f'ImportError: {err}')
        """)
    lines = run([sys.executable, '-c', code], cwd=tmp_path, env=env).stdout.splitlines()
    package = site / 'converse_basicsr'
    assert lines[0] == str(package / '__init__.py')
    assert lines[1] == version_in_source()
    assert lines[2] == str(package / 'options' / 'demo' / 'train_demo_dncnn.yml')
    assert lines[3] == str(package / 'options' / 'train' / 'denoising' / 'train_ConverseDnCNN_gray_sigma25.yml')
    assert lines[4] == 'False'  # mmengine is only imported by converse_basicsr.mm_registry
    assert lines[5] == 'converse_basicsr.archs.converse_dncnn_arch'
    assert lines[6].startswith('ImportError: converse_basicsr.mm_registry needs mmengine')
    assert "pip install 'converse-basicsr[mmengine]'" in lines[6]


def test_converse_test_shipped_config_on_one_set12_image(installed, tmp_path):
    """``converse-test --config test_converse_dncnn_sigma25`` with the config's own relative paths
    (``../shared/testsets/Set12``, ``../shared/reference/zoo/converse_dncnn.pth``) laid out beside the
    working folder, Set12 reduced to 01.png; its PSNR against the published code's per-image value."""
    site, _, env = installed
    tables = json.loads(shared_path('reference', 'paper_tables.json').read_text(encoding='utf-8'))
    expected = tables['denoising_sigma25_gray']['reference_per_image']['Converse-DnCNN']['Set12']['01.png']['psnr']
    set12, zoo = tmp_path / 'shared' / 'testsets' / 'Set12', tmp_path / 'shared' / 'reference' / 'zoo'
    set12.mkdir(parents=True)
    zoo.mkdir(parents=True)
    shutil.copy2(shared_path('testsets', 'Set12', '01.png'), set12 / '01.png')
    os.symlink(shared_path('reference', 'zoo', 'converse_dncnn.pth'), zoo / 'converse_dncnn.pth')
    work = tmp_path / 'work'
    work.mkdir()
    script = site / 'bin' / 'converse-test'
    assert script.is_file()
    run([str(script), '--config', 'test_converse_dncnn_sigma25'], cwd=work, env=env)
    (csv_path, ) = (work / 'results').rglob('per_image_Set12.csv')
    with open(csv_path, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert [row['image'] for row in rows] == ['01.png']
    assert abs(float(rows[0]['psnr']) - expected) < 0.01


def test_converse_demo_first_step(installed, tmp_path):
    site, _, env = installed
    script = site / 'bin' / 'converse-demo'
    assert script.is_file()
    stdout = run([str(script), '--operator-only'], cwd=tmp_path, env=env).stdout
    found = re.search(OPERATOR_LINE, stdout)
    assert found, stdout
    blurred, restored = operator_step_reference()
    assert abs(float(found.group(1)) - blurred) < 0.006 and abs(float(found.group(2)) - restored) < 0.006
    assert os.listdir(tmp_path) == []  # the first step writes nothing
