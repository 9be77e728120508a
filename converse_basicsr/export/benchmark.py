"""ONNX Runtime against PyTorch eager: the ``--onnx`` section of ``scripts/benchmark.py``.

Two tables, both timed in one process, the two sides interleaved repeat by repeat (best of the repeats after a
warm-up): the candidate formulations of one Converse2D layer (Converse-DnCNN's: C = 128, k = 7, padding 6, at
256²), and the published Converse-DnCNN at 256² and Converse-SRResNet at 128² LR exported by :func:`to_onnx`, each
from a dynamic-size file (the default) and a fixed-size one (``static``).
Candidates: ``dense + radix-4`` (the DFTs as matrix products, :mod:`converse_basicsr.ops.dense_dft`, with the
radix-4 height transforms for heights that are multiples of 4 and the plain products for other heights under
one ``If``: what ``to_onnx`` writes), ``dense`` (the plain products only) and ``dft-op`` (ONNX's DFT operator, one
axis at a time: ``rfft`` along the width, ``fft`` along the height, and back). The layer is timed at 256² and at
255² (a height the radix step does not apply to).
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
    return torch.stack((spectrum.real, spectrum.imag), dim=-3)


def _fft_inverse(z, size, crop, response=None, scale=1):
    """:func:`.dense_dft.inverse_dft` with ONNX's DFT operator, one axis at a time."""
    h, w = size
    if response is not None:
        z = dense_dft.complex_multiply(z, response)
    re, im = z.unbind(-3)
    out = torch.fft.irfft(torch.fft.ifft(torch.complex(re, im), dim=-2), n=w, dim=-1)
    out = out[..., crop:h - crop, crop:w - crop]
    return dense_dft.interleave_phases(out, scale) if scale > 1 else out


@contextlib.contextmanager
def plain_dense_formulation():
    """While inside, the exported Converse2D uses the plain dense products for every height (no radix-4 step)."""
    saved = dense_dft.ROW_RADIX
    dense_dft.ROW_RADIX = 0
    try:
        yield
    finally:
        dense_dft.ROW_RADIX = saved


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


KEPT = 'dense + radix-4'


def formulation_rows(folder, size=256, repeats=3, threads=None):
    torch.manual_seed(0)
    layer = Converse2D(128, 128, 7, 1, 6, 'circular').eval()
    with torch.no_grad():
        layer.bias.uniform_(-2, 6)
    paths = {
        KEPT: folder / 'layer_dense_radix4.onnx', 'dense': folder / 'layer_dense.onnx',
        'dft-op': folder / 'layer_dft_op.onnx'
    }
    formulations = {KEPT: contextlib.nullcontext, 'dense': plain_dense_formulation, 'dft-op': dft_op_formulation}
    for name, path in paths.items():
        if not path.is_file():
            with formulations[name]():
                to_onnx(layer, path, in_channels=128)
    sessions = {name: session_for(str(p), threads) for name, p in paths.items()}
    rows = []
    for height in (size, size - 1):  # the radix-4 branch, then a height it does not apply to
        x = torch.rand(1, 128, height, size)
        with torch.no_grad():
            reference = layer(x)
        feeds = {'input': x.numpy()}
        names = list(sessions) if height == size else [KEPT, 'dense']
        calls = {'eager': lambda x=x: _no_grad(layer, x)}
        calls.update({name: (lambda s=sessions[name], f=feeds: s.run(None, f)) for name in names})
        times = interleaved(calls, repeats)
        for name in names:
            error = float(np.abs(sessions[name].run(None, feeds)[0] - reference.numpy()).max())
            rows.append(
                dict(case=f'Converse2D C=128 k=7 p=6 {height}×{size}, {name}', eager_s=times['eager'],
                     onnx_s=times[name], ratio=times[name] / times['eager'], max_abs_error=error))
    return rows


def _no_grad(model, *args):
    with torch.no_grad():
        return model(*args)


def model_rows(folder, model_dir=None, repeats=3, threads=None,
               cases=(('converse_dncnn', 256), ('converse_srresnet', 128))):
    """Each published model against eager, from the default (dynamic-size) file and from one exported with
    ``static=(size, size)`` (``converse-export --static``: ONNX Runtime folds the DFT matrices into constants)."""
    rows = []
    for name, size in cases:
        model, entry = zoo.load_pretrained(name, model_dir=model_dir, return_entry=True)
        x = torch.rand(1, entry.in_channels, size, size, generator=torch.Generator().manual_seed(0))
        runners = {}
        for kind, static in (('dynamic', None), (f'static {size}²', (size, size))):
            path = Path(folder) / f'{name}{"_static" if static else ""}.onnx'
            if not path.is_file():  # exporting takes minutes: a kept folder (--onnx-dir) reuses the files
                to_onnx(model, path, entry=entry, in_channels=entry.in_channels, static=static)
            runners[kind] = load_onnx(path, threads=threads)
        calls = {'eager': lambda: _no_grad(model, x)}
        calls.update({kind: (lambda r=runner: r(x)) for kind, runner in runners.items()})
        times = interleaved(calls, repeats)
        for kind, runner in runners.items():
            error = float((runner(x) - _no_grad(model, x)).abs().max())
            rows.append(
                dict(case=f'{name} {size}², {kind} file', eager_s=times['eager'], onnx_s=times[kind],
                     ratio=times[kind] / times['eager'], max_abs_error=error))
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
