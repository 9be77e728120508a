"""``converse-export`` / ``python -m converse_basicsr.export``: a zoo model or checkpoint as one ONNX file.

Exit status: 0 exported; 2 bad input (unknown model, unreadable checkpoint, an output that would overwrite the
checkpoint, a layer that cannot be exported: one line naming it).
"""
import json
import re
import sys
import time
from pathlib import Path

from ..hub import zoo
from ..hub.resolver import resolve
from ..utils.imports import import_user_modules
from ..utils.options import SPECS, CheckedParser, OptionError, Spec, add_import_option, arg
from .exporter import DEFAULT_OPSET, ExportError, to_onnx


def static_size(text):
    """``--static HxW``: two positive integers (checked by the parser: one line, exit status 2)."""
    match = re.fullmatch(r'(\d+)x(\d+)', text.strip().lower())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise OptionError(f'must be HxW with two positive integers (e.g. 256x256), got {text!r}')
    return text


def build_parser():
    """The ``converse-export`` flags, each checked by :mod:`converse_basicsr.utils.options`."""
    p = CheckedParser(prog='converse-export', description='Export a Converse model to ONNX.')
    p.add_argument('--model', type=arg(SPECS['text']), required=True,
                   help=f'zoo name [{", ".join(zoo.ZOO)}] or a checkpoint file')
    p.add_argument('--output', '-o', type=arg(SPECS['text']), required=True,
                   help='the .onnx file to write (atomically)')
    p.add_argument('--model-dir', help='where zoo checkpoints are cached (default $CONVERSE_MODEL_DIR or the cache)')
    p.add_argument('--arch', help='arch type for a custom checkpoint (e.g. EDSR); default: from the zoo')
    p.add_argument('--arch-kwargs', help='JSON kwargs of --arch')
    p.add_argument('--opset', type=arg(Spec('int', minimum=7)), default=DEFAULT_OPSET,
                   help=f'ONNX opset (default {DEFAULT_OPSET})')
    p.add_argument('--static', type=arg(SPECS['text'], static_size), metavar='HxW',
                   help='fix the input size (default: dynamic batch, height, width)')
    p.add_argument('--scale', type=arg(SPECS['scale']), default=1,
                   help='sf of a kernel-conditioned model (Converse-USRNet), '
                   'fixed in the file (default 1)')
    return add_import_option(p)


def _static(value):
    if value is None:
        return None
    match = re.fullmatch(r'(\d+)x(\d+)', value.strip().lower())
    if not match:
        raise ExportError(f'--static must be HxW (e.g. 256x256), got {value!r}')
    return int(match[1]), int(match[2])


def _model(args):
    """``(module, info)`` of ``--model``: the one call that obtains the model (``info``: ``source``, the file it
    came from or None; ``entry``, its zoo entry or None; ``in_channels``, or None when unknown), the shape of
    :func:`converse_basicsr.hub.resolver.resolve`'s answer."""
    kwargs = json.loads(args.arch_kwargs) if args.arch_kwargs else None
    if kwargs is not None and not args.arch:
        raise ExportError('--arch-kwargs needs --arch')
    resolved = resolve(args.model, arch=args.arch, arch_kwargs=kwargs, model_dir=args.model_dir)
    if resolved.kind == 'onnx':
        raise ExportError(f'--model {args.model} is an ONNX file already; give the checkpoint it came from')
    info = resolved.info
    source = Path(str(info['source'])) if info.get('source') and Path(str(info['source'])).is_file() else None
    return resolved.module, {'source': source, 'entry': info['entry'], 'in_channels': info['in_channels']}


def run(args):
    output = Path(args.output)
    if output.exists() and Path(args.model).exists() and output.resolve() == Path(args.model).resolve():
        raise ExportError(f'--output {output} would overwrite the checkpoint {args.model}; choose another output')
    model, info = _model(args)
    start = time.time()
    notes = to_onnx(model, output, scale=args.scale, static=_static(args.static), opset=args.opset, entry=info['entry'],
                    source=info['source'], in_channels=info['in_channels'])
    for note in notes:
        print(f'note: {note}', file=sys.stderr)
    print(f'exported {args.model} -> {output} in {time.time() - start:.0f} s')
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        import_user_modules(args.imports)
        return run(args)
    except (ExportError, zoo.ZooError, ValueError, OSError) as err:
        print(f'converse-export: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
