"""The deployment files: both dagster.yaml load as Dagster instances, docker-compose.yml passes
`docker-compose config` and the Compose Specification's schema, the Helm values have what the chart needs
for a user deployment, and every setting the code reads is documented in .env.example."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.run_request import InstigatorType

from sales_pipeline import settings
from sales_pipeline.warehouse import embedded
from sales_pipeline_tests.conftest import PROJECT, SHARED

INSTANCE_FILES = {"local": PROJECT / "dagster.yaml", "containers": PROJECT / "deploy" / "docker" / "dagster.yaml"}
COMPOSE = PROJECT / "docker-compose.yml"
COMPOSE_SCHEMA = SHARED / "schemas" / "compose-spec.json"
HELM_VALUES = PROJECT / "deploy" / "helm" / "values.yaml"
# Variables the code reads that are not the pipeline's settings: the operating system's and Dagster's own.
NOT_SETTINGS = {"USER", "DAGSTER_HOME"}
PIPELINE_SERVICES = ("user_code", "webserver", "daemon", "api", "java_api")


@pytest.mark.parametrize("where", INSTANCE_FILES)
def test_instance_settings_load_with_retries_pools_monitoring_retention_and_freshness(where, tmp_path, warehouse_url):
    shutil.copyfile(INSTANCE_FILES[where], tmp_path / "dagster.yaml")
    os.environ[settings.DAGSTER_DATABASE_URL] = embedded.dagster_storage_url()
    try:  # the schema is strict: an unknown or misspelt key fails here
        instance = dg.DagsterInstance.from_config(str(tmp_path))
    finally:
        del os.environ[settings.DAGSTER_DATABASE_URL]
    with instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 2)
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds >= 3600
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0  # a dead run's pool slots
        assert instance.freshness_enabled is True
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 3  # the `warehouse` pool
        assert concurrency.pool_config.pool_granularity.value == "op"
        imports_one_at_a_time = {"key": "sales_pipeline/queue", "value": "workbook_imports", "limit": 1}
        assert imports_one_at_a_time in concurrency.run_queue_config.tag_concurrency_limits
        retention = instance.get_tick_retention_settings(InstigatorType.SENSOR)
        assert {status.value: days for status, days in retention.items()}["SKIPPED"] == 7
        if where == "containers":
            launcher = instance.run_launcher
            assert type(launcher).__name__ == "DockerRunLauncher"
            assert launcher.networks == ["sales_pipeline_network"]
            assert launcher.container_kwargs["volumes"] == ["sales_pipeline_home:/var/lib/sales_pipeline"]


def test_run_containers_get_every_setting():
    """A run container gets only the variables the launcher lists: every setting must be there."""
    config = yaml.safe_load(INSTANCE_FILES["containers"].read_text())
    listed = config["run_launcher"]["config"]["env_vars"]
    missing = setting_names() - set(listed)
    assert not missing, f"add {sorted(missing)} to run_launcher.config.env_vars in deploy/docker/dagster.yaml"
    assert len(listed) == len(set(listed))


def test_env_example_lists_every_variable_the_code_and_the_deployment_files_read():
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (PROJECT / ".env.example").read_text(), re.MULTILINE))
    read_by_code = setting_names() | environment_reads(PROJECT / "sales_pipeline")
    instance_files = set()
    for path in INSTANCE_FILES.values():
        instance_files |= set(re.findall(r"env: ([A-Z][A-Z0-9_]+)", path.read_text()))
    compose = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", COMPOSE.read_text()))
    for source, names in {"the code": read_by_code, "dagster.yaml": instance_files, "compose": compose}.items():
        missing = names - documented - NOT_SETTINGS
        assert not missing, f"{sorted(missing)}, read by {source}, missing from .env.example"


def test_workspace_files_load_the_code_location_by_module_locally_and_from_the_code_server_in_containers():
    local = yaml.safe_load((PROJECT / "workspace.yaml").read_text())["load_from"]
    assert local == [{"python_module": {"module_name": "sales_pipeline.definitions", "attribute": "defs",
                                        "location_name": "sales_pipeline"}}]  # fmt: skip
    (containers,) = yaml.safe_load((PROJECT / "deploy" / "docker" / "workspace.yaml").read_text())["load_from"]
    server = compose_file()["services"][containers["grpc_server"]["host"]]
    command = server["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-p") + 1] == str(containers["grpc_server"]["port"])
    assert command[command.index("--location-name") + 1] == containers["grpc_server"]["location_name"]


def test_compose_file_has_the_deploy_docker_structure():
    compose = compose_file()
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["user_code"]["healthcheck"]["test"][1:4] == ["dagster", "api", "grpc-health-check"]
    for name in PIPELINE_SERVICES:
        assert services[name]["env_file"] == ".env", name
    for name in ("user_code", "webserver", "daemon", "api"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["user_code"]["condition"] == "service_healthy"
        assert "/var/run/docker.sock:/var/run/docker.sock" in services[name]["volumes"]
        assert services[name]["user"] == "root"  # the Docker socket's owner; the others run as the image's user
    assert all("user" not in services[name] for name in ("user_code", "api", "java_api"))
    assert services["api"]["command"][:2] == ["sales-pipeline", "serve"]
    assert services["java_api"]["command"][:2] == ["sales-pipeline", "simulate-api"]
    assert services["mailpit"]["image"].startswith("axllent/mailpit:v")
    # The run launcher's network and volume are the ones compose creates, under these names.
    launcher = yaml.safe_load(INSTANCE_FILES["containers"].read_text())["run_launcher"]["config"]
    assert compose["networks"][launcher["network"]]["name"] == launcher["network"]
    volume = launcher["container_kwargs"]["volumes"][0].split(":")[0]
    assert compose["volumes"][volume]["name"] == volume
    assert f"{volume}:/var/lib/sales_pipeline" in services["user_code"]["volumes"]


def test_the_image_is_slim_pinned_and_runs_as_another_user_than_root():
    dockerfile = (PROJECT / "deploy" / "docker" / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base)
    assert "-c /tmp/constraints.txt" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    pins = (PROJECT / "deploy" / "docker" / "constraints.txt").read_text()
    assert re.search(r"^dagster==1\.13\.\d+$", pins, re.MULTILINE)  # the pyproject range, one exact version


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian's docker-compose is not installed")
def test_docker_compose_config_accepts_the_file(tmp_path):
    shutil.copyfile(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copyfile(PROJECT / ".env.example", tmp_path / ".env")
    env = {"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": "s3cret"}
    result = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    user_code = resolved["services"]["user_code"]["environment"]
    assert user_code["SALES_PIPELINE_DATABASE_URL"] == "postgresql://sales:s3cret@postgres:5432/sales_pipeline"
    assert resolved["services"]["api"]["environment"]["DAGSTER_WEBSERVER_URL"] == "http://webserver:3000"

    del env["POSTGRES_PASSWORD"]  # no password: compose refuses, naming it
    refused = subprocess.run(["docker-compose", "config"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD in .env" in refused.stderr


@pytest.mark.skipif(not COMPOSE_SCHEMA.exists(), reason=f"{COMPOSE_SCHEMA} is not there (../shared absent)")
def test_compose_file_follows_the_compose_specification():
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(
        compose_file())]  # fmt: skip
    assert errors == []


def test_helm_values_have_what_the_chart_needs_for_the_user_deployment():
    values = yaml.safe_load(HELM_VALUES.read_text())
    user_deployments = values["dagster-user-deployments"]
    assert user_deployments["enabled"] and user_deployments["enableSubchart"]
    (deployment,) = user_deployments["deployments"]
    assert re.fullmatch(r"[a-z0-9-]+", deployment["name"])  # a Kubernetes name
    assert deployment["image"]["repository"] and deployment["image"]["tag"] not in ("", "latest")
    args = deployment["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == "sales_pipeline.definitions"
    assert args[args.index("--attribute") + 1] == "defs"
    assert isinstance(deployment["port"], int)
    assert deployment["envSecrets"] == [{"name": "sales-pipeline-env"}]
    assert {"name": settings.RUN_EXECUTOR, "value": "k8s"} in deployment["env"]  # each step a Job
    shards = next(variable["value"] for variable in deployment["env"] if variable["name"] == "FORECAST_SHARDS")
    assert deployment["podSecurityContext"]["runAsNonRoot"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # Run and step pods get the launcher's settings only: passed on (includeConfigInLaunchedRuns), the code
    # server's resources would replace the launcher's in every run pod.
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["envSecrets"] == deployment["envSecrets"]
    assert launcher["envVars"] == [f"{variable['name']}={variable['value']}" for variable in deployment["env"]]
    assert (launcher["volumes"], launcher["volumeMounts"]) == (deployment["volumes"], deployment["volumeMounts"])
    assert launcher["resources"]["limits"]["memory"]
    daemon = values["dagsterDaemon"]
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": 2, "retryOnAssetOrOpFailure": False}
    assert daemon["runMonitoring"]["enabled"] and daemon["runMonitoring"]["maxRuntimeSeconds"] > 0
    assert daemon["runMonitoring"]["freeSlotsAfterRunEndSeconds"] > 0
    assert values["concurrency"]["enabled"] and values["concurrency"]["pools"]["defaultLimit"] == 3 + int(shards)
    assert values["additionalInstanceConfig"]["freshness"] == {"enabled": True}
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlParams"]["sslmode"]


@pytest.mark.parametrize(
    ("value", "executor"),
    [
        ("", "in_process"),
        ("in_process", "in_process"),
        ("Multiprocess", "multi_or_in_process_executor"),
        ("k8s", "k8s"),
    ],
)
def test_the_run_executor_setting_chooses_how_steps_execute(value, executor, monkeypatch, warehouse_url):
    from sales_pipeline.definitions import build_definitions

    monkeypatch.setenv(settings.RUN_EXECUTOR, value)
    definitions = build_definitions(settings.Settings.from_environment())
    for job in ("refresh_forecasts_and_anomalies", "import_workbook"):
        assert definitions.resolve_job_def(job).executor_def.name == executor
    assert definitions.resolve_implicit_global_asset_job_def().executor_def.name == executor


def test_a_run_executor_the_pipeline_does_not_know_fails_naming_the_setting(monkeypatch):
    monkeypatch.setenv(settings.RUN_EXECUTOR, "celery")
    with pytest.raises(settings.SettingError) as error:
        settings.Settings.from_environment()
    assert str(error.value) == (
        "SALES_PIPELINE_RUN_EXECUTOR='celery' is not a run executor: use in_process, multiprocess or k8s"
    )


# --- what the code reads ----------------------------------------------------------------------------


def setting_names() -> set[str]:
    """The settings: the environment variables named in the settings module."""
    return {v for v in vars(settings).values() if isinstance(v, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", v)}


def environment_reads(package: Path) -> set[str]:
    """Every variable the package reads by name: os.environ[...], os.environ.get, os.getenv, dg.EnvVar, with
    a literal, a constant of the module or one of the settings module."""
    names = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                     and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                     for t in n.targets if isinstance(t, ast.Name)}  # fmt: skip
        for node in ast.walk(tree):
            argument = None
            if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
                argument = node.slice
            elif isinstance(node, ast.Call) and node.args:
                function = ast.unparse(node.func)
                if function.endswith(("environ.get", "os.getenv", "EnvVar", "environ.setdefault")):
                    argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(argument.value)
            elif isinstance(argument, ast.Attribute) and isinstance(getattr(settings, argument.attr, None), str):
                names.add(getattr(settings, argument.attr))
            elif isinstance(argument, ast.Name) and argument.id in constants:
                names.add(constants[argument.id])
    return names


def compose_file() -> dict:
    return yaml.safe_load(COMPOSE.read_text())
