"""The JSON report (schema in docs/report-schema.md)."""

from __future__ import annotations

import math
from typing import Any

from matgrad.report.escape import json_text
from matgrad.results import RunReport


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def render(report: RunReport) -> str:
    return json_text(_finite(report.to_dict()), indent=2, allow_nan=False) + "\n"
