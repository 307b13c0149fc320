"""Experiment scripts smoke-run at a tiny size: they finish, write their figure and results.md."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPTS = {"hidden_symmetries": True, "genni_toy": False, "equivalent_paths": True, "ricci_accuracy": True,
           "layer_paths": True, "lenet": False, "underspecification": True}
"""Each script and whether it sweeps (then it gets the shared cluster's address)."""
EXTRA = {"lenet": ["--device", "cpu"]}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Each script once, at its tiny size, when a test first asks for it: ran(name) -> (module, root).

    The scripts that sweep share one existing Dask cluster, reached by ``--scheduler ADDRESS`` as a
    researcher's own cluster would be (one cluster start instead of five); it starts with the first of them,
    so ``-k`` runs only the scripts its tests name."""
    import contextlib

    from distributed import LocalCluster

    out: dict = {}
    with contextlib.ExitStack() as stack:
        address: list = []

        def run(name: str):
            if name not in out:
                args = list(EXTRA.get(name, []))
                if SCRIPTS[name]:
                    if not address:
                        cluster = stack.enter_context(LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                                                   dashboard_address=":0", silence_logs=40))
                        address.append(cluster.scheduler_address)
                    args += ["--scheduler", address[0]]
                root = tmp_path_factory.mktemp(name)
                module = _load(name)
                module.main(["--tiny", *args, "--root", str(root)])
                out[name] = (module, root)
            return out[name]

        yield run


@pytest.mark.parametrize("name,figure,phrase", [
    ("hidden_symmetries", "functional_dimension.png", "published reading"),
    ("genni_toy", "walk.png", "against the class in closed form"),
    ("equivalent_paths", "paths_spread.png", "independently trained"),
    ("ricci_accuracy", "rho_accuracy.png", "Pearson"),
    ("layer_paths", "layer_paths.png", "straightness"),
    ("lenet", "projections.png", "Does the claim hold?"),
    ("underspecification", "underspecification.png", "orders of magnitude"),
])
def test_experiment_script_runs_tiny(ran, name, figure, phrase):
    _, root = ran(name)
    figs = root / "figures" / name
    assert (figs / figure).exists()
    assert phrase in (figs / "results.md").read_text()
    assert (root / "runs" / name).is_dir()


def test_genni_toy_elements_lie_on_the_closed_form_class(ran):
    from genni import store

    module, tmp_path = ran("genni_toy")
    run = store.load_run(tmp_path / "runs" / "genni_toy" / "genni_toy.h5")
    s_neg, s_pos = module.closed_form(run.equivalents["theta"])
    s = module.closed_form(run.theta_ref[None])[0][0]
    assert abs(s - (-0.2652 * 0.0838 + 0.1627 * 0.0343)) < 1e-12
    assert run.n_equivalents >= 8
    assert abs(s_neg - s).max() <= 1e-9 * abs(s) and abs(s_pos).max() <= 1e-9 * abs(s)


def test_underspecification_members_lie_on_the_class_and_copies_agree_modulo_the_symmetries(ran):
    """Every state counted in θ*'s class agrees with θ* on the probe inputs; symmetry copies of θ* compute
    θ*'s function (same shifted accuracy, zero discrepancy) and share its sharpness at the canonical point,
    while a relu network's raw sharpness moves under rescaling."""
    import numpy as np

    from genni import store

    _, root = ran("underspecification")
    cols, attrs = store.read_table(root / "runs" / "underspecification" / "measures.h5")
    case, kind = np.array(cols["case"]), np.array(cols["kind"])
    member = kind == "class"
    assert member.sum() >= 3 and (cols["rel_probe"][member] <= attrs["on_class"]).all()
    for c in set(case.tolist()):
        ref, cop = (case == c) & (kind == "reference"), (case == c) & (kind == "copies")
        assert cop.sum() >= 2 and ((case == c) & (kind == "trained")).sum() >= 2
        np.testing.assert_allclose(cols["sharpness_canonical"][cop], cols["sharpness_canonical"][ref][0], rtol=1e-6)
        assert (cols["acc_shift"][cop] == cols["acc_shift"][ref][0]).all() and (cols["rel_far"][cop] < 1e-20).all()
    relu = case == "relu moons"
    assert np.ptp(cols["sharpness"][relu & (kind == "copies")]) > 0.1 * cols["sharpness"][relu & (kind == "reference")][0]
