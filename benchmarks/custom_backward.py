"""A custom autograd.Function's backward checked by matgrad over 1,000 draws (finite
differences and the Taylor test as judges), against ``torch.autograd.gradcheck`` at 1,000
points, one call per point; both measured in this run, the ratio printed."""

from __future__ import annotations

import time
from typing import Any

import torch
from _common import table

import matgrad

N = 4
POINTS = 1000


class LogAbsDet(torch.autograd.Function):
    """log|det X| by LU, batched over a leading axis; its gradient is inv(X).T."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return torch.linalg.slogdet(x)[1]

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g[..., None, None] * torch.linalg.inv(x).transpose(-1, -2)


def matgrad_seconds(points: int = POINTS) -> tuple[float, str]:
    functions = matgrad.FunctionSet()
    functions.register("mylogdet", LogAbsDet.apply, shape=lambda x: ())
    start = time.perf_counter()
    r = matgrad.check_identity(
        f="mylogdet(X)", implementation=["X"], trials=points, functions=functions,
        vars={"X": {"shape": [N, N], "domain": "invertible"}},
    )
    return time.perf_counter() - start, r.status


def gradcheck_seconds(points: int = POINTS) -> tuple[float, bool]:
    gen = torch.Generator().manual_seed(0)
    eye = torch.eye(N, dtype=torch.float64)
    start = time.perf_counter()
    ok = True
    for _ in range(points):
        x = (eye + 0.3 * torch.randn(N, N, generator=gen, dtype=torch.float64))
        ok &= torch.autograd.gradcheck(LogAbsDet.apply, (x.requires_grad_(),))
    return time.perf_counter() - start, ok


def main(points: int = POINTS) -> str:
    matgrad_seconds(3)  # torch and matgrad loaded before timing
    ours, status = matgrad_seconds(points)
    theirs, ok = gradcheck_seconds(points)
    return table(
        f"Checking a custom backward at {points} points ({N}x{N} log|det| by LU)",
        ["check", "seconds", "verdict", "vs gradcheck"],
        [
            ["matgrad (fd + Taylor, batched)", f"{ours:.2f}", status, f"{ours / theirs:.2f}x"],
            ["torch.autograd.gradcheck, one call per point", f"{theirs:.2f}",
             "passed" if ok else "failed", "1.00x"],
        ],
    )


if __name__ == "__main__":
    print(main())
