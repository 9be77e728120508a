"""Shared pieces of the export tests: export once into a temporary folder, run in ONNX Runtime, compare."""
import numpy as np
import onnx
import torch

from converse_basicsr.export import load_onnx, to_onnx

SIZES = [(61, 83), (96, 64)]  # odd and even, from one file
TOLERANCE = 1e-4  # max abs, float32, the claim


def export(model, tmp_path, name='model.onnx', **kwargs):
    path = tmp_path / name
    notes = to_onnx(model, path, **kwargs)
    return path, notes


def max_error(model, path, shape, kernel_size=0, seed=0):
    """Max abs difference between ONNX Runtime (through load_onnx) and the eager PyTorch model."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=generator)
    args = (x, )
    if kernel_size:
        k = torch.rand(shape[0], 1, kernel_size, kernel_size, generator=generator)
        args = (x, k / k.sum(dim=(-2, -1), keepdim=True), 1)
    with torch.no_grad():
        ref = model(*args)
    got = load_onnx(path, threads=2)(*args)
    assert got.shape == ref.shape
    return float((got - ref).abs().max())


def domains(path):
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    return {n.domain for n in proto.graph.node} | {o.domain for o in proto.opset_import}


def run_session(path, feeds):
    from converse_basicsr.export.runtime import session_for
    return session_for(str(path), 2).run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})[0]
