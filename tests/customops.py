"""Custom ``torch.autograd.Function`` s with hand-written backwards, right and wrong, for the
tests of user functions (tests/test_user_functions.py) and the docs' examples."""

from __future__ import annotations

from typing import Any

import torch

import matgrad


def _mT(x: Any) -> Any:
    return x.transpose(-1, -2)


class LogAbsDet(torch.autograd.Function):
    """log|det X| by LU; its gradient is inv(X).T."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return torch.linalg.slogdet(x)[1]

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g[..., None, None] * _mT(torch.linalg.inv(x))


class LogAbsDetTransposed(LogAbsDet):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g[..., None, None] * torch.linalg.inv(x)  # the bug: no transpose


class LogAbsDetWrongSign(LogAbsDet):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return -g[..., None, None] * _mT(torch.linalg.inv(x))  # the bug: the sign


class CholLogdet(torch.autograd.Function):
    """log det X of an SPD X by Cholesky, with a backward (L L^T)^-1 = L^-T L^-1; it reads
    only the lower triangle of X, so its gradient is checked in the frobenius convention."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        chol = torch.linalg.cholesky(x)
        ctx.save_for_backward(chol)
        return 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (chol,) = ctx.saved_tensors
        inv = torch.linalg.inv(chol)
        return g[..., None, None] * (_mT(inv) @ inv)


class CholLogdetFactorsSwapped(CholLogdet):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (chol,) = ctx.saved_tensors
        inv = torch.linalg.inv(chol)
        return g[..., None, None] * (inv @ _mT(inv))  # the bug: L^-1 L^-T, transposed factors


class SymSquare(torch.autograd.Function):
    """||X + X^T||^2 / 4; its gradient is X + X^T."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return ((x + _mT(x)) ** 2).sum((-2, -1)) / 4

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g[..., None, None] * (x + _mT(x))


class SymSquareNotSymmetrised(SymSquare):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g[..., None, None] * 2 * x  # the bug: X + X^T written as 2X


class SymSquareOffDiagonal(SymSquare):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        s = x + _mT(x)
        off = s - torch.diag_embed(torch.diagonal(s, dim1=-2, dim2=-1))
        return g[..., None, None] * (s + off)  # the bug: off the diagonal twice


class Raises(SymSquare):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        raise ValueError("backward is not written yet")


class Cube(torch.autograd.Function):
    """x ** 3 entrywise, with a differentiable backward (double backward works) and a jvp."""

    @staticmethod
    def forward(x: Any) -> Any:
        return x**3

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g

    @staticmethod
    def jvp(ctx: Any, t: Any) -> Any:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * t


class CubeWrongDoubleBackward(Cube):
    """The backward's own derivative is wrong: it treats x**2 as a constant."""

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return 3 * (x**2).detach() * g


class CubeWrongJvp(Cube):
    @staticmethod
    def jvp(ctx: Any, t: Any) -> Any:
        (x,) = ctx.saved_tensors
        return 2 * x**2 * t  # the bug: 2 for 3


def functions() -> matgrad.FunctionSet:
    """Every function above under a short name (shape rules given or inferred)."""
    fs = matgrad.FunctionSet()
    fs.register("logabsdet", LogAbsDet.apply, shape=lambda x: ())
    fs.register("logabsdet_t", LogAbsDetTransposed.apply)
    fs.register("logabsdet_neg", LogAbsDetWrongSign.apply)
    fs.register("chol_logdet", CholLogdet.apply, shape=lambda x: ())
    fs.register("chol_logdet_swapped", CholLogdetFactorsSwapped.apply, shape=lambda x: ())
    fs.register("symsq", SymSquare.apply)
    fs.register("symsq_nosym", SymSquareNotSymmetrised.apply)
    fs.register("symsq_offdiag", SymSquareOffDiagonal.apply)
    fs.register("raises", Raises.apply)
    fs.register("cube", Cube.apply, shape=lambda x: x)
    fs.register("cube_dd", CubeWrongDoubleBackward.apply, shape=lambda x: x)
    fs.register("cube_jvp", CubeWrongJvp.apply, shape=lambda x: x)
    return fs


FUNCTIONS = functions()
