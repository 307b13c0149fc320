"""`genni ricci`: per-network Ricci flow summaries stored under /ricci, checked against the library
on the same representations; reason codes instead of crashes; figures; bad input exits 2."""

import json

import numpy as np
import pytest
import torch

import genni
from genni import store
from genni.cli import main
from genni.errors import GenniError
from genni.geometry import ricci as R
from genni.models import MLP
from tests.stages.test_layer_paths import relu_run as make_relu_run


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("ri") / "ri.h5"
    make_relu_run(path, copies=2, n_probe=60, n_heldout=40, epochs=200)  # + exact rescaled, permuted copies
    return path


def _reps(path, include_output=True):
    run = store.load_run(path)
    spec = MLP.from_dict(run.architecture)
    _, reps = spec.layers(torch.as_tensor(run.theta_ref), torch.as_tensor(run.X))
    return [r.numpy() for r in (reps if include_output else reps[:-1])]


def test_ricci_stores_the_library_result_for_the_reference(relu_run):
    info = genni.ricci(relu_run, k=6, n_boot=50)
    assert info["name"] == "forman_k6" and info["layers"] == ["input", "h1", "h2", "output"]
    g = store.load_run(relu_run).ricci["forman_k6"]
    M, L = info["n_networks"], 4
    for key, shape in (("curvature", (M, L)), ("wiener", (M, L)), ("components", (M, L)), ("eta", (M, L - 1)),
                       ("rho", (M,)), ("rho_ci", (M, 2)), ("local_rho", (M, 60)), ("layer_rho", (M, 3))):
        assert g[key].shape == shape, key
    want = R.ricci_layers(_reps(relu_run), 6, connectivity="mst", n_boot=50, seed=0)
    np.testing.assert_array_equal(g["curvature"][0], want.curvature)
    np.testing.assert_array_equal(g["wiener"][0], want.wiener)
    assert g["rho"][0] == pytest.approx(want.rho, abs=1e-15) or (np.isnan(g["rho"][0]) and np.isnan(want.rho))
    assert np.all(g["components"] == 1)  # the MST fix: always connected
    np.testing.assert_allclose(g["eta"], np.diff(g["wiener"], axis=1))
    # the drawn graphs are the reference's: Σ edge curvature per layer = Ric_l (Forman: 4m − Σ d²)
    for l in range(L):
        assert g["ref_edge_curvature"][g["ref_edges"][:, 0] == l].sum() == pytest.approx(g["curvature"][0, l])
    a = g["attrs"]
    assert a["k"] == 6 and a["connectivity"] == "mst" and a["mode"] == "or" and json.loads(a["layers"])[-1] == "output"
    # connected graphs: every network enters the pooled ρ with its 3 (Ric_l, η_l) pairs
    assert a["pooled_networks"] == M and a["pooled_n"] == 3 * M and a["pooled_reason"] == "ok"
    pooled, _ = R.pooled_coefficient(list(g["curvature"]), list(g["wiener"]), n_boot=50, seed=0)
    assert a["pooled_rho"] == pytest.approx(pooled.rho, abs=1e-15)


def test_exact_copies_have_the_reference_graphs_only_where_euclidean_geometry_is_kept(relu_run):
    """Permutation keeps every pairwise Euclidean distance, so a permuted copy has the same kNN graphs;
    positive rescaling of hidden units does not, so rescaled copies may differ at hidden layers — but
    never at the input (same points) or at the output (same function)."""
    if "forman_k6" not in store.load_run(relu_run).ricci:  # the module's first test may have written it
        genni.ricci(relu_run, k=6, n_boot=50)
    g = store.load_run(relu_run).ricci["forman_k6"]
    for m in range(1, g["curvature"].shape[0]):
        assert g["curvature"][m, 0] == g["curvature"][0, 0] and g["wiener"][m, 0] == g["wiener"][0, 0]
    copies = [m for m, r in enumerate([-1, *g["elements"]]) if r >= 1]
    for m in copies:
        assert g["curvature"][m, -1] == g["curvature"][0, -1] and g["wiener"][m, -1] == g["wiener"][0, -1]


def test_published_recipe_gives_reason_codes_not_crashes(relu_run):
    info = genni.ricci(relu_run, k=2, connectivity="none", n_boot=20)
    g = store.load_run(relu_run).ricci[info["name"]]
    assert info["name"] == "forman_k2_none" and info["max_components"] > 1  # k = 2 graphs fall apart
    bad = np.isinf(g["wiener"]).any(1)
    assert bad.any()
    assert all(r == b"disconnected" for r in g["rho_reason"][bad]) and np.all(np.isnan(g["rho"][bad]))
    harmonic = genni.ricci(relu_run, k=2, connectivity="harmonic", n_boot=20)
    assert np.all(np.isfinite(store.load_run(relu_run).ricci[harmonic["name"]]["wiener"])) and harmonic["flow_sign"] == 1


def test_hidden_layers_only_and_ollivier(relu_run):
    info = genni.ricci(relu_run, k=0.1, include_output=False, curvature="ollivier", alpha=0.5, n_boot=20,
                          max_networks=2)
    assert info["k"] == 6 and info["layers"] == ["input", "h1", "h2"] and info["n_networks"] == 2
    assert info["name"] == "ollivier_k6_nooutput"
    g = store.load_run(relu_run).ricci[info["name"]]
    want = R.ricci_layers(_reps(relu_run, include_output=False), 6, curvature="ollivier", alpha=0.5,
                          connectivity="mst", n_boot=20)
    np.testing.assert_allclose(g["curvature"][0], want.curvature, rtol=1e-12)
    assert g["rho_reason"][0] == b"too_few_layers"  # 3 layers give 2 (curvature, change) pairs


def test_ricci_cli_figures_and_bad_input(relu_run, tmp_path, capsys):
    assert main(["ricci", str(relu_run), "--k", "5", "--bootstrap", "20", "--quiet"]) == 0
    assert "ricci 'forman_k5'" in capsys.readouterr().out
    # --json is strict JSON: undefined coefficients come out as null, never NaN
    assert main(["ricci", str(relu_run), "--k", "5", "--bootstrap", "20", "--no-output", "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert info["reference"]["rho"] is None and info["reference"]["reason"] == "too_few_layers"
    assert main(["inspect", str(relu_run)]) == 0
    assert "ricci forman_k5:" in capsys.readouterr().out
    assert main(["plot", str(relu_run), "-o", str(tmp_path / "f"), "--format", "png"]) == 0
    for name in ("ricci", "ricci_graphs"):
        assert (tmp_path / "f" / f"{name}.png").stat().st_size > 20_000
    before = relu_run.read_bytes()
    for bad in (["--k", "0"], ["--k", "abc"], ["--k", "1.5"], ["--curvature", "nope"], ["--curvature", "ollivier"],
                ["--connectivity", "x"], ["--mode", "both"], ["--k", "100"]):
        assert main(["ricci", str(relu_run), "--quiet", *bad]) == 2, bad
        assert "genni: error:" in capsys.readouterr().err
    assert relu_run.read_bytes() == before  # refused input leaves the file untouched
    with pytest.raises(GenniError):
        genni.ricci(tmp_path / "missing.h5")
