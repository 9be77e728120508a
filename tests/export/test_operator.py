"""Converse2D exported through the dense-DFT formulation: every padding mode and scale, one file for every size."""
import json

import onnx
import pytest
import torch

from converse_basicsr.export.tracing import trace_by_height
from converse_basicsr.ops import Converse2D, converse2d
from converse_basicsr.ops.dense_dft import dense_converse2d
from converse_basicsr.ops.literal import literal_converse2d
from tests.helpers.export_models import SIZES, TOLERANCE, domains, export, max_error

# (kernel size, scale, padding, padding mode): every mode, scales 1-4, odd and even kernels, no padding
CONFIGS = [(5, 1, 2, 'circular'), (3, 2, 2, 'replicate'), (4, 3, 3, 'reflect'), (5, 4, 1, 'constant'),
           (2, 2, 0, 'circular')]


def _layer(k, s, p, mode, channels=4):
    torch.manual_seed(k * 10 + s)
    layer = Converse2D(channels, channels, k, s, p, mode)
    with torch.no_grad():
        layer.bias.uniform_(-2, 6)  # λ from 1e-4 to 0.05: the trained range
    return torch.nn.Sequential(torch.nn.Conv2d(3, channels, 1), layer).eval()


@pytest.mark.parametrize('radix', [True, False])
@pytest.mark.parametrize('k, s, p, mode', CONFIGS)
@torch.no_grad()
def test_dense_formulation_matches_float64_oracle(k, s, p, mode, radix):
    """The formulation itself (eager, float32) against the literal algorithm in float64: a padded height that is
    a multiple of 4 (the radix-4 step) and one that is not (the plain product)."""
    layer = _layer(k, s, p, mode)[1].double()
    height = 20 - 2 * p if radix else 21 - 2 * p
    x = torch.rand(2, 4, height, 10, dtype=torch.float64)
    truth = literal_converse2d(x, layer.weight, layer.bias, s, p, mode, layer.eps)
    got = dense_converse2d(x.float(), layer.weight.float(), layer.bias.float(), s, p, mode, layer.eps)
    assert float((got.double() - truth).abs().max()) < 1e-4 * max(1.0, float(truth.abs().max()))


def test_dense_formulation_per_sample_kernel():
    """A per-sample kernel (USRNet's data step): weight (N, C, k, k), no padding."""
    x = torch.rand(3, 2, 9, 12, dtype=torch.float64)
    w = torch.softmax(torch.rand(3, 2, 49, dtype=torch.float64), -1).view(3, 2, 7, 7)
    b = torch.full((1, 2, 1, 1), 1.0, dtype=torch.float64)
    truth = converse2d(x, w, b, 2, 0, 'circular', 1e-3)
    got = dense_converse2d(x.float(), w.float(), b.float(), 2, 0, 'circular', 1e-3)
    assert float((got.double() - truth).abs().max()) < 1e-5


@pytest.mark.parametrize('k, s, p, mode', CONFIGS)
def test_exported_layer_matches_pytorch_at_every_size(tmp_path, k, s, p, mode):
    model = _layer(k, s, p, mode)
    path, notes = export(model, tmp_path)
    assert notes == []
    assert domains(path) <= {'', 'ai.onnx'}  # no custom operator domain; the checker passed
    smallest = json.loads({m.key: m.value for m in onnx.load(str(path)).metadata_props}['converse.min_size'])
    for h, w in SIZES + [(p + 3, p + 5), (smallest, smallest + 1)]:  # at the minimum it claims (1 included)
        assert max_error(model, path, (2, 3, h, w)) < TOLERANCE, (h, w)


def test_metadata_and_dynamic_axes(tmp_path):
    model = _layer(3, 2, 2, 'replicate')
    path, _ = export(model, tmp_path)
    proto = onnx.load(str(path))
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta['converse.scale'] == 2 and meta['converse.in_channels'] == 3 and meta['converse.out_channels'] == 4
    assert meta['converse.min_size'] == 1  # replicate pads any size
    assert meta['converse.inputs'] == ['input']
    assert meta['converse.value_range'] == [0.0, 1.0]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == 3 and isinstance(dims[2], str) and isinstance(dims[3], str)


def test_static_export(tmp_path):
    model = _layer(5, 1, 2, 'circular')
    path, _ = export(model, tmp_path, static=(20, 24))
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 20, 24]
    assert max_error(model, path, (1, 3, 20, 24)) < TOLERANCE


def test_height_transforms_take_the_radix_step_for_multiples_of_4(monkeypatch):
    """The radix-4 step runs for every padded height that is a multiple of 4 and only there, and gives the DFT."""
    from converse_basicsr.ops import dense_dft
    taken = []
    for name in ('_forward_rows_radix4', '_inverse_rows_radix4'):
        radix = getattr(dense_dft, name)
        monkeypatch.setattr(dense_dft, name, lambda *a, radix=radix: taken.append(a[0].shape[-2]) or radix(*a))
    for height in (16, 17, 18, 19, 20):
        x = torch.rand(2, 3, height, 9)
        z = dense_dft.forward_dft(x)  # (2, 3, 2, height, 5): re, im
        truth = torch.fft.rfft2(x.double())  # entries up to h·w/2 ≈ 90: float32 products carry ~1e-5
        assert float((z[:, :, 0] - truth.real).abs().max()) < 1e-4
        assert float((z[:, :, 1] - truth.imag).abs().max()) < 1e-4
        back = dense_dft.inverse_dft(z, (height, 9), 2)
        assert float((back - x[..., 2:-2, 2:-2]).abs().max()) < 1e-5
    assert taken == [16, 16, 20, 20]  # forward and inverse, heights 16 and 20 only


def test_dynamic_file_runs_the_radix_graph_for_heights_multiple_of_4(tmp_path):
    model = _layer(5, 1, 2, 'circular')
    path, _ = export(model, tmp_path)
    graph = onnx.load(str(path)).graph
    (branch, ) = [n for n in graph.node if n.op_type == 'If']
    names = {a.name: a.g for a in branch.attribute}
    # the then-branch (heights 4·k) was traced with the radix step: its height transforms decimate by 4
    assert any(n.op_type == 'Transpose' for n in names['then_branch'].node)
    assert len(names['then_branch'].node) > len(names['else_branch'].node)


def _stacked(v, interleaved):
    """A complex ``(n, cols)`` tensor as the real ``(2n, cols)`` one of dense_dft's layouts."""
    return torch.stack((v.real, v.imag), 1 if interleaved else 0).reshape(2 * v.shape[0], v.shape[1])


def test_block_matrices_and_butterflies_are_the_complex_products():
    """``_complex_matrix`` in its four layouts, and the butterflies, against complex float64 products."""
    from converse_basicsr.ops import dense_dft
    generator = torch.Generator().manual_seed(0)
    a = torch.complex(*torch.randn(2, 3, 5, generator=generator, dtype=torch.float64))
    v = torch.complex(*torch.randn(2, 5, 7, generator=generator, dtype=torch.float64))
    for rows in (False, True):
        for cols in (False, True):
            matrix = dense_dft._complex_matrix(a.real, a.imag, rows, cols)
            assert torch.allclose(matrix @ _stacked(v, cols), _stacked(a @ v, rows), atol=1e-12), (rows, cols)
    x = torch.complex(*torch.randn(2, 4, 6, generator=generator, dtype=torch.float64))
    for sign in (-1, 1):  # the radix-4 butterfly is the length-4 DFT, e^{sign·2πi·a·b/4} = (sign·i)^{a·b}
        dft4 = torch.tensor([[(sign * 1j)**(j * k) for k in range(4)] for j in range(4)], dtype=torch.complex128)
        got = dense_dft._FORWARD_BUTTERFLY[sign].double() @ _stacked(x, True)  # rows (re/im, k2), columns (p, re/im)
        assert torch.allclose(got, _stacked(dft4 @ x, False), atol=1e-12)
    dft4 = torch.tensor([[1j**(j * k) for k in range(4)] for j in range(4)], dtype=torch.complex128)
    got = dense_dft._INVERSE_BUTTERFLY.double() @ _stacked(x, False)  # rows (n2, re/im), columns (re/im, k2)
    assert torch.allclose(got, _stacked(dft4 @ x, True), atol=1e-12)
    # fed with the four real products z_a · r_b (rows (a, b, k2)), it transforms the complex product z · r
    r = torch.complex(*torch.randn(2, 4, 6, generator=generator, dtype=torch.float64))
    parts = torch.stack((x.real, x.imag))[:, None] * torch.stack((r.real, r.imag))[None, :]  # (a, b, 4, 6)
    got = dense_dft._PRODUCT_BUTTERFLY.double() @ parts.reshape(16, 6)
    assert torch.allclose(got, _stacked(dft4 @ (x * r), True), atol=1e-12)


def test_each_distinct_solve_is_traced_once(tmp_path, monkeypatch):
    """Three layers with one setting and one with another: two solves traced (the time an export takes), four
    layers in the file, each choosing its own radix-4 graph at run time; ONNX Runtime agrees at every size."""
    from converse_basicsr.export import functions
    traced = []
    monkeypatch.setattr(
        functions, 'trace_by_height', lambda module, *a, **k: traced.append(
            (module.scale, module.crop)) or trace_by_height(module, *a, **k))
    torch.manual_seed(0)
    layers = [Converse2D(4, 4, 3, 1, 2) for _ in range(3)] + [Converse2D(4, 4, 2, 2, 1, 'replicate')]
    with torch.no_grad():
        for layer in layers:
            layer.bias.uniform_(3, 6)  # λ 2e-3 … 0.05: stacked layers with smaller λ compound float32 error
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), *layers).eval()
    path, _ = export(model, tmp_path)
    assert sorted(traced) == [(1, 2), (2, 1)]
    graph = onnx.load(str(path)).graph
    assert sum(n.op_type == 'If' for n in graph.node) == 4 and domains(path) <= {'', 'ai.onnx'}
    for h, w in SIZES + [(18, 21)]:  # padded heights 100, 98 (radix-4 first three, plain last), 22, 20 (reverse)
        assert max_error(model, path, (1, 3, h, w)) < TOLERANCE, (h, w)
