"""Config records: JSON round trip and validation with helpful errors."""

import json

import pytest

from core.config import Config, ConfigError, preset, PRESETS


def test_default_round_trip():
    cfg = Config()
    again = Config.from_json(cfg.to_json())
    assert again == cfg
    assert again.audio.n_mels == 100 and again.audio.hop_length == 256


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip(name, tmp_path):
    cfg = preset(name)
    path = tmp_path / "c.json"
    cfg.save(path)
    assert Config.load(path) == cfg


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError) as e:
        Config.from_dict({"model": {"dimm": 3}})
    msg = str(e.value)
    assert "dimm" in msg and "dim" in msg and "depth" in msg


def test_unknown_section():
    with pytest.raises(ConfigError, match="valid: audio, text, model"):
        Config.from_dict({"modle": {}})


def test_unknown_option_name_lists_choices():
    with pytest.raises(ConfigError) as e:
        Config.from_dict({"sampling": {"solver": "rk45"}})
    assert "rk45" in str(e.value) and "euler, midpoint, heun, rk4" in str(e.value)
    with pytest.raises(ConfigError, match="logit_normal"):
        Config.from_dict({"objective": {"time_sampling": "lognormal"}})


def test_type_and_range_errors():
    with pytest.raises(ConfigError, match="integer"):
        Config.from_dict({"model": {"depth": "six"}})
    with pytest.raises(ConfigError, match="true or false"):
        Config.from_dict({"audio": {"center": 1}})
    with pytest.raises(ConfigError, match="divisible"):
        Config.from_dict({"model": {"dim": 100, "heads": 3}})
    with pytest.raises(ConfigError, match="t_lo"):
        Config.from_dict({"objective": {"t_lo": 0.9, "t_hi": 0.1}})


def test_tuple_field_round_trip():
    cfg = Config.from_dict({"training": {"betas": [0.8, 0.95]}})
    assert cfg.training.betas == (0.8, 0.95)
    assert json.loads(cfg.to_json())["training"]["betas"] == [0.8, 0.95]


def test_preset_with_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "tiny", "objective": {"name": "meanflow"}}))
    cfg = Config.load(path)
    assert cfg.objective.name == "meanflow" and cfg.model.dim == preset("tiny").model.dim
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        Config.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.load(bad)


@pytest.mark.parametrize("objective, key, value, owner", [
    ("edm", "weighting", "linear", "cfm"), ("meanflow", "time_sampling", "uniform_x", None),
    ("cfm", "edm_weighting", "min_snr", "edm"), ("cfm", "r_neq_t_fraction", 0.5, "meanflow"),
    ("meanflow", "sigma_data", 1.0, "edm"), ("cfm", "cfg", 2.0, "meanflow"),
])
def test_a_setting_of_another_objective_is_refused(objective, key, value, owner):
    from core.config import Config, ConfigError

    from core.config import merge, preset

    data = {"objective": {"name": objective, key: value}}
    if owner is None:  # an unknown value is refused by its own check first
        with pytest.raises(ConfigError):
            merge(preset("tiny"), data)
        return
    with pytest.raises(ConfigError, match=rf"objective.{key} applies to {owner} only, not to objective "
                                          rf"'{objective}'; {objective} takes: "):
        merge(preset("tiny"), data)  # a user's override ...
    path = __import__("tempfile").mktemp(suffix=".json")
    __import__("json").dump(data, open(path, "w"))
    with pytest.raises(ConfigError, match=rf"objective.{key} applies to {owner} only"):
        Config.load(path)  # ... or a user's JSON file
    # a checkpoint's stored config may hold another objective's former default: it still loads
    assert Config.from_dict(data).objective.name == objective


def test_settings_shared_by_two_objectives_are_accepted():
    from core.config import merge, preset

    # logit-normal times are read by cfm and by meanflow
    assert merge(preset("tiny"), {"objective": {"name": "meanflow", "logit_mean": -0.4}}).objective.logit_mean == -0.4
    assert merge(preset("tiny"), {"objective": {"name": "cfm", "time_sampling": "logit_normal", "logit_std": 0.8}})


@pytest.mark.parametrize("bad, build", [
    ({"logit_std": 0.0}, lambda: __import__("core.flow", fromlist=["TimeSampling"]).TimeSampling(logit_std=0.0)),
    ({"t_lo": 0.6, "t_hi": 0.5}, lambda: __import__("core.flow", fromlist=["TimeSampling"]).TimeSampling(
        kind="range", t_lo=0.6, t_hi=0.5)),
    ({"weighting": "cubic"}, lambda: __import__("core.flow.cfm", fromlist=["CFMObjective"]).CFMObjective(
        weighting="cubic")),
    ({"edm_weighting": "snr"}, lambda: __import__("core.flow.edm", fromlist=["EDMObjective"]).EDMObjective(
        weighting="snr")),
    ({"sigma_min": 1.0, "sigma_max": 0.5}, lambda: __import__("core.flow.edm", fromlist=["EDMObjective"]).EDMObjective(
        sigma_min=1.0, sigma_max=0.5)),
    ({"timestep_filter": 0.5}, lambda: __import__("core.flow.edm", fromlist=["EDMObjective"]).EDMObjective(
        timestep_filter=0.5)),
    ({"r_neq_t_fraction": 1.5}, lambda: __import__("core.flow.meanflow", fromlist=["MeanFlowObjective"])
     .MeanFlowObjective(r_neq_t_fraction=1.5)),
    ({"adaptive_c": 0.0}, lambda: __import__("core.flow.meanflow", fromlist=["MeanFlowObjective"])
     .MeanFlowObjective(adaptive_c=0.0)),
    ({"cfg": -1.0}, lambda: __import__("core.flow.meanflow", fromlist=["MeanFlowObjective"])
     .MeanFlowObjective(cfg=-1.0)),
])
def test_an_objective_rule_is_written_once_config_and_objective_say_the_same(bad, build):
    """ObjectiveConfig.validate and the objective classes check with the same rules
    (core.config.OBJECTIVE_RULES / check_objective_settings): the same bad value gives
    the same message on both paths."""
    from core.config import ObjectiveConfig

    with pytest.raises(ConfigError) as from_config:
        ObjectiveConfig(**bad).validate()
    with pytest.raises(ConfigError) as from_class:
        build()
    assert str(from_config.value) == str(from_class.value)
    assert all(k in str(from_config.value) or repr(v) in str(from_config.value) for k, v in bad.items())


def test_guidance_trained_in_needs_rows_with_the_text_dropped():
    from core.config import merge, preset

    guided = {"objective": {"name": "meanflow", "cfg": 2.0}}
    assert merge(preset("tiny"), guided).objective.cfg == 2.0       # tiny drops 10 % of rows
    with pytest.raises(ConfigError, match=r"objective.cfg 2.0 needs the unconditional field.*model.cond_drop_prob > 0"):
        merge(preset("tiny"), {**guided, "model": {"cond_drop_prob": 0.0}}).validate()
