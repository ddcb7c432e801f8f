"""Start-up: a one-off check must start fast. Each command's median wall time (subprocess,
start-up included) next to the floor set by Python and by importing torch."""

from __future__ import annotations

import sys

from _common import QUICK, command_time, table

PY = sys.executable


def main() -> str:
    repeat = 3 if QUICK else 7
    base = command_time([PY, "-c", "pass"], repeat)
    cli_deps = command_time([PY, "-c", "import typer, rich, yaml"], repeat)
    torch_import = command_time([PY, "-c", "import torch"], repeat)
    rows = []
    for label, argv, floor_label, floor in [
        ("matgrad --help", [PY, "-m", "matgrad", "--help"], "python + typer/rich", cli_deps),
        ("matgrad validate identities/", [PY, "-m", "matgrad", "validate", "identities/"],
         "python + typer/rich", cli_deps),
        ("matgrad check identities/seed.yaml",
         [PY, "-m", "matgrad", "check", "identities/seed.yaml"], "import torch", torch_import),
        ("matgrad check identities/", [PY, "-m", "matgrad", "check", "identities/"],
         "import torch", torch_import),
    ]:
        t = command_time(argv, repeat)
        rows.append([label, t, floor_label, floor, t - floor, t / floor])
    rows.insert(0, ["python -c pass", base, "", "", "", ""])
    rows.insert(1, ["python -c 'import typer, rich, yaml'", cli_deps, "", "", "", ""])
    rows.insert(2, ["python -c 'import torch'", torch_import, "", "", "", ""])
    return table(
        "Start-up (median wall seconds)",
        ["command", "seconds", "floor", "floor seconds", "over floor (s)", "ratio to floor"],
        rows,
    )


if __name__ == "__main__":
    print(main())
