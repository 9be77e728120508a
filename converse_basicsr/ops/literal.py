"""The literal algorithm of the published implementation (its steps 1–8; ``docs/derivation.md`` §1), as written.

Complex FFTs at the output size, zero insertion and nearest upsampling materialised, the
kernel's transfer function rebuilt by an FFT of the padded size on every call, and the solve
dividing by λ: the same computation as the published implementation. It is slow and, in
float32, inaccurate (three to four digits lost to the division by λ). It is kept as the
oracle of the tests (in float64) and as the baseline of ``scripts/benchmark.py``; use
:func:`converse_basicsr.ops.converse2d` for real work.
"""
import torch
from torch.nn import functional as F


def _fold(z, s):
    *lead, hs, ws = z.shape
    return z.reshape(*lead, s, hs // s, s, ws // s).mean(dim=(-4, -2))


def literal_converse2d(x, weight, bias, scale=1, padding=2, padding_mode='circular', eps=1e-5):
    s, p = scale, padding
    lam = torch.sigmoid(bias - 9.0) + eps
    # 1. pad
    if p > 0:
        x = F.pad(x, (p, p, p, p), mode=padding_mode)
    n, c, h, w = x.shape
    hs, ws = h * s, w * s
    # 2. zero insertion  3. nearest upsampling
    ys = torch.zeros(n, c, hs, ws, dtype=x.dtype, device=x.device)
    ys[..., ::s, ::s] = x
    x0 = F.interpolate(x, scale_factor=s, mode='nearest') if s > 1 else x
    # 4. FK: the kernel in the top-left corner of a zero array, rolled by -floor(k/2)
    k = weight.shape[-1]
    otf = torch.zeros(weight.shape[0], c, hs, ws, dtype=x.dtype, device=x.device)
    otf[..., :k, :k] = weight
    otf = torch.roll(otf, shifts=(-(k // 2), -(k // 2)), dims=(-2, -1))
    fk = torch.fft.fft2(otf)
    fkc = fk.conj()
    fk2 = fk.abs()**2
    # 5. L = conj(FK)·DFT(Ys) + DFT(λ·X0)
    big_l = fkc * torch.fft.fft2(ys) + torch.fft.fft2(lam * x0)
    # 6–7. fold / tile and the solve, divided by λ
    inner = _fold(fk * big_l, s) / (_fold(fk2, s) + lam)
    f = (big_l - fkc * inner.repeat(1, 1, s, s)) / lam
    # 8. back to space, crop
    out = torch.real(torch.fft.ifft2(f))
    if p > 0:
        out = out[..., p * s:hs - p * s, p * s:ws - p * s]
    return out
