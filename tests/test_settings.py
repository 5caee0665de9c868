"""The service's settings: each environment variable the docstring of app/settings.py lists,
its default, and a start that fails naming a bad variable."""

import pytest

from app.main import create_app
from app.settings import BadSettings, Settings


def test_the_environment_variables_set_their_settings():
    settings = Settings.from_env(
        {
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "DATABASE_URL": "postgresql+psycopg://u:p@db:5432/losscast",
            "MAX_BODY_BYTES": "1024",
            "LOSSCAST_WARMUP": "0",
            "LOSSCAST_WARMUP_LAWS": "lr_annealing, multi_power",
            "LOSSCAST_JAX_CACHE_DIR": "",
            "LOSSCAST_COMPUTE_THREADS": "4",
            "LOSSCAST_CURVE_MAX_AGE": "0",
            "LOG_LEVEL": "debug",
            "LOSSCAST_REFIT": "false",
            "LOSSCAST_REFIT_DELAY": "3",
            "LOSSCAST_REFIT_MAX_WAIT": "30",
            "LOSSCAST_REFIT_MAX_PENDING": "5",
            "LOSSCAST_MAX_RUN_POINTS": "200000",
        }
    )
    assert settings.host == "0.0.0.0" and settings.port == 9000
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/losscast"
    assert settings.max_body_bytes == 1024 and settings.compute_threads == 4
    assert settings.warmup is False and settings.warmup_laws == ("lr_annealing", "multi_power")
    assert settings.jax_cache_dir == ""  # empty disables the cache, it is not "unset"
    assert settings.curve_max_age == 0 and settings.log_level == "DEBUG"
    assert settings.refit is False
    assert (settings.refit_delay, settings.refit_max_wait, settings.refit_max_pending) == (3, 30, 5)
    assert settings.max_run_points == 200_000


def test_unset_or_empty_variables_give_the_documented_defaults():
    empty = Settings.from_env({"PORT": "", "LOSSCAST_REFIT_DELAY": " ", "LOSSCAST_WARMUP": ""})
    assert empty == Settings.from_env({})
    defaults = Settings.from_env({})
    assert (defaults.host, defaults.port) == ("127.0.0.1", 8000)
    assert defaults.database_url == "sqlite:///./var/losscast.db"
    assert defaults.max_body_bytes == 64 * 1024 * 1024
    assert defaults.warmup is True and defaults.warmup_laws == ("lr_annealing",)
    assert defaults.jax_cache_dir == "./var/jax-cache" and defaults.compute_threads == 2
    assert (defaults.curve_max_age, defaults.log_level, defaults.refit) == (3600, "INFO", True)
    assert (defaults.refit_delay, defaults.refit_max_wait, defaults.refit_max_pending) == (
        10,
        120,
        1000,
    )
    assert defaults.max_prediction_steps == 20_000_000
    assert (defaults.max_run_steps, defaults.max_plan_steps) == (10_000_000, 200_000_000)


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("LOSSCAST_REFIT_DELAY", "abc", "valid integer"),
        ("PORT", "0", "greater than or equal to 1"),
        ("LOSSCAST_WARMUP", "maybe", "valid boolean"),
        ("LOSSCAST_COMPUTE_THREADS", "1.5", "integer"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(variable, value, complaint):
    with pytest.raises(BadSettings) as caught:
        Settings.from_env({variable: value})
    assert f"{variable}={value!r}" in str(caught.value) and complaint in str(caught.value)


def test_a_server_with_a_bad_variable_does_not_start(monkeypatch):
    monkeypatch.setenv("LOSSCAST_REFIT_DELAY", "abc")
    with pytest.raises(BadSettings, match="LOSSCAST_REFIT_DELAY='abc'"):
        create_app()


def test_keywords_win_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOSSCAST_WARMUP", "1")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.db")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/db", warmup=False, refit=False)
    assert settings.database_url == f"sqlite:///{tmp_path}/db" and settings.warmup is False
    assert Settings().database_url == "sqlite:///elsewhere.db"  # the environment, unless a keyword


def test_settings_are_frozen():
    with pytest.raises(ValueError):
        Settings().port = 1
