"""MADE masks and IAF: connectivity, log-determinants, inverses, and the IAF posterior's densities.

All tests here are exact (float64, tolerances at rounding level) except the grid integral, whose
tolerance is set by the quadrature error; none is statistical.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from vaekit.flows import IAF, IAFStep, MADE, create_masks
from vaekit.latents import IAFLatent, IAFPosterior

DT = torch.float64


@pytest.fixture(autouse=True)
def _seed(one_thread):
    torch.manual_seed(0)


def _randomise(module: torch.nn.Module, std: float = 1.0) -> None:
    """Draw every weight from N(0, std^2), so a zero in a Jacobian can only come from a mask.

    Flows use std = 0.5, which keeps the gates sigma in a realistic range: with O(1) weights some
    sigma reach e^-10 and the inverse, which divides by sigma, loses all precision (inherent to
    the map, not a bug).
    """
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)


@pytest.mark.parametrize("ordering", [None, [3, 1, 4, 0, 2]])
@pytest.mark.parametrize("context_dim", [0, 3])
@pytest.mark.parametrize("hidden", [[], [7], [6, 9]])
def test_made_jacobian_is_strictly_triangular_in_its_ordering(ordering, context_dim, hidden):
    d = 5
    order = torch.arange(d) if ordering is None else torch.tensor(ordering)
    made = MADE(d, hidden, context_dim, num_outputs=2, ordering=order, activation="tanh").double()
    _randomise(made)
    z = torch.randn(d, dtype=DT)
    h = torch.randn(context_dim, dtype=DT) if context_dim else None
    for p in range(2):
        j = jacobian(lambda x: made(x, h)[p], z)  # (D out, D in)
        jp = j[order][:, order]  # rows/cols in autoregressive order
        assert torch.equal(jp.triu(), torch.zeros_like(jp)), "an output depends on itself or a later input"
        # every allowed connection is present (the masks are not over-restrictive) when there are hidden layers
        if hidden:
            assert (jp.tril(-1).abs() > 0).sum() == d * (d - 1) // 2
    if context_dim:
        jh = jacobian(lambda c: made(z, c)[0], h)
        assert (jh.abs().sum(-1) > 0).all(), "some output, the first included, ignores the context"


def test_create_masks_is_pure_and_checks_widths():
    m1, deg1 = create_masks(4, [6, 6], torch.tensor([2, 0, 3, 1]))
    m2, deg2 = create_masks(4, [6, 6], torch.tensor([2, 0, 3, 1]))
    assert all(torch.equal(a, b) for a, b in zip(m1, m2)) and torch.equal(deg1, deg2)
    assert deg1.tolist() == [2, 4, 1, 3]
    assert [tuple(m.shape) for m in m1] == [(6, 4), (6, 6), (4, 6)]
    with pytest.raises(ValueError, match="narrower"):
        create_masks(5, [3])
    with pytest.raises(ValueError, match="permutation"):
        create_masks(3, [4], torch.tensor([0, 0, 1]))


def test_masks_are_buffers_saved_with_the_weights():
    made = MADE(3, [4], context_dim=2)
    keys = made.state_dict().keys()
    assert "hidden.0.mask" in keys and "out.mask" in keys and "degrees" in keys


@pytest.mark.parametrize("hidden", [[], [8, 8]])
@pytest.mark.parametrize("steps", [1, 3])
def test_iaf_log_det_matches_autograd_slogdet(hidden, steps):
    d, c = 4, 3
    flow = IAF(d, steps, context_dim=c, hidden_dims=hidden).double()
    _randomise(flow, 0.5)
    for _ in range(3):
        z, h = torch.randn(d, dtype=DT), torch.randn(c, dtype=DT)
        _, log_det = flow(z, h)
        sign, logabs = torch.linalg.slogdet(jacobian(lambda x: flow(x, h)[0], z))
        assert sign.item() == 1.0
        assert log_det.item() == pytest.approx(logabs.item(), rel=1e-10, abs=1e-10)


def test_iaf_steps_reverse_the_ordering():
    flow = IAF(4, 3, context_dim=2, hidden_dims=[8])
    degs = [s.made.degrees.tolist() for s in flow.steps]
    assert degs == [[1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4]]


def test_gate_starts_near_the_forget_gate_bias():
    step = IAFStep(6, context_dim=3, hidden_dims=[12], gate_bias=1.5)
    _, s = step.made(torch.randn(100, 6), torch.randn(100, 3))
    sigma = torch.sigmoid(s)
    assert sigma.mean().item() == pytest.approx(torch.sigmoid(torch.tensor(1.5)).item(), abs=0.05)


def test_gate_is_stable_for_extreme_s():
    """log sigma = logsigmoid(s) stays finite where log(sigmoid(s)) would give -inf."""
    step = IAFStep(3, hidden_dims=[4], gate_bias=-200.0).double()
    z = torch.randn(5, 3, dtype=DT)
    y, log_det = step(z)
    assert torch.isfinite(y).all() and torch.isfinite(log_det).all() and (log_det < -500).all()


@pytest.mark.parametrize("steps", [1, 2])
def test_inverse_bypassing_caches(steps):
    """inverse(forward(z)) = z and forward(inverse(y)) = y, calling each step directly on fresh tensors."""
    d, c = 5, 3
    flow = IAF(d, steps, context_dim=c, hidden_dims=[10, 10]).double()
    _randomise(flow, 0.5)
    z, h = torch.randn(7, d, dtype=DT), torch.randn(7, c, dtype=DT)
    y, ld_fwd = flow(z, h)
    x, ld_inv = flow.inverse(y.detach().clone(), h)
    assert torch.allclose(x, z, atol=1e-9) and torch.allclose(ld_inv, ld_fwd, atol=1e-9)
    y2 = torch.randn(7, d, dtype=DT)
    for step in flow.steps:
        x2, _ = step.inverse(y2, h)
        assert torch.allclose(step(x2, h)[0], y2, atol=1e-9)


def _posterior(d: int = 3, b: int = 4, steps: int = 2) -> IAFPosterior:
    layer = IAFLatent(in_features=6, dim=d, steps=steps, hidden=[8, 8], context_dim=5).double()
    _randomise(layer.flow, 0.5)
    return layer(torch.randn(b, 6, dtype=DT))


def test_log_prob_of_own_sample_equals_cached_log_q():
    q = _posterior()
    z, log_q = q.rsample_and_log_prob((6,))
    assert z.shape == (6, 4, 3) and log_q.shape == (6, 4)
    assert torch.allclose(q.log_prob(z.detach()), log_q, atol=1e-9)
    assert torch.allclose(q.log_prob(z), log_q, atol=1e-9)


def test_log_prob_integrates_to_one_on_a_grid():
    """exp(log q) over a 2-D grid (independent of the sampler: only the inverse and the log-det)."""
    q = _posterior(d=2, b=1)
    with torch.no_grad():
        z = q.sample((20000,))
        lo, hi = z.min(0).values[0] - 3, z.max(0).values[0] + 3
        n = 400
        g0 = torch.linspace(lo[0].item(), hi[0].item(), n, dtype=DT)
        g1 = torch.linspace(lo[1].item(), hi[1].item(), n, dtype=DT)
        grid = torch.stack(torch.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 1, 2)
        dens = q.log_prob(grid).exp().reshape(n, n)
        total = torch.trapezoid(torch.trapezoid(dens, g1, dim=1), g0)
    assert total.item() == pytest.approx(1.0, abs=2e-3)


def test_samples_are_distinct_and_gradients_reach_everything():
    layer = IAFLatent(in_features=6, dim=3, steps=2, hidden=[8, 8])
    q = layer(torch.randn(4, 6))
    z, log_q = q.rsample_and_log_prob((5,))
    flat = z.reshape(-1, 3)
    assert torch.cdist(flat, flat).add(torch.eye(20)).min() > 0
    (z.sum() + log_q.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_no_state_between_calls():
    q = _posterior()
    z1, lq1 = q.rsample_and_log_prob((3,))
    q.rsample_and_log_prob((2,))  # another draw in between must not change the first's density
    assert torch.allclose(q.log_prob(z1), lq1, atol=1e-9)


def test_iaf_with_identity_steps_is_the_base_gaussian():
    """With m = 0 and s -> +inf every step is the identity, so log q is the base Gaussian's."""
    layer = IAFLatent(in_features=4, dim=3, steps=2, hidden=[6], gate_bias=60.0).double()
    for step in layer.flow.steps:
        torch.nn.init.zeros_(step.made.out.weight)
    q = layer(torch.randn(2, 4, dtype=DT))
    z, log_q = q.rsample_and_log_prob((5,))
    ref = torch.distributions.Normal(q.loc, q.scale).log_prob(z).sum(-1)
    assert torch.allclose(log_q, ref, atol=1e-12)
    assert math.isfinite(q.log_prob(z).sum().item())
