"""One ONNX graph from two traces of the same module, chosen at run time by its first input's height.

The height transforms of :mod:`converse_basicsr.ops.dense_dft` take a radix-4 step (a quarter of the
multiply-adds) only where the tracer can prove that a padded height is a multiple of 4. With a free height it
never can, so :func:`.tracing.trace_by_height` traces each Converse2D solve twice: once for padded heights
``4·k`` (the radix step) and once for any height (the plain products). :func:`merge_by_height` puts both graphs
under one ``If`` on ``height % 4 == 0``; parameters the two traces share are stored once.
"""
import onnx
from onnx import TensorProto, helper

__all__ = ['merge_by_height']


def _rename_graph(graph, prefix, keep):
    """Prefix every value name of ``graph`` (nodes, initializers, value infos, outputs) except those in ``keep``."""

    def new(name):
        return name if not name or name in keep else prefix + name

    for node in graph.node:
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
        node.name = prefix + node.name if node.name else node.name
        for attr in node.attribute:  # nested graphs (an If or Loop the trace made) refer to outer names
            for sub in ([attr.g] if attr.HasField('g') else []) + list(attr.graphs):
                _rename_graph(sub, prefix, keep | {i.name for i in sub.input})
    for tensor in graph.initializer:
        tensor.name = new(tensor.name)
    for info in list(graph.value_info) + list(graph.output):
        info.name = new(info.name)


def _shared_initializers(a, b):
    """Names of the initializers the two graphs hold with the same name and the same bytes (the parameters)."""
    b_tensors = {t.name: t for t in b.graph.initializer}
    return {
        t.name
        for t in a.graph.initializer
        if t.name in b_tensors and t.SerializeToString() == b_tensors[t.name].SerializeToString()
    }


def _branch(proto, name):
    """The graph of ``proto`` as an ``If`` branch: no inputs (the outer ones are in scope), no initializers."""
    graph = proto.graph
    outputs = [helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type, None) for o in graph.output]
    return helper.make_graph(list(graph.node), name, [], outputs, value_info=list(graph.value_info))


def merge_by_height(radix4, general):
    """An ONNX model that runs ``radix4`` (traced for heights that are multiples of 4) when the first input's
    height is one, else ``general`` (traced for any height). Both must have the same inputs and outputs."""
    if [i.name for i in radix4.graph.input] != [i.name for i in general.graph.input] or \
            len(radix4.graph.output) != len(general.graph.output):
        raise ValueError('the two traces have different inputs or outputs')
    if radix4.functions or general.functions:
        raise ValueError('the traces hold local functions; merging them is not supported')
    outputs = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in general.graph.output]
    radix4, general = (onnx.ModelProto.FromString(m.SerializeToString()) for m in (radix4, general))
    inputs = {i.name for i in general.graph.input}
    shared = _shared_initializers(radix4, general)
    _rename_graph(radix4.graph, 'radix4/', inputs | shared)  # outputs too: each branch yields its own names
    _rename_graph(general.graph, 'general/', inputs | shared)
    initializers = list(general.graph.initializer) + [t for t in radix4.graph.initializer if t.name not in shared]
    first = general.graph.input[0].name
    nodes = [
        helper.make_node('Shape', [first], ['height_dim'], start=2, end=3),
        helper.make_node('Constant', [], ['four'], value=helper.make_tensor('four', TensorProto.INT64, [1], [4])),
        helper.make_node('Constant', [], ['zero'], value=helper.make_tensor('zero', TensorProto.INT64, [1], [0])),
        helper.make_node('Mod', ['height_dim', 'four'], ['height_mod_4']),
        helper.make_node('Equal', ['height_mod_4', 'zero'], ['height_is_4k_1']),
        helper.make_node('Squeeze', ['height_is_4k_1'], ['height_is_4k']),
        helper.make_node('If', ['height_is_4k'], [o.name for o in outputs],
                         then_branch=_branch(radix4,
                                             'height_multiple_of_4'), else_branch=_branch(general, 'any_height')),
    ]
    graph = helper.make_graph(nodes, general.graph.name, list(general.graph.input), outputs, initializer=initializers)
    return helper.make_model(graph, opset_imports=list(general.opset_import), ir_version=general.ir_version,
                             producer_name=general.producer_name, producer_version=general.producer_version)
