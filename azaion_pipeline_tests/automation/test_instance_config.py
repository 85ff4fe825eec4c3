"""The instance configs in configs/: the GPU pool, run monitoring and retries as documented."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from azaion_pipeline.cli.dev import gpu_count, instance_kind, prepare_dagster_home
from azaion_pipeline.lib.settings import configs_dir


def test_dev_instance_limits_the_gpu_pool_and_frees_slots_of_crashed_runs(tmp_path):
    prepare_dagster_home(tmp_path, gpus=2)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 2
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 2
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
    # Running dev again with another count resizes the existing pool.
    prepare_dagster_home(tmp_path, gpus=1)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1


@pytest.mark.parametrize(("raw", "expected"), [(None, 1), ("4", 4)])
def test_gpu_count_from_the_environment(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("AZAION_GPU_COUNT", raising=False)
    else:
        monkeypatch.setenv("AZAION_GPU_COUNT", raw)
    assert gpu_count() == expected


@pytest.mark.parametrize("raw", ["0", "two"])
def test_gpu_count_rejects_nonsense(monkeypatch, raw):
    monkeypatch.setenv("AZAION_GPU_COUNT", raw)
    with pytest.raises(ValueError, match="AZAION_GPU_COUNT"):
        gpu_count()


@pytest.mark.parametrize("variant", ["dagster.yaml", "dagster.postgres.yaml", "dagster.k8s.yaml"])
def test_every_variant_keeps_the_same_safety_settings(variant):
    config = yaml.safe_load((configs_dir() / variant).read_text())
    assert config["concurrency"]["pools"]["granularity"] == "op"
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert config["run_retries"]["enabled"] is True
    if "storage" in config:  # database credentials only ever from the environment
        database = config["storage"]["postgres"]["postgres_db"]
        assert database["password"] == {"env": "DAGSTER_PG_PASSWORD"}


@pytest.mark.parametrize(("raw", "expected"), [(None, "sqlite"), ("postgres", "postgres")])
def test_instance_kind_from_the_environment(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("AZAION_INSTANCE", raising=False)
    else:
        monkeypatch.setenv("AZAION_INSTANCE", raw)
    assert instance_kind() == expected


def test_instance_kind_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("AZAION_INSTANCE", "mysql")
    with pytest.raises(ValueError, match="AZAION_INSTANCE must be one of sqlite, postgres"):
        instance_kind()
