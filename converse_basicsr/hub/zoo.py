"""The published checkpoints: a table, checksum-verified resolution/download, and ``load_pretrained``.

A zoo name resolves to ``<model dir>/<file name>``; the model dir is the ``model_dir`` argument,
else ``$CONVERSE_MODEL_DIR``, else ``~/.cache/converse_basicsr``. A missing file is downloaded
from the entry's URL, or from ``$CONVERSE_MODEL_BASE_URL`` + file name when that variable is set
(a mirror), or from the ``url`` argument: into ``<file>.partial`` with a socket timeout, retried,
checked against the table's sha256 and only then renamed; a failed attempt removes its partial
file. Every file resolved by name is checked against the table's sha256 before it is loaded.

The readers of checkpoint files and layouts, and :class:`ZooError`, are in :mod:`.state_dicts` (re-exported here).
"""
import hashlib
import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.archs import converse_arch_names
from converse_basicsr.utils.imports import IMPORT_HINT

from .state_dicts import ZooError

MODEL_DIR_ENV = 'CONVERSE_MODEL_DIR'
BASE_URL_ENV = 'CONVERSE_MODEL_BASE_URL'
DEFAULT_MODEL_DIR = Path('~/.cache/converse_basicsr')
# The official code (github.com/cszn/ConverseNet) ships the checkpoints in its `model_zoo/` folder.
OFFICIAL_BASE_URL = 'https://github.com/cszn/ConverseNet/raw/main/model_zoo/'
TIMEOUT_ENV = 'CONVERSE_DOWNLOAD_TIMEOUT'
DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte from the server before an attempt is abandoned
DOWNLOAD_ATTEMPTS = 3


class ChecksumError(ZooError):
    """A checkpoint file whose sha256 differs from the zoo table."""

    def __init__(self, path, expected, actual):
        self.path, self.expected, self.actual = Path(path), expected, actual
        super().__init__(f'checkpoint {self.path} has sha256 {actual}, expected {expected}; '
                         'the file is corrupted or not the published one (delete it to download it again)')


@dataclass(frozen=True)
class ZooEntry:
    name: str
    arch: str  # a type in basicsr's ARCH_REGISTRY
    task: str  # 'denoise' | 'sr' | 'deblur' | 'deblur_nonblind'
    in_channels: int
    scale: int
    sha256: str
    filename: str
    description: str
    kwargs: dict = field(default_factory=dict)
    kernel_size: int = 0  # > 0: forward(x, kernel, sf) takes a (1, 1, k, k) blur kernel

    @property
    def url(self):
        return os.environ.get(BASE_URL_ENV, OFFICIAL_BASE_URL).rstrip('/') + '/' + self.filename


ZOO = {
    e.name: e
    for e in [
        ZooEntry('converse_dncnn', 'ConverseDnCNN', 'denoise', 1, 1,
                 '3b86c7f6e41a014448f923bc331232e1f45e2eae350dd7f9e18440803d283e89', 'converse_dncnn.pth',
                 'Converse-DnCNN, grayscale Gaussian denoising (trained at sigma 25)', {'num_in_ch': 1}),
        ZooEntry('converse_srresnet', 'ConverseMSRResNet', 'sr', 3, 4,
                 'ed75a697f1ebb9f9ad6a53b7875bb76098f23b48d87bf6f0b0dd8cde6df81d2f', 'converse_srresnet.pth',
                 'Converse-SRResNet, x4 bicubic super-resolution, RGB', {'num_in_ch': 3, 'upscale': 4}),
        ZooEntry('conversenet', 'ConverseNet', 'deblur', 3, 1,
                 '603cbb29075178410db9ab6166b247d2ddff32f349c59a7e1763c46feca270bd', 'conversenet.pth',
                 'ConverseNet, blind deblurring (7x7 kernels, 1% noise), RGB', {'num_in_ch': 3}),
        ZooEntry('converse_usrnet', 'ConverseUSRNet', 'deblur_nonblind', 3, 1,
                 '729529b8bc8cbda152d6b60734b01032b49c20fcb8b6da2fb33141d9c3378d82', 'converse_usrnet.pth',
                 'Converse-USRNet, non-blind deblurring with a given 7x7 kernel, RGB', {'num_in_ch': 3}, kernel_size=7),
    ]
}


def get_entry(name):
    """The zoo entry called ``name``; a :class:`ZooError` listing the known names otherwise."""
    if name not in ZOO:
        raise ZooError(f'unknown model name {name!r}; the zoo has: {", ".join(ZOO)}')
    return ZOO[name]


def resolve_model_dir(model_dir=None):
    """``model_dir``, else ``$CONVERSE_MODEL_DIR``, else ``~/.cache/converse_basicsr``."""
    return Path(model_dir or os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR).expanduser()


def sha256sum(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def verify(path, expected):
    actual = sha256sum(path)
    if actual != expected:
        raise ChecksumError(path, expected, actual)
    return Path(path)


def download(url, path, timeout=None, attempts=None, sha256=None, progress=True):
    """Download ``url`` to ``path`` through ``<path>.partial``: every read waits at most ``timeout``
    seconds, a failed attempt is retried (``attempts`` in all, 1 s, 2 s, … apart), a partial file
    never survives a failure, and ``path`` appears (renamed) only once complete and, when ``sha256``
    is given, verified. Raises :class:`ZooError` after the last attempt, :class:`ChecksumError` on
    a wrong checksum. ``timeout`` defaults to ``$CONVERSE_DOWNLOAD_TIMEOUT``, else ``DOWNLOAD_TIMEOUT``;
    ``attempts`` to ``DOWNLOAD_ATTEMPTS``."""
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_ENV) or DOWNLOAD_TIMEOUT)
    attempts = DOWNLOAD_ATTEMPTS if attempts is None else attempts
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + '.partial')
    errors = []
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, 'wb') as f:
                total = int(response.headers.get('Content-Length') or 0)
                done = 0
                for block in iter(lambda: response.read(1 << 20), b''):
                    f.write(block)
                    done += len(block)
                    if progress:
                        print(f'\rdownloading {path.name}: {done >> 20} / {total >> 20} MiB', end='', file=sys.stderr)
            if progress:
                print(file=sys.stderr)
            if total and done != total:
                raise OSError(f'connection closed after {done} of {total} bytes')
            if sha256 is not None:
                verify(partial, sha256)
            os.replace(partial, path)
            return path
        except ChecksumError as err:
            partial.unlink(missing_ok=True)  # never leave a bad download in the cache
            raise ChecksumError(path, err.expected, err.actual) from None
        except (OSError, ValueError) as err:  # URLError, HTTPError, socket.timeout are OSErrors
            partial.unlink(missing_ok=True)
            errors.append(f'attempt {attempt}: {err}')
            if attempt < attempts:
                time.sleep(2**(attempt - 1))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    raise ZooError(f'could not download {url} to {path} ({"; ".join(errors)})')


def checkpoint_path(name, model_dir=None, url=None, progress=True, timeout=None, attempts=None):
    """Local, checksum-verified path of the zoo checkpoint ``name`` (downloaded when missing)."""
    entry = get_entry(name)
    directory = resolve_model_dir(model_dir)
    path = directory / entry.filename
    if path.is_file():
        return verify(path, entry.sha256)
    source = url or entry.url
    try:
        return download(source, path, timeout, attempts, entry.sha256, progress)
    except ChecksumError:
        raise
    except ZooError as err:
        raise ZooError(f'could not download {name!r}: {err}') from None


def build_arch(arch, kwargs=None, device='cpu'):
    if arch not in ARCH_REGISTRY and f'{arch}_basicsr' in ARCH_REGISTRY:  # BasicSR registers a few with a suffix
        arch = f'{arch}_basicsr'
    if arch not in ARCH_REGISTRY:
        raise ZooError(f'unknown arch {arch!r} (registered Converse archs: {", ".join(converse_arch_names())}); '
                       f'{IMPORT_HINT}')
    try:
        with torch.device(device):
            return ARCH_REGISTRY.get(arch)(**(kwargs or {}))
    except (TypeError, ValueError) as err:  # arguments the arch refuses (ConverseUp: an unknown base)
        raise ZooError(f'arch {arch!r} cannot be built with arch kwargs {kwargs}: {err}') from err


def state_dict_matches(arch, kwargs, state_dict):
    """Whether ``arch(**kwargs)`` has exactly ``state_dict``'s parameter names and shapes (built on the meta device)."""
    expected = build_arch(arch, kwargs, device='meta').state_dict()
    return expected.keys() == state_dict.keys() and all(expected[k].shape == state_dict[k].shape for k in expected)


def load_pretrained(name_or_path, device='cpu', model_dir=None, arch=None, arch_kwargs=None, url=None, progress=True,
                    return_entry=False):
    """The network of a zoo name or checkpoint file, weights loaded strictly, in eval mode, on ``device``: a
    shorthand for :func:`converse_basicsr.hub.resolver.resolve` (the one model front door; see there for how a
    file is read). ``return_entry=True`` also returns the zoo entry (``None`` unless the source is a zoo name or
    a published file)."""
    from .resolver import resolve  # the resolver builds on this module
    resolved = resolve(name_or_path, arch=arch, arch_kwargs=arch_kwargs, model_dir=model_dir, device=device, url=url,
                       progress=progress)
    return (resolved.module, resolved.info['entry']) if return_entry else resolved.module
