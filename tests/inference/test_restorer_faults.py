"""Nothing lost, every bad input named: output naming, inputs never overwritten, atomic
writes, non-finite outputs, download time-outs, kernel checks, short tiles, bad arguments. The data
scripts run in a fresh interpreter, as a user runs them."""
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.data import io
from converse_basicsr.hub import zoo
from converse_basicsr.inference.restorer import Restorer
from converse_basicsr.restore import main
from tests.helpers.shared_files import REPO_ROOT

SCRIPTS = REPO_ROOT / 'scripts'
ENV = {**os.environ, 'PYTHONPATH': str(REPO_ROOT), 'OMP_NUM_THREADS': '1'}


def run_main(argv, capsys):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as stop:  # a flag's value refused by the parser (one line, status 2)
        rc = stop.code
    out, err = capsys.readouterr()
    assert 'Traceback' not in out + err
    return rc, out, err


def script(name, *args):
    """Run scripts/<name>.py in a fresh interpreter, from a directory outside the checkout."""
    return subprocess.run([sys.executable, str(SCRIPTS / f'{name}.py'), *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=Path(args[-1]).parent if args else None)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def write_pair(folder, size=(12, 10)):
    """``a.png`` and ``a.jpg``: two inputs whose outputs share the stem ``a``."""
    folder.mkdir(exist_ok=True)
    rng = np.random.RandomState(0)
    cv2.imwrite(str(folder / 'a.png'), (rng.rand(*size, 3) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / 'a.jpg'), (rng.rand(*size, 3) * 255).astype(np.uint8))
    return folder


# ----------------------------------------------------------------------------- 1. one naming rule
@pytest.mark.parametrize('into_itself', [True, False])
def test_cli_refuses_outputs_sharing_a_name_before_writing(zoo_dir, tmp_path, capsys, into_itself):
    inp = write_pair(tmp_path / 'in')
    before = snapshot(inp)
    out = inp if into_itself else tmp_path / 'out'
    rc, _, err = run_main(['--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', inp, '-o', out], capsys)
    assert rc == 2 and 'a.jpg' in err and 'a.png' in err and 'nothing was written' in err
    assert snapshot(inp) == before and not out.exists() or snapshot(out) == before


def test_cli_never_overwrites_an_input(zoo_dir, tmp_path, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    cv2.imwrite(str(inp / 'b.png'), np.zeros((12, 10, 3), np.uint8))
    before = snapshot(inp)
    rc, _, err = run_main(['--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', inp / 'b.png', '-o', inp],
                          capsys)
    assert rc == 2 and 'would overwrite the input' in err and snapshot(inp) == before
    # an input named like another input's compare image
    cv2.imwrite(str(inp / 'b_compare.png'), np.zeros((12, 10, 3), np.uint8))
    rc, _, err = run_main(
        ['--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', inp, '-o', tmp_path / 'o', '--compare'], capsys)
    assert rc == 2 and 'b_compare.png' in err and not (tmp_path / 'o').exists()


def test_data_scripts_refuse_stem_collisions(tmp_path):
    inp = write_pair(tmp_path / 'in', size=(40, 40))
    proc = script('prepare_subimages', '--input', inp, '--crop-size', '16', '--step', '16', '--n-thread', '1',
                  '--output', tmp_path / 'sub')
    assert proc.returncode != 0 and 'a.jpg' in proc.stderr and 'a.png' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'sub').exists()
    proc = script('prepare_lmdb', '--input', inp, '--n-thread', '1', '--output', tmp_path / 'x.lmdb')
    assert proc.returncode != 0 and 'a.jpg' in proc.stderr and 'a.png' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'x.lmdb').exists()


# ----------------------------------------------------------------------------- 3. scripts as the README runs them
def test_prepare_lmdb_runs_in_a_fresh_interpreter(tmp_path):
    inp = tmp_path / 'imgs'
    inp.mkdir()
    for i in range(2):
        cv2.imwrite(str(inp / f'img{i}.png'), np.full((8, 6, 3), 40 * i, np.uint8))
    proc = script('prepare_lmdb', '--input', inp, '--n-thread', '1', '--output', tmp_path / 'x.lmdb')
    assert proc.returncode == 0, proc.stderr
    meta = (tmp_path / 'x.lmdb' / 'meta_info.txt').read_text().split('\n')
    assert [line.split()[0] for line in meta if line] == ['img0.png', 'img1.png']
    assert [p.name for p in tmp_path.iterdir() if 'partial' in p.name] == []
    proc = script('prepare_subimages', '--input', inp, '--crop-size', '4', '--step', '4', '--n-thread', '1', '--output',
                  tmp_path / 'sub')
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / 'sub').iterdir())) == 2 * 2 * 2  # 2 images x rows [0, 4] x cols [0, 2]


def test_lmdb_is_not_left_half_written(tmp_path, monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location('prepare_lmdb', SCRIPTS / 'prepare_lmdb.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inp = tmp_path / 'imgs'
    inp.mkdir()
    cv2.imwrite(str(inp / 'img.png'), np.zeros((8, 6, 3), np.uint8))

    final = tmp_path / 'x.lmdb'
    seen = []

    def killed(folder, lmdb_path, *args, **kwargs):  # the LMDB and meta_info.txt half written, then a kill
        os.makedirs(lmdb_path)
        Path(lmdb_path, 'meta_info.txt').write_text('img.png (8,6,3) 1\n')
        seen.append(final.exists())  # a kill -9 here must not leave anything under the final name
        raise KeyboardInterrupt

    monkeypatch.setattr(module, 'make_lmdb_from_imgs', killed)
    with pytest.raises(KeyboardInterrupt):
        module.prepare_lmdb(str(inp), str(final), n_thread=1)
    assert seen == [False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['imgs']  # and the partial one is cleaned up


def test_restored_image_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / 'r.png'
    io.write_image(target, np.full((4, 4), 7, np.uint8))
    real = cv2.imwrite

    def dies_midway(path, img, *args):  # writes part of the file, then the process is interrupted
        Path(path).write_bytes(b'\x89PNG partial')
        raise KeyboardInterrupt

    monkeypatch.setattr(cv2, 'imwrite', dies_midway)
    with pytest.raises(KeyboardInterrupt):
        io.write_image(target, np.full((4, 4), 9, np.uint8))
    monkeypatch.setattr(cv2, 'imwrite', real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['r.png']
    assert (cv2.imread(str(target), cv2.IMREAD_UNCHANGED) == 7).all()


# ----------------------------------------------------------------------------- 4. non-finite output
def test_nan_checkpoint_writes_nothing(zoo_dir, tmp_path, capsys, small_rgb):
    state = torch.load(Path(zoo_dir) / 'converse_srresnet.pth', weights_only=True)
    state['conv_last.weight'][0, 0, 0, 0] = float('nan')
    torch.save(state, tmp_path / 'nan.pth')
    out = tmp_path / 'out'
    rc, _, err = run_main(['--model', tmp_path / 'nan.pth', '-i', small_rgb, '-o', out], capsys)
    assert rc == 1 and 'NaN or infinite' in err and 'nan.pth' in err
    assert list(out.iterdir()) == []


@pytest.fixture
def small_rgb(tmp_path):
    path = tmp_path / 'in' / 'img.png'
    path.parent.mkdir()
    cv2.imwrite(str(path), (np.random.RandomState(0).rand(12, 10, 3) * 255).astype(np.uint8))
    return path


# ----------------------------------------------------------------------------- 5. downloads
@pytest.fixture
def stalling_server():
    """A TCP server that accepts connections and then stalls: ``mode='silent'`` never answers,
    ``mode='partial'`` sends the HTTP headers of a 1000-byte file and 10 bytes of it, then nothing."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    accepted, stop, state = [], threading.Event(), {'mode': 'silent'}

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except OSError:
                continue
            accepted.append(conn)
            if state['mode'] == 'partial':
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + b'x' * 10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.getsockname()[1]}', accepted, state
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize('mode', ['silent', 'partial'])
def test_download_times_out_retries_and_cleans_up(tmp_path, stalling_server, monkeypatch, mode):
    url, accepted, state = stalling_server
    state['mode'] = mode
    monkeypatch.setenv(zoo.TIMEOUT_ENV, '0.3')
    monkeypatch.setattr(zoo, 'DOWNLOAD_ATTEMPTS', 2)
    seen = []
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):  # record which partial files existed when cleaned up
        seen.append((self.name, self.exists()))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, 'unlink', unlink)
    start = time.monotonic()
    with pytest.raises(zoo.ZooError, match='could not download .*attempt 1.*attempt 2'):
        zoo.load_pretrained('conversenet', model_dir=tmp_path, url=f'{url}/conversenet.pth', progress=False)
    assert time.monotonic() - start < 30  # bounded (not a timing claim: without a timeout it never returns)
    assert len(accepted) == 2 and list(tmp_path.iterdir()) == []
    if mode == 'partial':  # each attempt had written part of the file, and removed it
        assert seen == [('conversenet.pth.partial', True)] * 2


def test_stale_partial_download_is_replaced(zoo_dir, tmp_path):
    (tmp_path / 'conversenet.pth.partial').write_bytes(b'left by a killed run')
    source = (Path(zoo_dir) / 'conversenet.pth').as_uri()
    zoo.load_pretrained('conversenet', model_dir=tmp_path, url=source, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['conversenet.pth']


# ----------------------------------------------------------------------------- 6. kernels
@pytest.mark.parametrize('kernel, why', [
    (np.zeros((7, 7)), 'sum 0'),
    (np.full((7, 7), 2 / 49), 'sum 2'),
    (np.pad([[1.5, -0.5]], ((3, 3), (2, 3))), 'values in \\[-0.5'),
    (np.full((7, 7), np.nan), 'finite'),
], ids=['zero', 'sum2', 'negative', 'nan'])
def test_kernel_validation(zoo_dir, tmp_path, capsys, small_rgb, kernel, why):
    np.save(tmp_path / 'k.npy', kernel)
    argv = [
        '--model', 'converse_usrnet', '--model-dir', zoo_dir, '-i', small_rgb, '-o', tmp_path / 'out', '--kernel',
        tmp_path / 'k.npy'
    ]
    rc, _, err = run_main(argv, capsys)
    assert rc == 2 and 'k.npy' in err and '--kernel' in err
    assert re.search(why, err)
    if why == 'sum 2':  # an explicit opt-out accepts a finite kernel
        rc, _, err = run_main(argv + ['--no-kernel-check'], capsys)
        assert rc == 0, err


def test_png_given_as_kernel_says_so(zoo_dir, tmp_path, capsys, small_rgb):
    cv2.imwrite(str(tmp_path / 'k.png'), np.zeros((7, 7), np.uint8))
    rc, _, err = run_main([
        '--model', 'converse_usrnet', '--model-dir', zoo_dir, '-i', small_rgb, '-o', tmp_path / 'out', '--kernel',
        tmp_path / 'k.png'
    ], capsys)
    assert rc == 2 and 'k.png' in err and 'not a .npy file' in err and 'pickle' not in err


# ----------------------------------------------------------------------------- 7. short last tiles
def test_tiles_never_smaller_than_the_model_input():
    torch.manual_seed(0)
    model = ConverseDnCNN(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1).eval()
    img = np.random.RandomState(0).rand(256, 256).astype(np.float32)
    restorer = Restorer(model, tile=126, tile_pad=0)
    assert restorer.min_size > 4  # the 4-pixel strip 126 + 126 leaves would not run alone
    result = restorer.restore(img)
    assert result.image.shape == (256, 256) and result.tile == 126
    with pytest.raises(io.ImageError, match='smaller than the smallest input'):
        Restorer(model).restore(img[:restorer.min_size - 1, :20])


# ----------------------------------------------------------------------------- 8. smaller ones
def test_bad_device_is_a_usage_error(zoo_dir, tmp_path, capsys, small_rgb):
    rc, _, err = run_main([
        '--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', small_rgb, '-o', tmp_path / 'out', '--device',
        'gpu0'
    ], capsys)
    assert rc == 2 and "unknown device 'gpu0'" in err


def test_float_npy_far_outside_unit_range(zoo_dir, tmp_path, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    np.save(inp / 'bytes.npy', np.random.RandomState(0).rand(12, 10, 3).astype(np.float32) * 255)
    np.save(inp / 'noisy.npy', np.random.RandomState(0).rand(12, 10, 3).astype(np.float32) * 1.6 - 0.3)
    rc, _, err = run_main(['--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', inp, '-o', tmp_path / 'o'],
                          capsys)
    assert rc == 1 and 'bytes.npy' in err and 'divide 8-bit values by 255' in err
    assert sorted(p.name for p in (tmp_path / 'o').iterdir()) == ['noisy.png']  # unclipped noise is fine


def test_arch_kwargs_without_arch(zoo_dir, tmp_path, capsys, small_rgb):
    rc, _, err = run_main([
        '--model', 'converse_srresnet', '--model-dir', zoo_dir, '-i', small_rgb, '-o', tmp_path / 'out',
        '--arch-kwargs', '{"num_in_ch": 3}'
    ], capsys)
    assert rc == 2 and '--arch-kwargs needs --arch' in err


def test_convert_checkpoint_on_a_non_checkpoint(tmp_path, small_rgb):
    proc = script('convert_checkpoint', small_rgb, tmp_path / 'x.pth', '--to', 'plain')
    assert proc.returncode == 2 and 'img.png' in proc.stderr and 'not a PyTorch checkpoint' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'x.pth').exists()
