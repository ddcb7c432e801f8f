"""A fixed RunReport for the renderer tests: every status, and user text that tries to break
out of every format."""

from __future__ import annotations

import re

from matgrad.results import ClaimResult, IdentityResult, RunReport, Worst

# Markup of every format, a line that GitHub would run as a workflow command, a CR, ANSI
# escape, BEL, NUL and a right-to-left override.
HOSTILE = (
    'x <script>alert("&amp;")</script> | pipe `tick` *em* [link](javascript:alert(1)) '
    "\\ back %25 a:b,c\n::error::injected\r\x1b[31mred\x07bell\x00nul\u202eevil"
)
# What a reader sees of it: the control characters written out.
HOSTILE_VISIBLE = (
    'x <script>alert("&amp;")</script> | pipe `tick` *em* [link](javascript:alert(1)) '
    "\\ back %25 a:b,c\n::error::injected\\x0d\\x1b[31mred\\x07bell\\x00nul\\u202eevil"
)
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202e]")

TOL = {"rtol": 1e-6, "atol": 1e-9}


def sample_report() -> RunReport:
    ok = IdentityResult(
        id="trace-inverse",
        file="identities/traces.yaml",
        line=3,
        expect="pass",
        status="passed",
        seconds=0.0123456,
        title="Gradient of tr(X^-1 A)",
        source="Matrix Cookbook (2012) eq. 124",
        latex=r"\frac{\partial}{\partial X} \operatorname{tr}(X^{-1} A) = -(X^{-1} A X^{-1})^T",
        trials=10,
        seed=7,
        f="tr(inv(X) @ A)",
        redrawn_undefined=3,
        undefined=2,
        warnings=["f gives NaN/Inf on 2 of 10 draws (20%); those draws were drawn again (3 "
                  "redraws, towards the origin) and the verdict is over defined draws only: if "
                  "f is meant only where it is defined, say so with a domain (e.g. positive for "
                  "log/sqrt)"],
        claims=[
            ClaimResult("grad", "X", "passed", line=12, max_abs_err=2.2e-15, max_rel_err=1.1e-14,
                        worst=Worst(4, [1, 2], 0.5, 0.5000000000000022), max_ratio=2.2e-6,
                        expr="-(inv(X) @ A @ inv(X)).T", **TOL),
            ClaimResult("differential", "X", "passed", line=13, max_abs_err=0.0, max_rel_err=0.0,
                        worst=Worst(0, [0, 0], 1.0, 1.0), max_ratio=0.0,
                        expr="-tr(inv(X) @ dX @ inv(X) @ A)", **TOL),
        ],
    )
    failed = IdentityResult(
        id="wrong-transpose",
        file="identities/traces.yaml",
        line=20,
        expect="pass",
        status="failed",
        seconds=0.004,
        title="Wrong: transpose dropped",
        latex=r"\nabla_X \operatorname{tr}(AX) = A",
        trials=10,
        seed=7,
        f="tr(A @ X)",
        message="grad X mismatched on trial 3: max abs err 1.5 at [0, 1] (claimed 0.25, "
        "autograd -1.25); tol rtol=1e-06 atol=1e-09",
        claims=[
            ClaimResult("grad", "X", "failed", line=27, max_abs_err=1.5, max_rel_err=1.2,
                        worst=Worst(3, [0, 1], -1.25, 0.25), max_ratio=7.5e8,
                        message="grad X mismatched on trial 3: max abs err 1.5 at [0, 1] "
                        "(claimed 0.25, autograd -1.25); tol rtol=1e-06 atol=1e-09",
                        hint="claim equals autograd transposed: did you mean .T?", expr="A", **TOL),
        ],
    )
    xfailed = IdentityResult(
        id="known-wrong",
        file="identities/mistakes.yaml",
        line=1,
        expect="fail",
        status="xfailed",
        seconds=0.002,
        trials=5,
        seed=7,
        claims=[
            ClaimResult("grad", "x", "failed", line=8,
                        message="grad x: the claim has shape [1, 3], but it must have shape "
                        "[3, 1] (the shape of x)",
                        hint="transposed: the layout is swapped (did you mean .T?)", **TOL),
        ],
    )
    xpassed = IdentityResult(
        id="not-so-wrong",
        file="identities/mistakes.yaml",
        line=10,
        expect="fail",
        status="xpassed",
        seconds=0.001,
        trials=5,
        seed=7,
        claims=[
            ClaimResult("hessian", "x", "passed", line=17, max_abs_err=1e-16, max_rel_err=1e-16,
                        worst=Worst(0, [0, 0], 2.0, 2.0), max_ratio=1e-7, **TOL),
        ],
    )
    nan = IdentityResult(
        id="log-of-negative",
        file="identities/mistakes.yaml",
        line=20,
        expect="pass",
        status="error",
        seconds=0.001,
        trials=5,
        seed=7,
        message="grad x: autograd gives NaN/Inf on trial 0; f is not differentiable there",
        claims=[
            ClaimResult("grad", "x", "error", line=25,
                        message="grad x: autograd gives NaN/Inf on trial 0; f is not "
                        "differentiable there", **TOL),
        ],
    )
    invalid = IdentityResult(
        id="broken.yaml",
        file="identities/broken.yaml",
        line=2,
        expect="pass",
        status="error",
        message="identities/broken.yaml:2:4: key f: syntax error",
    )
    hostile = IdentityResult(
        id="hostile",
        file="identities/odd <dir>/a&b|c.yaml",
        line=4,
        expect="pass",
        status="failed",
        seconds=0.003,
        title=HOSTILE,
        source=HOSTILE,
        latex=HOSTILE,
        trials=2,
        seed=7,
        f=HOSTILE,
        message=HOSTILE,
        claims=[
            ClaimResult("grad", "A", "failed", line=9, max_abs_err=float("inf"),
                        max_rel_err=None, worst=Worst(1, [0], 1.0, float("inf")),
                        max_ratio=float("inf"), message=HOSTILE, hint=HOSTILE, expr=HOSTILE,
                        **TOL),
        ],
    )
    hostile_file = IdentityResult(
        id=HOSTILE,
        file=HOSTILE,
        line=None,
        expect="pass",
        status="error",
        message=HOSTILE,
    )
    return RunReport(
        matgrad="9.9.9",
        torch="2.0.0-test",
        seed=7,
        device="cpu",
        dtype="float64",
        results=[ok, failed, xfailed, xpassed, nan, invalid, hostile, hostile_file],
        seconds=1.5,
    )


def passing_report() -> RunReport:
    report = sample_report()
    report.results = [report.results[0], report.results[2]]
    report.seconds = 0.25
    return report
