"""Accuracy of Converse2D and the four published models against the published implementation's
float64 outputs (``../shared/reference/official_outputs.pt``): max |ours − truth| / max |truth|,
beside the same figure for the published float32 code.

    python scripts/accuracy.py [--shared ../shared]
"""
import argparse
from pathlib import Path

import torch

import converse_basicsr  # noqa: F401  (registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.ops import converse2d

ARCHS = {
    'converse_dncnn': 'ConverseDnCNN', 'converse_srresnet': 'ConverseMSRResNet', 'conversenet': 'ConverseNet',
    'converse_usrnet': 'ConverseUSRNet'
}


def rel(out, ref):
    return ((out.double() - ref).abs().max() / ref.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shared', default=str(Path(__file__).resolve().parents[1].parent / 'shared'))
    shared = Path(parser.parse_args().shared) / 'reference'
    truth = torch.load(shared / 'official_outputs.pt', weights_only=False)
    print('| checkpoint | parameters | ours float32 | ours float64 | published float32 |\n|---|---:|---:|---:|---:|')
    for name, arch in ARCHS.items():
        net = ARCH_REGISTRY.get(arch)()
        net.load_state_dict(torch.load(shared / 'zoo' / f'{name}.pth', map_location='cpu', weights_only=True))
        net.eval()
        case, errors = truth[name], []
        for dtype in (torch.float32, torch.float64):
            args = [case['input'].to(dtype)] + ([case['kernel'].to(dtype), case['sf']] if 'kernel' in case else [])
            with torch.no_grad():
                errors.append(rel(net.to(dtype)(*args), case['output']))
        print(f'| {name} | {sum(p.numel() for p in net.parameters()):,} | {errors[0]:.1e} | {errors[1]:.1e} | '
              f'{rel(case["output_float32"], case["output"]):.1e} |')
    print('\n| operator case | ours float32 | ours float64 | published float32 |\n|---|---:|---:|---:|')
    for case in truth['operator_cases']:
        cfg = case['cfg']
        errors = [
            rel(
                converse2d(case['input'].to(dt), case['weight'].to(dt), case['bias'].to(dt), cfg['scale'],
                           cfg['padding'], cfg['padding_mode'], cfg['eps']), case['output'])
            for dt in (torch.float32, torch.float64)
        ]
        print(f"| s={cfg['scale']} k={cfg['kernel_size']} p={cfg['padding']} {cfg['padding_mode']} | {errors[0]:.1e} | "
              f"{errors[1]:.1e} | {rel(case['output_float32'], case['output']):.1e} |")


if __name__ == '__main__':
    main()
