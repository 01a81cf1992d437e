"""Box-constraint and Bibtex tasks on real data, and the exact-gradient probes."""
import warnings
from pathlib import Path

import pytest
import torch

import fpibench
import fpibench.tasks as tasks
from fpibench.tasks import FPIConfig
from helpers import rel_err

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fpibench.FixedPointWarning)
        yield


@pytest.fixture
def shared_data():
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    fpibench.data.set_data_dir(SHARED)
    yield SHARED
    fpibench.data.set_data_dir(None)


def test_registry_lists_the_papers_experiments_and_probes():
    names = tasks.available()
    assert {"box_constraint", "bibtex", "contractive_tanh", "linear", "quadratic_energy"} <= set(names)
    with pytest.raises(fpibench.UnknownMethodError, match="valid tasks"):
        tasks.get("mnist")
    with pytest.raises(fpibench.OptionError, match="does not take option"):
        tasks.get("box_constraint", epochs_total=3)
    with pytest.raises(fpibench.OptionError, match="no preset"):
        tasks.get("box_constraint", preset="huge")
    with pytest.raises(fpibench.UnknownMethodError, match="no model"):
        tasks.get("box_constraint").build_model("transformer")


def test_box_constraint_data_follow_the_paper():
    task = tasks.get("box_constraint", preset="paper")
    a, t = task.data["train"]
    a_test, _ = task.data["test"]
    assert a.shape == (10_000, 10) and a_test.shape == (1_000, 10)
    assert abs(float(a.std()) - 2.0) < 0.05 and abs(float(a_test.std()) - 1.0) < 0.05
    assert torch.equal(t, a.clamp(-1, 1))


@pytest.mark.parametrize("kind", ["fpi_nn", "fpi_gd", "feedforward"])
def test_box_constraint_quick_training_improves_test_mse(kind):
    task = tasks.get("box_constraint", n_train=1000, epochs=3, max_iter=60)
    model = task.build_model(kind, FPIConfig(backward="backward_fpi"), seed=0)
    before = task.evaluate(model)["test_mse"]
    history = task.fit(model)
    assert history[-1]["test_mse"] < 0.8 * before
    if kind != "fpi_gd":  # FPI_GD's 0.01-step descent moves slowly within a 60-step budget
        assert history[-1]["test_mse"] < 0.5  # predicting zero scores E[clip(a)²] ≈ 0.52 at σ = 1


@pytest.mark.parametrize("backward", ["backward_fpi", "jfb", "unroll"])
def test_box_constraint_one_step_with_several_gradient_methods(backward):
    task = tasks.get("box_constraint", n_train=200)
    model = task.build_model("fpi_nn", FPIConfig(backward=backward))
    opt = task.optimizer(model)
    loss = task.train_step(model, opt, task.probe_batch())
    assert loss > 0 and model.fpi.last_stats.backward is not None


def test_bibtex_models_train_and_f1_rises_on_real_data(shared_data):
    task = tasks.get("bibtex", train_limit=800, epochs=3, max_iter=25, batch_size=32)
    x, y = task.data["train"]
    assert x.shape == (800, 1836) and y.shape == (800, 159)
    assert task.data["test"][0].shape == (2515, 1836) and task.data["val"][0].shape == (488, 1836)
    results = {}
    for kind, backward in [("feedforward", "backward_fpi"), ("fpi_nn", "backward_fpi")]:
        model = task.build_model(kind, FPIConfig(backward=backward), seed=0)
        model.eval()
        with torch.no_grad():
            before = task.evaluate(model)["test_f1"]
        after = task.fit(model)[-1]
        results[kind] = (before, after["test_f1"])
        assert 0.05 <= after["threshold"] <= 0.95
    # an untrained model scores a few % (predicting every label gives ≈ 3%); training must beat it clearly
    assert results["feedforward"][1] > results["feedforward"][0] + 5, results
    assert results["fpi_nn"][1] > results["fpi_nn"][0] + 3, results
    fpi_gd = task.build_model("fpi_gd", FPIConfig(backward="jfb"))
    assert task.train_step(fpi_gd, task.optimizer(fpi_gd), task.probe_batch()) > 0
    assert fpi_gd.fpi.last_stats.backward.method == "jfb"


@pytest.mark.parametrize("name", ["contractive_tanh", "linear", "quadratic_energy"])
@pytest.mark.parametrize("k", [0.5, 0.9, 0.99])
def test_probe_references_match_an_independent_dense_solve(name, k):
    probe = tasks.get(name, dim=6, batch=3, k=k).instance(seed=1)
    v = torch.randn(probe.x0.shape, dtype=torch.float64)
    ref = probe.reference(v)
    names = list(probe.leaves)
    # independent: Picard to machine precision, then a dense solve per sample with autograd Jacobians
    with torch.no_grad():
        x = probe.x0.clone()
        for _ in range(20_000):
            x_new = probe.g(x)
            if float((x_new - x).abs().max()) == 0.0:
                break
            x = x_new
    cs = []
    for b in range(x.shape[0]):
        def g_b(xb):
            full = x.clone()
            full[b] = xb
            return probe.g(full)[b]
        jac = torch.autograd.functional.jacobian(g_b, x[b])
        cs.append(torch.linalg.solve((torch.eye(6, dtype=torch.float64) - jac).T, v[b]))
    with torch.enable_grad():
        grads = torch.autograd.grad(probe.g(x), [probe.leaves[n] for n in names], torch.stack(cs))
    for n, gr in zip(names, grads):
        assert rel_err(ref[n], gr) < 1e-8, (name, k, n)


def test_probe_k_above_one_is_allowed_for_tanh_and_rejected_for_quadratic():
    assert tasks.get("contractive_tanh", k=1.2).config.k == 1.2
    with pytest.raises(fpibench.OptionError, match="k must be < 1"):
        tasks.get("quadratic_energy", k=1.2).instance()


class _Unbound(torch.nn.Module):
    """The same g without ``bind``: the layer then iterates g(x, z) on [x; z] every step."""

    def __init__(self, g):
        super().__init__()
        self.inner = g

    def forward(self, x, z):
        return self.inner(x, z)

    def init_state(self, z):
        return self.inner.init_state(z)


@pytest.mark.parametrize("kind", ["fpi_nn", "fpi_gd"])
@pytest.mark.parametrize("backward", ["backward_fpi", "unroll"])
def test_bound_input_half_gives_the_same_map_and_gradients(kind, backward):
    """bind(z) precomputes W_z z + b once per solve; values and gradients (θ and z) must equal
    those of the plain concatenating map in float64, for an implicit and an unrolled gradient."""
    from fpibench.tasks.vector_models import ConcatMLP, MeanSquaredEnergy, fpi_gd, fpi_nn

    torch.manual_seed(0)
    x_dim, z_dim, hidden = 5, 7, 16
    kwargs = dict(forward="picard", backward=backward, tol=1e-12, max_iter=400)
    if kind == "fpi_nn":
        model = fpi_nn(x_dim, z_dim, hidden, kwargs, out=torch.nn.Tanh()).double()
        model.fpi.g.l1.weight.data.mul_(0.5)
    else:
        net = torch.nn.Sequential(torch.nn.Linear(x_dim + z_dim, hidden), torch.nn.ReLU())
        model = fpi_gd(x_dim, z_dim, net, 0.5, kwargs).double()
    g = model.fpi.g
    z = torch.randn(4, z_dim, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, x_dim, dtype=torch.float64)
    assert torch.allclose(g.bind(z)(x), g(x, z), rtol=0, atol=1e-13)
    if kind == "fpi_gd":
        assert isinstance(g.energy, MeanSquaredEnergy)
    else:
        assert isinstance(g, ConcatMLP)

    def grads():
        out = model(z)
        loss = (out * torch.linspace(-1, 1, x_dim, dtype=torch.float64)).pow(2).sum()
        return out.detach(), torch.autograd.grad(loss, [z, *model.parameters()])

    bound_out, bound_grads = grads()
    model.fpi.g = _Unbound(g)
    plain_out, plain_grads = grads()
    assert model.fpi.last_stats is not None and not hasattr(model.fpi.g, "bind")
    assert torch.allclose(bound_out, plain_out, rtol=0, atol=1e-10)
    for a, b in zip(bound_grads, plain_grads):
        assert rel_err(a, b) < 1e-8


@pytest.mark.parametrize("depth,last", [(1, "relu"), (2, "linear"), (2, "relu"), (3, "linear")])
def test_closed_form_energy_gradient_matches_autograd_with_its_derivatives(depth, last):
    """FPI_GD iterates ∇ₓE in closed form for linear/ReLU energy nets (no autograd call per
    iteration).  In float64: ∇ₓE, and the first derivatives of ⟨v, ∇ₓE⟩ w.r.t. x (a Hessian-
    vector product: the backward's VJP), θ and z, must equal autograd's double backward."""
    from fpibench import energy_gradient
    from fpibench.tasks.vector_models import MeanSquaredEnergy

    torch.manual_seed(depth)
    x_dim, z_dim, hidden, out = 6, 9, 12, 5
    layers, width = [torch.nn.Linear(x_dim + z_dim, hidden)], hidden
    for i in range(depth - 1):
        layers += [torch.nn.ReLU(), torch.nn.Linear(width, hidden if i < depth - 2 else out)]
    if last == "relu":  # Bibtex's energy net ends in a ReLU, the box problem's in a linear layer
        layers.append(torch.nn.ReLU())
    energy = MeanSquaredEnergy(torch.nn.Sequential(*layers), x_dim).double()
    z = torch.randn(8, z_dim, dtype=torch.float64, requires_grad=True)
    x = torch.randn(8, x_dim, dtype=torch.float64, requires_grad=True)
    v = torch.randn(8, x_dim, dtype=torch.float64)
    bound = energy.bind(z)
    assert hasattr(bound, "gradient")
    assert torch.allclose(bound(x), energy(x, z), rtol=0, atol=1e-13)
    closed = bound.gradient(x)
    reference = energy_gradient(energy, x, z)
    assert rel_err(closed, reference) < 1e-12
    wrt = [x, z, *energy.parameters()]
    got = torch.autograd.grad((closed * v).sum(), wrt, allow_unused=True)
    want = torch.autograd.grad((reference * v).sum(), wrt, allow_unused=True)
    for a, b in zip(got, want):
        b = torch.zeros_like(a) if b is None else b
        assert rel_err(a, b) < 1e-12 if b.abs().max() > 0 else a.abs().max() == 0


def test_energy_nets_other_than_linear_relu_keep_the_autograd_gradient():
    from fpibench.tasks.vector_models import MeanSquaredEnergy

    energy = MeanSquaredEnergy(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh()), 2)
    assert not hasattr(energy.bind(torch.randn(3, 3)), "gradient")
