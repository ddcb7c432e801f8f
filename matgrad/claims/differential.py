"""``differential``: the change of f (any shape) along a random direction dVAR of a variable,
the Jacobian-vector product J dVAR, in the shape of f. The claim's expression may use dVAR."""

from __future__ import annotations

from typing import Any

from matgrad.claims.base import FIRST_STEP, FirstOrder
from matgrad.lang import domains
from matgrad.lang.batch import rows
from matgrad.lang.functions import Shape

PASSES = 9  # reverse over reverse: about nine passes over f per claim


class Differential(FirstOrder):
    name = "differential"
    noun = "differential"
    layout = "the shape of f: the change of f along the direction dVAR"
    symbol = "df"
    symbol_mathml = '<mrow><mi mathvariant="normal">d</mi><mi>f</mi></mrow>'
    needs_scalar_f = False
    uses_direction = True
    complex_ok = True
    new_help = "A differential claim."
    template_var = "X"
    template_body = """\
  $key: {shape: [$dim, $dim], domain: invertible}  # well-conditioned, so inv($var) is safe
f: "inv($var)"  # any shape: a differential claim does not need a scalar f
differential:  # the change of f along a random direction d$var (the shape of $var)
  $key: "-inv($var) @ d$var @ inv($var)"
"""
    template_title = "Differential of the inverse of $var"
    template_latex = r"d($var^{-1}) = -$var^{-1}(d$var)$var^{-1}"

    def expected_shape(self, var_shape: Shape, f_shape: Shape) -> Shape:
        return f_shape

    def truth(self, torch: Any, run: Any, var: str, first_pass: dict[str, Any]) -> Any:
        """Directional derivative of f along d<var>: the Jacobian-vector product J v.

        Computed as d/du <u, J^T u>|v with two reverse passes: in torch 2.x the first
        forward-mode (dual tensor) product imports torch._dynamo, a one-off cost of ~2.5 s
        that would dominate a quick check. Forward mode remains the fallback for an op
        whose backward is not itself differentiable, and the way when f calls a user function
        that defines its own forward-mode derivative (``jvp``): that is then what is checked.
        """
        if any(fn.forward_mode for fn in run.c.user_functions):
            # a user function with its own jvp: forward mode is the implementation under test
            return _jvp_by_forward_mode(torch, run, var)
        try:
            return _jvp_by_double_backward(torch, run, var)
        except (RuntimeError, NotImplementedError):
            return _jvp_by_forward_mode(torch, run, var)

    # -- witnesses: the central difference of f along dVAR

    def fd_points(self, entries: int) -> int:
        return 2

    def fd_estimate(self, torch: Any, ev: Any, var: str, scale: float) -> tuple[Any, Any, Any]:
        x, d = ev.x[var], ev.d[var]
        t = x.shape[0]
        xmax = x.reshape(t, -1).abs().amax(dim=1).clamp(min=1.0)
        dmax = d.reshape(t, -1).abs().amax(dim=1).clamp(min=1e-300)
        h = rows(scale * FIRST_STEP * xmax / dmax, x)

        def points(start: int, stop: int) -> Any:
            both = torch.stack([x + h * d, x - h * d])
            return both[start:stop]

        vals = ev.f_along(var, 2, points)
        hf = rows(h.reshape(t), vals[0])
        out = (vals[0] - vals[1]) / (2 * hf)
        slack = (ev.rounding(var, vals[0]) + ev.rounding(var, vals[1])) / (2 * hf)
        f0 = ev.f()
        change = torch.maximum((vals[0] - f0).abs(), (vals[1] - f0).abs()) / hf
        return out, slack, change

    def taylor_draw(self, torch: Any, ev: Any, var: str, gen: Any, convention: str | None) -> Any:
        # along the identity's own kind of direction
        ident = ev.c.identity
        tangent = ident.directions == "tangent"
        d = domains.direction(torch, ident.vars[var].domain, ev.x_cpu[var], gen, tangent)
        return d.to(ev.x[var].device)

    def taylor_directions(self, ev: Any, var: str, k: int, draw: Any) -> tuple[Any, Any | None]:
        return (ev.d[var] if k == 0 else draw()), None

    def taylor_remainder(
        self, torch: Any, ev: Any, claim: Any, bound: Any, convention: str | None,
        vals: Any, f0: Any, hs: Any, v: Any, u: Any | None,
    ) -> tuple[Any, Any, Any, Any]:
        # r(h) = |f(x + hv) - f(x) - h df[v]|
        t = ev.x[claim.var].shape[0]
        lin = ev.claim(claim, bound, v).reshape(1, t, -1)
        rem = vals[0] - f0 - hs.unsqueeze(-1) * lin
        pred = hs.unsqueeze(-1) * lin
        terms = vals[0].abs() + f0.abs() + pred.abs()
        return rem, terms, pred, pred.abs()

    def passes(self, var_shape: Shape, f_shape: Shape) -> int:
        return PASSES


def _jvp_by_forward_mode(torch: Any, run: Any, var: str) -> Any:
    fwad = torch.autograd.forward_ad
    with fwad.dual_level():
        xs = dict(run.x)
        xs[var] = fwad.make_dual(run.x[var], run.d[var])
        out = run.f_of(xs)
        tangent = fwad.unpack_dual(out).tangent
    return torch.zeros_like(out) if tangent is None else tangent


def _jvp_by_double_backward(torch: Any, run: Any, var: str) -> Any:
    leaves, env = run.leaves([var])
    out = run.f(env)
    if not out.requires_grad:
        return torch.zeros_like(out)
    if out.is_complex() or leaves[var].is_complex():
        return _complex_jvp(torch, out, leaves[var], run.d[var])
    # Scalar outputs only: torch.autograd.grad with explicit grad_outputs imports
    # torch.fx's symbolic shapes (and sympy) on first use, about a second.
    u = torch.zeros_like(out, requires_grad=True)
    (g,) = torch.autograd.grad((out * u).sum(), [leaves[var]], create_graph=True, allow_unused=True)
    if g is None or not g.requires_grad:
        return torch.zeros_like(out)
    (jv,) = torch.autograd.grad((g * run.d[var]).sum(), [u], allow_unused=True)
    return torch.zeros_like(out) if jv is None else jv


def _complex_jvp(torch: Any, out: Any, x: Any, d: Any) -> Any:
    """The change of f along d (J d, f or x complex), by the same two reverse passes.

    f's real and imaginary parts are paired with real multipliers u, v, and
    L = <u, re f> + <v, im f> is real. torch's gradient of a real L with respect to a complex
    x is G = dL/dre x + i dL/dim x, so the real inner product re(sum(conj(G) d)) is the
    directional derivative of L along d, linear in (u, v); its gradients with respect to u and
    v are the real and imaginary parts of J d. Holomorphic or not (conj(x) in f), the same."""
    parts = (out.real, out.imag) if out.is_complex() else (out,)
    us = [torch.zeros_like(p, requires_grad=True) for p in parts]
    loss = sum((p * u).sum() for p, u in zip(parts, us, strict=True))
    (g,) = torch.autograd.grad(loss, [x], create_graph=True, allow_unused=True)
    if g is None or not g.requires_grad:
        return torch.zeros_like(out)
    along = (g.conj() * d).real.sum() if g.is_complex() else (g * d).sum()
    jv = torch.autograd.grad(along, us, allow_unused=True)
    re, *im = (torch.zeros_like(p) if j is None else j for p, j in zip(parts, jv, strict=True))
    return torch.complex(re, im[0]) if im else re


KIND = Differential()
