"""``grad``: the gradient of a scalar f with respect to a variable, in the variable's shape.

For a variable drawn symmetric, the gradient is reported in the identity's ``convention``
(entrywise, frobenius or free), for autograd and finite differences alike.

For a complex variable Z = X + iY (f real), the gradient is read in one of the Wirtinger
conventions (docs/format.md, "Complex variables"): ``conjugate-wirtinger`` df/dZ̄ =
(df/dX + i df/dY)/2 (the default: the Matrix Cookbook's and Hjørungnes' choice, in which the
gradient of tr(Z^H A Z) is A Z), ``wirtinger`` df/dZ = conj(df/dZ̄) for a real f, and
``pytorch`` 2 df/dZ̄ = df/dX + i df/dY, what torch's ``.grad`` holds for a complex leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matgrad.claims.base import FIRST_STEP, FirstOrder
from matgrad.lang import domains
from matgrad.lang.batch import fill_like
from matgrad.lang.domains import DOMAINS
from matgrad.lang.functions import Shape, numel

CONVENTIONS = ("entrywise", "frobenius", "free")
COMPLEX_CONVENTIONS = ("conjugate-wirtinger", "wirtinger", "pytorch")
DEFAULT_COMPLEX = "conjugate-wirtinger"
PASSES = 5  # all gradients of an identity come from one backward pass, about five over f


def apply_convention(torch: Any, g: Any, convention: str) -> Any:
    """An entrywise gradient [T, n, n] of a symmetric variable, in ``convention``."""
    gt = g.transpose(-1, -2)
    if convention == "frobenius":
        return 0.5 * (g + gt)
    if convention == "free":
        return g + gt - torch.diag_embed(torch.diagonal(g, dim1=-2, dim2=-1))
    return g


def _symmetric(ident: Any, var: str) -> bool:
    return DOMAINS[ident.vars[var].domain].symmetric


def _complex(ident: Any, var: str) -> bool:
    return DOMAINS[ident.vars[var].domain].complex


def complex_convention(ident: Any) -> str:
    """The Wirtinger convention of the identity's complex variables."""
    return ident.convention if ident.convention in COMPLEX_CONVENTIONS else DEFAULT_COMPLEX


def wirtinger(g: Any, convention: str) -> Any:
    """torch's gradient ``g`` = df/dX + i df/dY of a real f (for a complex leaf) in
    ``convention``."""
    if convention == "pytorch":
        return g
    if convention == "wirtinger":
        return g.conj() / 2
    return g / 2


def unwirtinger(c: Any, convention: str) -> Any:
    """The inverse of :func:`wirtinger`: a gradient ``c`` in ``convention`` as torch's
    df/dX + i df/dY, the G with which f changes by re <G, dZ> along a complex dZ."""
    if convention == "pytorch":
        return c
    if convention == "wirtinger":
        return 2 * c.conj()
    return 2 * c


class Grad(FirstOrder):
    name = "grad"
    noun = "gradient"
    layout = "the shape of the variable: entry (i, j) is d f / d VAR[i, j]"
    symbol = "∂f/∂{var}"
    symbol_mathml = (
        "<mfrac><mrow><mo>∂</mo><mi>f</mi></mrow><mrow><mo>∂</mo>{var}</mrow></mfrac>"
    )
    needs_scalar_f = True
    joint_gradient = True
    complex_ok = True
    fd_complex_factor = 2  # a complex entry is stepped along its real and imaginary parts
    shared_passes = PASSES
    new_help = "A gradient claim (default: X)."
    template_var = "X"
    template_body = """\
  $key: {shape: [$dim, $dim]}
  $other: {shape: [$dim, $dim]}
f: "tr($other @ $var)"  # a scalar (quote expressions)
grad:  # d f / d $var, with the shape of $var: entry (i, j) is d f / d $var[i, j]
  $key: "$other.T"
"""
    template_title = "Gradient of tr($other $var) with respect to $var"
    template_latex = r"\frac{\partial}{\partial $var}\operatorname{tr}($other$var) = $other^T"

    def expected_shape(self, var_shape: Shape, f_shape: Shape) -> Shape:
        return var_shape

    def shape_note(self, var: str) -> str:
        return f" (the shape of {var})"

    def truth(self, torch: Any, run: Any, var: str, first_pass: dict[str, Any]) -> Any:
        g = first_pass[var] if var in first_pass else run.gradients([var])[1][var]
        ident = run.c.identity
        if _complex(ident, var):
            return wirtinger(g, complex_convention(ident))
        if _symmetric(ident, var) and g.dim() == 3:
            g = apply_convention(torch, g, ident.convention)
        return g

    def convention(self, ident: Any, var: str, truth: Any) -> str | None:
        if _complex(ident, var):
            return complex_convention(ident)
        return ident.convention if _symmetric(ident, var) and truth.dim() == 3 else None

    def converter(self, torch: Any, ident: Any, var: str) -> Callable[[Any], Any] | None:
        if _complex(ident, var):  # finite differences give df/dX + i df/dY, as autograd
            convention = complex_convention(ident)
            return lambda g: wirtinger(g, convention)
        if not _symmetric(ident, var):
            return None
        return lambda g: apply_convention(torch, g, ident.convention) if g.dim() == 3 else g

    def alternatives(self, torch: Any, run: Any, var: str, truth: Any) -> dict[str, Any]:
        ident = run.c.identity
        if _complex(ident, var):
            raw = run.gradients([var])[1][var].detach()
            own = complex_convention(ident)
            return {c: wirtinger(raw, c) for c in COMPLEX_CONVENTIONS if c != own}
        if not (_symmetric(ident, var) and truth.dim() == 3):
            return {}
        raw = run.gradients([var])[1][var].detach()
        return {
            c: apply_convention(torch, raw, c) for c in CONVENTIONS if c != ident.convention
        }

    # -- witnesses: the entrywise central difference (f(x + h e_i) - f(x - h e_i)) / 2h

    def fd_points(self, entries: int) -> int:
        return 2 * entries

    def fd_estimate(self, torch: Any, ev: Any, var: str, scale: float) -> tuple[Any, Any, Any]:
        x = ev.x[var]
        t, shape = x.shape[0], x.shape[1:]
        if x.is_complex():
            return _fd_complex(torch, ev, var, scale)
        flat = x.reshape(t, numel(tuple(shape)))
        g, slack, change = _fd_entrywise(torch, ev, var, flat, flat, 1.0, scale)
        return g.reshape(t, *shape), slack.reshape(t, *shape), change.reshape(t, *shape)

    def taylor_draw(self, torch: Any, ev: Any, var: str, gen: Any, convention: str | None) -> Any:
        # An entrywise gradient is about every entry: a free direction, whatever the
        # identity's `directions`. The other conventions pair with symmetric directions.
        if ev.x[var].is_complex():  # a complex direction, free in every entry
            domain = ev.c.identity.vars[var].domain
            return domains.direction(torch, domain, ev.x_cpu[var], gen, False).to(ev.x[var].device)
        d = super().taylor_draw(torch, ev, var, gen, convention)
        if convention not in (None, "entrywise"):
            d = 0.5 * (d + d.transpose(-1, -2))
        return d

    def taylor_remainder(
        self, torch: Any, ev: Any, claim: Any, bound: Any, convention: str | None,
        vals: Any, f0: Any, hs: Any, v: Any, u: Any | None,
    ) -> tuple[Any, Any, Any, Any]:
        # r(h) = |f(x + hv) - f(x) - h <claim, v>|
        x = ev.x[claim.var]
        t = x.shape[0]
        c = fill_like(ev.claim(claim, bound), x)
        if convention == "free":
            c = torch.triu(c)
        if x.is_complex():
            # f real, Z complex: f changes by re <G, v> = re sum(conj(G) v), G = df/dX + i df/dY
            c = unwirtinger(c, complex_convention(ev.c.identity)).conj()
            lin = (c * v).real.reshape(t, -1).sum(dim=1).reshape(1, t, 1)
        else:
            lin = (c * v).reshape(t, -1).sum(dim=1).reshape(1, t, 1)
        rem = vals[0] - f0 - hs.unsqueeze(-1) * lin
        pred = hs.unsqueeze(-1) * lin
        terms = vals[0].abs() + f0.abs() + pred.abs()
        size = hs.unsqueeze(-1) * (c.abs() * v.abs()).reshape(t, -1).sum(dim=1).reshape(1, t, 1)
        return rem, terms, pred, size

    def passes(self, var_shape: Shape, f_shape: Shape) -> int:
        return 0  # all in shared_passes


def _fd_entrywise(
    torch: Any, ev: Any, var: str, flat: Any, part: Any, unit: complex, scale: float
) -> tuple[Any, Any, Any]:
    """The central difference (f(x + h u e_i) - f(x - h u e_i)) / 2h of every entry i, with
    its rounding-error estimate and the change of f over the step, each [T, n]: ``flat`` is
    x as [T, n], ``part`` the real part that the step ``unit`` (1, or 1j for a complex x)
    moves, from which the steps are made exact in floating point."""
    t, n = flat.shape
    h = scale * FIRST_STEP * flat.abs().clamp(min=1.0)
    # Steps that are exact in floating point: (x + h) - x, in the part that moves.
    hp = (part + h) - part
    hm = part - (part - h)

    def points(start: int, stop: int) -> Any:
        rows = torch.arange(start, stop, device=flat.device)
        onehot = torch.nn.functional.one_hot(rows // 2, n).to(flat.dtype)  # [k, n]
        plus = (rows % 2 == 0).reshape(-1, 1, 1)
        step = torch.where(plus, hp.unsqueeze(0), -hm.unsqueeze(0))  # [k, T, n]
        p = flat.unsqueeze(0) + onehot.unsqueeze(1) * (step * unit if unit != 1 else step)
        return p.reshape(stop - start, t, *ev.x[var].shape[1:])

    vals = ev.f_along(var, 2 * n, points).reshape(n, 2, t)  # [n, +/-, T]
    fp, fm = vals[:, 0, :].T, vals[:, 1, :].T  # [T, n]
    g = (fp - fm) / (hp + hm)
    slack = (ev.rounding(var, fp) + ev.rounding(var, fm)) / (hp + hm)
    f0 = ev.f().reshape(t, 1)
    change = torch.maximum((fp - f0).abs(), (fm - f0).abs()) / torch.minimum(hp, hm)
    return g, slack, change


def _fd_complex(torch: Any, ev: Any, var: str, scale: float) -> tuple[Any, Any, Any]:
    """For a complex variable Z = X + iY: df/dX + i df/dY (torch's gradient, which the
    converter puts in the identity's convention) by central differences along the real and
    the imaginary part of every entry. The error estimate and the change of f are the moduli
    of the two parts' (real: the converter scales them as it scales the value)."""
    x = ev.x[var]
    t, shape = x.shape[0], x.shape[1:]
    flat = x.reshape(t, numel(tuple(shape)))
    g_re, slack_re, change_re = _fd_entrywise(torch, ev, var, flat, flat.real, 1.0, scale)
    g_im, slack_im, change_im = _fd_entrywise(torch, ev, var, flat, flat.imag, 1j, scale)
    g = torch.complex(g_re, g_im)
    slack = torch.hypot(slack_re, slack_im)
    change = torch.hypot(change_re, change_im)
    return g.reshape(t, *shape), slack.reshape(t, *shape), change.reshape(t, *shape)


KIND = Grad()
