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


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Each script once, at its tiny size: name -> (module, root).

    The scripts that sweep share one existing Dask cluster, reached by ``--scheduler ADDRESS`` as a
    researcher's own cluster would be (one cluster start instead of five)."""
    from distributed import LocalCluster

    out = {}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster:
        on = ["--scheduler", cluster.scheduler_address]
        for name, args in (("hidden_symmetries", on), ("genni_toy", []), ("equivalent_paths", on),
                           ("ricci_accuracy", on), ("layer_paths", on), ("lenet", ["--device", "cpu"])):
            root = tmp_path_factory.mktemp(name)
            module = _load(name)
            module.main(["--tiny", *args, "--root", str(root)])
            out[name] = (module, root)
    return out


@pytest.mark.parametrize("name,figure,phrase", [
    ("hidden_symmetries", "functional_dimension.png", "published reading"),
    ("genni_toy", "walk.png", "against the class in closed form"),
    ("equivalent_paths", "paths_spread.png", "independently trained"),
    ("ricci_accuracy", "rho_accuracy.png", "Pearson"),
    ("layer_paths", "layer_paths.png", "straightness"),
    ("lenet", "projections.png", "Does the claim hold?"),
])
def test_experiment_script_runs_tiny(ran, name, figure, phrase):
    _, root = ran[name]
    figs = root / "figures" / name
    assert (figs / figure).exists()
    assert phrase in (figs / "results.md").read_text()
    assert (root / "runs" / name).is_dir()


def test_genni_toy_elements_lie_on_the_closed_form_class(ran):
    from genni import store

    module, tmp_path = ran["genni_toy"]
    run = store.load_run(tmp_path / "runs" / "genni_toy" / "genni_toy.h5")
    s_neg, s_pos = module.closed_form(run.equivalents["theta"])
    s = module.closed_form(run.theta_ref[None])[0][0]
    assert abs(s - (-0.2652 * 0.0838 + 0.1627 * 0.0343)) < 1e-12
    assert run.n_equivalents >= 8
    assert abs(s_neg - s).max() <= 1e-9 * abs(s) and abs(s_pos).max() <= 1e-9 * abs(s)
