"""A test oracle: BigGAN-deep in the public PyTorch port's layout, written out plainly
(spectral-norm modules, batch norm with statistic rows, the [B, 4, 4, C] view of
gen_z, bmm attention), so that its state dict is what ``pytorch_model.bin`` holds
and its eval-mode output is what the port computes. Tests build tiny random ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

TINY = dict(
    output_dim=32,
    z_dim=8,
    class_embed_dim=8,
    channel_width=8,
    num_classes=1000,
    layers=[[False, 16, 16], [True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1], [True, 1, 1]],
    attention_layer_position=4,
    eps=1e-4,
    n_stats=51,
)


def _sn(module, eps):
    return spectral_norm(module, eps=eps)


class RefBN(nn.Module):
    def __init__(self, n, cond_dim, n_stats, eps, conditional=True):
        super().__init__()
        self.eps, self.conditional, self.step = eps, conditional, 1.0 / (n_stats - 1)
        self.register_buffer("running_means", torch.zeros(n_stats, n))
        self.register_buffer("running_vars", torch.ones(n_stats, n))
        if conditional:
            self.scale = _sn(nn.Linear(cond_dim, n, bias=False), eps)
            self.offset = _sn(nn.Linear(cond_dim, n, bias=False), eps)
        else:
            self.weight = nn.Parameter(torch.ones(n))
            self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x, truncation, cond=None):
        frac, whole = math.modf(truncation / self.step)
        whole = int(whole)
        if frac != 0.0:
            mean = self.running_means[whole] * frac + self.running_means[whole + 1] * (1 - frac)
            var = self.running_vars[whole] * frac + self.running_vars[whole + 1] * (1 - frac)
        else:
            mean, var = self.running_means[whole], self.running_vars[whole]
        if not self.conditional:
            return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, eps=self.eps)
        gain = 1 + self.scale(cond)[:, :, None, None]
        return (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps) * gain + self.offset(
            cond
        )[:, :, None, None]


class RefBlock(nn.Module):
    def __init__(self, cin, cout, cond_dim, up, n_stats, eps):
        super().__init__()
        mid = cin // 4
        self.up, self.drop = up, cin != cout
        chans = [(cin, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, cout, 1)]
        for j, (a, b, k) in enumerate(chans):
            setattr(self, f"bn_{j}", RefBN(a, cond_dim, n_stats, eps))
            setattr(self, f"conv_{j}", _sn(nn.Conv2d(a, b, k, padding=k // 2), eps))

    def forward(self, x, cond, t):
        h = x
        for j in range(4):
            h = F.relu(getattr(self, f"bn_{j}")(h, t, cond))
            if j == 1 and self.up:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = getattr(self, f"conv_{j}")(h)
        skip = x[:, : x.shape[1] // 2] if self.drop else x
        if self.up:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


class RefAttn(nn.Module):
    def __init__(self, c, eps):
        super().__init__()
        self.snconv1x1_theta = _sn(nn.Conv2d(c, c // 8, 1, bias=False), eps)
        self.snconv1x1_phi = _sn(nn.Conv2d(c, c // 8, 1, bias=False), eps)
        self.snconv1x1_g = _sn(nn.Conv2d(c, c // 2, 1, bias=False), eps)
        self.snconv1x1_o_conv = _sn(nn.Conv2d(c // 2, c, 1, bias=False), eps)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        theta = self.snconv1x1_theta(x).view(b, c // 8, h * w)
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).view(b, c // 8, h * w // 4)
        attn = torch.softmax(torch.bmm(theta.permute(0, 2, 1), phi), dim=-1)
        g = F.max_pool2d(self.snconv1x1_g(x), 2).view(b, c // 2, h * w // 4)
        o = torch.bmm(g, attn.permute(0, 2, 1)).view(b, c // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(o)


class RefGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, cond = cfg["channel_width"], cfg["z_dim"] * 2
        self.width = ch
        self.gen_z = _sn(nn.Linear(cond, 4 * 4 * 16 * ch), cfg["eps"])
        layers = []
        for i, (up, a, b) in enumerate(cfg["layers"]):
            if i == cfg["attention_layer_position"]:
                layers.append(RefAttn(ch * a, cfg["eps"]))
            layers.append(RefBlock(ch * a, ch * b, cond, up, cfg["n_stats"], cfg["eps"]))
        self.layers = nn.ModuleList(layers)
        self.bn = RefBN(ch, None, cfg["n_stats"], cfg["eps"], conditional=False)
        self.conv_to_rgb = _sn(nn.Conv2d(ch, ch, 3, padding=1), cfg["eps"])

    def forward(self, cond, t):
        x = self.gen_z(cond).view(-1, 4, 4, 16 * self.width).permute(0, 3, 1, 2).contiguous()
        for layer in self.layers:
            x = layer(x, cond, t) if isinstance(layer, RefBlock) else layer(x)
        x = self.conv_to_rgb(F.relu(self.bn(x, t)))
        return torch.tanh(x[:, :3])


class RefBigGAN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = nn.Linear(cfg["num_classes"], cfg["z_dim"], bias=False)
        self.generator = RefGenerator(cfg)

    def forward(self, z, class_vector, truncation):
        return self.generator(torch.cat([z, self.embeddings(class_vector)], dim=1), truncation)


def make_reference(cfg: dict | None = None, seed: int = 0) -> RefBigGAN:
    """A random tiny reference model with non-trivial statistics, gains and spectral-norm vectors, in eval mode."""
    cfg = dict(TINY if cfg is None else cfg)
    torch.manual_seed(seed)
    m = RefBigGAN(cfg)
    with torch.no_grad():
        for name, buf in m.named_buffers():
            if name.endswith("running_means"):
                buf.normal_(0, 0.3)
            elif name.endswith("running_vars"):
                buf.uniform_(0.5, 2.0)
        for mod in m.modules():
            if isinstance(mod, RefAttn):
                mod.gamma.fill_(0.7)
            if isinstance(mod, RefBN) and not mod.conditional:
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
        m.train()  # a few power iterations: u and v are what training leaves, not their initial draw
        z = torch.randn(2, cfg["z_dim"])
        c = F.one_hot(torch.tensor([1, 2]), cfg["num_classes"]).float()
        for _ in range(3):
            m(z, c, 1.0)
    return m.eval()
