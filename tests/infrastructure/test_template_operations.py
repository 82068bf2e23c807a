"""What operators see and how the application is deployed: dashboard, alarms, SAR, samconfig."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from clguard.reporting.findings import FindingType
from tests.infrastructure.cfn_template import load_template, resources_of_type

ROOT = Path(__file__).resolve().parents[2]
CODE = [*(ROOT / "layers" / "shared" / "clguard").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
NAMESPACE = "CustomLabelsGuard"
# count("Name") and count(f"Violation.{finding_type.value}") in the code: the observability
# function, not a method of the same name (``groups.count("open")``).
_COUNT = re.compile(r"(?<![.\w])count\(\s*(f?)\"([^\"]+)\"")
# What a formatted name can stand for: objects.py counts the violations it finds on objects.
_FORMATTED = {
    "Violation.{finding_type.value}": [f"Violation.{t.value}" for t in FindingType if t.name.startswith("OBJECT_")]
}


def emitted_metric_names() -> set[str]:
    """Every EMF count name the code can emit, formatted names expanded."""
    names: set[str] = set()
    for path in CODE:
        for formatted, name in _COUNT.findall(path.read_text(encoding="utf-8")):
            names.update(_FORMATTED[name] if formatted else [name])
    return names


def dashboard() -> dict[str, Any]:
    body = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${Resource} / ${Resource.Attr} / ${AWS::Region} become their names, as CloudFormation would
    # substitute values.
    parsed: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))
    return parsed


def dashboard_metrics() -> list[list[Any]]:
    return [metric for widget in dashboard()["widgets"] for metric in widget["properties"].get("metrics", [])]


def test_the_dashboard_shows_exactly_the_metrics_the_code_emits() -> None:
    # Given the custom metrics on the dashboard and the count(...) names in the code
    on_dashboard = {m[1] for m in dashboard_metrics() if m[0] == NAMESPACE}
    emitted = emitted_metric_names()

    # When they are compared
    # Then every emitted metric is on the dashboard, and the dashboard shows no name the code
    # does not emit (a renamed metric would show an empty graph)
    assert emitted - on_dashboard == set(), "emitted but not on the dashboard"
    assert on_dashboard - emitted == set(), "on the dashboard but never emitted"
    # And each custom metric carries the service dimension Powertools adds
    for metric in dashboard_metrics():
        if metric[0] == NAMESPACE:
            assert metric[2:4] == ["service", "AWS::StackName"], metric  # ${AWS::StackName}: this stack's


def test_the_dashboard_shows_dlq_depths_and_every_functions_errors_and_duration() -> None:
    # Given the template's functions and dead-letter queues
    template = load_template()
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))
    metrics = dashboard_metrics()

    # When the dashboard's AWS metrics are read
    queues = {
        m[3].removesuffix(".QueueName") for m in metrics if m[:2] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible"]
    }
    errors = {m[3] for m in metrics if m[:2] == ["AWS/Lambda", "Errors"]}
    durations = {m[3] for m in metrics if m[:2] == ["AWS/Lambda", "Duration"]}

    # Then every DLQ's depth and every function's errors and duration are there
    assert queues == {"VerifyDLQ", "GrantDLQ", "DigestDLQ", "AuditDLQ"}
    assert errors == functions
    assert durations == functions


def test_alarms_on_function_errors_and_undelivered_findings_notify_people() -> None:
    # Given the alarms
    alarms = resources_of_type(load_template(), "AWS::CloudWatch::Alarm")
    functions = set(resources_of_type(load_template(), "AWS::Serverless::Function"))

    # When the function-errors alarm's metrics are read
    queries = alarms["FunctionErrorsAlarm"]["Properties"]["Metrics"]
    watched = {
        q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
        for q in queries
        if "MetricStat" in q and q["MetricStat"]["Metric"]["MetricName"] == "Errors"
    }

    # Then it watches every function, and the undelivered-findings alarm watches a metric the
    # code emits; both notify the human topic
    assert watched == functions
    undelivered = alarms["FindingsUndeliveredAlarm"]["Properties"]
    assert (undelivered["Namespace"], undelivered["MetricName"]) == (NAMESPACE, "FindingsUndelivered")
    assert "FindingsUndelivered" in emitted_metric_names()
    assert undelivered["Threshold"] == 0
    for name in ("FunctionErrorsAlarm", "FindingsUndeliveredAlarm"):
        assert alarms[name]["Properties"]["AlarmActions"] == [{"Ref": "HumanTopic"}], name


def test_people_subscribe_to_the_human_topic_and_machines_keep_the_alerts_topic() -> None:
    # Given the template
    template = load_template()
    resources = template["Resources"]

    # When the subscriptions and the functions' environment are read
    email = resources["AlertsEmailSubscription"]["Properties"]
    digest = resources["AlertsDigestSubscription"]["Properties"]

    # Then e-mail gets the human topic, the digest subscribes to the alerts topic (where the
    # functions publish), and the digest function publishes to the human topic
    assert email["TopicArn"] == {"Ref": "HumanTopic"}
    assert digest["TopicArn"] == {"Ref": "AlertsTopic"}
    assert template["Globals"]["Function"]["Environment"]["Variables"]["ALERT_TOPIC_ARN"] == {"Ref": "AlertsTopic"}
    variables = resources["DigestFunction"]["Properties"]["Environment"]["Variables"]
    assert variables == {"HUMAN_TOPIC_ARN": {"Ref": "HumanTopic"}}
    # And the digest event source gathers large batches over the configured window
    source = resources["DigestQueueEventSource"]["Properties"]
    assert source["BatchSize"] == 10_000
    assert source["MaximumBatchingWindowInSeconds"] == {"Ref": "DigestWindowSeconds"}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_application_is_publishable_to_the_serverless_application_repository() -> None:
    # Given the template's SAR metadata
    metadata = load_template()["Metadata"]["AWS::ServerlessRepo::Application"]

    # When its fields are read
    # Then every field the SAR shows is set, the files it uploads exist, and the license is SPDX
    for name in ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "Labels"):
        assert metadata[name], name
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", metadata["SemanticVersion"])
    # (HomePageUrl and SourceCodeUrl: real or absent, tests/infrastructure/test_template_guidance.py)
    assert (ROOT / metadata["LicenseUrl"]).is_file()
    assert (ROOT / metadata["ReadmeUrl"]).is_file()
    assert metadata["SpdxLicenseId"] == "MIT-0"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT No Attribution")
    assert all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label) for label in metadata["Labels"])


def test_the_committed_samconfig_does_not_skip_the_guided_deploy() -> None:
    # Given the committed samconfig.toml
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))

    # When its environments are read
    # Then [default] has no deploy parameters (a first deploy must ask), and the examples are
    # named environments with their parameters
    assert "deploy" not in config["default"]
    for name in ("example", "prod"):
        overrides = config[name]["deploy"]["parameters"]["parameter_overrides"]
        assert any(o.startswith("TrainingBuckets=") for o in overrides), name


def _make_deploy(directory: Path, *variables: str) -> str:
    completed = subprocess.run(
        ["make", "-n", "-s", "-C", str(directory), "deploy", *variables],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    [deploy] = [line for line in completed.stdout.splitlines() if "/sam deploy" in line]
    return deploy


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_deploy_is_guided_until_a_default_environment_is_saved(tmp_path: Path) -> None:
    # Given the repository's Makefile and samconfig.toml
    # (with the files its targets depend on; `make -n` only prints what it would run)
    names = ["Makefile", "samconfig.toml", *(p.name for p in ROOT.glob("requirements*.txt"))]
    for name in [*names, *(p.name for p in ROOT.glob("constraints*.txt"))]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    (tmp_path / "layers" / "shared").mkdir(parents=True)
    shutil.copy(ROOT / "layers" / "shared" / "requirements.txt", tmp_path / "layers" / "shared" / "requirements.txt")

    # When make deploy is planned: as committed, for a named environment, and after a guided
    # run has saved [default.deploy.parameters]
    first = _make_deploy(tmp_path)
    named = _make_deploy(tmp_path, "CONFIG_ENV=example")
    with (tmp_path / "samconfig.toml").open("a", encoding="utf-8") as handle:
        handle.write('\n[default.deploy.parameters]\nstack_name = "mine"\n')
    later = _make_deploy(tmp_path)

    # Then the first is guided, the named one uses its environment, and the later one reuses
    # the saved answers
    assert first.endswith("sam deploy --guided")
    assert named.endswith("sam deploy --config-env example")
    assert later.endswith("sam deploy ")


def test_the_dashboard_reads_every_per_account_metric_per_account() -> None:
    # Given the metrics the code counts per account (the Account dimension, docs/architecture.md §9)
    from clguard.observability import ACCOUNT_DIMENSION, PER_ACCOUNT  # noqa: PLC0415 - the layer's own list

    # When the dashboard's search expressions are read
    searches = [
        m[0]["expression"]
        for widget in dashboard()["widgets"]
        for m in widget["properties"].get("metrics", [])
        if isinstance(m[0], dict) and "expression" in m[0]
    ]

    # Then each searches this stack's series that carry exactly the Account and service dimensions
    assert searches
    schema = f"{{{NAMESPACE},{ACCOUNT_DIMENSION},service}}"
    for expression in searches:
        assert expression.startswith(f'SEARCH(\'{schema} service="AWS::StackName"'), expression
    # And every per-account name is found by one of them (a Violation.<type> by its first token)
    for name in PER_ACCOUNT:
        family = name.split(".")[0]
        assert any(f'MetricName="{name}"' in e or (family != name and f"MetricName={family}" in e) for e in searches)
    # And the per-account names are names the code emits (and the stack's graphs show)
    assert emitted_metric_names() >= PER_ACCOUNT
