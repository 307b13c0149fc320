"""Config parsing: defaults, the built-in default, and a named error for every bad input."""

import json

import pytest

from genni import config, models
from genni.errors import ConfigError


def test_builtin_default_resolves_completely():
    cfg = config.load()
    assert cfg["name"] == "moons_relu"
    assert cfg["model"] == {"kind": "mlp", "widths": [2, 16, 16, 1], "activation": "relu", "negative_slope": 0.01,
                            "bias": True}
    for section, keys in config.SCHEMA.items():
        table = cfg if not section else cfg[section]
        if section == "model":  # the kind and its own keys only
            keys = ("kind", *models.model_class(table["kind"]).CONFIG_KEYS)
        if section == "identify" and table["rank_growth_max"] == 0:  # rank_inputs only where rank growth is on
            keys = tuple(k for k in keys if k != "rank_inputs")
        assert set(keys) <= set(table)
    assert json.loads(config.to_json(cfg)) == cfg


def test_widths_default_follows_the_dataset():
    cfg = config.resolve({"data": {"dataset": "iris", "n_probe": 50, "n_heldout": 50}})
    assert cfg["model"]["widths"] == [4, 16, 16, 3]
    cfg = config.resolve({"data": {"dataset": "spheres"}})
    assert cfg["model"]["widths"] == [3, 16, 16, 1]


@pytest.mark.parametrize("raw, match", [
    ({"bogus": 1}, "unknown key 'bogus'"),
    ({"search": {"nn": 3}}, r"unknown key 'nn' in \[search\]"),
    ({"search": {"n": "many"}}, r"\[search\] n must be an integer"),
    ({"search": {"n": True}}, r"\[search\] n must be an integer"),
    ({"search": {"n": 0}}, r"\[search\] n must be positive"),
    ({"search": {"tol": -1.0}}, r"\[search\] tol must be positive"),
    ({"search": {"method": "sgd"}}, r"\[search\] method = 'sgd' is not one of"),
    ({"data": {"dataset": "mnist"}}, r"\[data\] dataset = 'mnist' is not one of"),
    ({"model": {"activation": "swish"}}, r"\[model\] activation = 'swish'"),
    ({"model": {"widths": [3, 8, 1]}}, r"widths\[0\] = 3 but dataset moons has 2 input features"),
    ({"model": {"widths": [2, 8, 3]}}, r"widths\[-1\] = 3 but dataset moons has 2 classes"),
    ({"model": {"widths": [2, -8, 1]}}, "positive integers"),
    ({"model": {"widths": "2,8,1"}}, r"\[model\] widths must be a list"),
    ({"data": "moons"}, r"\[data\] must be a table"),
    ({"data": {"dataset": "iris", "n_probe": 100, "n_heldout": 100}}, "iris has 150 rows"),
    ({"reference": {"source": "file"}}, "needs \\[reference\\] path"),
    ({"search": {"revive": 1}}, r"\[search\] revive must be true or false"),
    ({"search": {"stall_factor": 1.5}}, r"\[search\] stall_factor must be below 1"),
    ({"search": {"damping": "levenberg"}}, r"\[search\] damping = 'levenberg' is not one of"),
    ({"search": {"tol": float("nan")}}, r"\[search\] tol"),
])
def test_bad_configs_name_the_problem(raw, match):
    with pytest.raises(ConfigError, match=match):
        config.resolve(raw)


def test_method_defaults_and_search_defaults_come_from_search_settings():
    from genni.search import DEFAULT_MAX_STEPS, SearchSettings

    lm = config.resolve({})["search"]
    adam = config.resolve({"search": {"method": "adam"}})["search"]
    assert lm["max_steps"] == DEFAULT_MAX_STEPS["lm"] and adam["max_steps"] == DEFAULT_MAX_STEPS["adam"]
    settings = SearchSettings.from_config(lm)
    assert settings.hops == SearchSettings().hops and settings.revive is True


def test_random_teacher_may_have_any_output_width():
    cfg = config.resolve({"model": {"widths": [2, 8, 3]}, "reference": {"source": "random"}})
    assert cfg["model"]["widths"] == [2, 8, 3]


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)


def test_differences_ignore_resumable_keys():
    a = config.load()
    b = config.with_overrides(a, n=1000, device="cpu")
    assert config.differences(a, b) == []
    c = config.with_overrides(a, seed=7)
    assert config.differences(a, c) == ["seed"]
    d = json.loads(json.dumps(a))
    d["search"]["tol"] = 1e-8
    assert config.differences(a, d) == ["search.tol"]


def test_shipped_experiment_configs_resolve():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[2].joinpath("experiments").glob("*.toml"))
    assert configs
    for p in configs:
        assert config.load(p)["name"] == p.stem
    # experiments/moons_relu.toml is the built-in default
    assert config.load(configs[[p.stem for p in configs].index("moons_relu")]) == config.load()


@pytest.mark.parametrize("data,ref,match", [
    ({"dataset": "normal"}, {"source": "random"}, "needs \\[data\\] dim"),
    ({"dataset": "normal", "dim": 3}, {"source": "train"}, "no labels"),
    ({"dataset": "moons", "dim": 3}, {"source": "train"}, "only for dataset = 'normal'"),
    ({"dataset": "normal", "dim": 0}, {"source": "random"}, "dim must be positive"),
])
def test_normal_inputs_bad_combinations(data, ref, match):
    with pytest.raises(ConfigError, match=match):
        config.resolve({"data": data, "reference": ref})


def test_normal_inputs_resolve():
    cfg = config.resolve({"data": {"dataset": "normal", "dim": 4}, "reference": {"source": "random"},
                          "model": {"bias": False}})
    assert cfg["model"]["widths"] == [4, 16, 16, 1] and cfg["model"]["bias"] is False
