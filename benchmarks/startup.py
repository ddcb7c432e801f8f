"""Start-up: a one-off check must start fast. Each command's median wall time (subprocess,
start-up included) next to the floors set by Python, by typer itself and by importing torch.
All commands are timed in interleaved rounds, so the floors and the commands see the same
machine.

matgrad's modules are compiled to bytecode first, as ``pip install`` does: where
``PYTHONDONTWRITEBYTECODE`` is set (CI images often set it), an editable checkout would
otherwise be compiled from source on every start, which no installed copy is.
"""

from __future__ import annotations

import compileall
import sys

from _common import QUICK, ROOT, command_times, table

PY = sys.executable

FLOORS = {
    "python -c pass": [PY, "-c", "pass"],
    "python -c 'import typer, rich, yaml'": [PY, "-c", "import typer, rich, yaml"],
    "a typer command with options (no work)": [
        PY, str(ROOT / "benchmarks" / "_typer_floor.py"), "run", "identities/", "-k", "x"
    ],
    "python -c 'import torch'": [PY, "-c", "import torch"],
}
IMPORTS, TYPER, TORCH = list(FLOORS)[1:]
COMMANDS = {  # label: (argv, floor)
    "matgrad --help": ([PY, "-m", "matgrad", "--help"], IMPORTS),
    "matgrad validate identities/": ([PY, "-m", "matgrad", "validate", "identities/"], IMPORTS),
    "matgrad check identities/seed.yaml": (
        [PY, "-m", "matgrad", "check", "identities/seed.yaml"], TORCH
    ),
    "matgrad check identities/": ([PY, "-m", "matgrad", "check", "identities/"], TORCH),
}


def main() -> str:
    compileall.compile_dir(str(ROOT / "matgrad"), quiet=1)
    argvs = [*FLOORS.values(), *(argv for argv, _ in COMMANDS.values())]
    times = dict(zip([*FLOORS, *COMMANDS], command_times(argvs, 3 if QUICK else 9), strict=True))
    rows: list[list[object]] = [[label, times[label], "", "", "", "", ""] for label in FLOORS]
    for label, (_, floor) in COMMANDS.items():
        t, f = times[label], times[floor]
        over_typer = t - times[TYPER] if label == "matgrad validate identities/" else ""
        rows.append([label, t, floor, f, t - f, over_typer, t / f])
    return table(
        "Start-up (median wall seconds)",
        ["command", "seconds", "floor", "floor seconds", "over floor (s)",
         "over a typer command (s)", "ratio to floor"],
        rows,
    )


if __name__ == "__main__":
    print(main())
