"""The deployment files say what the service needs: lint, schemas, and how the parts fit."""

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dockerfile import DOCKERFILE, ROOT, exec_form, is_ignored, stages

KUBERNETES = ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(path.name for path in KUBERNETES.glob("*.yaml") if path.stem != "kustomization")
PRODUCTION_INSTALL = "uv sync --locked --no-dev --no-editable"
# PostgreSQL's default max_connections, less superuser_reserved_connections (3), the
# migration Job and an operator's psql session.
POSTGRES_CONNECTIONS = 100 - 10


def tool(name: str) -> str:
    """A dev-group tool installed beside this interpreter."""
    return str(Path(sys.executable).with_name(name))


def manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((KUBERNETES / name).read_text())
    return document


def pod(name: str) -> dict[str, Any]:
    pod_template: dict[str, Any] = manifest(name)["spec"]["template"]
    return pod_template


def container(name: str) -> dict[str, Any]:
    (only,) = pod(name)["spec"]["containers"]
    return dict(only)


def config() -> dict[str, str]:
    data: dict[str, str] = manifest("configmap.yaml")["data"]
    return data


def port_number(port: int | str) -> int:
    """A probe's or Service's port, resolving a named port to the container's number."""
    if isinstance(port, int):
        return port
    ports = container("deployment.yaml")["ports"]
    (number,) = (named["containerPort"] for named in ports if named["name"] == port)
    return int(number)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else command


def seconds(duration: str) -> int:
    assert re.fullmatch(r"\d+s", duration), f"{duration}: write it as Ns"
    return int(duration[:-1])


# The image


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_installs_the_production_set_only() -> None:
    builder = stages()[0]
    installs = [command for command in builder.shell_commands() if "uv sync" in command]

    assert installs[-1] == PRODUCTION_INSTALL
    for command in installs:
        assert "--no-dev" in command
        assert "--locked" in command
        for widening in ("--dev", "--group", "--all-groups", "--extra", "--all-extras"):
            assert widening not in shlex.split(command), command
    assert {"UV_COMPILE_BYTECODE": "1", "UV_LINK_MODE": "copy"}.items() <= builder.env().items()


def test_final_stage_copies_only_the_venv() -> None:
    final = stages()[-1]
    assert final.arguments("COPY") == ["--from=builder /app/.venv /app/.venv"]
    assert final.env()["PATH"].startswith("/app/.venv/bin:")
    assert not any("uv" in command or "pip" in command for command in final.shell_commands())


def test_image_runs_as_a_fixed_non_root_uid() -> None:
    user = stages()[-1].arguments("USER")[-1]
    uid = user.split(":")[0]
    # Numeric, or Kubernetes' runAsNonRoot cannot check it.
    assert uid.isdigit()
    assert int(uid) != 0
    assert str(pod("deployment.yaml")["spec"]["securityContext"]["runAsUser"]) == uid


def test_image_serves_on_all_interfaces_on_the_exposed_port() -> None:
    final = stages()[-1]
    assert final.env()["APP_HOST"] == "0.0.0.0"
    assert final.arguments("EXPOSE") == [final.env().get("APP_PORT", "8000")]
    assert exec_form(final.arguments("CMD")[-1])[:2] == ["user-service", "serve"]


def test_image_healthcheck_asks_healthz_without_curl() -> None:
    (healthcheck,) = stages()[-1].arguments("HEALTHCHECK")
    command = exec_form(healthcheck)
    assert command[0] == "python"
    assert "/healthz" in command[-1]
    assert "urllib" in command[-1]


@pytest.mark.parametrize("path", [".env", ".venv", ".tools", ".data", ".git", "tests"])
def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build(path: str) -> None:
    assert is_ignored(path)


# Kubernetes


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_kubernetes(name: str) -> None:
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(KUBERNETES / name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # An unknown kind is only a warning: require the word that says it was checked.
    assert " passed " in result.stdout, result.stdout


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    resources = manifest("kustomization.yaml")["resources"]
    assert sorted(resources) == [name for name in MANIFESTS if name != "secret.example.yaml"]


def test_probes_ask_healthz_for_liveness_and_readyz_for_readiness_on_the_served_port() -> None:
    app = container("deployment.yaml")
    served = int(config()["APP_PORT"])

    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app.get("startupProbe", app["livenessProbe"])["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert port_number(app[probe]["httpGet"]["port"]) == served
    assert [port["containerPort"] for port in app["ports"]] == [served]


def test_pods_get_longer_to_stop_than_the_service_takes_to_drain() -> None:
    pre_stop = container("deployment.yaml")["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"

    needed = int(pre_stop[1]) + int(config()["APP_GRACEFUL_TIMEOUT"])
    assert pod("deployment.yaml")["spec"]["terminationGracePeriodSeconds"] > needed


@pytest.mark.parametrize("name", ["deployment.yaml", "migration-job.yaml"])
def test_containers_set_requests_and_limits(name: str) -> None:
    resources = container(name)["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[kind].keys()


@pytest.mark.parametrize("name", ["deployment.yaml", "migration-job.yaml"])
def test_pods_run_as_non_root_on_a_read_only_filesystem(name: str) -> None:
    spec = pod(name)["spec"]
    security = container(name)["securityContext"]

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    (tmp,) = (mount for mount in container(name)["volumeMounts"] if mount["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])


def test_job_migrates_with_the_deployments_image_and_settings() -> None:
    job, app = container("migration-job.yaml"), container("deployment.yaml")

    assert job["command"] == ["user-service", "migrate"]
    assert job["image"] == app["image"]
    assert job["envFrom"] == app["envFrom"]
    assert pod("migration-job.yaml")["spec"]["restartPolicy"] in {"Never", "OnFailure"}


def test_deployment_serves_without_migrating_since_the_job_does() -> None:
    assert container("deployment.yaml")["command"] == ["user-service", "serve", "--no-migrate"]


def test_deployment_reads_the_configmap_and_the_secret() -> None:
    sources = container("deployment.yaml")["envFrom"]
    assert {"configMapRef": {"name": manifest("configmap.yaml")["metadata"]["name"]}} in sources
    assert {"secretRef": {"name": manifest("secret.example.yaml")["metadata"]["name"]}} in sources
    # Secrets belong in the Secret.
    assert not {"DB_PASSWORD", "DB_DSN"} & config().keys()


def test_hpa_scales_the_deployment_on_cpu() -> None:
    hpa = manifest("hpa.yaml")
    deployment = manifest("deployment.yaml")

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    # The HPA owns the replica count; a `replicas` here would reset it on every apply.
    assert "replicas" not in deployment["spec"]


def test_service_and_pdb_select_the_api_pods_and_not_the_migration() -> None:
    deployment = manifest("deployment.yaml")["spec"]
    api_labels = deployment["template"]["metadata"]["labels"]
    job_labels = pod("migration-job.yaml")["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["selector"]["matchLabels"],
        "Service": manifest("service.yaml")["spec"]["selector"],
        "PodDisruptionBudget": manifest("pdb.yaml")["spec"]["selector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert matches(selector, api_labels), kind
        assert not matches(selector, job_labels), kind


def test_service_targets_the_container_port() -> None:
    (port,) = manifest("service.yaml")["spec"]["ports"]
    assert port_number(port["targetPort"]) == int(config()["APP_PORT"])


def test_pdb_lets_a_node_drain_with_the_fewest_replicas() -> None:
    pdb = manifest("pdb.yaml")["spec"]
    assert pdb["minAvailable"] < manifest("hpa.yaml")["spec"]["minReplicas"]


def test_database_connections_stay_under_postgres_max_connections_at_full_scale() -> None:
    most_pods = (
        manifest("hpa.yaml")["spec"]["maxReplicas"]
        + manifest("deployment.yaml")["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    )
    per_pod = int(config()["APP_WORKERS"]) * int(config()["DB_POOL_MAX_SIZE"])
    assert most_pods * per_pod <= POSTGRES_CONNECTIONS


# Docker Compose


def test_compose_starts_postgres_then_migrates_then_serves() -> None:
    services = compose()

    assert argv(services["postgres"]["healthcheck"]["test"])[1] == "pg_isready"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert argv(services["migrate"]["command"]) == ["user-service", "migrate"]
    assert services["app"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert argv(services["app"]["command"])[:2] == ["user-service", "serve"]


@pytest.mark.parametrize("service", ["migrate", "app"])
def test_compose_service_uses_the_postgres_service_and_its_credentials(service: str) -> None:
    services = compose()
    postgres = services["postgres"]["environment"]
    settings = services[service]["environment"]

    assert settings["DB_HOST"] == "postgres"
    assert settings["DB_USER"] == postgres["POSTGRES_USER"]
    assert settings["DB_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert settings["DB_DATABASE"] == postgres["POSTGRES_DB"]


def test_compose_gives_the_service_time_to_drain() -> None:
    app = compose()["app"]
    drain = int(app["environment"].get("APP_GRACEFUL_TIMEOUT", "20"))
    assert seconds(app["stop_grace_period"]) > drain


def test_compose_pgbouncer_variant_is_opt_in_and_in_transaction_mode() -> None:
    services = compose()
    pooled = services["app-pgbouncer"]

    for name in ("pgbouncer", "app-pgbouncer"):
        assert services[name]["profiles"] == ["pgbouncer"]
    assert services["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    assert pooled["environment"]["DB_HOST"] == "pgbouncer"
    assert pooled["environment"]["DB_PGBOUNCER"] == "true"
    # Both variants share the one migrate service, which goes straight to PostgreSQL: its
    # advisory lock is session-level, which transaction pooling would break.
    assert "profiles" not in services["migrate"]
