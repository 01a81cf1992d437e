"""Explicit Jacobian inverse: form J = ∂g/∂x at x̂ densely, then solve (I − J)ᵀ c = ∇x̂L.

Per sample (dimension 0 is a batch of independent problems), J_b is assembled from N
batched VJPs with the basis vectors e_i (``torch.autograd.grad(..., is_grads_batched=True)``,
i.e. torch.func.vmap over the VJP), in chunks of ``chunk_size`` rows.  Exact up to the
direct solver's rounding; memory O(B·N²), so the method refuses up front — before
allocating anything — when 3·B·N²·itemsize (Jacobian, system matrix and its LU factors)
exceeds ``memory_budget`` bytes.  With ``create_graph`` J is built with a graph and
``torch.linalg.solve`` is differentiated, so derivatives of every order are exact.  The solve runs in at
least float32 (LAPACK has no half-precision LU) and c is cast back to the state's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fpibench.extend import AdjointGradient, BackwardStats, GradientOptions, Integer, JacobianTooLargeError, Number, option, register_backward


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def dense_jacobian_bytes(batch: int, n: int, itemsize: int) -> int:
    """Bytes the dense method needs: Jacobian, system matrix, LU factors (3 · B · N² · itemsize,
    the itemsize of the solve's dtype)."""
    return 3 * batch * n * n * itemsize


def solve_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the dense solve: the state's, but at least float32."""
    return torch.promote_types(dtype, torch.float32)


@register_backward("jacobian_inverse")
@dataclass
class JacobianInverse(GradientOptions, AdjointGradient):
    """Dense per-sample Jacobian and a direct solve; ``memory_budget`` in bytes."""

    memory_budget: int = option(2 * 1024**3, Number(0))
    chunk_size: int = option(256, Integer(1))
    name = "jacobian_inverse"

    def check_size(self, x):
        batch, n = x.shape
        need = dense_jacobian_bytes(batch, n, solve_dtype(x.dtype).itemsize)
        if need > self.memory_budget:
            raise JacobianTooLargeError(
                f"jacobian_inverse: the dense Jacobian for batch {batch} × dimension {n} ({x.dtype}) "
                f"would need {_format_bytes(need)} ({need} bytes), over the memory budget of "
                f"{_format_bytes(self.memory_budget)}; use an iterative method or raise memory_budget",
                need,
                self.memory_budget,
            )

    def jacobian(self, fx, point, create_graph):
        """(B, N, N) per-sample Jacobians of fx w.r.t. point, one chunk of basis rows at a time."""
        batch, n = point.shape
        eye = torch.eye(n, dtype=point.dtype, device=point.device)
        rows = []
        for start in range(0, n, self.chunk_size):
            basis = eye[start : start + self.chunk_size].unsqueeze(1).expand(-1, batch, n)
            try:
                (chunk,) = torch.autograd.grad(fx, point, basis, retain_graph=True, create_graph=create_graph, is_grads_batched=True)
            except RuntimeError:
                # some ops (e.g. a gradient inside g) have no batching rule: one VJP per row
                chunk = torch.stack([torch.autograd.grad(fx, point, e, retain_graph=True, create_graph=create_graph)[0] for e in basis])
            rows.append(chunk)
        return torch.cat(rows).transpose(0, 1)  # (B, N_out, N_in): J[b, i, :] = e_iᵀ J_b

    def adjoint(self, lin, v, ctx):
        create_graph = lin.create_graph
        with torch.enable_grad() if create_graph else torch.no_grad():
            jac = self.jacobian(lin.fx, lin.point, create_graph)
            batch, n = v.shape
            system = torch.eye(n, dtype=v.dtype, device=v.device) - jac.transpose(1, 2)
            c = torch.linalg.solve(system.to(solve_dtype(v.dtype)), v.to(solve_dtype(v.dtype))).to(v.dtype)
        with torch.no_grad():
            residual = torch.linalg.vector_norm(c - torch.bmm(jac.transpose(1, 2), c.unsqueeze(2)).squeeze(2) - v, dim=1)
            finite = torch.isfinite(c).all(dim=1).cpu()
        stats = BackwardStats(
            iterations=torch.ones(batch, dtype=torch.long),
            residual=residual.detach().cpu(),
            residual_trace=residual.detach().cpu().unsqueeze(0),
            status=["converged" if ok else "nonfinite" for ok in finite.tolist()],
            nfev=n,
            solver="dense",
            method=self.name,
            vjp_calls=n,
        )
        return c, stats
