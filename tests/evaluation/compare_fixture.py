"""One small ``converse-compare -opt`` run shared by the report tests: two generated datasets (one image smaller
than the crop), labels with newlines and the characters markdown, LaTeX and HTML treat specially, a chosen crop,
saved outputs, the plot. A few seconds on the CPU."""
import csv

import cv2
import numpy as np
import torch
import yaml
from torch.nn import functional as F

from converse_basicsr import compare as cli

LONG = 'my_converse_srresnet_finetuned_run (lr 1e-4, 300k it.) | v2 & 100% {best} ~#_$\\'
NEWLINE = 'nearest\nthen <b>box</b>'
CROP = (8, 4, 24)  # x, y, size of the chosen crop of Mini/a.png


class Sharpened(torch.nn.Module):
    """Bilinear ×scale upsampling plus a little unsharp masking: a row that differs from bicubic and nearest."""

    def __init__(self, scale=4):
        super().__init__()
        self.upscale = scale

    def forward(self, x):
        up = F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        blur = F.avg_pool2d(F.pad(up, (1, 1, 1, 1), mode='replicate'), 3, 1)
        return (up + 0.3 * (up - blur)).clamp(0, 1)


def sharpened(scale=4):
    return Sharpened(scale)


def read_rows(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def write_images(folder, sizes, seed):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    for name, (h, w) in sizes.items():
        base = (rng.rand(max(h // 6, 2), max(w // 6, 2), 3) * 255).astype(np.uint8)
        cv2.imwrite(str(folder / name), cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC))
    return str(folder)


def run_compare(root, **extra):
    """The shared run: ``converse-compare -opt`` from ``root`` (results_root given only in the YAML)."""
    datasets = {
        'Mini': write_images(root / 'mini', {'a.png': (48, 64), 'tiny.png': (20, 12)}, seed=3),
        'B_2': write_images(root / 'b2', {'b.png': (48, 48)}, seed=4),
    }
    opt = dict(
        name='rep', protocol=dict(task='sr', scale=4), datasets=datasets, models=[
            'input', 'bicubic',
            dict(name=LONG, callable='tests.evaluation.compare_fixture:sharpened', kwargs={'scale': 4}),
            dict(name=NEWLINE, callable='tests.helpers.compare_models:nearest_sr', kwargs={'scale': 4})
        ], results_root=str(root / 'yaml_root'), crops=['Mini/a.png:{},{},{}'.format(*CROP)], crop=32, grid_tile=96,
        save_outputs=True, plot=True, flops_size=16, warmup=0, tex_columns=['params', 'time'], **extra)
    config = root / 'compare.yml'
    config.write_text(yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    status = cli.main(['-opt', str(config)])
    out = root / 'yaml_root' / 'rep'
    return dict(status=status, out=out, root=root, datasets=datasets, rows=read_rows(out / 'comparison.csv'),
                per_image=read_rows(out / 'per_image.csv'))
