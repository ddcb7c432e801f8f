"""``implementation``: autograd's gradient of a scalar f, as torch computes it (a hand-written
``backward`` of a user function included), judged by finite differences and the Taylor test,
which evaluate f only. Written as a list of variables, with no expression::

    implementation: [X]

The claimed value is autograd's, so there is nothing to compare it with but the witnesses:
the engine runs ``fd`` and ``taylor`` for such a claim whatever the identity's ``witness``.
An identity whose f calls a user function with its own backward gets one such claim for every
variable f reads, even when its file does not list them.
"""

from __future__ import annotations

from matgrad.claims.grad import Grad
from matgrad.lang.functions import Shape, fmt_shape, is_scalar

TEXT = "autograd"  # what stands for the claim's expression in listings and reports


class Implementation(Grad):
    name = "implementation"
    noun = "implemented gradient"
    layout = "no expression: a list of variables; autograd's gradient of f is checked"
    claimed_by_autograd = True
    new_help = "An implementation check: autograd's gradient, judged without autograd."
    template_var = "X"
    template_body = """\
  $key: {shape: [$dim, $dim], domain: spd}
f: "logdet($var)"  # a scalar; call your own function here (matgrad check --functions M:NAME)
implementation: [$key]  # autograd's gradient of f, checked by finite differences and Taylor
"""
    template_title = "The backward of logdet($var), checked without autograd"
    template_latex = r"\nabla_{$var} \log\det $var"

    def shape_problem(self, var: str, var_shape: Shape, f_shape: Shape) -> tuple[str, str] | None:
        if not is_scalar(f_shape):
            return (
                f"an implementation claim needs a scalar f, but f has shape "
                f"{fmt_shape(f_shape)}; reduce it with a variable of its shape, e.g. "
                f"sum(W * F) for f = F",
                self.name,
            )
        return None


KIND = Implementation()
