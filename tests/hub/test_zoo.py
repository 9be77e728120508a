"""Model zoo: the table's checksums, loading by name, refusing corrupted files, download, formats."""
import functools
import http.server
import importlib.util
import shutil
import threading
from pathlib import Path

import pytest
import torch

from converse_basicsr.hub import zoo
from tests.helpers.shared_files import REPO_ROOT, shared_path

EXPECTED_ARCH = {
    'converse_dncnn': 'ConverseDnCNN', 'converse_srresnet': 'ConverseMSRResNet', 'conversenet': 'ConverseNet',
    'converse_usrnet': 'ConverseUSRNet'
}


def published_sums():
    lines = shared_path('reference', 'SHA256SUMS').read_text().split('\n')
    return {Path(path).name: digest for digest, path in (line.split() for line in lines if line.strip())}


def test_table_lists_the_published_checksums():
    sums = published_sums()
    assert sorted(zoo.ZOO) == sorted(EXPECTED_ARCH)
    for name, entry in zoo.ZOO.items():
        assert entry.sha256 == sums[entry.filename], name
        assert entry.arch == EXPECTED_ARCH[name]
        assert entry.url.startswith('https://') and entry.url.endswith(entry.filename)


@pytest.mark.parametrize('name', sorted(EXPECTED_ARCH))
def test_load_each_published_checkpoint_by_name(name, zoo_dir):
    model = zoo.load_pretrained(name, model_dir=zoo_dir)
    assert type(model).__name__ == EXPECTED_ARCH[name] and not model.training
    published = torch.load(zoo_dir / f'{name}.pth', map_location='cpu', weights_only=True)
    state = model.state_dict()
    assert state.keys() == published.keys()
    assert all(torch.equal(state[k], published[k]) for k in published)


def test_model_dir_from_environment(zoo_dir, monkeypatch):
    monkeypatch.setenv(zoo.MODEL_DIR_ENV, str(zoo_dir))
    assert zoo.checkpoint_path('conversenet') == Path(zoo_dir) / 'conversenet.pth'


def _corrupt_copy(src, directory):
    dst = Path(directory) / src.name
    shutil.copy(src, dst)
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def test_corrupted_copy_is_refused(zoo_dir, tmp_path):
    bad = _corrupt_copy(Path(zoo_dir) / 'converse_dncnn.pth', tmp_path)
    with pytest.raises(zoo.ChecksumError) as info:
        zoo.load_pretrained('converse_dncnn', model_dir=tmp_path)
    message = str(info.value)
    assert str(bad) in message and published_sums()['converse_dncnn.pth'] in message
    assert zoo.sha256sum(bad) in message


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server (127.0.0.1, free port) serving ``tmp_path / 'www'``."""
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_download_from_local_server(zoo_dir, tmp_path, http_server, monkeypatch):
    root, base = http_server
    shutil.copy(Path(zoo_dir) / 'conversenet.pth', root / 'conversenet.pth')
    cache = tmp_path / 'cache'
    model = zoo.load_pretrained('conversenet', model_dir=cache, url=f'{base}/conversenet.pth', progress=False)
    assert type(model).__name__ == 'ConverseNet'
    assert zoo.sha256sum(cache / 'conversenet.pth') == published_sums()['conversenet.pth']
    # the mirror variable replaces the official base URL
    monkeypatch.setenv(zoo.BASE_URL_ENV, base)
    assert zoo.ZOO['conversenet'].url == f'{base}/conversenet.pth'
    (cache / 'conversenet.pth').unlink()
    zoo.load_pretrained('conversenet', model_dir=cache, progress=False)
    assert (cache / 'conversenet.pth').is_file()


def test_corrupted_download_is_refused_and_removed(zoo_dir, tmp_path, http_server):
    root, base = http_server
    _corrupt_copy(Path(zoo_dir) / 'conversenet.pth', root)
    cache = tmp_path / 'cache'
    with pytest.raises(zoo.ChecksumError, match='conversenet.pth'):
        zoo.load_pretrained('conversenet', model_dir=cache, url=f'{base}/conversenet.pth', progress=False)
    assert not (cache / 'conversenet.pth').exists()


def test_unreachable_url_is_a_clear_error(tmp_path, http_server):
    _, base = http_server
    with pytest.raises(zoo.ZooError, match='could not download'):
        zoo.load_pretrained('conversenet', model_dir=tmp_path / 'c', url=f'{base}/missing.pth', progress=False)


def test_unknown_name_lists_the_zoo():
    with pytest.raises(zoo.ZooError, match="'converse_nope'.*converse_dncnn"):
        zoo.load_pretrained('converse_nope')


def test_convert_script_round_trip_and_basicsr_format(zoo_dir, tmp_path):
    spec = importlib.util.spec_from_file_location('convert_checkpoint', REPO_ROOT / 'scripts' / 'convert_checkpoint.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src = Path(zoo_dir) / 'conversenet.pth'
    wrapped, plain = tmp_path / 'basicsr.pth', tmp_path / 'plain.pth'
    for args in ([src, wrapped, '--to', 'basicsr'], [wrapped, plain, '--to', 'plain']):
        assert script.main([str(a) for a in args]) == 0
    assert script.main([str(src), str(tmp_path / 'x.pth'), '--to', 'plain']) == 2  # already plain: refused
    published = torch.load(src, weights_only=True)
    as_basicsr = torch.load(wrapped, weights_only=True)
    # BasicSR's layout plus the description, under a key BasicSR's load_network never reads
    assert list(as_basicsr) == ['params', 'converse_basicsr'] and as_basicsr['params'].keys() == published.keys()
    assert as_basicsr['converse_basicsr']['type'] == 'ConverseNet'
    back = torch.load(plain, weights_only=True)
    assert back.keys() == published.keys() and all(torch.equal(back[k], v) for k, v in published.items())
    assert back._metadata['converse_basicsr'] == as_basicsr['converse_basicsr']  # a plain state dict carries it too
    # a BasicSR file (and an EMA one) loads: rebuilt from its description, or detected from its names and shapes
    ema = tmp_path / 'ema.pth'
    torch.save({'params': {k: torch.zeros_like(v) for k, v in published.items()}, 'params_ema': published}, ema)
    for path in (wrapped, ema):
        model = zoo.load_pretrained(path)
        assert type(model).__name__ == 'ConverseNet'
        assert torch.equal(model.state_dict()['conv1.weight'], published['conv1.weight'])


def test_custom_arch_and_mismatch(zoo_dir):
    path = Path(zoo_dir) / 'converse_dncnn.pth'
    model = zoo.load_pretrained(path, arch='ConverseDnCNN', arch_kwargs={'num_in_ch': 1})
    assert type(model).__name__ == 'ConverseDnCNN'
    with pytest.raises(zoo.ZooError, match='does not fit arch ConverseDnCNN'):
        zoo.load_pretrained(path, arch='ConverseDnCNN', arch_kwargs={'num_in_ch': 3})
    with pytest.raises(zoo.ZooError, match="unknown arch 'Nope'"):
        zoo.load_pretrained(path, arch='Nope')
