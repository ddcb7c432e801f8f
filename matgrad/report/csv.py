"""CSV: one row per claim (one row for an identity without claims), carrying the identity's
fields and the claim's, named as in the JSON report with nesting flattened by dots
(``claim.worst.autograd``).

Floats keep full precision (``repr``), a complex number reads ``a + bi`` (``a - bi``) with
both parts at full precision; an empty cell is a missing value; lists are JSON. User
text is quoted by the csv module and escaped by :func:`matgrad.report.escape.csv_cell`
(control characters written out; a leading ``'`` on a text cell that a spreadsheet would run
as a formula, as OWASP advises for CSV injection; no line a CI log would run).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from typing import Any

from matgrad.report.escape import csv_cell
from matgrad.results import (
    ClaimResult,
    IdentityResult,
    Recheck,
    RunReport,
    Worst,
    fmt_number,
)

# Fields that hold a record of their own, flattened into a column per field.
NESTED: dict[str, type] = {"worst": Worst, "recheck": Recheck}


def _names(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        if f.name == "claims":
            continue
        if f.name in NESTED:
            out.extend(_names(NESTED[f.name], f"{prefix}{f.name}."))
        elif f.name == "loose_tol":
            out.extend(f"{prefix}loose_tol.{k}" for k in ("rtol", "atol"))
        else:
            out.append(prefix + f.name)
    return out


IDENTITY_COLUMNS = _names(IdentityResult)
CLAIM_COLUMNS = _names(ClaimResult, "claim.")
# The run's warnings (a raised tolerance bound), as a JSON list on every row; an identity's own
# warnings (undefined draws) are its `warnings` column.
COLUMNS = IDENTITY_COLUMNS + CLAIM_COLUMNS + ["run_warnings"]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return csv_cell(str(value))


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and set(v) == {"re", "im"}:  # a complex number (json_number)
            out[prefix + k] = fmt_number(complex(v["re"], v["im"]), "")
        elif isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def rows(report: RunReport) -> list[dict[str, Any]]:
    out = []
    for r in report.results:
        ident = r.to_dict()
        ident.pop("claims")
        ident = _flat(ident)
        ident["run_warnings"] = report.warnings
        claims = [_flat(c.to_dict(), "claim.") for c in r.claims] or [{}]
        for c in claims:
            out.append({**ident, **c})
    return out


def render(report: RunReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows(report):
        writer.writerow([cell(row.get(name)) for name in COLUMNS])
    return buf.getvalue()
