"""Identity files shared by the API and CLI tests: one right and one wrong gradient claim."""

RIGHT = """
id: right
dims: {n: 3}
vars: {X: {shape: [n, n], domain: invertible}}
f: tr(inv(X))
grad: {X: "-(inv(X) @ inv(X)).T"}
"""
WRONG = """
id: wrong
dims: {n: 3}
vars: {X: {shape: [n, n], domain: invertible}}
f: tr(inv(X))
grad: {X: "-inv(X) @ inv(X)"}
"""
