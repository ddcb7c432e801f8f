"""``jacobian``: the matrix d vec f / d (vec X)^T of f (any shape) with respect to a variable X,
in the vec layout of Magnus and Neudecker: vec stacks the columns, so the claim is
[numel(f), numel(X)] and entry (i, j) is d (vec f)_i / d (vec X)_j. For a vector f and a
vector x it is the usual m x n Jacobian; d vec(AXB) = (B^T kron A) d vec X."""

from __future__ import annotations

from typing import Any

from matgrad.claims.base import (
    FIRST_STEP,
    FirstOrder,
    row_major,
    vec,
    vec_matrix,
)
from matgrad.lang.batch import fill_like
from matgrad.lang.functions import Shape, fmt_shape, numel

PASSES = 2  # the forward pass, and per entry of f one backward pass over it


def _flat(shape: Shape) -> bool:
    """Whether column stacking and row-by-row flattening agree for ``shape`` (at most one
    axis longer than 1)."""
    return sum(s > 1 for s in shape) < 2


class Jacobian(FirstOrder):
    name = "jacobian"
    noun = "Jacobian"
    layout = (
        "[numel(f), numel(VAR)]: d vec f / d (vec VAR)^T, vec stacking the columns "
        "(Magnus-Neudecker); entry (i, j) is d (vec f)_i / d (vec VAR)_j"
    )
    symbol = "∂vec f/∂(vec {var})ᵀ"
    symbol_mathml = (
        '<mfrac><mrow><mo>∂</mo><mi mathvariant="normal">vec</mi><mi>f</mi></mrow>'
        '<mrow><mo>∂</mo><msup><mrow><mo>(</mo><mi mathvariant="normal">vec</mi>{var}<mo>)</mo>'
        '</mrow><mi mathvariant="normal">T</mi></msup></mrow></mfrac>'
    )
    needs_scalar_f = False
    new_help = "A Jacobian claim, d vec f / d (vec VAR)^T (vec stacks columns)."
    template_var = "X"
    template_body = """\
  $key: {shape: [$dim, $dim]}
  $other: {shape: [$dim, $dim]}
f: "$other @ $var"  # any shape
jacobian:  # d vec f / d (vec $var)^T: [numel(f), numel($var)], vec stacks the columns
  $key: "kron(eye($dim), $other)"
"""
    template_title = "Jacobian of $other $var with respect to $var"
    template_latex = (
        r"\frac{\partial \operatorname{vec}($other$var)}{\partial \operatorname{vec}($var)^T}"
        r" = I \otimes $other"
    )

    def expected_shape(self, var_shape: Shape, f_shape: Shape) -> Shape:
        return (numel(f_shape), numel(var_shape))

    def shape_note(self, var: str) -> str:
        return f" ([numel(f), numel({var})], d vec f / d (vec {var})^T)"

    def layout_note(self, var: str, var_shape: Shape, f_shape: Shape) -> str:
        m, n = self.expected_shape(var_shape, f_shape)
        return (
            f" (a jacobian is d vec f / d (vec {var})^T, [{m}, {n}], vec stacking the columns)"
        )

    def shape_hint(self, var: str, claimed: Shape, expected: Shape) -> str | None:
        if tuple(reversed(claimed)) == expected or (
            len(claimed) == 2 and sorted(claimed) == sorted(expected)
        ):
            return (
                f"transposed layout: the claim is {fmt_shape(claimed)}, the shape of "
                f"d (vec f)^T / d vec {var} (the gradient or denominator layout); a jacobian is "
                f"{fmt_shape(expected)}, d vec f / d (vec {var})^T (numerator layout): "
                f"transpose it"
            )
        return None

    def layouts(
        self, var: str, var_shape: Shape, f_shape: Shape, truth: Any
    ) -> list[tuple[str, Any]]:
        out = []
        m, n = self.expected_shape(var_shape, f_shape)
        if m == n and m > 1:
            out.append((
                f"transposed layout: the claim is d (vec f)^T / d vec {var} (the gradient or "
                f"denominator layout); a jacobian is d vec f / d (vec {var})^T (numerator "
                f"layout): transpose it",
                truth.transpose(-1, -2),
            ))
        if not (_flat(var_shape) and _flat(f_shape)):
            out.append((
                f"row-major vec layout: the claim flattens f and {var} row by row (torch's "
                f"reshape, NumPy's ravel); a jacobian uses vec, which stacks the columns "
                f"(Magnus-Neudecker): swap the factors of each kron",
                row_major(truth, f_shape, var_shape),
            ))
        return out

    def truth(self, torch: Any, run: Any, var: str, first_pass: dict[str, Any]) -> Any:
        """One backward pass per entry of f, batched over the trials: row i is the gradient
        of (vec f)_i, summed over the trials (each trial's f reads only its own variables)."""
        leaves, env = run.leaves([var])
        x = leaves[var]
        t = run.trials
        out = run.f(env)
        m, n = numel(tuple(out.shape[1:])), numel(tuple(x.shape[1:]))
        if not out.requires_grad:
            return torch.zeros(t, m, n, dtype=x.dtype, device=x.device)
        rows = vec(out)  # [T, m]
        jrows = []
        for i in range(m):
            (g,) = torch.autograd.grad(rows[:, i].sum(), [x], retain_graph=True, allow_unused=True)
            jrows.append(torch.zeros(t, n, dtype=x.dtype, device=x.device) if g is None else vec(g))
        return torch.stack(jrows, dim=1)

    # -- witnesses: per entry j of the variable, the central difference of the whole of f
    # (f(x + h e_j) - f(x - h e_j)) / 2h, column j of the Jacobian

    def fd_points(self, entries: int) -> int:
        return 2 * entries

    def fd_estimate(self, torch: Any, ev: Any, var: str, scale: float) -> tuple[Any, Any, Any]:
        x = ev.x[var]
        t, shape = x.shape[0], tuple(x.shape[1:])
        n = numel(shape)
        f_shape = tuple(ev.c.f.shape)
        flat = x.reshape(t, n)
        h = scale * FIRST_STEP * flat.abs().clamp(min=1.0)
        hp = (flat + h) - flat  # steps that are exact in floating point
        hm = flat - (flat - h)

        def points(start: int, stop: int) -> Any:
            rows = torch.arange(start, stop, device=x.device)
            onehot = torch.nn.functional.one_hot(rows // 2, n).to(torch.float64)  # [k, n]
            plus = (rows % 2 == 0).reshape(-1, 1, 1)
            step = torch.where(plus, hp.unsqueeze(0), -hm.unsqueeze(0))  # [k, T, n]
            p = flat.unsqueeze(0) + onehot.unsqueeze(1) * step
            return p.reshape(stop - start, t, *shape)

        vals = ev.f_along(var, 2 * n, points).reshape(n, 2, t, -1)  # [n, +/-, T, m]
        fp, fm = vals[:, 0].permute(1, 2, 0), vals[:, 1].permute(1, 2, 0)  # [T, m, n]
        den = (hp + hm).unsqueeze(1)  # [T, 1, n]
        jac = (fp - fm) / den
        slack = (ev.rounding(var, fp) + ev.rounding(var, fm)) / den
        f0 = ev.f().reshape(t, -1, 1)
        change = torch.maximum((fp - f0).abs(), (fm - f0).abs()) / torch.minimum(
            hp, hm
        ).unsqueeze(1)
        # rows and columns in torch's (row-major) order: into the vec layout
        return tuple(
            vec_matrix(a.reshape(t, *f_shape, *shape), f_shape, shape)
            for a in (jac, slack, change)
        )

    def taylor_remainder(
        self, torch: Any, ev: Any, claim: Any, bound: Any, convention: str | None,
        vals: Any, f0: Any, hs: Any, v: Any, u: Any | None,
    ) -> tuple[Any, Any, Any, Any]:
        # r(h) = |vec f(x + hv) - vec f(x) - h J vec v|
        x = ev.x[claim.var]
        t = x.shape[0]
        f_shape = tuple(ev.c.f.shape)
        m, n = numel(f_shape), numel(tuple(x.shape[1:]))
        jac = fill_like(ev.claim(claim, bound), torch.empty(t, m, n, device=x.device))
        lin = torch.einsum("tij,tj->ti", jac.to(torch.float64), vec(v)).reshape(1, t, m)

        def vec_f(a: Any) -> Any:  # [..., T, m] in torch's order -> the vec order
            lead = a.shape[:-2]
            flat = a.reshape(-1, *f_shape) if f_shape else a.reshape(-1)
            return vec(flat).reshape(*lead, t, m)

        moved, at = vec_f(vals[0]), vec_f(f0)
        pred = hs.unsqueeze(-1) * lin
        rem = moved - at - pred
        terms = moved.abs() + at.abs() + pred.abs()
        absolute = torch.einsum("tij,tj->ti", jac.to(torch.float64).abs(), vec(v).abs())
        size = hs.unsqueeze(-1) * absolute.reshape(1, t, m)
        return rem, terms, pred, size

    def passes(self, var_shape: Shape, f_shape: Shape) -> int:
        return PASSES + 2 * numel(f_shape)


KIND = Jacobian()
