"""Start-up: a one-off check must start fast. Each command's median wall time (subprocess,
start-up included) next to the floors set by Python, by typer itself and by importing torch.

matgrad's modules are compiled to bytecode first, as ``pip install`` does: where
``PYTHONDONTWRITEBYTECODE`` is set (CI images often set it), an editable checkout would
otherwise be compiled from source on every start, which no installed copy is.
"""

from __future__ import annotations

import compileall
import sys

from _common import QUICK, ROOT, command_time, table

PY = sys.executable


def main() -> str:
    compileall.compile_dir(str(ROOT / "matgrad"), quiet=1)
    repeat = 3 if QUICK else 7
    base = command_time([PY, "-c", "pass"], repeat)
    cli_deps = command_time([PY, "-c", "import typer, rich, yaml"], repeat)
    typer_cmd = command_time(
        [PY, str(ROOT / "benchmarks" / "_typer_floor.py"), "run", "identities/", "-k", "x"],
        repeat,
    )
    torch_import = command_time([PY, "-c", "import torch"], repeat)
    rows: list[list[object]] = [
        ["python -c pass", base, "", "", "", "", ""],
        ["python -c 'import typer, rich, yaml'", cli_deps, "", "", "", "", ""],
        ["a typer command with options (no work)", typer_cmd, "", "", "", "", ""],
        ["python -c 'import torch'", torch_import, "", "", "", "", ""],
    ]
    for label, argv, floor_label, floor in [
        ("matgrad --help", [PY, "-m", "matgrad", "--help"], "typer/rich import", cli_deps),
        ("matgrad validate identities/", [PY, "-m", "matgrad", "validate", "identities/"],
         "typer/rich import", cli_deps),
        ("matgrad check identities/seed.yaml",
         [PY, "-m", "matgrad", "check", "identities/seed.yaml"], "import torch", torch_import),
        ("matgrad check identities/", [PY, "-m", "matgrad", "check", "identities/"],
         "import torch", torch_import),
    ]:
        t = command_time(argv, repeat)
        over_typer = t - typer_cmd if floor is cli_deps and "--help" not in label else ""
        rows.append([label, t, floor_label, floor, t - floor, over_typer, t / floor])
    return table(
        "Start-up (median wall seconds)",
        ["command", "seconds", "floor", "floor seconds", "over floor (s)",
         "over a typer command (s)", "ratio to floor"],
        rows,
    )


if __name__ == "__main__":
    print(main())
