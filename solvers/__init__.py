"""Built-in forward solvers and gradient methods (installed as ``fpibench.solvers``).

One module per algorithm; importing this package registers them all.  Forward solvers:
``picard``, ``anderson``, ``broyden``.  Gradient methods: ``unroll``, ``jacobian_inverse``,
``backward_fpi`` (``rbp``), ``neumann``, ``anderson``, ``broyden``, ``gmres``, ``cg``,
``minres``, ``implicit``, ``shine``, ``jfb``, ``phantom``.
"""
from . import anderson, broyden, gmres, implicit, jacobian_inverse, picard, shine, truncated, unroll  # noqa: F401
