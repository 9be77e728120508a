from collections import OrderedDict

import torch

from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class KernelSRModel(SRModel):
    """SRModel for kernel-conditioned networks (Converse-USRNet): ``net_g(lq, kernel, sf)``.

    Samples must carry ``kernel`` (``(N, 1, k, k)`` after batching, e.g. from ``BlurKernelDataset``);
    ``sf`` is the top-level option ``scale`` (default 1). Training (with or without EMA), validation and
    testing call the network with the kernel; everything else (losses, optimisers, EMA, saving,
    metrics) is BasicSR's SRModel. Shared by the test and the training pipelines.
    """

    def __init__(self, opt):
        super().__init__(opt)
        self.sf = opt.get('scale', 1)

    def feed_data(self, data):
        if 'kernel' not in data:
            raise KeyError("KernelSRModel needs samples with a 'kernel' entry (e.g. from BlurKernelDataset), "
                           f'got keys {sorted(data)}')
        super().feed_data(data)
        self.kernel = data['kernel'].to(self.device)

    def run_network(self, net):
        return net(self.lq, self.kernel, self.sf)

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        self.output = self.run_network(self.net_g)

        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, self.gt)
            l_total += l_pix
            loss_dict['l_pix'] = l_pix
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            if l_percep is not None:
                l_total += l_percep
                loss_dict['l_percep'] = l_percep
            if l_style is not None:
                l_total += l_style
                loss_dict['l_style'] = l_style

        l_total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self):
        net = getattr(self, 'net_g_ema', self.net_g)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = self.run_network(net)
        net.train(was_training)
