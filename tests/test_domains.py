from __future__ import annotations

import pytest
import torch

from matgrad.lang import domains

T = 50


def draw(domain: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return domains.sample(torch, domain, shape, T, torch.Generator().manual_seed(seed))


def eye(n: int) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64)


def unscaled(x: torch.Tensor) -> torch.Tensor:
    """A batch of draws divided by each trial's scale (domains.SCALES, cycled)."""
    s = domains.trial_scales(torch, x.shape[0])
    return x / s.reshape(-1, *([1] * (x.dim() - 1)))


def test_every_domain_has_a_sampler() -> None:
    for name, dom in domains.DOMAINS.items():
        shape = (4, 4) if dom.fits((4, 4)) else (4,)
        x = draw(name, shape)
        assert x.shape == (T, *shape)
        assert x.dtype == (torch.complex128 if dom.complex else torch.float64)
        assert torch.isfinite(x).all()


def test_positive() -> None:
    x = unscaled(draw("positive", (3, 2)))
    assert (x >= domains.LO).all() and (x <= domains.HI).all()


def test_symmetric_is_symmetric_and_general() -> None:
    x = draw("symmetric", (4, 4))
    assert torch.allclose(x, x.mT)
    assert (torch.linalg.eigvalsh(x) < 0).any()  # not secretly positive definite


def test_spd_spectrum() -> None:
    x = unscaled(draw("spd", (5, 5)))
    assert torch.allclose(x, x.mT)
    ev = torch.linalg.eigvalsh(x)
    assert ev.min() >= domains.LO - 1e-12 and ev.max() <= domains.HI + 1e-12


def test_invertible_is_well_conditioned_and_not_symmetric() -> None:
    x = unscaled(draw("invertible", (5, 5)))
    s = torch.linalg.svdvals(x)
    assert s.min() >= domains.LO - 1e-12 and s.max() <= domains.HI + 1e-12
    assert not torch.allclose(x, x.mT)
    assert (torch.linalg.det(x) < 0).any() and (torch.linalg.det(x) > 0).any()


def test_orthogonal() -> None:
    q = draw("orthogonal", (4, 4))
    assert torch.allclose(q.mT @ q, eye(4).expand(T, 4, 4), atol=1e-12)


def test_diagonal() -> None:
    d = unscaled(draw("diagonal", (4, 4)))
    off = d - torch.diag_embed(torch.diagonal(d, dim1=-2, dim2=-1))
    assert (off == 0).all()
    assert (torch.diagonal(d, dim1=-2, dim2=-1).abs() >= domains.LO).all()


@pytest.mark.parametrize("shape", [(6, 3), (3, 6)])
def test_fullrank(shape: tuple[int, int]) -> None:
    s = torch.linalg.svdvals(unscaled(draw("fullrank", shape)))
    assert s.shape == (T, 3)
    assert s.min() >= domains.LO - 1e-12 and s.max() <= domains.HI + 1e-12


def test_fits() -> None:
    assert domains.DOMAINS["spd"].fits((3, 3))
    assert not domains.DOMAINS["spd"].fits((3, 4))
    assert not domains.DOMAINS["orthogonal"].fits((3,))
    assert domains.DOMAINS["fullrank"].fits((3, 4))
    assert domains.DOMAINS["real"].fits(())


def test_draws_are_reproducible() -> None:
    assert torch.equal(draw("invertible", (3, 3), seed=7), draw("invertible", (3, 3), seed=7))
    assert not torch.equal(draw("invertible", (3, 3), seed=7), draw("invertible", (3, 3), seed=8))


def test_tangent_directions() -> None:
    gen = torch.Generator().manual_seed(0)
    x = draw("orthogonal", (4, 4))
    d = domains.direction(torch, "orthogonal", x, gen, tangent=True)
    skew = x.mT @ d
    assert torch.allclose(skew, -skew.mT, atol=1e-12)
    s = domains.direction(torch, "spd", draw("spd", (3, 3)), gen, tangent=True)
    assert torch.allclose(s, s.mT)
    free = domains.direction(torch, "spd", draw("spd", (3, 3)), gen, tangent=False)
    assert not torch.allclose(free, free.mT)


# ---- every domain owns every fact about itself ----------------------------------------------


def _shape(dom: domains.Domain) -> tuple[int, ...]:
    return (4, 4) if dom.fits((4, 4)) else (4,)


@pytest.mark.parametrize("name", sorted(domains.DOMAINS))
def test_every_domain_has_every_part(name: str) -> None:
    dom = domains.DOMAINS[name]
    assert dom.name == name and dom.summary and dom.shapes
    assert callable(dom.fits) and callable(dom.sample) and callable(dom.tangent)
    assert callable(dom.orthogonals)
    assert isinstance(dom.symmetric, bool) and isinstance(dom.conditioned, bool)
    assert isinstance(dom.complex, bool) and isinstance(dom.hermitian, bool)
    assert dom.symmetrized is None or callable(dom.symmetrized)
    shape = _shape(dom)
    x = draw(name, shape)
    for tangent in (False, True):
        d = domains.direction(torch, name, x, torch.Generator().manual_seed(1), tangent)
        assert d.shape == x.shape and d.dtype == x.dtype


def test_a_domain_cannot_leave_out_a_part() -> None:
    with pytest.raises(TypeError):
        domains.Domain(  # type: ignore[call-arg]
            "lower",
            "lower triangular",
            "square [n, n]",
            lambda s: True,
            sample=lambda torch, shape, t, gen: None,
            tangent=lambda d, x: d,
            symmetric=False,
            orthogonals=lambda s: (),
            symmetrized=None,
        )  # no `conditioned`


@pytest.mark.parametrize("name", sorted(domains.DOMAINS))
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3), (4,)])
def test_the_declared_draw_cost_is_what_the_sampler_draws(
    name: str, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    dom = domains.DOMAINS[name]
    if not dom.fits(shape):
        return
    sizes: list[int] = []
    real = domains._orthogonal

    def counting(torch_: object, t: int, n: int, gen: object) -> torch.Tensor:
        sizes.append(n)
        return real(torch_, t, n, gen)

    real_unitary = domains._unitary

    def counting_unitary(torch_: object, t: int, n: int, gen: object) -> torch.Tensor:
        sizes.append(n)
        return real_unitary(torch_, t, n, gen)

    monkeypatch.setattr(domains, "_orthogonal", counting)
    monkeypatch.setattr(domains, "_unitary", counting_unitary)
    draw(name, shape)
    assert sorted(sizes) == sorted(dom.orthogonals(shape))


@pytest.mark.parametrize("name", sorted(domains.DOMAINS))
def test_the_symmetric_and_conditioned_facts_hold_for_the_draws(name: str) -> None:
    dom = domains.DOMAINS[name]
    if not dom.fits((4, 4)):
        return
    x = draw(name, (4, 4))
    off = x - torch.diag_embed(torch.diagonal(x, dim1=-2, dim2=-1))
    assert dom.symmetric == (torch.allclose(x, x.mT) and bool((off != 0).any()))
    assert dom.hermitian == torch.allclose(x, x.mH)
    assert dom.complex == x.is_complex()
    s = torch.linalg.svdvals(unscaled(x) if dom.scaled else x)
    in_range = bool((s >= domains.LO - 1e-12).all() and (s <= domains.HI + 1e-12).all())
    assert dom.conditioned == in_range
    if dom.symmetrized is not None:
        y = dom.symmetrized(x)
        assert torch.allclose(y, y.mT)


def test_draws_come_at_three_scales_and_orthogonal_keeps_its_own() -> None:
    # Trial i is drawn at scale SCALES[i % 3] = 1, 0.1, 10, from the same generator stream.
    assert domains.SCALES == (1.0, 0.1, 10.0)
    x = draw("real", (200,))
    spread = x.std(dim=1)
    assert (spread[0::3] > 0.8).all() and (spread[0::3] < 1.25).all()
    assert (spread[1::3] > 0.08).all() and (spread[1::3] < 0.125).all()
    assert (spread[2::3] > 8).all() and (spread[2::3] < 12.5).all()
    p = draw("positive", (4,))
    assert torch.equal(p > 0, torch.ones_like(p, dtype=torch.bool))
    assert (p[2::3] >= 10 * domains.LO).all() and (p[1::3] <= 0.1 * domains.HI).all()
    assert not domains.DOMAINS["orthogonal"].scaled
    q = draw("orthogonal", (3, 3))
    assert torch.allclose(q.mT @ q, eye(3).expand(T, 3, 3), atol=1e-12)
    # One trial draws at the unit scale, as before scales existed.
    gen = torch.Generator().manual_seed(3)
    one = domains.sample(torch, "real", (5,), 1, gen)
    assert torch.equal(one, torch.randn((1, 5), generator=torch.Generator().manual_seed(3),
                                        dtype=torch.float64))


@pytest.mark.parametrize("name", sorted(n for n, d in domains.DOMAINS.items() if d.conditioned))
def test_conditioning_holds_at_every_scale(name: str) -> None:
    # The promise of a conditioned domain (singular values in [LO, HI] times the scale, so a
    # condition number of at most HI/LO) is scale-free, so the degeneracy guard's thresholds
    # (relative gap, condition number) see the same draws at every scale.
    x = draw(name, (4, 4))
    s = torch.linalg.svdvals(x)
    assert (s[:, 0] / s[:, -1] <= domains.HI / domains.LO + 1e-9).all()


# ---- complex domains ---------------------------------------------------------------------


def test_complex_entries_are_standard_complex_normal() -> None:
    z = unscaled(draw("complex", (400,)))
    assert z.dtype == torch.complex128
    power = (z.abs() ** 2).mean(dim=1)
    assert (power > 0.75).all() and (power < 1.25).all()
    assert abs(float((z.real * z.imag).mean())) < 0.05  # independent parts


def test_hermitian_and_hpd() -> None:
    h = draw("hermitian", (4, 4))
    assert torch.allclose(h, h.mH)
    assert (torch.linalg.eigvalsh(h) < 0).any()  # not secretly positive definite
    assert (h.imag.abs() > 0).any()
    p = unscaled(draw("hpd", (4, 4)))
    assert torch.allclose(p, p.mH)
    ev = torch.linalg.eigvalsh(p)
    assert ev.min() >= domains.LO - 1e-12 and ev.max() <= domains.HI + 1e-12


def test_unitary_and_complex_invertible() -> None:
    u = draw("unitary", (4, 4))
    eye4 = torch.eye(4, dtype=torch.complex128).expand(T, 4, 4)
    assert torch.allclose(u.mH @ u, eye4, atol=1e-12)
    assert not torch.allclose(u.imag, torch.zeros_like(u.imag))
    a = unscaled(draw("complex-invertible", (4, 4)))
    s = torch.linalg.svdvals(a)
    assert s.min() >= domains.LO - 1e-12 and s.max() <= domains.HI + 1e-12
    assert not torch.allclose(a, a.mH)


def test_complex_tangent_directions() -> None:
    gen = torch.Generator().manual_seed(0)
    u = draw("unitary", (4, 4))
    d = domains.direction(torch, "unitary", u, gen, tangent=True)
    skew = u.mH @ d
    assert torch.allclose(skew, -skew.mH, atol=1e-12)
    h = domains.direction(torch, "hermitian", draw("hermitian", (3, 3)), gen, tangent=True)
    assert h.is_complex() and torch.allclose(h, h.mH)
    free = domains.direction(torch, "complex", draw("complex", (3,)), gen, tangent=False)
    assert free.is_complex() and (free.imag != 0).all()
