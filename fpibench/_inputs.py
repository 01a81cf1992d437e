"""Which tensors a map g closes over: the θ of ∇θL = (∂g/∂θ)ᵀc.

An implicit gradient is a function of the fixed point *and* of everything g reads (its
parameters, the input z, ...).  To differentiate that gradient again — gradient penalties,
Hessian-vector products, MAML steps, a first-order gradient inside the outer loss — the
backward must evaluate (∂g/∂θ)ᵀc at a point that itself carries the implicit derivative,
so θ must be explicit inputs of the autograd node.  A user's g is any closure, so θ is found
by evaluating g once:

1. a :class:`torch.overrides.TorchFunctionMode` records every tensor that requires grad and
   reaches a torch operation without having been produced by an earlier operation of this
   evaluation (tensor methods, ``torch.nn.functional`` and ``torch.autograd.grad`` all pass
   through it);
2. a walk of the resulting autograd graph checks that nothing was missed: every leaf it
   reaches must be a recorded input or a tensor g made itself.  A leaf reached any other
   way (an operation that bypassed the mode) is added as an input, so a gradient can never
   be silently dropped; the graph's creation order (autograd sequence numbers) tells the
   tensors that existed before the evaluation from those it made.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


class _InputRecorder(TorchFunctionMode):
    """Records tensors requiring grad that an evaluation reads but did not produce."""

    def __init__(self, produced: list[torch.Tensor]):
        super().__init__()
        self.keep = list(produced)  # strong references: ids stay unique while recording
        self.produced = {id(t) for t in produced}
        self.found: dict[int, torch.Tensor] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for t in _tensors((args, kwargs)):
            if t.requires_grad and id(t) not in self.produced and id(t) not in self.found:
                self.found[id(t)] = t
        out = func(*args, **kwargs)
        for t in _tensors(out):
            if id(t) not in self.produced:
                self.produced.add(id(t))
                self.keep.append(t)
        return out


def _sequence_start() -> int:
    """The autograd sequence number the next node made on this thread will exceed."""
    with torch.enable_grad():
        probe = torch.zeros((), requires_grad=True).clone()
    return probe.grad_fn._sequence_nr()


def _node_of(t: torch.Tensor):
    return t.grad_fn if t.grad_fn is not None else torch.autograd.graph.get_gradient_edge(t).node


def evaluate_with_inputs(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    """Evaluate ``y = f(x)`` with autograd on and return ``(y, inputs)``: the tensors requiring
    grad that f read from outside (parameters, closed-over inputs), in first-use order."""
    start = _sequence_start()
    recorder = _InputRecorder([x])
    with torch.enable_grad(), recorder:
        y = f(x)
    if y.grad_fn is None:
        return y, []
    inputs: list[torch.Tensor] = []
    stops = set()
    for t in recorder.found.values():
        node = _node_of(t)
        if t.grad_fn is not None and t.grad_fn._sequence_nr() > start:
            continue  # made during this evaluation by an operation the mode did not see
        inputs.append(t)
        stops.add(node)
    known = {id(t) for t in inputs} | recorder.produced
    seen, stack = set(stops), [y.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:  # AccumulateGrad: a leaf
            if id(variable) not in known:
                inputs.append(variable)
                known.add(id(variable))
            continue
        stack.extend(next_node for next_node, _ in node.next_functions)
    return y, inputs
