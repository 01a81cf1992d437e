"""A zoo of fixed-point problems with independent float64 reference gradients.

Each problem provides g(x) closing over its parameters and inputs z, a start x0, and
``reference(v)``: the gradients of ⟨v, x̂⟩ w.r.t. every parameter and z, computed here by
Newton's method for x̂ and a dense per-sample solve of (I − J)ᵀ c = v — no fpibench code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import torch

import fpibench

DT = torch.float64


@dataclass
class Problem:
    name: str
    g: Callable[[torch.Tensor], torch.Tensor]
    x0: torch.Tensor
    leaves: Dict[str, torch.Tensor]  # parameters and inputs (require grad)
    g_single: Callable[[int, torch.Tensor], torch.Tensor]  # g for one sample: (b, x_b) -> g(x)_b
    closed_form: Callable | None = None  # v -> dict of exact gradients

    def fixed_point(self, iters: int = 50) -> torch.Tensor:
        """x̂ per sample by Newton's method on x − g(x) with dense Jacobians."""
        xs = []
        for b in range(self.x0.shape[0]):
            x = self.x0[b].detach().clone()
            for _ in range(iters):
                with torch.no_grad():
                    r = x - self.g_single(b, x)
                if float(r.norm()) < 1e-15:
                    break
                jac = torch.autograd.functional.jacobian(lambda t: self.g_single(b, t), x).reshape(x.numel(), x.numel())
                step = torch.linalg.solve(torch.eye(x.numel(), dtype=DT) - jac, r.reshape(-1))
                x = (x.reshape(-1) - step).reshape(x.shape).detach()
            xs.append(x)
        return torch.stack(xs)

    def reference(self, v: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.closed_form is not None:
            return self.closed_form(v)
        x_hat = self.fixed_point()
        cs = []
        for b in range(x_hat.shape[0]):
            jac = torch.autograd.functional.jacobian(lambda t: self.g_single(b, t), x_hat[b]).reshape(x_hat[b].numel(), -1)
            n = jac.shape[0]
            cs.append(torch.linalg.solve((torch.eye(n, dtype=DT) - jac).T, v[b].reshape(-1)).reshape(x_hat[b].shape))
        c = torch.stack(cs)
        out = self.g(x_hat.detach())
        names = list(self.leaves)
        grads = torch.autograd.grad(out, [self.leaves[k] for k in names], c)
        return dict(zip(names, grads))


def _spectral_scale(w: torch.Tensor, k: float) -> torch.Tensor:
    return w * (k / torch.linalg.matrix_norm(w, 2))


def tanh_problem(k: float, d: int = 6, batch: int = 3, seed: int = 0) -> Problem:
    """g(x) = tanh(Wx + Uz + b), ‖W‖₂ = k; small inputs keep tanh near-linear so ρ(J) ≈ k."""
    gen = torch.Generator().manual_seed(seed)
    W = _spectral_scale(torch.randn(d, d, generator=gen, dtype=DT), k).requires_grad_()
    U = (0.1 * torch.randn(d, d, generator=gen, dtype=DT)).requires_grad_()
    b = (0.05 * torch.randn(d, generator=gen, dtype=DT)).requires_grad_()
    z = torch.randn(batch, d, generator=gen, dtype=DT).requires_grad_()

    def g(x):
        return torch.tanh(x @ W.T + z @ U.T + b)

    def g_single(i, x):
        return torch.tanh(W @ x + U @ z[i] + b)

    return Problem(f"tanh_k{k}", g, torch.zeros(batch, d, dtype=DT), {"W": W, "U": U, "b": b, "z": z}, g_single)


def linear_problem(d: int = 5, batch: int = 3, k: float = 0.8, seed: int = 1) -> Problem:
    """g(x) = Ax + Bz: x̂ = (I − A)⁻¹Bz; for L = ⟨v, x̂⟩, c = (I − A)⁻ᵀv, ∇A = c x̂ᵀ, ∇B = c zᵀ, ∇z = Bᵀc."""
    gen = torch.Generator().manual_seed(seed)
    A = _spectral_scale(torch.randn(d, d, generator=gen, dtype=DT), k).requires_grad_()
    B = torch.randn(d, d, generator=gen, dtype=DT).requires_grad_()
    z = torch.randn(batch, d, generator=gen, dtype=DT).requires_grad_()

    def g(x):
        return x @ A.T + z @ B.T

    def closed_form(v):
        inv = torch.linalg.inv(torch.eye(d, dtype=DT) - A.detach())
        x_hat = z.detach() @ B.detach().T @ inv.T
        c = v @ inv  # rows: c_bᵀ = v_bᵀ (I − A)⁻¹
        return {"A": c.T @ x_hat, "B": c.T @ z.detach(), "z": c @ B.detach()}

    return Problem("linear", g, torch.zeros(batch, d, dtype=DT), {"A": A, "B": B, "z": z}, lambda i, x: A @ x + B @ z[i], closed_form)


def conv_problem(batch: int = 2, size: int = 5, channels: int = 2, seed: int = 2) -> Problem:
    """g(x) = tanh(conv(x) + conv(z) + b) on small images, weights scaled to be contractive."""
    gen = torch.Generator().manual_seed(seed)
    kx = (torch.randn(channels, channels, 3, 3, generator=gen, dtype=DT) * 0.12).requires_grad_()
    kz = (torch.randn(channels, 1, 3, 3, generator=gen, dtype=DT) * 0.3).requires_grad_()
    b = (0.1 * torch.randn(channels, generator=gen, dtype=DT)).requires_grad_()
    z = torch.randn(batch, 1, size, size, generator=gen, dtype=DT).requires_grad_()
    conv = torch.nn.functional.conv2d

    def g(x):
        return torch.tanh(conv(x, kx, padding=1) + conv(z, kz, padding=1) + b[:, None, None])

    def g_single(i, x):
        return g_one(x, z[i : i + 1])

    def g_one(x, zi):
        return torch.tanh(conv(x[None], kx, padding=1) + conv(zi, kz, padding=1) + b[:, None, None])[0]

    return Problem("conv", g, torch.zeros(batch, channels, size, size, dtype=DT), {"kx": kx, "kz": kz, "b": b, "z": z}, g_single)


def energy_problem(d: int = 4, hidden: int = 6, batch: int = 3, step: float = 0.3, seed: int = 3) -> Problem:
    """FPI_GD: g(x) = x − γ∇ₓE(x, z), E = ½‖x‖² + Σ softplus(W₁x + W₂z + b) / hidden (strongly convex)."""
    gen = torch.Generator().manual_seed(seed)
    W1 = (0.5 * torch.randn(hidden, d, generator=gen, dtype=DT)).requires_grad_()
    W2 = (0.5 * torch.randn(hidden, d, generator=gen, dtype=DT)).requires_grad_()
    b = (0.1 * torch.randn(hidden, generator=gen, dtype=DT)).requires_grad_()
    z = torch.randn(batch, d, generator=gen, dtype=DT).requires_grad_()

    def energy(x, zz):
        return 0.5 * (x**2).sum(-1) + torch.nn.functional.softplus(x @ W1.T + zz @ W2.T + b).sum(-1) / hidden

    def step_fn(x, zz):
        record = torch.is_grad_enabled()
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_()
            (grad,) = torch.autograd.grad(energy(xg, zz).sum(), xg, create_graph=record)
        return x - step * grad

    return Problem(
        "energy_gd", lambda x: step_fn(x, z), torch.zeros(batch, d, dtype=DT), {"W1": W1, "W2": W2, "b": b, "z": z},
        lambda i, x: step_fn(x[None], z[i : i + 1])[0],
    )


def zoo():
    problems = [tanh_problem(0.5), tanh_problem(0.9), tanh_problem(0.99), conv_problem(), linear_problem(), energy_problem()]
    for problem in problems:  # every problem keeps the batch contract its references assume
        fpibench.check_batch_independence(problem.g, problem.x0)
    return problems


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def probe_vector(x0: torch.Tensor, seed: int = 7) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(x0.shape, generator=gen, dtype=x0.dtype)


ITERS_FOR = {"tanh_k0.99": 6000}


def exact_backward_options(method: str, problem: str) -> dict:
    """Options that make each exact method converge tightly on the zoo."""
    many = ITERS_FOR.get(problem, 1500)
    if method == "neumann":
        return {"terms": many}
    if method in ("backward_fpi", "anderson", "broyden", "gmres"):
        return {"tol": 1e-13, "max_iter": many}
    return {}

