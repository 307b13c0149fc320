"""`genni identify --exact`: the functional dimension on the run's input box, stored and kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genni import config, exact, identifiability, models, store
from genni.cli import main
from genni.exact import Network
from genni.stages import identify
from tests.conftest import TINY_CONFIG, append_symmetry_copies

RELU = TINY_CONFIG.replace('activation = "tanh"', 'activation = "relu"').replace("widths = [2, 6, 1]",
                                                                                  "widths = [2, 6, 5, 1]")


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("exact")
    (d / "relu.toml").write_text(RELU.replace("n = 6", 'n = 3\ninit = "perturb"\ninit_scale = 0.01'))
    assert main(["find", str(d / "relu.toml"), "-o", str(d / "run.h5"), "--quiet"]) == 0
    return d / "run.h5"


def test_exact_rank_is_stored_with_its_regions_and_box(relu_run):
    assert main(["identify", str(relu_run), "--exact", "--quiet"]) == 0
    run = store.load_run(relu_run)
    e, a = run.exact, run.exact["attrs"]
    model = models.from_dict(run.architecture)
    assert a["status"] in exact.STATUSES and a["bound"] == model.expected_rank()
    assert int(run.identifiability["rank"]) <= a["rank"] <= a["bound"]  # the probe is inside the box
    box = identify.domain(run, 3.0)
    np.testing.assert_array_equal(a["domain_lo"], box.lo)
    assert box.contains(run.X).all() and box.contains(e["points"]).all()
    # each stored interior point has its stored pattern (at the balanced θ*, the gauge the walk used)
    net = Network.of(model, model.symmetry.balance(run.theta_ref))
    np.testing.assert_array_equal(net.preactivations(e["points"])[0] > 0, e["patterns"])
    assert e["patterns"].shape == (a["n_regions"], sum(model.hidden_widths))
    assert a["complete"] == (a["walk_status"] == "complete")
    ranks = dict(e["by_tolerance"])
    assert ranks[1e-9] == a["rank"]


def test_identify_without_exact_keeps_the_exact_group(relu_run):
    if not store.load_run(relu_run).exact:
        assert main(["identify", str(relu_run), "--exact", "--quiet"]) == 0
    before = store.load_run(relu_run).exact
    assert main(["identify", str(relu_run), "--quiet"]) == 0
    after = store.load_run(relu_run).exact
    assert after["attrs"]["rank"] == before["attrs"]["rank"]
    np.testing.assert_array_equal(after["patterns"], before["patterns"])


def test_region_budget_gives_a_lower_bound_or_the_bound(relu_run, tmp_path):
    path = tmp_path / "budget.h5"
    path.write_bytes(relu_run.read_bytes())
    assert main(["identify", str(path), "--exact", "--max-regions", "1", "--quiet"]) == 0
    a = store.load_run(path).exact["attrs"]
    assert a["status"] == ("certified at the bound" if a["rank"] == a["bound"] else "lower bound")
    assert "region budget" in a["walk_status"] or a["status"] == "certified at the bound"


def test_exact_from_the_config(tmp_path):
    text = RELU.replace("n = 6", "n = 1") + "[identify]\nexact = true\ndomain_scale = 2.0\nsup_seconds = 5\n"
    cfg = config.resolve(__import__("tomllib").loads(text))
    assert cfg["identify"]["exact"] is True
    p = tmp_path / "c.toml"
    p.write_text(text)
    assert main(["find", str(p), "-o", str(tmp_path / "r.h5"), "--quiet"]) == 0
    assert main(["identify", str(tmp_path / "r.h5"), "--quiet"]) == 0
    run = store.load_run(tmp_path / "r.h5")
    lo = run.X.min(0) - 0.5 * (run.X.max(0) - run.X.min(0))
    np.testing.assert_allclose(run.exact["attrs"]["domain_lo"], lo)
    sampled = identifiability.spectrum(identifiability.output_jacobian(
        models.from_dict(run.architecture), run.theta_ref,
        identify.domain(run, 2.0).sample(4096, np.random.default_rng(0)))).rank
    assert sampled <= run.exact["attrs"]["rank"]


def test_every_element_has_a_certified_sup_that_no_sampled_input_of_the_box_exceeds(relu_run, tmp_path):
    path = tmp_path / "certs.h5"
    path.write_bytes(relu_run.read_bytes())
    before = append_symmetry_copies(path, 2)
    assert main(["identify", str(path), "--exact", "--quiet"]) == 0
    run = store.load_run(path)
    e, model = run.equivalents, models.from_dict(run.architecture)
    codes = run.equivalents_attrs["certified_status_codes"]
    assert all(codes[c] == "optimal" for c in e["certified_status"])
    U, L = e["certified_sup"], e["certified_lower"]
    assert np.all(L <= U) and np.all(e["certified_gap"] >= 0)
    box = identify.domain(run, 3.0)
    X = np.concatenate([run.X, run.X_heldout, run.X_far[box.contains(run.X_far)],
                        box.sample(20_000, np.random.default_rng(0))])
    with torch.no_grad():
        F = model.forward(torch.tensor(e["theta"]), torch.tensor(X)).numpy()
        F0 = model.forward(torch.tensor(run.theta_ref), torch.tensor(X)).numpy()
    sampled = np.abs(F - F0).max(axis=(1, 2))
    assert np.all(sampled <= U * (1 + 1e-9) + 1e-12)
    # the witness attains L exactly, and lies in the box
    W = e["certified_witness"]
    assert box.contains(W).all()
    with torch.no_grad():
        at = [np.abs(model.forward(torch.tensor(e["theta"][i]), torch.tensor(W[i:i + 1])).numpy()
                     - model.forward(torch.tensor(run.theta_ref), torch.tensor(W[i:i + 1])).numpy()).max()
              for i in range(len(W))]
    np.testing.assert_allclose(at, L, rtol=1e-12, atol=1e-13)  # torch and numpy forward passes round differently
    # exact symmetry copies: a certified sup at rounding level, and still called copies
    scale = np.sqrt(run.reference["output_power"])
    assert np.all(U[before:] <= 1e-9 * scale)
    assert np.all(e["verdict"][before:] == identifiability.VERDICTS.index("symmetry_copy"))
    np.testing.assert_allclose(e["certified_relative"], model.out_dim * U ** 2 / run.reference["output_power"])


def test_certificates_are_kept_and_applied_by_a_later_identify(relu_run, tmp_path):
    path = tmp_path / "kept.h5"
    path.write_bytes(relu_run.read_bytes())
    assert main(["identify", str(path), "--exact", "--quiet"]) == 0
    first = store.load_run(path).equivalents
    assert main(["identify", str(path), "--quiet"]) == 0
    again = store.load_run(path).equivalents
    np.testing.assert_array_equal(first["certified_sup"], again["certified_sup"])
    np.testing.assert_array_equal(first["verdict"], again["verdict"])


def test_certify_upgrades_only_hidden_and_data_equivalents_within_the_tolerance():
    V = identifiability.VERDICTS
    verdict = np.array([V.index(v) for v in ("symmetry_copy", "hidden_equivalent", "data_equivalent",
                                             "data_equivalent", "probe_only", "not_converged", "hidden_equivalent")])
    rel = np.array([0.0, 1e-12, 1e-12, 1e-3, 0.0, 0.0, np.nan])
    got = [V[i] for i in identifiability.certify(verdict, rel, 1e-9)]
    assert got == ["symmetry_copy", "certified_equivalent", "certified_equivalent", "data_equivalent", "probe_only",
                   "not_converged", "hidden_equivalent"]


def test_identify_and_inspect_report_the_exact_answers(relu_run, tmp_path, capsys):
    path = tmp_path / "report.h5"
    path.write_bytes(relu_run.read_bytes())
    capsys.readouterr()
    assert main(["identify", str(path), "--exact", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "functional dimension on the box:" in out and "certified on the box:" in out
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    a = store.load_run(path).exact["attrs"]
    assert f"functional dimension on the box: {a['rank']} of bound {a['bound']}, {a['status']}" in out
    assert "certified sup-norm discrepancy on the box:" in out


def test_json_output_is_json_alone(relu_run, tmp_path, capfd):
    """--json prints one JSON document on stdout, whatever the MILP solver writes to the C-level stdout."""
    path = tmp_path / "json.h5"
    path.write_bytes(relu_run.read_bytes())
    capfd.readouterr()
    assert main(["identify", str(path), "--exact", "--json", "--quiet"]) == 0
    info = __import__("json").loads(capfd.readouterr().out)
    assert info["exact"]["status"] in exact.STATUSES and info["exact"]["certified"]["elements"] >= 1
