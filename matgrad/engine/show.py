"""The values behind one verdict: one identity, one trial, every claim side by side.

:func:`view` runs the same check as ``matgrad check`` (same seed, same draws, degeneracy guard
and witnesses included) and keeps the values of one trial as plain records (:class:`View`), so
that the renderer (``matgrad.report.show``) needs no torch. It never prints. Importing this
module does not import torch; calling :func:`view` does.
"""

from __future__ import annotations

from typing import Any

from matgrad.claims import KINDS
from matgrad.errors import EvalError, LimitError, MatgradError, SpecError
from matgrad.results import ClaimResult, ClaimView, Matrix, View
from matgrad.settings import Settings
from matgrad.spec.schema import Identity, compile_identity


def _wide(t: Any) -> Any:
    """A tensor on the CPU in float64, or complex128 when it is complex."""
    t = t.detach().to(device="cpu")
    return t.cdouble() if t.is_complex() else t.double()


def _matrix(t: Any) -> Matrix:
    t = _wide(t)
    cast = complex if t.is_complex() else float
    return Matrix(list(t.shape), [cast(v) for v in t.reshape(-1).tolist()])


def view(
    ident: Identity, settings: Settings, trial: int | None = None, device: str | None = None
) -> View:
    """Check ``ident`` as ``matgrad check`` does and keep the values of one trial (by
    default the trial of the first failed claim's worst entry, else trial 0).

    Raises :class:`MatgradError` if ``trial`` is out of range; problems with the identity
    itself (a broken expression, degenerate draws) become ``status='error'`` with a message.
    """
    import torch

    from matgrad.engine import witness
    from matgrad.engine.core import _trials_for, check_compiled, resolve_device

    trials = _trials_for(ident, settings)
    if trial is not None and not 0 <= trial < trials:
        raise MatgradError(
            f"--trial {trial} is out of range: identity {ident.id!r} has {trials} trials "
            f"(0 to {trials - 1})"
        )
    out = View(
        id=ident.id,
        file=ident.path,
        line=ident.line,
        seed=settings.seed,
        trial=trial or 0,
        trials=trials,
        dtype=settings.dtype,
        title=ident.title,
        source=ident.source,
        latex=ident.latex,
    )
    device = device or resolve_device(settings.device)
    keep: list[Any] = []
    try:
        compiled = compile_identity(ident, trials, settings.limits)
        results = check_compiled(compiled, settings, device, keep)
    except SpecError as e:
        out.status, out.message = "error", str(e.located(path=ident.path, identity=ident.id))
        return out
    except (EvalError, LimitError) as e:
        out.status, out.message = "error", str(e)
        return out
    if trial is None:
        trial = next((r.worst.trial for r in results if r.status == "failed" and r.worst), 0)
    out.trial = trial
    statuses = {r.status for r in results}
    out.status = "error" if "error" in statuses else "failed" if "failed" in statuses else "passed"
    kept = {id(k[1]): k for k in keep}
    run = keep[0][0] if keep else None
    if run is not None:
        xs, _ = run.draw
        for v in ident.vars.values():
            out.variables.append((v.name, v.domain, _matrix(xs[v.name][trial])))
        with torch.no_grad():
            out.f = _matrix(run.f(run.env)[trial])
    for (claim, _), res in zip(compiled.claims, results, strict=True):
        cv = _claim_view(res)
        k = kept.get(id(claim))
        if k is not None:
            claim_run, _, truth, value, noise = k
            if KINDS[claim.kind].claimed_by_autograd:
                # the claimed value is autograd's own (a user backward): its reference is
                # finite differences, as in the check
                ev = witness.Evaluator(compiled, claim_run.draw, device)
                try:
                    truth, _ = witness.finite_differences(
                        ev, claim, KINDS[claim.kind].converter(torch, ident, claim.var),
                        settings.limits,
                    )
                except LimitError:
                    out.claims.append(cv)  # the claim's message already says why
                    continue
                cv.reference_name, cv.claimed_name = "finite differences", "autograd"
                noise = None
            _fill(cv, truth[trial], value[trial], res.rtol, res.atol,
                  None if noise is None else noise[trial])
            if res.worst is not None and res.worst.trial == trial and cv.claimed is not None:
                cv.worst = list(res.worst.index)  # the check's own pick for this trial
                k = cv.claimed.flat(cv.worst)
                cv.max_abs_err = abs(cv.difference.values[k]) if cv.difference else None
            if KINDS[claim.kind].uses_direction:
                cv.direction = _matrix(claim_run.d[claim.var][trial])
            chosen = witness.witnesses_for(ident.witness, settings.witnesses)
            if "fd" in chosen and not KINDS[claim.kind].claimed_by_autograd:
                ev = witness.Evaluator(compiled, claim_run.draw, device)
                try:
                    fd, _ = witness.finite_differences(
                        ev,
                        claim,
                        KINDS[claim.kind].converter(torch, ident, claim.var),
                        settings.limits,
                    )
                    cv.fd = _matrix(fd[trial])
                except LimitError:
                    pass  # the claim's message already says why
        out.claims.append(cv)
    return out


def _claim_view(res: ClaimResult) -> ClaimView:
    lines = []
    for w in res.witnesses:
        detail = w.message or (
            f"max abs err {w.max_abs_err:.3g}" if w.max_abs_err is not None else ""
        )
        lines.append(f"{w.name}: {w.verdict}" + (f" ({detail})" if detail else ""))
    return ClaimView(
        label=res.label,
        kind=res.kind,
        var=res.var,
        status=res.status,
        message=res.message,
        hint=res.hint,
        note=res.note,
        convention=res.convention,
        agreement=res.agreement,
        witnesses=lines,
    )


def _fill(
    cv: ClaimView,
    truth: Any,
    value: Any,
    rtol: float | None,
    atol: float | None,
    noise: Any = None,
) -> None:
    import torch

    from matgrad.engine import tensors

    truth = _wide(truth)
    value = _wide(value)
    value = tensors.fill_like(value.unsqueeze(0), truth.unsqueeze(0))[0]
    diff = value - truth
    cv.autograd, cv.claimed, cv.difference = _matrix(truth), _matrix(value), _matrix(diff)
    if diff.numel():
        # The worst entry by the check's own measure: error over the entry's tolerance.
        err = diff.abs().reshape(-1)
        if noise is not None:
            noise = noise.detach().to(device="cpu").double().reshape(1, -1)
        bound = tensors.tolerance(truth.abs().reshape(1, -1), rtol or 0.0, atol or 0.0, noise)[0]
        # 0/0 (an exact entry matched exactly) is no error; NaN anywhere else is the worst.
        ratio = torch.where((err == 0) & (bound == 0), torch.zeros_like(err), err / bound)
        ratio = torch.where(torch.isnan(ratio), torch.full_like(ratio, float("inf")), ratio)
        k = int(torch.argmax(ratio))
        cv.worst = cv.difference.index(k)
        cv.max_abs_err = float(diff.abs().reshape(-1)[k])
