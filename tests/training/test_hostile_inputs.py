"""Files from others, tried as a hostile user would (issue 35): option files that run code, training states that
run code, run names that leave their folder, a disk that fills, a truncated LMDB, unreadable model files and a
read-only working folder. Each ends in an exit status and one line; a marker file the payload would create
never appears, and nothing is created outside (or, on a refusal, inside) ``experiments/`` and ``results/``."""
import errno
import os
import subprocess
import sys

import cv2
import lmdb
import numpy as np
import pytest
import torch
import yaml

from basicsr.models.sr_model import SRModel
from converse_basicsr import compare, test, train
from converse_basicsr.training import checkpoints
from tests.training.test_faults import _images, _options

PAYLOAD = '!!python/object/apply:os.system ["touch {marker}"]'


def _write(path, opt, payload=None, where=None):
    """``opt`` as YAML at ``path``; with ``payload``, that tagged value put at ``where`` (top level: key ``zz``;
    ``name``; inside ``network_g``; inside the first ``models`` entry)."""
    text = yaml.safe_dump(opt, sort_keys=False)
    if payload:
        if where == 'top':
            text += f'zz: {payload}\n'
        elif where == 'name':
            text = text.replace(f'name: {opt["name"]}\n', f'name: {payload}\n', 1)
        elif where == 'network_g':
            text = text.replace('network_g:\n', f'network_g:\n  zz: {payload}\n', 1)
        elif where == 'models':
            text = text.replace('models:\n- ', f'models:\n- zz: {payload}\n  ', 1)
        assert payload in text
    path.write_text(text)
    return path


def _train_options(tmp_path, **changes):
    opt = _options(_images(tmp_path / 'images') if not (tmp_path / 'images').exists() else str(tmp_path / 'images'))
    opt.update(changes)
    return opt


def _test_options(tmp_path, name='hostile'):
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'datasets': {
            'test_1': {
                'name': 'tiny', 'type': 'GaussianNoiseDataset', 'dataroot_gt': str(tmp_path / 'images'),
                'color': 'gray', 'sigma': 25
            }
        }, 'network_g': {'type': 'ConverseDnCNN', 'num_in_ch': 1, 'num_feat': 4,
                         'num_block': 1}, 'path': {'pretrain_network_g': None},
        'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}
    }


def _compare_options(tmp_path):
    return {
        'name': 'hostile', 'protocol': {'task': 'denoise', 'sigma': 25, 'color': 'gray'},
        'datasets': {'tiny': str(tmp_path / 'images')}, 'device': 'cpu',
        'models': [{'name': 'tiny', 'type': 'ConverseDnCNN', 'num_in_ch': 1, 'num_feat': 4, 'num_block': 1}]
    }


def _one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and 'Traceback' not in err, err
    return lines[0]


def _created(root):
    return sorted(n for n in os.listdir(root) if n in ('experiments', 'results', 'tb_logger'))


VARIANTS = [(cmd, where) for cmd in ('train', 'test') for where in ('top', 'name', 'network_g')]
VARIANTS += [('compare', where) for where in ('top', 'name', 'models')]


@pytest.mark.parametrize('cmd,where', VARIANTS)
def test_an_option_file_that_runs_code_is_refused(tmp_path, monkeypatch, capsys, cmd, where):
    """Row 1: ``!!python/object/apply:os.system`` in 9 places: exit 2, file:line and the tag named, no marker."""
    marker = tmp_path / 'PWNED'
    _images(tmp_path / 'images')
    opt = {'train': _train_options, 'test': _test_options, 'compare': _compare_options}[cmd](tmp_path)
    path = _write(tmp_path / f'{cmd}.yml', opt, PAYLOAD.format(marker=marker), where)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if 'python/object' in text)
    monkeypatch.chdir(tmp_path)
    if cmd == 'train':
        status = train.main(['-opt', str(path)], root_path=str(tmp_path))
    else:
        status = (test if cmd == 'test' else compare).main(['-opt', str(path)])
    message = _one_line(capsys.readouterr().err)
    assert status == 2 and not marker.exists()
    assert f'{path}:{line}: the YAML tag !!python/object/apply:os.system is not allowed' in message
    assert _created(tmp_path) == []


def _trained(tmp_path, name='run', total_iter=4):
    """A finished CI-sized run (states at iterations 2 and 4); returns its option file."""
    opt = _train_options(tmp_path, name=name)
    opt['train']['total_iter'] = total_iter
    path = _write(tmp_path / f'{name}.yml', opt)
    assert train.main(['-opt', str(path)], root_path=str(tmp_path)) == 0
    return path


class _Payload:
    """Unpickled without ``weights_only`` it runs ``open(marker, 'w')``: the marker file appears."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, 'w')


def test_a_training_state_that_runs_code_is_skipped_and_named(tmp_path, capsys):
    """Row 2: a planted ``4.state`` (valid keys and iteration, plus a code-running object): ``--auto_resume``
    names it, resumes from ``2.state`` without running it; given as ``path.resume_state`` it is exit 2."""
    path = _trained(tmp_path)
    states = tmp_path / 'experiments' / 'run' / 'training_states'
    marker = tmp_path / 'PWNED'
    state = torch.load(states / '4.state', weights_only=False)  # our own file
    state['hook'] = _Payload(str(marker))
    torch.save(state, states / '4.state')
    capsys.readouterr()
    assert train.main(['-opt', str(path), '--auto_resume'], root_path=str(tmp_path)) == 0
    err = capsys.readouterr().err
    assert not marker.exists()
    skipped = [line for line in err.splitlines() if line.startswith('Auto resume: skipping a bad training state')]
    assert len(skipped) == 1 and f'{states / "4.state"} does not load (it needs io.open, not a type' in skipped[0]
    assert f'Auto resume: resuming from {states / "2.state"}' in err

    torch.save(state, states / '4.state')  # planted again: the resumed run saved a good one over it
    opt = yaml.safe_load(path.read_text())
    opt['path']['resume_state'] = str(states / '4.state')
    _write(path, opt)
    assert train.main(['-opt', str(path)], root_path=str(tmp_path)) == 2
    message = _one_line(capsys.readouterr().err)
    assert f'path.resume_state: {states / "4.state"} does not load (it needs io.open, not a type' in message
    assert not marker.exists()


@pytest.mark.parametrize('cmd', ['train', 'test'])
def test_a_name_that_leaves_its_folder_is_refused(tmp_path, monkeypatch, capsys, cmd):
    """Row 3: ``name: ../../precious``: exit 2 with the rule; an existing ``precious`` is not renamed and
    nothing is created outside (or inside) ``experiments/`` / ``results/``."""
    work = tmp_path / 'a' / 'b'
    work.mkdir(parents=True)
    precious = tmp_path / 'precious'
    precious.mkdir()
    (precious / 'keep.txt').write_text('mine')
    _images(tmp_path / 'images')
    opt = (_train_options if cmd == 'train' else _test_options)(tmp_path)
    opt['name'] = '../../precious'
    path = _write(tmp_path / 'opt.yml', opt)
    monkeypatch.chdir(work)
    for _ in range(2):  # a second run used to archive the folder it escaped to
        status = train.main(['-opt', str(path)], root_path=str(work)) if cmd == 'train' else test.main(
            ['-opt', str(path)])
        message = _one_line(capsys.readouterr().err)
        assert status == 2 and "name must be a folder name" in message and "'../../precious'" in message
        assert 'holds a path separator' in message
    assert sorted(os.listdir(tmp_path)) == ['a', 'images', 'opt.yml', 'precious']
    assert os.listdir(precious) == ['keep.txt'] and os.listdir(work) == []


def _mount_tmpfs(folder, options):
    """Mount a tmpfs at ``folder`` (root only); True if it worked."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(folder)], capture_output=True)
    return done.returncode == 0


def _fill(folder, leave=4096):
    """Write to ``folder`` until its file system is full, then free ``leave`` bytes: the next save starts, and
    the disk fills in the middle of it (where torch.save reports ``unexpected pos``, not the cause)."""
    with open(folder / 'filler', 'wb') as f:
        try:
            while True:
                f.write(b'\0' * 4096)
                f.flush()
        except OSError:
            pass
        try:
            f.close()
        except OSError:
            pass
    os.truncate(folder / 'filler', max(0, os.path.getsize(folder / 'filler') - leave))


def test_a_disk_that_fills_up_ends_the_run_with_a_failure(tmp_path, monkeypatch, capsys):
    """Row 4: the disk fills after iteration 2's checkpoint (a 3 MB tmpfs filled up; without root, the writes
    fail with ENOSPC by a patched ``open``): exit 1 naming the file and 'no space left on device'; the files of
    iteration 2 still load."""
    disk = tmp_path / 'disk'
    real = _mount_tmpfs(disk, 'size=3m')
    try:
        _images(tmp_path / 'images')
        opt = _train_options(tmp_path, name='full')
        opt['train']['total_iter'] = 4
        opt['network_g']['num_feat'] = 16  # a model file over 8 KB: torch.save itself meets the full disk
        path = _write(tmp_path / 'full.yml', opt)
        original = SRModel.optimize_parameters

        def optimize_parameters(self, current_iter):  # the disk fills up during iteration 3
            if current_iter == 3:
                if real:
                    _fill(disk)
                else:

                    def no_space(*args, **kwargs):
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                    monkeypatch.setattr(checkpoints, 'open', no_space, raising=False)
            return original(self, current_iter)

        monkeypatch.setattr(SRModel, 'optimize_parameters', optimize_parameters)
        monkeypatch.setattr(checkpoints.time, 'sleep', lambda seconds: None)
        status = train.main(['-opt', str(path)], root_path=str(disk))
        err = capsys.readouterr().err
        models = disk / 'experiments' / 'full' / 'models'
        failed = [line for line in err.splitlines() if line.startswith('converse-train: error:')]
        assert status == 1 and len(failed) == 1, err[-3000:]
        assert f'the model {models / "net_g_4.pth"} could not be saved: no space left on device' in failed[0]
        assert torch.load(models / 'net_g_2.pth')['params'].keys() and not (models / 'net_g_4.pth').exists()
        assert checkpoints.load_state_file(disk / 'experiments' / 'full' / 'training_states' / '2.state')['iter'] == 2
        assert not [n for n in os.listdir(models) if n.endswith('.tmp')]
        print('disk full by', 'a 3 MB tmpfs' if real else 'a patched open (ENOSPC)')
    finally:
        if real:
            subprocess.run(['umount', '-l', str(disk)], check=True)  # -l: BasicSR's log file may stay open


class _FullDisk:
    """A file on a disk with ``room`` bytes left: a write beyond raises ENOSPC (for the test without root)."""

    def __init__(self, path, mode, room):
        self.f, self.room = open(path, mode), room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_save_that_fills_the_disk_half_way_names_the_cause(tmp_path, monkeypatch):
    """Row 4, inside torch.save: the disk fills after the first kilobytes of a 2.4 MB file. torch reports
    ``unexpected pos ...``; the message names the cause, and the file saved before is intact."""
    disk = tmp_path / 'disk'
    real = _mount_tmpfs(disk, 'size=1m')
    try:
        if not real:
            monkeypatch.setattr(checkpoints, 'open', lambda path, mode: _FullDisk(path, mode, 100_000), raising=False)
        monkeypatch.setattr(checkpoints.time, 'sleep', lambda seconds: None)
        target = disk / 'net_g_8.pth'
        if real:
            checkpoints.save_atomically({'params': {'w': torch.zeros(1000)}}, str(target))
        with pytest.raises(checkpoints.SaveError) as failed:
            checkpoints.save_atomically({'params': {'w': torch.zeros(600_000)}}, str(target), 'model')
        assert str(failed.value) == (f'the model {target} could not be saved: no space left on device (3 tries); '
                                     'the files saved before it are kept')
        assert os.listdir(disk) == (['net_g_8.pth'] if real else [])
        if real:
            assert checkpoints.load_model_file(target)['params']['w'].shape == (1000, )
    finally:
        if real:
            subprocess.run(['umount', '-l', str(disk)], check=True)


def _lmdb(folder, count=4, size=64):
    """A ground-truth LMDB as ``GroundTruthImages`` reads it (keys + meta_info.txt); each image's PNG is larger
    than a page, so it lies in overflow pages that a truncation cuts off."""
    env = lmdb.open(str(folder), map_size=1 << 24)
    rng = np.random.RandomState(0)
    names = []
    with env.begin(write=True) as txn:
        for i in range(count):
            img = (rng.rand(size, size) * 255).astype(np.uint8)
            txn.put(f'{i}'.encode(), cv2.imencode('.png', img)[1].tobytes())
            names.append(f'{i}.png ({size},{size},1) 1')
    env.close()
    (folder / 'meta_info.txt').write_text('\n'.join(names) + '\n')
    return folder


def _forked(fn):
    """``fn()``'s return value as the exit status of a forked child, or -signal: a SIGBUS kills only the child."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_truncated_lmdb_is_named_before_it_is_read(tmp_path, capfd):
    """Row 5: ``data.mdb`` cut in half: training exits 2, ``--check-data`` lists it (exit 1); no SIGBUS."""
    data = _lmdb(tmp_path / 'gt.lmdb') / 'data.mdb'
    os.truncate(data, os.path.getsize(data) // 2)
    opt = _options(str(tmp_path / 'gt.lmdb'))
    opt['datasets']['train']['io_backend'] = {'type': 'lmdb'}
    path = _write(tmp_path / 'lmdb.yml', opt)
    capfd.readouterr()
    assert _forked(lambda: train.main(['-opt', str(path)], root_path=str(tmp_path))) == 2
    message = _one_line(capfd.readouterr().err)
    assert f"datasets.train.dataroot_gt: LMDB '{data}' is truncated" in message
    assert _forked(lambda: train.main(['-opt', str(path), '--check-data'], root_path=str(tmp_path))) == 1
    err = capfd.readouterr().err
    assert f"bad: datasets.train: {tmp_path / 'gt.lmdb'}: ValueError: LMDB '{data}' is truncated" in err
    assert _created(tmp_path) == []


@pytest.mark.parametrize('what', ['pretrain', 'spandrel', 'read_only'])
def test_unusable_inputs_and_folders_stop_training_before_any_folder(tmp_path, capsys, what):
    """Row 6: an unreadable ``pretrain_network_g`` or SpandrelNet ``path``, or a read-only working folder: one
    line, exit 2, no ``experiments/<name>`` left behind."""
    work = tmp_path / 'work'
    work.mkdir()
    opt = _train_options(tmp_path, name='unusable')
    bad = tmp_path / 'model.pth'
    if os.geteuid() == 0:  # root reads any file: a directory is what cannot be read
        bad.mkdir() if what == 'spandrel' else bad.write_bytes(b'PK\x03\x04 not a checkpoint')
    else:
        torch.save({'params': {}}, bad)
        bad.chmod(0)
    if what == 'pretrain':
        opt['path']['pretrain_network_g'] = str(bad)
        expected = f"path.pretrain_network_g: '{bad}' cannot be read as a model file"
    elif what == 'spandrel':
        opt['network_g'] = {'type': 'SpandrelNet', 'path': str(bad)}
        expected = f"network_g.path: '{bad}' cannot be read"
    read_only = False
    try:
        if what == 'read_only':
            read_only = _mount_tmpfs(work, 'size=1m,ro')
            if not read_only:
                work.chmod(0o555)
            expected = f'the experiments folder {work / "experiments"}: the folder (its parent {work}) is not writable'
        path = _write(tmp_path / 'unusable.yml', opt)
        assert train.main(['-opt', str(path)], root_path=str(work)) == 2
        message = _one_line(capsys.readouterr().err)
        assert message.startswith('converse-train: error: ') and expected in message, message
        assert os.listdir(work) == []
    finally:
        if read_only:
            subprocess.run(['umount', '-l', str(work)], check=True)
        work.chmod(0o755)


def test_an_unreadable_pretrained_model_stops_converse_test_before_results(tmp_path, monkeypatch, capsys):
    """Row 6, converse-test: one line, exit 2, no ``results/<name>``."""
    _images(tmp_path / 'images')
    bad = tmp_path / 'model.pth'
    bad.write_bytes(b'\x80\x04garbage')
    opt = _test_options(tmp_path)
    opt['path']['pretrain_network_g'] = str(bad)
    path = _write(tmp_path / 'test.yml', opt)
    monkeypatch.chdir(tmp_path)
    assert test.main(['-opt', str(path)]) == 2
    message = _one_line(capsys.readouterr().err)
    assert f"path.pretrain_network_g: '{bad}' cannot be read as a model file" in message
    assert _created(tmp_path) == []
