"""Convert a checkpoint between the published plain state dict and BasicSR's ``{'params': ...}``.

    python scripts/convert_checkpoint.py converse_dncnn.pth converse_dncnn_basicsr.pth --to basicsr
    python scripts/convert_checkpoint.py net_g_latest.pth converse_dncnn.pth --to plain
    python scripts/convert_checkpoint.py converse_dncnn.pth converse_dncnn.safetensors --to plain

An output ending in ``.safetensors`` is written with safetensors (a plain state dict: the format holds tensors
only, so ``--to plain`` is required; it cannot run code on load, which ComfyUI and chaiNNer prefer). Inputs may
be ``.safetensors`` too.

``--to plain`` takes ``params_ema`` when the file has it (BasicSR's EMA weights), else ``params``
(``--key`` picks one). ``--to basicsr`` writes under ``--key`` (default ``params``), which is what
``path: pretrain_network_g`` with ``param_key_g: params`` loads. Reading goes through
``converse_basicsr.hub.zoo`` (the package's one checkpoint reader); a file that is not a checkpoint is
an error naming it (exit status 2). The output is written atomically and never over the input.
"""
import sys
from os import path as osp

import torch
from safetensors.torch import save_file

from converse_basicsr.data.io import write_atomic
from converse_basicsr.hub.state_dicts import ZooError, load_checkpoint_file, unwrap_state_dict, wrapped_keys
from converse_basicsr.utils.options import SPECS, CheckedParser, arg


def convert(checkpoint, to, key=None, source='checkpoint'):
    wrapped = wrapped_keys(checkpoint)
    if to == 'plain':
        if not wrapped:
            unwrap_state_dict(checkpoint, source)  # not a state dict at all: say so
            raise ZooError(f'{source} is already a plain state dict (no params / params_ema key)')
        if key is not None and key not in wrapped:
            raise ZooError(f'--key {key!r} not in {source} (it has {wrapped})')
        return unwrap_state_dict(checkpoint, source, key or wrapped[0])
    if wrapped:
        raise ZooError(f'{source} is already in BasicSR format (keys {wrapped})')
    return {key or 'params': unwrap_state_dict(checkpoint, source)}


def main(argv=None):
    p = CheckedParser(prog='convert_checkpoint', description=__doc__.split('\n')[0])
    p.add_argument('input', type=arg(SPECS['text']))
    p.add_argument('output', type=arg(SPECS['text']))
    p.add_argument('--to', choices=('basicsr', 'plain'), required=True)
    p.add_argument('--key', choices=('params', 'params_ema'), help='the BasicSR key to write / read')
    args = p.parse_args(argv)
    try:
        if osp.exists(args.output) and osp.samefile(args.input, args.output):
            raise ZooError(f'output {args.output} is the input; choose another file name')
        checkpoint, source = load_checkpoint_file(args.input), f'checkpoint {args.input}'
        if args.output.lower().endswith('.safetensors'):
            if args.to != 'plain':
                raise ZooError('a .safetensors output holds a plain state dict: use --to plain')
            tensors = {k: v.contiguous() for k, v in unwrap_state_dict(checkpoint, source, args.key).items()}
            write_atomic(args.output, lambda tmp: save_file(tensors, tmp, metadata={'format': 'pt'}))
        else:
            converted = convert(checkpoint, args.to, args.key, source)
            write_atomic(args.output, lambda tmp: torch.save(converted, tmp))
    except (OSError, ZooError) as err:
        print(f'convert_checkpoint: error: {err}', file=sys.stderr)
        return 2
    print(f'{args.input} -> {args.output} ({args.to})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
