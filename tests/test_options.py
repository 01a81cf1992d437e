"""Every option of every method is checked when it is given, by one declaration per option.

A bad value is refused by ``fixed_point``, by ``FixedPointLayer`` at construction and by the
sweep validation, before anything runs, with an error naming the method, the option, what
it must be and the value given; ``available_methods()`` lists every accepted option with
its default and constraint.
"""
from __future__ import annotations

import math
import re

import pytest
import torch

import fpibench
from fpibench import OptionError
from fpibench._iterate import IterationControl
from fpibench.harness import expand_grid

METHODS = fpibench.available_methods()
KIND = {"forward": "forward solver", "backward": "gradient method"}
#: every (kind, method, option, constraint) that available_methods() lists
LISTED = [(kind, name, opt, spec["constraint"]) for kind, entries in METHODS.items()
          for name, opts in entries.items() for opt, spec in opts.items()]
ITERATIVE = [name for name, opts in METHODS["backward"].items() if "check_every" in opts]


def g(x):
    return 0.5 * torch.tanh(x) + 0.1


def solve(kind: str, name: str, options: dict, **kwargs):
    x0 = torch.zeros(2, 3, dtype=torch.float64)
    if kind == "forward":
        return fpibench.fixed_point(g, x0, forward=name, forward_options=options, **kwargs)
    forward = "broyden" if fpibench.BACKWARD.get(name).needs_inverse_jacobian else "anderson"
    return fpibench.fixed_point(g, x0, forward=forward, backward=name, backward_options=options, **kwargs)


def refused(kind: str, name: str, option: str, value) -> str:
    """The message naming the method, the option and the value; also checks the layer and the sweep."""
    with pytest.raises(OptionError) as info:
        solve(kind, name, {option: value})
    message = str(info.value)
    key = f"{kind}_options"
    with pytest.raises(OptionError, match=re.escape(f"option {option} must be")):
        fpibench.FixedPointLayer(torch.nn.Identity(), **{kind: name, key: {option: value}})
    with pytest.raises(OptionError, match=re.escape(f"option {option} must be")):
        expand_grid({"task": "contractive_tanh", kind: name, key: {option: value}})
    return message


def test_every_method_lists_options_with_default_and_constraint():
    assert ITERATIVE and set(METHODS["forward"]) == {"picard", "anderson", "broyden"}
    for _, name, option, constraint in LISTED:
        assert constraint and constraint != "not checked", (name, option)
    loop = IterationControl.forward_option_names()
    assert loop == {"criterion", "check_every", "divergence_factor", "rounding_floor"}
    for name, opts in METHODS["forward"].items():
        assert loop <= set(opts), name
    for name in ITERATIVE:
        assert {"tol", "max_iter", "criterion", "check_every", "divergence_factor", "rounding_floor"} <= set(METHODS["backward"][name])


@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_every_listed_option_is_accepted_at_its_default(kind):
    for name, opts in METHODS[kind].items():
        defaults = {k: v["default"] for k, v in opts.items()}
        sol = solve(kind, name, defaults, tol=1e-8)
        assert sol.stats.forward.converged, name


@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_unknown_options_are_refused_with_the_valid_names(kind):
    for name, opts in METHODS[kind].items():
        with pytest.raises(OptionError, match="does not take option.*'colour'") as info:
            solve(kind, name, {"colour": 1})
        listed = str(info.value).split("it takes:")[1]
        assert all(opt in listed for opt in opts), (name, listed)


@pytest.mark.parametrize("kind,name,option,constraint", LISTED, ids=lambda v: str(v)[:20])
def test_a_string_where_a_number_belongs_names_method_option_and_value(kind, name, option, constraint):
    value = "bogus" if constraint.startswith("one of") else "0.5"
    message = refused(kind, name, option, value)
    assert f"{KIND[kind]} '{name}'" in message or option in IterationControl.forward_option_names()
    assert f"option {option} must be {constraint}" in message
    assert f"got '{value}' (str)" in message


@pytest.mark.parametrize("kind,name,option", [(k, n, o) for k, n, o, c in LISTED if "an integer" in c])
def test_true_is_not_an_integer(kind, name, option):
    assert "got True (bool)" in refused(kind, name, option, True)


@pytest.mark.parametrize("kind,name,option", [(k, n, o) for k, n, o, c in LISTED if "a number" in c])
def test_nan_is_not_a_number_in_range(kind, name, option):
    refused(kind, name, option, math.nan)


def test_the_reported_string_options_name_method_option_range_and_value():
    message = refused("forward", "anderson", "beta", "0.5")
    assert message == "forward solver 'anderson': option beta must be a number in (0, 1], got '0.5' (str)"
    message = refused("backward", "jacobian_inverse", "memory_budget", "big")
    assert message == "gradient method 'jacobian_inverse': option memory_budget must be a number > 0, got 'big' (str)"
    assert "option chunk_size must be an integer >= 1, got True" in refused("backward", "jacobian_inverse", "chunk_size", True)


@pytest.mark.parametrize("name", ITERATIVE)
@pytest.mark.parametrize("option,value", [("tol", -1), ("tol", 0), ("max_iter", 0), ("max_iter", 2.0),
                                          ("criterion", "bogus"), ("check_every", 0), ("check_every", True),
                                          ("divergence_factor", 1), ("rounding_floor", 1)])
def test_bad_backward_loop_options_are_refused_before_any_solve(name, option, value):
    message = refused("backward", name, option, value)
    assert message.startswith(f"gradient method '{name}': option {option} must be")


@pytest.mark.parametrize("option,value", [("criterion", "bogus"), ("check_every", 0), ("divergence_factor", 0.5),
                                          ("rounding_floor", "yes")])
def test_bad_forward_loop_options_are_refused(option, value):
    message = refused("forward", "picard", option, value)
    assert message.startswith(f"iteration loop: option {option} must be")


@pytest.mark.parametrize("kwargs", [{"tol": -1}, {"tol": "1e-6"}, {"max_iter": 0}, {"max_iter": True}])
def test_bad_tol_and_max_iter_are_refused_by_solve_and_layer(kwargs):
    option = next(iter(kwargs))
    with pytest.raises(OptionError, match=f"iteration loop: option {option} must be"):
        fpibench.fixed_point(g, torch.zeros(2, 3), **kwargs)
    with pytest.raises(OptionError, match=f"iteration loop: option {option} must be"):
        fpibench.FixedPointLayer(torch.nn.Identity(), **kwargs)


def test_the_loop_guard_eps_is_not_an_option():
    """It once let ``eps=1e6`` report 'converged' after 3 iterations with a residual of 8e-5."""
    assert "eps" not in IterationControl.option_names()
    for kind in ("forward", "backward"):
        with pytest.raises(OptionError, match="does not take option.*'eps'"):
            solve(kind, "anderson", {"eps": 1e6})
    with pytest.raises(TypeError):
        IterationControl(eps=1e6)


def test_direct_construction_checks_options_too():
    from fpibench.solvers.anderson import Anderson
    from fpibench.solvers.gmres import GMRES
    from fpibench.solvers.truncated import Phantom

    with pytest.raises(OptionError, match="forward solver 'anderson': option m must be"):
        Anderson(m=2.5)
    with pytest.raises(OptionError, match="option restart must be"):
        GMRES(restart="20")
    with pytest.raises(OptionError, match="gradient method 'phantom': option damping must be"):
        Phantom(damping=0)


def test_sweep_flags_with_unparsable_values_are_refused():
    from fpibench.harness import parse_options

    with pytest.raises(OptionError, match="gradient method 'backward_fpi': option beta must be .* got 'abc'"):
        expand_grid({"task": "contractive_tanh", "backward": "backward_fpi",
                     "backward_options": parse_options(["beta=abc"], "--backward-option")})
