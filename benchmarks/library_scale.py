"""Library scale: a generated folder of many identity files (not committed): load, validate
and check times, and peak memory, which must stay flat in the number of files."""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from _common import QUICK, peak_rss_mb, table

PY = sys.executable

TEMPLATES = [
    ("tr(inv(X) @ A)", "grad", "X", "-(inv(X) @ A @ inv(X)).T",
     "{X: {shape: [n, n], domain: invertible}, A: [n, n]}"),
    ("a.T @ X @ b", "grad", "X", "a @ b.T", "{a: [n, 1], X: [n, m], b: [m, 1]}"),
    ("x.T @ A @ x", "hessian", "x", "A + A.T", "{x: [n, 1], A: [n, n]}"),
    ("X @ Y", "differential", "X", "dX @ Y", "{X: [n, m], Y: [m, n]}"),
    ("logdet(S)", "grad", "S", "inv(S)", "{S: {shape: [n, n], domain: spd}}"),
]


def generate(folder: Path, count: int) -> None:
    rng = random.Random(count)
    for i in range(count):
        f, kind, var, claim, vars_ = TEMPLATES[i % len(TEMPLATES)]
        n, m = rng.randint(2, 6), rng.randint(2, 6)
        sub = folder / f"group{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"id{i:05d}.yaml").write_text(
            f"id: gen-{i:05d}\ndims: {{n: {n}, m: {m}}}\nvars: {vars_}\n"
            f"f: {f}\n{kind}: {{{var}: {claim!r}}}\n"
        )


def main() -> str:
    rows = []
    for count in ([200, 1000] if QUICK else [1000, 10000]):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            generate(folder, count)
            load = [PY, "-c", f"from matgrad.spec.schema import load_all; load_all([{str(folder)!r}])"]
            t_load, _ = peak_rss_mb(load)
            t_val, m_val = peak_rss_mb([PY, "-m", "matgrad", "validate", str(folder)])
            t_chk, m_chk = peak_rss_mb([PY, "-m", "matgrad", "check", str(folder)])
            rows.append([count, t_load, t_val, m_val, t_chk, m_chk, t_chk / count * 1e3])
    return table(
        "Library scale (generated identity files, one identity each, default trials)",
        ["files", "load s", "validate s", "validate MB", "check s", "check peak MB",
         "check ms/identity"],
        rows,
    )


if __name__ == "__main__":
    print(main())
