"""The demo scenario runs and all its checks hold; replay routes a user's record."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from localaws import demo, replay
from tests.eventsamples import load_event


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, color_system=None), buffer


def test_demo_scenario_runs_and_every_expected_outcome_happens() -> None:
    # Given the demo scenario
    out, buffer = console()

    # When it runs
    status = demo.main([], console=out)

    # Then every check held, and the report shows the alerts and the key policy diff
    text = buffer.getvalue()
    assert status == 0, text[-4000:]
    assert "expected outcomes happened" in text
    assert "✗" not in text
    for finding_type in ("OBJECT_UNENCRYPTED", "KEY_ACCESS_MISSING", "KEY_NOT_MANAGED", "PRINCIPAL_NOT_ALLOWED"):
        assert finding_type in text
    assert "+++ alias/custom-labels-training (after)" in text
    assert "Next Steps" in text
    # ... and the dataset flow: the trainer granted on the key of images it never named
    assert "2 dataset(s) read, 4 image(s) checked" in text
    assert "+++ alias/custom-labels-datasets (after)" in text


def test_replay_of_a_bare_cloudtrail_record_shows_the_rule_and_the_findings(tmp_path: Path) -> None:
    # Given a bare CloudTrail record (as in a trail's log file) of a training call
    path = tmp_path / "record.json"
    path.write_text(json.dumps(load_event("cloudtrail_create_project_version")["detail"]))
    out, buffer = console()

    # When it is replayed
    status = replay.main([str(path)], console=out)

    # Then it was wrapped, matched TrainingCallRule, and the grant function reported the missing key
    text = buffer.getvalue()
    assert status == 0, text
    assert "matched TrainingCallRule" in text
    assert "arn:aws:iam::123456789012:role/ml/CustomLabelsTrainer" in text
    assert "KEY_UNUSABLE" in text
    # And it says why: the local world is empty, so the event's key does not exist in it
    assert "This local world is empty" in text


def test_replay_of_an_event_no_rule_takes_says_so(tmp_path: Path) -> None:
    # Given an event no rule of the template matches
    path = tmp_path / "event.json"
    path.write_text(json.dumps(load_event("s3_object_created_other_bucket")))
    out, buffer = console()

    # When it is replayed
    status = replay.main([str(path)], console=out)

    # Then it says no rule matched and no handler ran, and exits 0
    text = buffer.getvalue()
    assert status == 0
    assert "no rule matched" in text
    assert "No handler ran." in text


def test_replay_of_a_file_that_is_not_json_fails(tmp_path: Path) -> None:
    # Given a file that is not JSON
    path = tmp_path / "event.json"
    path.write_text("PutObject at 10:00")
    out, buffer = console()

    # When it is replayed
    status = replay.main([str(path)], console=out)

    # Then it exits non-zero and says why
    assert status == 2
    assert "not a JSON file" in buffer.getvalue()


def test_demo_checks_name_what_did_not_happen() -> None:
    # Given the demo scenario deployed in report mode, where nothing is remediated
    out, buffer = console()

    # When it runs
    checks, _ = demo.run(out, {**demo.PARAMETERS, "RemediationMode": "report"})

    # Then the checks that depend on remediation fail, by name, and the others still hold
    failed = {c.expectation for c in checks if not c.ok}
    assert "the unencrypted legacy image is SSE-S3 now" in failed
    assert "the training role is in alias/custom-labels-training's policy with the actions training needs" in failed
    assert "DescribeProjects matched no rule and reached no handler" not in failed
    assert (
        "training from datasets: the trainer can decrypt the dataset images' key (alias/custom-labels-datasets)"
        in failed
    )
    assert "expected outcome(s) did not happen" in buffer.getvalue()
