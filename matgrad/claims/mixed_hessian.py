"""``hessian: {"x, y": ...}``: the mixed second derivatives of a scalar f with respect to two
variables, d^2 f / (d vec x d (vec y)^T): a row per entry of x and a column per entry of y,
both in the vec layout (columns stacked, Magnus-Neudecker), as the one-variable hessian.

Not registered on its own: the YAML key is ``hessian``'s, and :meth:`Hessian.paired` makes one
of these for the second variable a claim names (see ``matgrad.claims.kind_of``).
"""

from __future__ import annotations

from typing import Any

from matgrad.claims.base import SECOND_STEP, row_major, vec, vec_matrix
from matgrad.claims.hessian import PASSES, PASSES_PER_ENTRY, Hessian
from matgrad.lang.functions import Shape, numel

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

