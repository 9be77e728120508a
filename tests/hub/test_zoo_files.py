"""What the zoo leaves in its cache and how it reads checkpoint layouts: a refused or cut-short download leaves
no file at all (not even ``.partial``), DataParallel's ``module.`` prefixes are dropped, and an explicit BasicSR
``param_key`` is honoured (``params_ema`` first otherwise)."""
import functools
import http.server
import threading
from pathlib import Path

import pytest
import torch

from converse_basicsr.hub import zoo
from converse_basicsr.hub.state_dicts import unwrap_state_dict


class Truncating(http.server.SimpleHTTPRequestHandler):
    """Announces 100 bytes more than it sends, then closes the connection."""

    def do_GET(self):
        body = b'x' * 1000
        self.send_response(200)
        self.send_header('Content-Length', str(len(body) + 100))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(handler):
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f'http://127.0.0.1:{server.server_address[1]}'

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_refused_download_leaves_the_cache_empty(zoo_dir, tmp_path, serve):
    www = tmp_path / 'www'
    www.mkdir()
    data = bytearray((Path(zoo_dir) / 'conversenet.pth').read_bytes())
    data[len(data) // 2] ^= 0xFF
    (www / 'conversenet.pth').write_bytes(bytes(data))
    base = serve(functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www)))
    cache = tmp_path / 'cache'
    with pytest.raises(zoo.ChecksumError):
        zoo.load_pretrained('conversenet', model_dir=cache, url=f'{base}/conversenet.pth', progress=False)
    assert sorted(p.name for p in cache.iterdir()) == []


def test_cut_short_download_is_an_error_and_leaves_nothing(tmp_path, serve):
    base = serve(Truncating)
    target = tmp_path / 'cache' / 'model.pth'
    target.parent.mkdir()
    with pytest.raises(zoo.ZooError, match='connection closed after 1000 of 1100 bytes'):
        zoo.download(f'{base}/model.pth', target, attempts=1, progress=False)  # no sha256: the length is the check
    assert sorted(p.name for p in target.parent.iterdir()) == []


def test_dataparallel_checkpoint_loads_by_path(zoo_dir, tmp_path):
    reference = zoo.load_pretrained('converse_dncnn', model_dir=zoo_dir)
    wrapped = {'params': {f'module.{k}': v for k, v in reference.state_dict().items()}}
    torch.save(wrapped, tmp_path / 'dp.pth')
    model = zoo.load_pretrained(tmp_path / 'dp.pth')
    assert type(model) is type(reference)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_explicit_param_key_is_honoured():
    plain, ema = {'w': torch.zeros(2)}, {'w': torch.ones(2)}
    checkpoint = {'params': plain, 'params_ema': ema}
    assert unwrap_state_dict(checkpoint, key='params') is plain
    assert unwrap_state_dict(checkpoint, key='params_ema') is ema
    assert unwrap_state_dict(checkpoint) is ema  # BasicSR's preference without a key
    assert unwrap_state_dict({'params': plain}, key='params_ema') is plain  # BasicSR's fallback
