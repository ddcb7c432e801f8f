"""``hessian``: the n x n matrix of second derivatives of a scalar f with respect to a variable
with n entries: a vector, or a matrix in the vec layout (columns stacked, Magnus-Neudecker),
d^2 f / (d vec X d (vec X)^T); and with a key naming two variables, ``"x, y"``, the mixed
second derivatives d^2 f / (d vec x d (vec y)^T), [numel(x), numel(y)] (:class:`MixedHessian`)."""

from __future__ import annotations

from typing import Any

from matgrad.claims.base import SECOND_STEP, ClaimKind, row_major, vec, vec_matrix
from matgrad.lang.batch import fill_like
from matgrad.lang.functions import Shape, numel

PASSES = 5  # per claim, plus PASSES_PER_ENTRY per entry of the variable
PASSES_PER_ENTRY = 4


class Hessian(ClaimKind):
    name = "hessian"
    noun = "Hessian"
    layout = (
        "n x n for a variable with n entries (a scalar for a scalar variable); for a matrix X, "
        "entry (i, j) is d^2 f / d (vec X)_i d (vec X)_j, vec stacking the columns"
    )
    symbol = "∇²_{var} f"
    symbol_mathml = '<mrow><msubsup><mo>∇</mo>{var}<mn>2</mn></msubsup><mi>f</mi></mrow>'
    symbol2 = "∂²f/∂{var}∂{var2}ᵀ"
    symbol2_mathml = (
        '<mfrac><mrow><msup><mo>∂</mo><mn>2</mn></msup><mi>f</mi></mrow>'
        '<mrow><mo>∂</mo>{var}<mo>∂</mo><msup>{var2}<mi>T</mi></msup></mrow></mfrac>'
    )
    needs_scalar_f = True
    fd_tol = 1e-4
    fd_ratio = 2.0
    taylor_order = "second"
    taylor_expected = 4.0
    taylor_pass = 3.0
    taylor_exact = "quadratic"
    new_help = "A Hessian claim (a vector)."
    template_var = "x"
    template_body = """\
  $key: {shape: [$dim, 1]}  # a column vector; [$dim] is a plain vector
  $other: {shape: [$dim, $dim]}
f: "$var.T @ $other @ $var"  # a scalar ([1, 1] counts as one)
hessian:  # the $dim x $dim matrix of second derivatives of f with respect to $var
  $key: "$other + $other.T"
"""
    template_title = "Hessian of the quadratic form $var^T $other $var"
    template_latex = (
        r"\frac{\partial^2 $var^T$other$var}{\partial $var\,\partial $var^T} = $other + $other^T"
    )

    def expected_shape(self, var_shape: Shape, f_shape: Shape) -> Shape:
        n = numel(var_shape)
        return () if var_shape == () else (n, n)

    def layout_note(self, var: str, var_shape: Shape, f_shape: Shape) -> str:
        if sum(s > 1 for s in var_shape) < 2:
            return ""
        n = numel(var_shape)
        return (
            f" (a hessian of a matrix is d^2 f / (d vec {var} d (vec {var})^T), [{n}, {n}], "
            f"vec stacking the columns)"
        )

    def layouts(
        self, var: str, var_shape: Shape, f_shape: Shape, truth: Any
    ) -> list[tuple[str, Any]]:
        if sum(s > 1 for s in var_shape) < 2:
            return []  # a vector: both flattenings agree
        return [(
            f"row-major vec layout: the claim is the Hessian with {var} flattened row by row "
            f"(torch's reshape, NumPy's ravel); a hessian claim uses vec {var}, which stacks "
            f"the columns (Magnus-Neudecker): swap the factors of each kron",
            row_major(truth, var_shape, var_shape),
        )]

    def truth_elements(self, var_shape: Shape, f_shape: Shape) -> int:
        return numel(var_shape) ** 2

    def paired(self, var2: str, shape2: Shape) -> ClaimKind | None:
        return MixedHessian(var2, shape2)

    def truth(self, torch: Any, run: Any, var: str, first_pass: dict[str, Any]) -> Any:
        leaves, env = run.leaves([var])
        x = leaves[var]
        t = run.trials
        n = numel(x.shape[1:])
        out = run.f(env).reshape(t)
        zero = torch.zeros(t, n, n, dtype=x.dtype, device=x.device)
        if not out.requires_grad:
            return zero
        (g,) = torch.autograd.grad(out.sum(), [x], create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return zero
        g = vec(g)  # [T, n], in the vec layout: columns stacked
        hrows = []
        for i in range(n):
            (h,) = torch.autograd.grad(g[:, i].sum(), [x], retain_graph=True, allow_unused=True)
            hrows.append(torch.zeros_like(g) if h is None else vec(h))
        return torch.stack(hrows, dim=1)

    # -- witnesses: the central second difference (the finite difference of the
    # finite-difference gradient):
    # (f(x+h e_i+h e_j) - f(x+h e_i-h e_j) - f(x-h e_i+h e_j) + f(x-h e_i-h e_j)) / 4h^2

    def fd_points(self, entries: int) -> int:
        return 2 * entries * entries + 1

    def fd_estimate(self, torch: Any, ev: Any, var: str, scale: float) -> tuple[Any, Any, Any]:
        x = ev.x[var]
        t, shape = x.shape[0], x.shape[1:]
        n = numel(tuple(shape))
        flat = x.reshape(t, n)
        h = scale * SECOND_STEP * flat.abs().clamp(min=1.0)  # [T, n]
        # Coefficients of the evaluation points, in units of h: 2 e_i and -2 e_i for the
        # diagonal, (+-e_i, +-e_j) for i < j.
        coefs = []
        for i in range(n):
            for s in (2.0, -2.0):
                c = [0.0] * n
                c[i] = s
                coefs.append(c)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        for i, j in pairs:
            for a, b in ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)):
                c = [0.0] * n
                c[i], c[j] = a, b
                coefs.append(c)
        coef = torch.tensor(coefs, dtype=torch.float64, device=x.device)  # [M, n]

        def points(start: int, stop: int) -> Any:
            p = flat.unsqueeze(0) + coef[start:stop].unsqueeze(1) * h.unsqueeze(0)
            return p.reshape(stop - start, t, *shape)

        vals = ev.f_along(var, coef.shape[0], points).reshape(coef.shape[0], t)  # [M, T]
        f0 = ev.f().reshape(t)

        def noise(values: Any) -> Any:
            return ev.rounding(var, values)

        hess = torch.zeros(t, n, n, dtype=torch.float64, device=x.device)
        slack = torch.zeros_like(hess)
        change = torch.zeros_like(hess)
        for i in range(n):
            fp, fm = vals[2 * i], vals[2 * i + 1]
            den = 4 * h[:, i] ** 2
            change[:, i, i] = torch.maximum((fp - f0).abs(), (fm - f0).abs()) / den
            hess[:, i, i] = (fp - 2 * f0 + fm) / den
            slack[:, i, i] = (noise(fp) + 2 * noise(f0) + noise(fm)) / den
        base = 2 * n
        for k, (i, j) in enumerate(pairs):
            pp, pm, mp, mm = (vals[base + 4 * k + q] for q in range(4))
            den = 4 * h[:, i] * h[:, j]
            hess[:, i, j] = hess[:, j, i] = (pp - pm - mp + mm) / den
            slack[:, i, j] = slack[:, j, i] = (noise(pp) + noise(pm) + noise(mp) + noise(mm)) / den
            moved = torch.stack([pp, pm, mp, mm]).sub(f0).abs().amax(dim=0)
            change[:, i, j] = change[:, j, i] = moved / den
        if shape == ():
            return hess.reshape(t), slack.reshape(t), change.reshape(t)
        # The points moved torch's (row-major) entries: into the vec layout.
        return tuple(
            vec_matrix(a.reshape(t, *shape, *shape), tuple(shape), tuple(shape))
            for a in (hess, slack, change)
        )

    def taylor_directions(self, ev: Any, var: str, k: int, draw: Any) -> tuple[Any, Any | None]:
        v = draw()
        return v, draw()

    def taylor_remainder(
        self, torch: Any, ev: Any, claim: Any, bound: Any, convention: str | None,
        vals: Any, f0: Any, hs: Any, v: Any, u: Any | None,
    ) -> tuple[Any, Any, Any, Any]:
        # With a second unit direction u, the mixed second difference
        # r(h) = |f(x+hu+hv) - f(x+hu-hv) - f(x-hu+hv) + f(x-hu-hv) - 4h^2 u^T H v|
        # (for a mixed hessian, u moves the first variable and v the second)
        assert u is not None
        t = ev.x[claim.var].shape[0]
        hess = ev.claim(claim, bound)
        vf, uf = vec(v), vec(u)  # the vec layout of the claim
        n, m = uf.shape[1], vf.shape[1]
        hess = fill_like(hess, torch.empty(t, n, m)).reshape(t, n, m)
        mixed = torch.einsum("ti,tij,tj->t", uf, hess, vf)
        q = (4 * hs**2 * mixed.unsqueeze(0)).unsqueeze(-1)
        rem = vals[0] - vals[1] - vals[2] + vals[3] - q
        terms = vals.abs().sum(dim=0) + q.abs()
        entrywise = torch.einsum("ti,tij,tj->t", uf.abs(), hess.abs(), vf.abs())
        size = (4 * hs**2 * entrywise.unsqueeze(0)).unsqueeze(-1)
        return rem, terms, q.expand_as(rem), size.expand_as(rem)

    def passes(self, var_shape: Shape, f_shape: Shape) -> int:
        return PASSES + PASSES_PER_ENTRY * numel(var_shape)


# ---- mixed second derivatives: hessian: {"x, y": ...} ----------------------------------------
# d^2 f / (d vec x d (vec y)^T): a row per entry of x and a column per entry of y, both in the
# vec layout. Not registered on its own: the YAML key is hessian's, and Hessian.paired makes
# one for the second variable a claim names (matgrad.claims.kind_of).

MOVES = ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0))  # signs of the x and y steps


class MixedHessian(Hessian):
    layout = (
        "[n, m] for variables x with n entries and y with m: entry (i, j) is "
        "d^2 f / d (vec x)_i d (vec y)_j, vec stacking the columns"
    )

    def __init__(self, var2: str, shape2: Shape) -> None:
        self.var2 = var2
        self.shape2 = shape2

    def _orientation(self, var: str) -> str:
        return f"d^2 f / (d vec {var} d (vec {self.var2})^T)"

    def expected_shape(self, var_shape: Shape, f_shape: Shape) -> Shape:
        if var_shape == () and self.shape2 == ():
            return ()
        return (numel(var_shape), numel(self.shape2))

    def truth_elements(self, var_shape: Shape, f_shape: Shape) -> int:
        return numel(var_shape) * numel(self.shape2)

    def paired(self, var2: str, shape2: Shape) -> None:
        return None  # two variables at most

    def layout_note(self, var: str, var_shape: Shape, f_shape: Shape) -> str:
        n, m = numel(var_shape), numel(self.shape2)
        return (
            f" (a hessian of {var}, {self.var2} is {self._orientation(var)}, [{n}, {m}]: a row "
            f"per entry of {var}, a column per entry of {self.var2}, vec stacking the columns)"
        )

    def _transposed_hint(self, var: str) -> str:
        return (
            f"transposed orientation: the claim is d^2 f / (d vec {self.var2} d (vec {var})^T), "
            f"a row per entry of {self.var2}; a hessian claim keyed \"{var}, {self.var2}\" is "
            f"{self._orientation(var)}, a row per entry of {var}: transpose the claim (.T) or "
            f"key it \"{self.var2}, {var}\""
        )

    def shape_hint(self, var: str, claimed: Shape, expected: Shape) -> str | None:
        if len(expected) == 2 and tuple(claimed) == (expected[1], expected[0]):
            return self._transposed_hint(var)
        return super().shape_hint(var, claimed, expected)

    def layouts(
        self, var: str, var_shape: Shape, f_shape: Shape, truth: Any
    ) -> list[tuple[str, Any]]:
        if truth.dim() != 3:
            return []  # two scalars: one entry, one layout
        out = []
        n, m = truth.shape[1], truth.shape[2]
        if n == m and n > 1:  # otherwise the shape itself says so (shape_hint)
            out.append((self._transposed_hint(var), truth.transpose(1, 2)))
        if any(sum(s > 1 for s in shape) > 1 for shape in (var_shape, self.shape2)):
            out.append((
                f"row-major vec layout: the claim is the mixed Hessian with {var} and "
                f"{self.var2} flattened row by row (torch's reshape, NumPy's ravel); a hessian "
                f"claim uses vec, which stacks the columns (Magnus-Neudecker): swap the factors "
                f"of each kron",
                row_major(truth, var_shape, self.shape2),
            ))
        return out

    def truth(self, torch: Any, run: Any, var: str, first_pass: dict[str, Any]) -> Any:
        leaves, env = run.leaves([var, self.var2])
        x, y = leaves[var], leaves[self.var2]
        t = run.trials
        n, m = numel(tuple(x.shape[1:])), numel(tuple(y.shape[1:]))
        out = run.f(env).reshape(t)
        zero = torch.zeros(t, n, m, dtype=x.dtype, device=x.device)
        if not out.requires_grad:
            return zero
        (g,) = torch.autograd.grad(out.sum(), [x], create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return zero
        g = vec(g)  # [T, n], in the vec layout
        rows = []
        for i in range(n):
            (h,) = torch.autograd.grad(g[:, i].sum(), [y], retain_graph=True, allow_unused=True)
            rows.append(torch.zeros(t, m, dtype=x.dtype, device=x.device) if h is None else vec(h))
        return torch.stack(rows, dim=1)

    # -- witnesses: the central mixed difference over each pair (i of x, j of y):
    # (f(x+h e_i, y+k e_j) - f(x+h e_i, y-k e_j) - f(x-h e_i, y+k e_j) + f(x-h e_i, y-k e_j))
    # / 4hk

    def fd_points(self, entries: int) -> int:
        return len(MOVES) * entries * numel(self.shape2) + 1

    def fd_estimate(self, torch: Any, ev: Any, var: str, scale: float) -> tuple[Any, Any, Any]:
        x, y = ev.x[var], ev.x[self.var2]
        t, xs, ys = x.shape[0], tuple(x.shape[1:]), tuple(y.shape[1:])
        n, m = numel(xs), numel(ys)
        fx, fy = x.reshape(t, n), y.reshape(t, m)
        hx = scale * SECOND_STEP * fx.abs().clamp(min=1.0)  # [T, n]
        hy = scale * SECOND_STEP * fy.abs().clamp(min=1.0)  # [T, m]
        count = len(MOVES) * n * m  # point p: pair (i, j) = divmod(p // 4, m), move p % 4
        p = torch.arange(count, device=x.device)
        i, j = (p // len(MOVES)) // m, (p // len(MOVES)) % m
        signs = torch.tensor(MOVES, dtype=torch.float64, device=x.device)[p % len(MOVES)]
        cx = torch.zeros(count, n, dtype=torch.float64, device=x.device)
        cy = torch.zeros(count, m, dtype=torch.float64, device=x.device)
        cx[p, i] = signs[:, 0]
        cy[p, j] = signs[:, 1]

        def points(start: int, stop: int) -> dict[str, Any]:
            px = fx.unsqueeze(0) + cx[start:stop].unsqueeze(1) * hx.unsqueeze(0)
            py = fy.unsqueeze(0) + cy[start:stop].unsqueeze(1) * hy.unsqueeze(0)
            k = stop - start
            return {var: px.reshape(k, t, *xs), self.var2: py.reshape(k, t, *ys)}

        vals = ev.f_along_each(count, points).reshape(n, m, len(MOVES), t)
        vals = vals.permute(3, 0, 1, 2)  # [T, n, m, moves]
        f0 = ev.f().reshape(t, 1, 1, 1)
        moved = var if ev.reads(var) else self.var2
        noise = ev.rounding(moved, vals.reshape(t, -1)).reshape(vals.shape)
        den = 4 * hx.unsqueeze(2) * hy.unsqueeze(1)  # [T, n, m]
        sign = signs[: len(MOVES)].prod(dim=1)  # + - - +
        hess = (vals * sign).sum(dim=-1) / den
        slack = noise.sum(dim=-1) / den
        change = (vals - f0).abs().amax(dim=-1) / den
        if xs == () and ys == ():
            return hess.reshape(t), slack.reshape(t), change.reshape(t)
        # The points moved torch's (row-major) entries: into the vec layout.
        return tuple(
            vec_matrix(a.reshape(t, *xs, *ys), xs, ys) for a in (hess, slack, change)
        )

    def taylor_draw(self, torch: Any, ev: Any, var: str, gen: Any, convention: str | None) -> Any:
        x, y = ev.x[var], ev.x[self.var2]
        u = torch.randn(tuple(x.shape), generator=gen, dtype=torch.float64).to(x.device)
        v = torch.randn(tuple(y.shape), generator=gen, dtype=torch.float64).to(y.device)
        return u, v

    def taylor_directions(self, ev: Any, var: str, k: int, draw: Any) -> tuple[Any, Any | None]:
        u, v = draw()  # u moves the first variable, v the second
        return v, u

    def passes(self, var_shape: Shape, f_shape: Shape) -> int:
        return PASSES + PASSES_PER_ENTRY * numel(var_shape)


KIND = Hessian()
