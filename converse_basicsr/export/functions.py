"""Each distinct Converse2D solve of a model traced once, as an ONNX function: export time not growing with depth.

``torch.export`` spends its time per traced operator (symbolic sizes, fake tensors, decompositions: 80 % of an
export, profiled), and every Converse2D solves with the same hundred-odd operators of
:mod:`converse_basicsr.ops.dense_dft`, 20 to 35 times in a published model, with one or two distinct settings.
So, while the model is traced, :func:`~converse_basicsr.ops.dense_dft.dense_solve` is replaced by one node per
call (``torch.onnx.ops.symbolic``, domain :data:`DOMAIN`) naming its setting (channels, kernel size, scale, crop,
a per-sample kernel or not; ``λ`` is computed before it, in the model's graph, where a parameter's ``λ`` is folded
into a constant); each setting's solve is then traced on its own, for any padded height and for heights that are
multiples of 4 (:func:`.tracing.trace_by_height`: the radix-4 step), made an ONNX function, and inlined at every
call. The file holds only the standard domain; each layer chooses the radix-4 graph at run
time from its own padded height.
"""
import contextlib

import onnx
import onnx.inliner
import torch
from onnx import helper

from ..ops import dense_dft
from .tracing import trace_by_height

DOMAIN = 'converse_basicsr.solve'
EXAMPLE_HEIGHT = 16  # the example padded height (at least 2·crop + 4); its width is 3 more


class _Solve(torch.nn.Module):
    """``forward(xp, kernel, lam)``: :func:`~converse_basicsr.ops.dense_dft.dense_solve` with one setting."""

    def __init__(self, scale, crop):
        super().__init__()
        self.scale, self.crop = scale, crop

    def forward(self, xp, kernel, lam):
        return dense_dft.dense_solve(xp, kernel, lam, self.scale, self.crop)


class SolveFunctions:
    """The settings met while a model is traced (:meth:`calls`), then their functions inlined (:meth:`inline`)."""

    def __init__(self):
        self.settings = {}  # (per-sample kernel, channels, kernel size, λ's shape, scale, crop) -> function name

    @contextlib.contextmanager
    def calls(self):
        """While inside, each solve traced is one :data:`DOMAIN` node."""
        saved = dense_dft.dense_solve
        dense_dft.dense_solve = self._node
        try:
            yield self
        finally:
            dense_dft.dense_solve = saved

    def _node(self, xp, kernel, lam, scale, crop):
        per_sample = not (isinstance(kernel.shape[0], int) and kernel.shape[0] == 1)
        key = (per_sample, int(xp.shape[1]), int(kernel.shape[-1]), tuple(int(d)
                                                                          for d in lam.shape), int(scale), int(crop))
        name = self.settings.setdefault(key, f'Solve{len(self.settings)}')
        n, c, h, w = xp.shape
        return torch.onnx.ops.symbolic(f'{DOMAIN}::{name}', (xp, kernel, lam), dtype=torch.float32,
                                       shape=(n, c, (h - 2 * crop) * scale, (w - 2 * crop) * scale), version=1)

    def _function(self, key, name, opset):
        per_sample, channels, k, lam_shape, scale, crop = key
        generator = torch.Generator().manual_seed(0)
        h = max(EXAMPLE_HEIGHT, 2 * crop + 4)
        xp = torch.rand(2, channels, h, h + 3, generator=generator)
        weight = torch.softmax(torch.rand(2 if per_sample else 1, channels, k * k, generator=generator), -1)
        inputs = (xp, weight.view(-1, channels, k, k), torch.full(lam_shape, 1e-3))
        graph = trace_by_height(
            _Solve(scale, crop), inputs, ['xp', 'kernel', 'lam'], opset, max(2, 2 * crop + 1),
            batched=(1, ) if per_sample else ()).graph
        constants = [helper.make_node('Constant', [], [t.name], value=t) for t in graph.initializer]
        return helper.make_function(DOMAIN, name, [i.name for i in graph.input], [o.name for o in graph.output],
                                    constants + list(graph.node), [helper.make_opsetid('', opset)])

    def inline(self, proto, opset):
        """``proto`` (the model's trace) with every solve node replaced by its setting's graph."""
        if not self.settings:
            return proto
        proto.functions.extend(self._function(key, name, opset) for key, name in self.settings.items())
        if DOMAIN not in {o.domain for o in proto.opset_import}:
            proto.opset_import.append(helper.make_opsetid(DOMAIN, 1))
        proto = onnx.inliner.inline_local_functions(proto)
        kept = [o for o in proto.opset_import if o.domain != DOMAIN]
        del proto.opset_import[:]
        proto.opset_import.extend(kept)
        del proto.functions[:]
        return proto
