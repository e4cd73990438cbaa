"""Adam with an optional shared scale per tensor.

Adam divides every element's step by that element's own root-mean-square
gradient, so each element moves about ``lr`` per update however weak its
gradient is: a coordinate that the losses barely see drifts as fast as one
they ask for. For the oscillator bank's movements ``u_k`` (PCA coordinates in
stdev units) that drift is motion along directions the real clips do not
move. A parameter group with ``shared_dims`` keeps one second-moment
estimate per slice over those dimensions (the mean square of the slice's
gradient): ``shared_dims=(1,)`` on the bank's [K, n_pca] movements gives each
oscillator one scale, so each movement steps along its gradient, each
element in proportion to its own gradient, and every oscillator still at
Adam's overall size. The first moment stays per element. This is the
per-block scale of Adam-mini (Zhang et al., 2024), with rows as blocks.
"""

from __future__ import annotations

import torch


class SharedScaleAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba), where a group's ``shared_dims`` (default: none) share one second moment."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if not lr > 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or not eps > 0:
            raise ValueError(f"SharedScaleAdam: need lr > 0, betas in [0, 1), eps > 0; got {lr}, {betas}, {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, shared_dims=()))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state, dims = p.grad, self.state[p], tuple(group["shared_dims"])
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p.amax(dim=dims, keepdim=True) if dims else p)
                state["step"] += 1
                t = float(state["step"])
                state["exp_avg"].lerp_(g, 1 - b1)
                square = g.square().mean(dim=dims, keepdim=True) if dims else g.square()
                state["exp_avg_sq"].mul_(b2).add_(square, alpha=1 - b2)
                denom = (state["exp_avg_sq"] / (1 - b2 ** t)).sqrt().add_(group["eps"])
                p.addcdiv_(state["exp_avg"], denom.expand_as(p), value=-group["lr"] / (1 - b1 ** t))
        return loss
