"""``sam build`` produces artifacts that import the way Lambda imports them.

In Lambda, a function sees only its own folder (/var/task), the layer's ``python/`` folder
(/opt/python) and the runtime's boto3 stack. This test builds the template into a temporary
folder and imports each handler in a fresh, isolated interpreter with exactly that path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.infrastructure.cfn_template import REPO_ROOT, TEMPLATE_PATH, load_template, resolve

SAM = REPO_ROOT / ".venv-tools" / "bin" / "sam"
FIND_PYTHON313 = REPO_ROOT / "scripts" / "find-python313.sh"

FUNCTIONS = {
    "VerifyObjectEncryptionFunction": "functions/verify_object_encryption",
    "GrantTrainingAccessFunction": "functions/grant_training_access",
    "AuditFunction": "functions/audit",
}
# What the python3.13 Lambda runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")

# Concrete values for the resources the environment refers to.
RESOURCE_VALUES = {
    "ref:AlertsTopic": "arn:aws:sns:us-east-1:123456789012:custom-labels-guard-AlertsTopic-Q1w2E3r4T5y6",
    "ref:StateTable": "custom-labels-guard-StateTable-1A2B3C4D5E6F",
    "ref:VerifyQueue": (
        "https://sqs.us-east-1.amazonaws.com/123456789012/custom-labels-guard-VerifyQueue-4Hq2Xk9LmN0p"
    ),
}

IMPORT_CHECK = """
import sys
sys.path[:0] = sys.argv[1:]
import app
assert callable(app.lambda_handler), "app.lambda_handler is not callable"
print(app.__file__)
"""

pytestmark = [
    pytest.mark.sam,
    pytest.mark.slow,
    pytest.mark.skipif(not SAM.exists(), reason="SAM CLI not installed (make tools)"),
]


def python313() -> Path:
    result = subprocess.run([str(FIND_PYTHON313)], capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        pytest.fail(f"no Python 3.13 interpreter: {result.stderr.strip()}")
    return Path(result.stdout.strip())


def lambda_environment(function: str, task_root: Path) -> dict[str, str]:
    """The function's environment as deployed (from the template), plus what Lambda sets."""
    template = load_template()
    variables = resolve(
        template,
        template["Globals"]["Function"]["Environment"]["Variables"],
        {"TrainingBuckets": ["custom-labels-training"]},
    )
    env = {name: RESOURCE_VALUES.get(str(value), str(value)) for name, value in variables.items()}
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": f"custom-labels-guard-{function}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "LAMBDA_TASK_ROOT": str(task_root),
            "PATH": "/usr/bin:/bin",
        }
    )
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = [f"{folder}/app.py" for folder in FUNCTIONS.values() if not (REPO_ROOT / folder / "app.py").is_file()]
    if missing:
        pytest.fail(f"function code missing: {', '.join(missing)} does not exist yet")

    interpreter = python313()
    work = tmp_path_factory.mktemp("sam")
    build_dir = work / "build"
    # sam build runs "python3.13" from PATH for the python3.13 runtime: put ours first.
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(SAM.parent), str(interpreter.parent), os.environ.get("PATH", "")]),
        "SAM_CLI_TELEMETRY": "0",
    }
    result = subprocess.run(
        [
            str(SAM),
            "build",
            "--template",
            str(TEMPLATE_PATH),
            "--build-dir",
            str(build_dir),
            "--no-cached",
        ],
        cwd=work,  # keeps samconfig.toml's build settings and .aws-sam out of the way
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, f"sam build failed:\n{result.stdout}\n{result.stderr}"

    # The runtime's own packages, copied from the test virtualenv (and nothing else from it).
    runtime = work / "runtime"
    runtime.mkdir()
    site_packages = Path(boto3.__file__ or "").resolve().parents[1]
    for package in RUNTIME_PACKAGES:
        source = site_packages / package
        if source.is_dir():
            shutil.copytree(source, runtime / package, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(site_packages / f"{package}.py", runtime / f"{package}.py")
    return {"build_dir": build_dir, "runtime": runtime, "python": interpreter}


def test_layer_has_the_lambda_layout(built: dict[str, Any]) -> None:
    # Given the built shared layer
    layer = built["build_dir"] / "SharedLayer"

    # When its layout is inspected
    # Then the package and its dependencies sit directly under python/ (/opt/python in Lambda)
    assert (layer / "python" / "clguard" / "__init__.py").is_file()
    assert (layer / "python" / "aws_lambda_powertools").is_dir()
    assert not (layer / "python" / "python").exists()


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_built_handler_imports_like_in_lambda(built: dict[str, Any], function: str) -> None:
    # Given the built function, the built layer and only the runtime's packages
    task_root = built["build_dir"] / function
    layer = built["build_dir"] / "SharedLayer" / "python"
    assert (task_root / "app.py").is_file()

    # When app is imported by an isolated interpreter (-I: no user site or PYTHON* variables,
    # -S: no site-packages) whose path is exactly Lambda's, with the deployed environment
    result = subprocess.run(
        [
            str(built["python"]),
            "-I",
            "-S",
            "-c",
            IMPORT_CHECK,
            str(task_root),
            str(layer),
            str(built["runtime"]),
        ],
        cwd=task_root,
        env=lambda_environment(function, task_root),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    # Then it imports, from the build, and exposes a callable lambda_handler
    assert result.returncode == 0, f"import failed:\n{result.stdout}\n{result.stderr}"
    assert Path(result.stdout.strip().splitlines()[-1]).resolve() == (task_root / "app.py").resolve()
