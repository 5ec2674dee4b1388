"""Config schema: YAML + dotlist merge, unknown keys and wrong types fail with the key's name."""
from pathlib import Path

import pytest
from omegaconf.errors import ReadonlyConfigError

from annot.annotator.config import AnnotateConfig
from annot.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def test_embedded_default_loads_and_overrides_apply():
    cfg = load_config(AnnotateConfig, REPO / "configs/annotate/body_free.yaml", ["trainer.max_steps=7", "data.root=/x"])
    assert cfg.trainer.max_steps == 7
    assert cfg.data.root == "/x"
    assert cfg.body_model.model_type == "free"
    assert list(cfg.data.input_hw) == [256, 192]


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match=r"trainer\.max_stepz"):
        load_config(AnnotateConfig, None, ["trainer.max_stepz=5"])


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbone_dept: 18\n")
    with pytest.raises(ConfigError) as err:
        load_config(AnnotateConfig, bad)
    assert "bad.yaml" in str(err.value) and "model.backbone_dept" in str(err.value)


def test_wrong_type_fails():
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(AnnotateConfig, None, ["trainer.max_steps=abc"])


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(AnnotateConfig, "nope.yaml")


def test_config_is_read_only():
    cfg = load_config(AnnotateConfig)
    with pytest.raises(ReadonlyConfigError):
        cfg.seed = 3
