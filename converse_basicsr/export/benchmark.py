"""ONNX Runtime against PyTorch eager: the ``--onnx`` section of ``scripts/benchmark.py``.

Two tables, both timed in one process, the two sides interleaved repeat by repeat (best of the repeats after a
warm-up): the candidate formulations of one Converse2D layer (Converse-DnCNN's: C = 128, k = 7, padding 6, at
256²), and the published Converse-DnCNN at 256² and Converse-SRResNet at 128² LR exported by :func:`to_onnx`.
Candidates: ``dense`` (the DFTs as matrix products, :mod:`converse_basicsr.ops.dense_dft`, what ``to_onnx``
writes) and ``dft-op`` (ONNX's DFT operator, one axis at a time: ``rfft`` along the width, ``fft`` along the
height, and back).
"""
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..hub import zoo
from ..ops import Converse2D, dense_dft
from .exporter import to_onnx
from .runtime import load_onnx, session_for


def _fft_forward(x):
    spectrum = torch.fft.fft(torch.fft.rfft(x, dim=-1), dim=-2)
    return spectrum.real, spectrum.imag


def _fft_inverse(re, im, size, crop):
    h, w = size
    out = torch.fft.irfft(torch.fft.ifft(torch.complex(re, im), dim=-2), n=w, dim=-1)
    return out[..., crop:h - crop, crop:w - crop]


@contextlib.contextmanager
def dft_op_formulation():
    """While inside, the exported Converse2D uses ONNX's DFT operator per axis instead of matrix products."""
    saved = dense_dft.forward_dft, dense_dft.inverse_dft
    dense_dft.forward_dft, dense_dft.inverse_dft = _fft_forward, _fft_inverse
    try:
        yield
    finally:
        dense_dft.forward_dft, dense_dft.inverse_dft = saved


def interleaved(calls, repeats):
    """Best time of each callable, calls interleaved so that load changes hit all alike."""
    for fn in calls.values():
        fn()
    best = {name: float('inf') for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def formulation_rows(folder, size=256, repeats=3, threads=None):
    torch.manual_seed(0)
    layer = Converse2D(128, 128, 7, 1, 6, 'circular').eval()
    with torch.no_grad():
        layer.bias.uniform_(-2, 6)
    x = torch.rand(1, 128, size, size)
    with torch.no_grad():
        reference = layer(x)
    paths = {'dense': folder / 'layer_dense.onnx', 'dft-op': folder / 'layer_dft_op.onnx'}
    if not paths['dense'].is_file():
        to_onnx(layer, paths['dense'], in_channels=128)
    if not paths['dft-op'].is_file():
        with dft_op_formulation():
            to_onnx(layer, paths['dft-op'], in_channels=128)
    sessions = {name: session_for(str(p), threads) for name, p in paths.items()}
    feeds = {'input': x.numpy()}
    calls = {'eager': lambda: _no_grad(layer, x)}
    calls.update({name: (lambda s=s: s.run(None, feeds)) for name, s in sessions.items()})
    times = interleaved(calls, repeats)
    rows = []
    for name, session in sessions.items():
        error = float(np.abs(session.run(None, feeds)[0] - reference.numpy()).max())
        rows.append(
            dict(case=f'Converse2D C=128 k=7 p=6 {size}², {name}', eager_s=times['eager'], onnx_s=times[name],
                 ratio=times[name] / times['eager'], max_abs_error=error))
    return rows


def _no_grad(model, *args):
    with torch.no_grad():
        return model(*args)


def model_rows(folder, model_dir=None, repeats=3, threads=None,
               cases=(('converse_dncnn', 256), ('converse_srresnet', 128))):
    rows = []
    for name, size in cases:
        model, entry = zoo.load_pretrained(name, model_dir=model_dir, return_entry=True)
        path = Path(folder) / f'{name}.onnx'
        if not path.is_file():  # exporting takes minutes: a kept folder (--onnx-dir) reuses the files
            to_onnx(model, path, entry=entry, in_channels=entry.in_channels)
        runner = load_onnx(path, threads=threads)
        x = torch.rand(1, entry.in_channels, size, size, generator=torch.Generator().manual_seed(0))
        times = interleaved({'eager': lambda: _no_grad(model, x), 'onnx': lambda: runner(x)}, repeats)
        error = float((runner(x) - _no_grad(model, x)).abs().max())
        rows.append(
            dict(case=f'{name} {size}²', eager_s=times['eager'], onnx_s=times['onnx'],
                 ratio=times['onnx'] / times['eager'], max_abs_error=error))
    return rows


def run(onnx_dir=None, model_dir=None, repeats=3, quick=False):
    """Print both tables, row by row; returns their rows."""
    threads = torch.get_num_threads()
    print(
        f'| ONNX Runtime vs eager ({threads} threads each) | eager (s) | ONNX Runtime (s) | ratio | max abs error |\n'
        '|---|---:|---:|---:|---:|', flush=True)
    with contextlib.ExitStack() as stack:
        folder = Path(onnx_dir) if onnx_dir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        rows = formulation_rows(folder, 64 if quick else 256, 1 if quick else repeats, threads)
        if not quick:
            rows += model_rows(folder, model_dir, repeats, threads)
    for row in rows:
        print(
            f"| {row['case']} | {row['eager_s']:.3f} | {row['onnx_s']:.3f} | {row['ratio']:.2f} | "
            f"{row['max_abs_error']:.1e} |", flush=True)
    return rows
