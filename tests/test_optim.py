"""``train.optim.SharedScaleAdam``: Adam itself without shared dimensions, a step along the
gradient for each slice that shares a scale, and a state that a checkpoint carries."""

import copy

import pytest
import torch

from mocohd_cli.train.optim import SharedScaleAdam


def _grads(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n)]


def test_without_shared_groups_it_is_torch_adam():
    a = torch.randn(5, 4, generator=torch.Generator().manual_seed(1)).requires_grad_()
    b = a.detach().clone().requires_grad_()
    ref, ours = torch.optim.Adam([a], 1e-2, betas=(0.5, 0.999)), SharedScaleAdam([b], 1e-2, betas=(0.5, 0.999))
    for g in _grads((5, 4), 30):
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
    torch.testing.assert_close(b, a, rtol=0, atol=1e-7)


def _ten_steps(g: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, SharedScaleAdam]:
    p = torch.zeros(g.shape, requires_grad=True)
    opt = SharedScaleAdam([{"params": [p], "shared_dims": dims}], 1e-3, betas=(0.5, 0.999))
    for _ in range(10):
        p.grad = g.clone()
        opt.step()
    return p.detach(), opt


def test_shared_rows_step_along_their_gradient():
    """A constant gradient whose second row is 100x weaker and whose third row mixes a strong
    and a weak half. Adam moves every element by lr per step (sign-like). With one scale
    per row, each row moves along its gradient at Adam's rms size: the weak row as much as
    a strong one, the weak half of the third row 100x less than its strong half."""
    g = torch.ones(3, 8)
    g[1] *= 0.01
    g[2, 4:] *= 0.01
    g[:, ::2] *= -1
    adam, _ = _ten_steps(g, ())
    torch.testing.assert_close(adam.abs(), torch.full_like(adam, 0.01), rtol=1e-4, atol=0)
    rows, opt = _ten_steps(g, (1,))
    assert opt.state[opt.param_groups[0]["params"][0]]["exp_avg_sq"].shape == (3, 1)
    for r in range(3):
        cos = torch.nn.functional.cosine_similarity(-rows[r], g[r], dim=0)
        assert float(cos) == pytest.approx(1.0, abs=1e-6)
        assert float(rows[r].square().mean().sqrt()) == pytest.approx(0.01, rel=1e-3)  # Adam's size per row
    torch.testing.assert_close(rows[2, 4:].abs() / rows[2, :4].abs(), torch.full((4,), 0.01))


def test_a_tensor_shares_one_scale_over_all_its_dims():
    g = torch.ones(3, 8)
    g[1] *= 0.01
    whole, opt = _ten_steps(g, (0, 1))
    assert opt.state[opt.param_groups[0]["params"][0]]["exp_avg_sq"].shape == (1, 1)
    torch.testing.assert_close(whole[1].abs() / whole[0].abs(), torch.full((8,), 0.01))
    assert float(whole.square().mean().sqrt()) == pytest.approx(0.01, rel=1e-3)


def test_groups_mix_and_the_state_round_trips():
    """An ordinary group beside a shared one; an optimiser rebuilt from the state dict
    continues exactly as the one that kept running."""
    torch.manual_seed(2)
    start = [torch.randn(4, 3), torch.randn(6)]
    grads = list(zip(_grads((4, 3), 12, 3), _grads((6,), 12, 4)))

    def make(values):
        ps = [v.clone().requires_grad_() for v in values]
        return ps, SharedScaleAdam([{"params": [ps[0]]}, {"params": [ps[1]], "shared_dims": (0,)}], 1e-2, betas=(0.5, 0.99))

    ps, opt = make(start)
    for i, (g0, g1) in enumerate(grads):
        ps[0].grad, ps[1].grad = g0, g1
        opt.step()
        if i == 5:
            saved = [p.detach().clone() for p in ps], copy.deepcopy(opt.state_dict())  # as a checkpoint holds it
    qs, again = make(saved[0])
    again.load_state_dict(saved[1])
    for g0, g1 in grads[6:]:
        qs[0].grad, qs[1].grad = g0, g1
        again.step()
    assert all(torch.equal(p, q) for p, q in zip(ps, qs))


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(lr=1e-3, betas=(1.0, 0.9)), dict(lr=1e-3, eps=0.0)])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError, match="SharedScaleAdam"):
        SharedScaleAdam([torch.zeros(2, requires_grad=True)], **bad)
