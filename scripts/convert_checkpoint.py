"""Convert a checkpoint between the published plain state dict and BasicSR's ``{'params': ...}``.

    python scripts/convert_checkpoint.py converse_dncnn.pth converse_dncnn_basicsr.pth --to basicsr
    python scripts/convert_checkpoint.py net_g_latest.pth converse_dncnn.pth --to plain
    python scripts/convert_checkpoint.py converse_dncnn.pth converse_dncnn.safetensors --to plain

An output ending in ``.safetensors`` is written with safetensors (a plain state dict: the format holds tensors
only, so ``--to plain`` is required; it cannot run code on load, which ComfyUI and chaiNNer prefer). Inputs may
be ``.safetensors`` too.

``--to plain`` takes ``params_ema`` when the file has it (BasicSR's EMA weights), else ``params``
(``--key`` picks one). ``--to basicsr`` writes under ``--key`` (default ``params``), which is what
``path: pretrain_network_g`` with ``param_key_g: params`` loads.

Every output carries the network's description (:mod:`converse_basicsr.hub.description`): the input's own, its
run's YAML's, the zoo entry of a published file, or the Converse arch its shapes show (the settings assumed are
named on one line); a ``.safetensors`` output holds it as metadata, a ``.pth`` in its state dict's
``_metadata`` (and, in BasicSR's layout, under the top-level key ``converse_basicsr``). The file is read once
(``converse_basicsr.hub``, the package's one checkpoint reader, no code run); a file that is not a checkpoint
is an error naming it (exit status 2). The output is written atomically and never over the input.
"""
import sys
from os import path as osp

import torch
from safetensors.torch import save_file

from converse_basicsr.data.io import write_atomic
from converse_basicsr.hub.description import KEY, attach, safetensors_metadata
from converse_basicsr.hub.public import read_checkpoint
from converse_basicsr.hub.resolver import describe_file
from converse_basicsr.hub.state_dicts import ZooError, unwrap_state_dict, wrapped_keys
from converse_basicsr.utils.checks import ConverseError
from converse_basicsr.utils.imports import import_user_modules
from converse_basicsr.utils.options import SPECS, CheckedParser, add_import_option, arg


def convert(checkpoint, to, key=None, source='checkpoint', description=None):
    """``checkpoint`` in the ``to`` layout (``plain`` / ``basicsr``), carrying ``description`` when given."""
    checkpoint = {k: v for k, v in checkpoint.items() if k != KEY} if isinstance(checkpoint, dict) else checkpoint
    wrapped = wrapped_keys(checkpoint)
    if to == 'plain':
        if not wrapped:
            unwrap_state_dict(checkpoint, source)  # not a state dict at all: say so
            raise ZooError(f'{source} is already a plain state dict (no params / params_ema key)')
        if key is not None and key not in wrapped:
            raise ZooError(f'--key {key!r} not in {source} (it has {wrapped})')
        state = unwrap_state_dict(checkpoint, source, key or wrapped[0])
        return state if description is None else attach(state, description)
    if wrapped:
        raise ZooError(f'{source} is already in BasicSR format (keys {wrapped})')
    state = unwrap_state_dict(checkpoint, source)
    if description is None:
        return {key or 'params': state}
    return {key or 'params': attach(state, description), KEY: description}


def main(argv=None):
    p = CheckedParser(prog='convert_checkpoint', description=__doc__.split('\n')[0])
    p.add_argument('input', type=arg(SPECS['text']))
    p.add_argument('output', type=arg(SPECS['text']))
    p.add_argument('--to', choices=('basicsr', 'plain'), required=True)
    p.add_argument('--key', choices=('params', 'params_ema'), help='the BasicSR key to write / read')
    add_import_option(p)
    args = p.parse_args(argv)
    try:
        import_user_modules(args.imports)
        if osp.exists(args.output) and osp.samefile(args.input, args.output):
            raise ZooError(f'output {args.output} is the input; choose another file name')
        checkpoint, metadata = read_checkpoint(args.input)
        source = f'checkpoint {args.input}'
        description = describe_file(args.input, checkpoint, metadata)
        if args.output.lower().endswith('.safetensors'):
            if args.to != 'plain':
                raise ZooError('a .safetensors output holds a plain state dict: use --to plain')
            plain = {k: v for k, v in checkpoint.items() if k != KEY}
            tensors = {k: v.contiguous() for k, v in unwrap_state_dict(plain, source, args.key).items()}
            meta = safetensors_metadata(description) if description is not None else {'format': 'pt'}
            write_atomic(args.output, lambda tmp: save_file(tensors, tmp, metadata=meta))
        else:
            converted = convert(checkpoint, args.to, args.key, source, description)
            write_atomic(args.output, lambda tmp: torch.save(converted, tmp))
    except (OSError, ConverseError) as err:
        print(f'convert_checkpoint: error: {err}', file=sys.stderr)
        return 2
    described = f'{description["type"]} described' if description else 'no description: not a Converse arch'
    print(f'{args.input} -> {args.output} ({args.to}, {described})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
