"""Step-by-step checks of the optimizers in nbhelpers.optim that torch does not ship.

Each rule is re-derived here as a plain float64 loop over tensors, straight from the equations
in the class docstrings, and compared with both code paths (foreach and per-tensor) of the
optimizer. A second, independent reference is pytorch_optimizer where its variant can be set
to the same rule (see ``test_matches_pytorch_optimizer``).
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from nbhelpers.optim import _foreach_utils
from nbhelpers.optim.adabelief import AdaBelief
from nbhelpers.optim.gsam import GSAM
from nbhelpers.optim.lamb import LAMB
from nbhelpers.optim.lars import LARS
from nbhelpers.optim.lion import Lion
from nbhelpers.optim.sam import SAM
from nbhelpers.optim.yogi import Yogi

DT = torch.float64
STEPS = 5
RTOL, ATOL = 1e-6, 1e-10


# --------------------------------------------------------------------------- fixtures


def initial_params(seed: int = 0) -> list[torch.Tensor]:
    """A 2-D weight and a 1-D bias: the rules treat the two differently."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 4, generator=gen, dtype=DT), torch.randn(4, generator=gen, dtype=DT)]


def grad_sequence(like: list[torch.Tensor], steps: int = STEPS, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(t.shape, generator=gen, dtype=DT) for t in like] for _ in range(steps)]


def run_optimizer(cls, kwargs, init, grads, *, foreach=None, start_state=None):
    """Apply ``grads`` (one list per step) with ``cls``; return final params and the optimizer."""
    params = [t.clone().requires_grad_(True) for t in init]
    opt = cls(params, foreach=foreach, **kwargs) if foreach is not None else cls(params, **kwargs)
    if start_state is not None:
        opt.load_state_dict(start_state)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in params], opt


def assert_all_close(actual, expected, rtol=RTOL, atol=ATOL):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=rtol, atol=atol)


# ----------------------------------------------------------------- plain references


def ref_lion(init, grads, lr, betas, weight_decay):
    b1, b2 = betas
    p = [t.clone() for t in init]
    m = [torch.zeros_like(t) for t in init]
    for gs in grads:
        for i, g in enumerate(gs):
            c = b1 * m[i] + (1 - b1) * g
            p[i] = p[i] - lr * (torch.sign(c) + weight_decay * p[i])
            m[i] = b2 * m[i] + (1 - b2) * g
    return p


def ref_lars(init, grads, lr, momentum, weight_decay, trust_coefficient):
    p = [t.clone() for t in init]
    buf = [None] * len(init)
    for gs in grads:
        for i, g in enumerate(gs):
            d = g
            if p[i].ndim >= 2:
                d = g + weight_decay * p[i]
                pn, dn = float(p[i].norm()), float(d.norm())
                if pn > 0 and dn > 0:
                    d = d * (trust_coefficient * pn / dn)
            buf[i] = d if buf[i] is None else momentum * buf[i] + d
            p[i] = p[i] - lr * buf[i]
    return p


def ref_lamb(init, grads, lr, betas, eps, weight_decay):
    b1, b2 = betas
    p = [t.clone() for t in init]
    m = [torch.zeros_like(t) for t in init]
    v = [torch.zeros_like(t) for t in init]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            r = (m[i] / (1 - b1**t)) / (torch.sqrt(v[i] / (1 - b2**t)) + eps)
            if p[i].ndim >= 2:
                r = r + weight_decay * p[i]
                pn, rn = float(p[i].norm()), float(r.norm())
                if pn > 0 and rn > 0:
                    r = r * (pn / rn)
            p[i] = p[i] - lr * r
    return p


def ref_adabelief(init, grads, lr, betas, eps, weight_decay):
    b1, b2 = betas
    p = [t.clone() for t in init]
    m = [torch.zeros_like(t) for t in init]
    s = [torch.zeros_like(t) for t in init]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            p[i] = p[i] * (1 - lr * weight_decay)
            m[i] = b1 * m[i] + (1 - b1) * g
            s[i] = b2 * s[i] + (1 - b2) * (g - m[i]) ** 2 + eps
            p[i] = p[i] - lr * (m[i] / (1 - b1**t)) / (torch.sqrt(s[i] / (1 - b2**t)) + eps)
    return p


def ref_yogi(init, grads, lr, betas, eps, initial_accumulator, weight_decay):
    b1, b2 = betas
    p = [t.clone() for t in init]
    m = [torch.zeros_like(t) for t in init]
    v = [torch.full_like(t, initial_accumulator) for t in init]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            g = g + weight_decay * p[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = v[i] - (1 - b2) * torch.sign(v[i] - g * g) * g * g
            p[i] = p[i] - lr * (m[i] / (1 - b1**t)) / (torch.sqrt(v[i] / (1 - b2**t)) + eps)
    return p


REFERENCES = {
    "lion": (Lion, ref_lion, dict(lr=1e-3, betas=(0.9, 0.99)), 0.1),
    "lars": (LARS, ref_lars, dict(lr=0.5, momentum=0.9, trust_coefficient=0.02), 0.01),
    "lamb": (LAMB, ref_lamb, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-6), 0.01),
    # eps = 1e-6 rather than the default 1e-16, so that both places eps enters are tested.
    "adabelief": (AdaBelief, ref_adabelief, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-6), 0.1),
    "yogi": (Yogi, ref_yogi,
             dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-3, initial_accumulator=1e-6), 0.1),
}


def _kwargs(name, decay):
    cls, ref, kwargs, wd = REFERENCES[name]
    return cls, ref, {**kwargs, "weight_decay": wd if decay else 0.0}


# ---------------------------------------------------------- the five element-wise rules


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per_tensor"])
@pytest.mark.parametrize("decay", [False, True], ids=["no_wd", "wd"])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_rule_matches_reference(name, decay, foreach):
    cls, ref, kwargs = _kwargs(name, decay)
    init = initial_params()
    grads = grad_sequence(init)
    ours, _ = run_optimizer(cls, kwargs, init, grads, foreach=foreach)
    assert_all_close(ours, ref(init, grads, **kwargs))
    assert all(not torch.equal(a, b) for a, b in zip(ours, init))


@pytest.mark.parametrize("name", list(REFERENCES))
def test_rule_matches_reference_when_tensors_are_cut_into_pieces(name, monkeypatch):
    """On the CPU the foreach path works on ~1 MiB flat pieces (and ~4 MiB blocks of whole
    tensors for LARS/LAMB's norms); shrink both so that these small tensors are cut into
    pieces of 7 elements and blocks of one tensor, exercising the per-piece scalars."""
    monkeypatch.setattr(_foreach_utils, "CPU_BATCH_BYTES", 7 * 8)
    monkeypatch.setattr(_foreach_utils, "CPU_BLOCK_BYTES", 8)
    cls, ref, kwargs = _kwargs(name, True)
    init = initial_params()
    grads = grad_sequence(init)
    ours, _ = run_optimizer(cls, kwargs, init, grads, foreach=True)
    assert_all_close(ours, ref(init, grads, **kwargs))


def test_batches_cover_every_element_once_with_its_values(monkeypatch):
    monkeypatch.setattr(_foreach_utils, "CPU_BATCH_BYTES", 10 * 4)
    a = [torch.zeros(3, 5), torch.zeros(4), torch.zeros(2, 2).t(), torch.zeros(25)]
    b = [torch.zeros_like(t) for t in a]
    seen = []
    for (pa, pb), (tag,) in _foreach_utils.batches([a, b], [["w", "v", "t", "long"]]):
        assert sum(x.numel() for x in pa) <= 10 or len(pa) == 1
        for x, y, t in zip(pa, pb, tag):
            x.add_(1.0)
            y.add_(2.0)
            seen.append(t)
    assert all(torch.equal(t, torch.ones_like(t)) for t in a)
    assert all(torch.equal(t, torch.full_like(t, 2.0)) for t in b)
    assert seen.count("long") == 3 and seen.count("t") == 1  # non-contiguous stays whole
    monkeypatch.setattr(_foreach_utils, "CPU_BLOCK_BYTES", 10 * 4)
    blocks = list(_foreach_utils.batches([a], split=False))
    assert [len(pieces[0]) for pieces, _ in blocks] == [1, 2, 1]  # whole tensors, <= 40 B


def _accelerator_paths(monkeypatch):
    """Make the CPU take the code that accelerators take: whole groups per foreach call,
    trust ratios and SAM scales kept as 0-dim tensors (no host sync), so it is tested here."""
    import nbhelpers.optim.gsam as gsam_mod
    import nbhelpers.optim.lamb as lamb_mod
    import nbhelpers.optim.lars as lars_mod
    import nbhelpers.optim.sam as sam_mod

    def on_device(num, den, coef, fallback=None):
        return _foreach_utils.trust_ratios_on_device(
            num, den, coef, fallback if fallback is not None else [1.0] * len(num))

    monkeypatch.setattr(_foreach_utils, "CPU_BATCH_BYTES", 0)
    monkeypatch.setattr(_foreach_utils, "CPU_BLOCK_BYTES", 0)
    monkeypatch.setattr(_foreach_utils, "WORKSPACE_LIMIT_BYTES", 0)
    for mod in (lars_mod, lamb_mod):
        monkeypatch.setattr(mod, "trust_ratios", on_device)
    for mod in (sam_mod, gsam_mod):
        monkeypatch.setattr(mod, "host_scalar", lambda t: t)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_rule_matches_reference_on_the_accelerator_code_path(name, monkeypatch):
    _accelerator_paths(monkeypatch)
    cls, ref, kwargs = _kwargs(name, True)
    init = initial_params()
    zero = [torch.zeros(3, 3, dtype=DT), torch.zeros(2, dtype=DT)]  # the ratio's fallback
    grads = grad_sequence(init + zero)
    ours, _ = run_optimizer(cls, kwargs, init + zero, grads, foreach=True)
    assert_all_close(ours, ref(init + zero, grads, **kwargs))


@pytest.mark.parametrize("decay", [False, True], ids=["no_wd", "wd"])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_foreach_and_per_tensor_agree_in_float32(name, decay):
    cls, _, kwargs = _kwargs(name, decay)
    init = [t.float() for t in initial_params()]
    grads = [[g.float() for g in gs] for gs in grad_sequence(init)]
    a, _ = run_optimizer(cls, kwargs, init, grads, foreach=True)
    b, _ = run_optimizer(cls, kwargs, init, grads, foreach=False)
    assert_all_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per_tensor"])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_state_dict_round_trip(name, foreach):
    cls, _, kwargs = _kwargs(name, True)
    init = initial_params()
    grads = grad_sequence(init)
    straight, _ = run_optimizer(cls, kwargs, init, grads, foreach=foreach)

    first, opt = run_optimizer(cls, kwargs, init, grads[:2], foreach=foreach)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)  # through bytes, as a resumed run reads last.pt
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed, _ = run_optimizer(cls, kwargs, first, grads[2:], foreach=foreach, start_state=saved)
    assert_all_close(resumed, straight, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_state_is_named_tensors(name):
    cls, _, kwargs = _kwargs(name, True)
    init = initial_params()
    _, opt = run_optimizer(cls, kwargs, init, grad_sequence(init, steps=1))
    expected = {
        "lion": {"exp_avg"},
        "lars": {"momentum_buffer"},
        "lamb": {"step", "exp_avg", "exp_avg_sq"},
        "adabelief": {"step", "exp_avg", "exp_avg_var"},
        "yogi": {"step", "exp_avg", "exp_avg_sq"},
    }[name]
    for state in opt.state.values():
        assert set(state) == expected
        assert all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per_tensor"])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_params_without_grad_are_skipped_and_grads_untouched(name, foreach):
    cls, _, kwargs = _kwargs(name, True)
    w, b = (t.clone().requires_grad_(True) for t in initial_params())
    frozen = torch.randn(3, 3, dtype=DT, requires_grad=True)
    before = frozen.detach().clone()
    opt = cls([w, b, frozen], foreach=foreach, **kwargs)
    grads = [torch.randn_like(w), torch.randn_like(b)]
    w.grad, b.grad = grads[0].clone(), grads[1].clone()
    opt.step()
    assert torch.equal(frozen, before)
    assert len(opt.state[frozen]) == 0
    # .grad must stay the raw gradient: trainers log its norm and SAM wrappers reuse it.
    assert torch.equal(w.grad, grads[0]) and torch.equal(b.grad, grads[1])


@pytest.mark.parametrize("name", list(REFERENCES))
def test_mixed_dtypes_in_one_group(name):
    """float32, float64 and bfloat16 tensors in one group: both paths run and agree."""
    cls, _, kwargs = _kwargs(name, True)
    init = [torch.randn(6, 5), torch.randn(5, dtype=DT), torch.randn(4, 3).bfloat16()]
    grads = [[torch.randn_like(t) for t in init] for _ in range(3)]
    a, _ = run_optimizer(cls, kwargs, init, grads, foreach=True)
    b, _ = run_optimizer(cls, kwargs, init, grads, foreach=False)
    for x, y, x0 in zip(a, b, init):
        assert x.dtype == x0.dtype and torch.isfinite(x.float()).all()
        tol = 2e-2 if x.dtype == torch.bfloat16 else 1e-5
        torch.testing.assert_close(x.float(), y.float(), rtol=tol, atol=tol)


def test_lars_momentum_zero_keeps_no_buffer():
    init = initial_params()
    grads = grad_sequence(init)
    kwargs = dict(lr=0.5, momentum=0.0, weight_decay=0.01, trust_coefficient=0.02)
    for foreach in (True, False):
        ours, opt = run_optimizer(LARS, kwargs, init, grads, foreach=foreach)
        assert_all_close(ours, ref_lars(init, grads, **kwargs))
        assert all("momentum_buffer" not in s for s in opt.state.values())


def test_trust_ratio_skips_zero_norms():
    """A zero weight matrix keeps ratio 1 (LARS/LAMB would otherwise never move it)."""
    init = [torch.zeros(3, 3, dtype=DT), torch.zeros(3, dtype=DT)]
    grads = grad_sequence(init, steps=2)
    for name in ("lars", "lamb"):
        cls, ref, kwargs = _kwargs(name, True)
        for foreach in (True, False):
            ours, _ = run_optimizer(cls, kwargs, init, grads, foreach=foreach)
            assert_all_close(ours, ref(init, grads, **kwargs))
            assert ours[0].abs().sum() > 0


def test_closure_loss_is_returned():
    w = torch.ones(3, requires_grad=True)
    opt = Lion([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == pytest.approx(3.0)
    assert opt.step() is None


@pytest.mark.parametrize(
    "cls, bad",
    [
        (Lion, dict(lr=-1.0)), (Lion, dict(betas=(1.0, 0.99))), (Lion, dict(weight_decay=-0.1)),
        (LARS, dict(lr=-0.1)), (LARS, dict(lr=0.1, momentum=-0.5)),
        (LARS, dict(lr=0.1, trust_coefficient=-1.0)),
        (LAMB, dict(eps=-1e-6)), (LAMB, dict(betas=(0.9, -0.1))), (LAMB, dict(lr=-1e-3)),
        (AdaBelief, dict(eps=-1.0)), (AdaBelief, dict(betas=(0.9,))),
        (Yogi, dict(lr=-1.0)), (Yogi, dict(initial_accumulator=-1.0)),
    ],
)
def test_invalid_hyperparameters_raise(cls, bad):
    with pytest.raises(ValueError):
        cls([torch.zeros(2, requires_grad=True)], **bad)


# ------------------------------------------------------------------------- SAM / GSAM


def regression_data(seed: int = 2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(16, 5, generator=gen, dtype=DT), torch.randn(16, 4, generator=gen, dtype=DT)


def regression_loss(params, data):
    x, y = data
    w, b = params
    return ((x @ w + b - y) ** 2).mean() + 0.1 * (w**4).mean()  # non-quadratic: curvature varies


def grads_at(params, data):
    ps = [p.clone().requires_grad_(True) for p in params]
    with torch.enable_grad():
        return list(torch.autograd.grad(regression_loss(ps, data), ps))


def ref_sgd_momentum(p, buf, g, lr, momentum, weight_decay):
    """torch.optim.SGD's rule: d = g + wd*p; buf = d at the first step, else mu*buf + d."""
    new_p, new_buf = [], []
    for pi, bi, gi in zip(p, buf, g):
        d = gi + weight_decay * pi
        bi = d if bi is None else momentum * bi + d
        new_buf.append(bi)
        new_p.append(pi - lr * bi)
    return new_p, new_buf


def ref_sam_family(init, data, steps, *, rho, lr, momentum, weight_decay, adaptive=False,
                   alpha=None, rhos=None):
    """SAM (alpha None) or GSAM (alpha set), with SGD-momentum as the base optimizer."""
    p = [t.clone() for t in init]
    buf = [None] * len(p)
    for step in range(steps):
        r = rho if rhos is None else rhos[step]
        g = grads_at(p, data)
        if adaptive:
            norm = math.sqrt(sum(float(((pi * gi) ** 2).sum()) for pi, gi in zip(p, g)))
            e = [r * pi * pi * gi / (norm + 1e-12) for pi, gi in zip(p, g)]
        else:
            norm = math.sqrt(sum(float((gi**2).sum()) for gi in g))
            e = [r * gi / (norm + 1e-12) for gi in g]
        gp = grads_at([pi + ei for pi, ei in zip(p, e)], data)
        if alpha is not None:
            dot = sum(float((gi * gpi).sum()) for gi, gpi in zip(g, gp))
            gp_sq = sum(float((gpi**2).sum()) for gpi in gp)
            gp = [gpi - alpha * (gi - (dot / gp_sq) * gpi) for gi, gpi in zip(g, gp)]
        p, buf = ref_sgd_momentum(p, buf, gp, lr, momentum, weight_decay)
    return p


def make_sam(cls, params, **kwargs):
    return cls(params, torch.optim.SGD, **kwargs)


def run_sam(cls, init, data, steps, *, opt_kwargs=None, params=None, opt=None):
    params = params if params is not None else [t.clone().requires_grad_(True) for t in init]
    opt = opt if opt is not None else make_sam(cls, params, **opt_kwargs)

    def closure():
        opt.zero_grad()
        loss = regression_loss(params, data)
        loss.backward()
        return loss

    losses = []
    for _ in range(steps):
        opt.zero_grad()
        regression_loss(params, data).backward()
        loss = opt.step(closure)  # pytorch_optimizer's SAM returns None
        losses.append(None if loss is None else float(loss.detach()))
    return params, opt, losses


SAM_CASES = {
    "sam": (SAM, dict(rho=0.1), dict()),
    "sam_adaptive": (SAM, dict(rho=0.5, adaptive=True), dict(adaptive=True)),
    "gsam": (GSAM, dict(rho=0.1, alpha=0.3), dict(alpha=0.3)),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["base_foreach", "base_per_tensor"])
@pytest.mark.parametrize("decay", [False, True], ids=["no_wd", "wd"])
@pytest.mark.parametrize("case", list(SAM_CASES))
def test_sam_family_matches_reference(case, decay, foreach):
    cls, kwargs, ref_extra = SAM_CASES[case]
    wd = 0.01 if decay else 0.0
    base = dict(lr=0.05, momentum=0.9, weight_decay=wd)
    init, data = initial_params(), regression_data()
    opt_kwargs = {**kwargs, **base, "foreach": foreach}
    params, _, _ = run_sam(cls, init, data, STEPS, opt_kwargs=opt_kwargs)
    expected = ref_sam_family(init, data, STEPS, rho=kwargs["rho"], **base, **ref_extra)
    assert_all_close([p.detach() for p in params], expected)


@pytest.mark.parametrize("case", list(SAM_CASES))
def test_sam_family_matches_reference_in_pieces(case, monkeypatch):
    monkeypatch.setattr(_foreach_utils, "CPU_BATCH_BYTES", 7 * 8)
    cls, kwargs, ref_extra = SAM_CASES[case]
    base = dict(lr=0.05, momentum=0.9, weight_decay=0.01)
    init, data = initial_params(), regression_data()
    params, _, _ = run_sam(cls, init, data, STEPS, opt_kwargs={**kwargs, **base})
    expected = ref_sam_family(init, data, STEPS, rho=kwargs["rho"], **base, **ref_extra)
    assert_all_close([p.detach() for p in params], expected)


@pytest.mark.parametrize("case", list(SAM_CASES))
def test_sam_family_matches_reference_on_the_accelerator_code_path(case, monkeypatch):
    _accelerator_paths(monkeypatch)
    cls, kwargs, ref_extra = SAM_CASES[case]
    base = dict(lr=0.05, momentum=0.9, weight_decay=0.01)
    init, data = initial_params(), regression_data()
    params, _, _ = run_sam(cls, init, data, STEPS, opt_kwargs={**kwargs, **base})
    expected = ref_sam_family(init, data, STEPS, rho=kwargs["rho"], **base, **ref_extra)
    assert_all_close([p.detach() for p in params], expected)


@pytest.mark.parametrize("case", list(SAM_CASES))
def test_sam_family_state_dict_round_trip(case):
    cls, kwargs, _ = SAM_CASES[case]
    opt_kwargs = {**kwargs, "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
    init, data = initial_params(), regression_data()
    straight, _, _ = run_sam(cls, init, data, STEPS, opt_kwargs=opt_kwargs)

    first, opt, _ = run_sam(cls, init, data, 2, opt_kwargs=opt_kwargs)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert any("momentum_buffer" in s for s in saved["state"].values())

    params = [p.detach().clone().requires_grad_(True) for p in first]
    fresh = make_sam(cls, params, **opt_kwargs)
    fresh.load_state_dict(saved)
    assert fresh.param_groups is fresh.base_optimizer.param_groups
    assert fresh.state is fresh.base_optimizer.state
    resumed, _, _ = run_sam(cls, init, data, STEPS - 2, params=params, opt=fresh)
    assert_all_close([p.detach() for p in resumed], [p.detach() for p in straight],
                     rtol=1e-12, atol=0)


@pytest.mark.parametrize("cls", [SAM, GSAM])
def test_sam_family_with_half_precision_params(cls):
    w = torch.randn(4, 3).bfloat16().requires_grad_(True)
    b = torch.randn(3, requires_grad=True)
    x = torch.randn(8, 4)
    opt = make_sam(cls, [w, b], lr=0.1, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = ((x @ w.float() + b) ** 2).mean()
        loss.backward()
        return loss

    first = float(closure().detach())
    for _ in range(5):
        closure()
        opt.step(closure)
    assert w.dtype == torch.bfloat16 and torch.isfinite(w.float()).all()
    assert float(closure().detach()) < first


@pytest.mark.parametrize("cls", [SAM, GSAM])
def test_sam_family_requires_closure(cls):
    w = torch.zeros(3, requires_grad=True)
    opt = make_sam(cls, [w], lr=0.1)
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match="closure"):
        opt.step()


@pytest.mark.parametrize("cls", [SAM, GSAM])
def test_sam_family_shares_groups_with_base(cls):
    params = [t.clone().requires_grad_(True) for t in initial_params()]
    opt = make_sam(cls, params, lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    data = regression_data()
    run_sam(cls, None, data, 1, params=params, opt=opt)
    scheduler.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    extra = torch.zeros(2, dtype=DT, requires_grad=True)
    opt.add_param_group({"params": [extra], "lr": 0.2})
    assert opt.base_optimizer.param_groups[-1]["rho"] == 0.05
    assert opt.base_optimizer.param_groups[-1]["momentum"] == 0.9


@pytest.mark.parametrize("cls", [SAM, GSAM])
def test_before_base_step_hook(cls):
    """The hook sees restored weights and the final gradient; returning False skips the step."""
    init, data = initial_params(), regression_data()
    params = [t.clone().requires_grad_(True) for t in init]
    opt = make_sam(cls, params, lr=0.1, momentum=0.9, **({"alpha": 0.3} if cls is GSAM else {}))
    seen = {}

    def hook():
        seen["params"] = [p.detach().clone() for p in params]
        seen["grads"] = [p.grad.clone() for p in params]
        return False

    opt.before_base_step = hook
    run_sam(cls, init, data, 1, params=params, opt=opt)
    assert_all_close(seen["params"], init, rtol=1e-15, atol=1e-15)
    assert_all_close([p.detach() for p in params], init, rtol=1e-15, atol=1e-15)
    assert all(len(s) == 0 for s in opt.state.values())  # the base never stepped

    # The gradient the base optimizer would use: g at p + e (SAM) or the GSAM combination.
    g = grads_at(init, data)
    norm = math.sqrt(sum(float((gi**2).sum()) for gi in g))
    gp = grads_at([p + 0.05 * gi / (norm + 1e-12) for p, gi in zip(init, g)], data)
    if cls is GSAM:
        dot = sum(float((a * b).sum()) for a, b in zip(g, gp))
        sq = sum(float((b**2).sum()) for b in gp)
        gp = [b - 0.3 * (a - dot / sq * b) for a, b in zip(g, gp)]
    assert_all_close(seen["grads"], gp)

    # A hook that clips in place changes what the base optimizer applies; True lets it step.
    def clip():
        torch.nn.utils.clip_grad_norm_(params, max_norm=1e-3)
        return True

    opt.before_base_step = clip
    before = [p.detach().clone() for p in params]
    run_sam(cls, init, data, 1, params=params, opt=opt)
    moved = math.sqrt(sum(float(((p.detach() - b) ** 2).sum()) for p, b in zip(params, before)))
    assert 0 < moved <= 0.1 * 1e-3 * (1 + 1e-9)  # lr * clipped norm (first momentum step)


@pytest.mark.parametrize("cls", [SAM, GSAM])
def test_non_finite_gradient_leaves_weights_exactly_as_they_were(cls):
    """An fp16 overflow gives inf in the gradient at p: the ascent then writes NaN, but the
    weights come back bit for bit from the saved copy, and the hook can skip the base step."""
    params = [t.clone().requires_grad_(True) for t in initial_params()]
    before = [p.detach().clone() for p in params]
    opt = make_sam(cls, params, lr=0.1, momentum=0.9)
    opt.before_base_step = lambda: all(torch.isfinite(p.grad).all() for p in params)
    data = regression_data()

    def closure():
        opt.zero_grad()
        loss = regression_loss(params, data)
        loss.backward()
        return loss

    closure()
    params[0].grad[0, 0] = float("inf")
    opt.step(closure)
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before))
    assert all(len(s) == 0 for s in opt.state.values())


def test_gsam_rho_follows_lr_schedule():
    init, data = initial_params(), regression_data()
    params = [t.clone().requires_grad_(True) for t in init]
    base = dict(lr=0.05, momentum=0.9, weight_decay=0.0)
    opt = make_sam(GSAM, params, rho=0.1, rho_min=0.02, alpha=0.3, **base)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: [1.0, 0.5, 0.0, 0.25, 1.0][k])
    rhos = []
    for _ in range(4):
        _, _, _ = run_sam(GSAM, init, data, 1, params=params, opt=opt)
        rhos.append(opt.rho_t[0])
        scheduler.step()
    assert rhos == pytest.approx([0.1, 0.06, 0.02, 0.04])
    # The reference cannot change lr mid-run, so check the rho sequence with a constant lr...
    params2 = [t.clone().requires_grad_(True) for t in init]
    opt2 = make_sam(GSAM, params2, rho=0.1, rho_min=0.02, alpha=0.3, **base)
    for group in opt2.param_groups:
        group["rho_lr_max"] = 0.1  # lr = 0.05 is half way: rho_t = 0.06
    run_sam(GSAM, init, data, 3, params=params2, opt=opt2)
    expected = ref_sam_family(init, data, 3, rho=0.1, alpha=0.3, rhos=[0.06] * 3, **base)
    assert_all_close([p.detach() for p in params2], expected)
    assert opt2.state_dict()["param_groups"][0]["rho_lr_max"] == 0.1


def test_sam_string_base_uses_registry():
    try:
        from nbhelpers.optim import resolve_optimizer_class  # noqa: F401
    except ImportError:
        pytest.skip("nbhelpers.optim.resolve_optimizer_class does not exist yet")
    params = [t.clone().requires_grad_(True) for t in initial_params()]
    opt = SAM(params, "sgd_momentum", rho=0.05, lr=0.01)
    assert opt.param_groups[0]["lr"] == 0.01
    assert isinstance(opt.base_optimizer, torch.optim.Optimizer)


def test_sam_string_base_without_registry_is_a_clear_error(monkeypatch):
    import nbhelpers.optim as optim_pkg

    monkeypatch.delattr(optim_pkg, "resolve_optimizer_class", raising=False)
    with pytest.raises(ValueError, match="resolve_optimizer_class"):
        SAM([torch.zeros(2, requires_grad=True)], "sgd_momentum")


def test_sam_pickles_with_its_base():
    params = [t.clone().requires_grad_(True) for t in initial_params()]
    opt = make_sam(GSAM, params, lr=0.05, momentum=0.9, rho_min=0.01)
    run_sam(GSAM, None, regression_data(), 2, params=params, opt=opt)
    clone = copy.deepcopy(opt)
    assert clone.param_groups is clone.base_optimizer.param_groups
    assert clone.state is clone.base_optimizer.state
    assert clone.alpha == opt.alpha


# ------------------------------------------- second reference: pytorch_optimizer (tests only)
#
# Matching cases only:
# - Lion: same rule (decoupled decay scaled by lr), with and without decay.
# - AdaBelief: same rule with weight_decouple=True, rectify=False, ams_bound=False.
# - Yogi: only with initial_accumulator=0, since pytorch_optimizer also starts m at
#   initial_accumulator (ours starts m at 0); weight_decouple=False gives our L2 decay.
# - LARS: only without weight decay: its trust ratio is eta*||p|| / (||g|| + wd*||p||), ours
#   (and the brief's) eta*||p|| / ||g + wd*p||.
# - LAMB: only a 2-D-only model with beta1 = 0, no decay and a tiny eps: pytorch_optimizer
#   applies the trust ratio to 1-D tensors too, scales the step by an extra 1/(1 - beta1^t)
#   after the ratio, leaves v without bias correction, clamps ||p|| at 10 and puts eps in the
#   ratio's denominator; these all cancel or vanish only in that setting.
# - SAM: same rule (SGD-momentum base), plain and adaptive.
# - GSAM: its interface differs (a base optimizer instance, a model, a rho scheduler, a closure
#   returning (outputs, loss) that it also calls at p itself) but the rule is the same.
# pytorch_optimizer reduces global norms in float32, hence the looser tolerance for SAM/GSAM.


def _po():
    po = pytest.importorskip("pytorch_optimizer")
    from importlib.metadata import version

    if int(version("pytorch_optimizer").split(".")[0]) < 4:
        pytest.skip("the flags that make the rules match are those of pytorch_optimizer 4.x")
    return po


PO_CASES = {
    "lion": lambda po: (Lion, dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1),
                        po.Lion, dict(weight_decouple=True, fixed_decay=False)),
    "lion_no_wd": lambda po: (Lion, dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0),
                              po.Lion, {}),
    "adabelief": lambda po: (AdaBelief, dict(lr=1e-2, eps=1e-16, weight_decay=0.1),
                             po.AdaBelief, dict(weight_decouple=True, rectify=False,
                                                ams_bound=False)),
    "yogi": lambda po: (Yogi, dict(lr=1e-2, initial_accumulator=0.0, weight_decay=0.1),
                        po.Yogi, dict(weight_decouple=False)),
    "lars_no_wd": lambda po: (LARS, dict(lr=0.5, momentum=0.9, trust_coefficient=0.02),
                              po.LARS, dict(dampening=0.0, nesterov=False)),
    "lamb_2d_beta1_0": lambda po: (LAMB, dict(lr=1e-2, betas=(0.0, 0.999), eps=1e-14,
                                              weight_decay=0.0),
                                   po.Lamb, dict(weight_decouple=False)),
}


@pytest.mark.parametrize("case", list(PO_CASES))
def test_matches_pytorch_optimizer(case):
    po = _po()
    ours_cls, kwargs, po_cls, po_extra = PO_CASES[case](po)
    init = initial_params()
    if case.startswith("lamb"):
        init = [init[0], torch.randn(3, 2, dtype=DT)]
    grads = grad_sequence(init)
    ours, _ = run_optimizer(ours_cls, kwargs, init, grads, foreach=True)
    theirs, _ = run_optimizer(po_cls, {**kwargs, **po_extra}, init, grads)
    assert_all_close(ours, theirs)


@pytest.mark.parametrize("adaptive", [False, True], ids=["sam", "asam"])
def test_sam_matches_pytorch_optimizer(adaptive):
    po = _po()
    init, data = initial_params(), regression_data()
    kwargs = dict(rho=0.5 if adaptive else 0.1, adaptive=adaptive, lr=0.05, momentum=0.9,
                  weight_decay=0.01)
    ours, _, _ = run_sam(SAM, init, data, STEPS, opt_kwargs=kwargs)
    params = [t.clone().requires_grad_(True) for t in init]
    theirs, _, _ = run_sam(SAM, init, data, STEPS, params=params,
                           opt=po.SAM(params, torch.optim.SGD, **kwargs))
    assert_all_close([p.detach() for p in ours], [p.detach() for p in theirs], rtol=1e-5)


def test_gsam_matches_pytorch_optimizer():
    po = _po()
    init, data = initial_params(), regression_data()
    base = dict(lr=0.05, momentum=0.9, weight_decay=0.01)
    ours, _, _ = run_sam(GSAM, init, data, STEPS, opt_kwargs=dict(rho=0.1, alpha=0.3, **base))

    model = torch.nn.Module()
    model.w, model.b = (torch.nn.Parameter(t.clone()) for t in init)
    params = [model.w, model.b]

    class ConstantRho:
        def step(self):
            return 0.1

    base_opt = torch.optim.SGD(params, **base)
    opt = po.GSAM(params, base_opt, model=model, rho_scheduler=ConstantRho(), alpha=0.3)

    def closure():
        base_opt.zero_grad()
        with torch.enable_grad():
            loss = regression_loss(params, data)
        loss.backward()
        return None, loss.detach()

    for _ in range(STEPS):
        opt.step(closure)
    assert_all_close([p.detach() for p in ours], [p.detach() for p in params], rtol=1e-5)
