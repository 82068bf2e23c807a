"""``clguard``: argument parsing, where the guard's settings come from, and the output.

Exit statuses (design §12 for preflight; doctor follows it): 0 all good, 2 something blocks
(preflight: a key is ``blocked``; doctor: a check failed), 3 something could not be read
(preflight: a key is ``unknown``), 1 a usage or configuration error. With ``--json`` stdout holds
only the document; everything else (logs included) goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NoReturn, TextIO

from clguard.adapters import operator
from clguard.boundary.config import Settings, load_settings
from clguard.boundary.manifest import parse_source_ref
from clguard.boundary.s3ref import S3ObjectRef
from clguard.errors import AwsError, ConfigError
from clguard.observability import SERVICE
from clguard.rules.arns import is_key_reference, parse_principal_arn

USAGE_ERROR: Final = 1
# Values the command does not use but load_settings requires (design §12: preflight needs only
# the settings it uses, not the alerts topic or the state table).
_UNUSED: Final = {"STATE_TABLE": "unused-by-clguard"}


class UsageError(Exception):
    """A bad argument or setting: exit status 1 (argparse would exit 2, which means 'blocked')."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _s3_url(value: str) -> S3ObjectRef:
    ref = parse_source_ref(value)
    if isinstance(ref, str):
        raise argparse.ArgumentTypeError(f"{value!r}: {ref}")
    return ref


def _output_url(value: str) -> tuple[str, str]:
    if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
        raise argparse.ArgumentTypeError(f"{value!r} is not s3://bucket[/prefix]")
    bucket, _, prefix = value[5:].partition("/")
    return bucket, prefix


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="clguard", description="Operate Custom Labels Guard (read-only unless a command says so).")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--stack", help="the deployed guard's stack (default: the §4 environment variables)")
        p.add_argument("--region", help="AWS region (default: AWS_REGION / the profile's)")
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        p.add_argument("--verbose", action="store_true", help="log the guard's decisions on stderr")

    pre = commands.add_parser("preflight", help="will this training succeed? (every key it needs, per key)")
    common(pre)
    pre.add_argument("--role", required=True, help="the role that will call CreateProjectVersion (or an STS ARN)")
    pre.add_argument("--project-arn", required=True)
    pre.add_argument("--training-manifest", action="append", type=_s3_url, default=[], metavar="s3://b/k")
    pre.add_argument("--testing-manifest", action="append", type=_s3_url, default=[], metavar="s3://b/k")
    pre.add_argument("--kms-key-id", help="the KmsKeyId of the call (key id, key ARN, alias name or alias ARN)")
    pre.add_argument("--output", type=_output_url, metavar="s3://bucket/prefix", help="OutputConfig")
    pre.add_argument("--sample", type=int, default=200, help="images inspected per manifest or dataset (200)")

    doc = commands.add_parser("doctor", help="check a deployed guard end to end; print each fix")
    common(doc)

    sta = commands.add_parser("status", help="last audit, open findings, key-policy changes, alarms")
    common(sta)

    exp = commands.add_parser("explain", help="what the guard knows and would do about one object or key")
    common(exp)
    exp.add_argument("resource", help="s3://bucket/key or a KMS key ARN (or alias)")
    exp.add_argument("--principal", action="append", default=[], help="principal to explain (TRAINING_PRINCIPALS)")
    return top


def _environment(stack: str | None) -> dict[str, str]:
    """The guard's settings as the functions read them: the stack's function environment, or ours."""
    if stack:
        try:
            variables = operator.stack_function_environment(stack)
        except AwsError as error:
            raise UsageError(
                f"--stack {stack[:200]!r}: cannot read the guard's function in that stack ({error})"
            ) from error
        # The region the caller's configuration names (a profile's, when no variable sets it).
        return {**variables, "AWS_REGION": operator.region()}
    return dict(os.environ)


_ASSUMED_ROLE: Final = re.compile(
    r"^arn:aws[a-z-]*:sts::(?P<account>[0-9]{12}):assumed-role/(?P<name>[\w+=,.@-]{1,64})/.+$"
)


def resolve_role(value: str) -> str:
    """A role ARN with or without its path, or an STS assumed-role ARN -> the role's ARN (iam:GetRole)."""
    assumed = _ASSUMED_ROLE.fullmatch(value)
    parsed = parse_principal_arn(value)
    if assumed is not None:
        name, account = assumed["name"], assumed["account"]
    elif parsed is not None and parsed.kind == "role":
        name, account = parsed.name, parsed.account
    else:
        raise UsageError(f"--role {value[:200]!r} is not a role ARN or an STS assumed-role ARN")
    found = operator.role_arn(name)
    if found is None:
        raise UsageError(f"--role: no role named {name!r} in account {account}")
    return found


def _reading_settings(args: argparse.Namespace) -> Settings:
    """The settings as the functions read them, for a command that uses neither the alerts topic
    nor the state table (design §12: preflight needs only the settings it uses)."""
    env = {**_UNUSED, **_environment(args.stack)}
    account = operator.caller_account()
    if not env.get("ALERT_TOPIC_ARN"):
        env["ALERT_TOPIC_ARN"] = f"arn:aws:sns:{env.get('AWS_REGION', 'us-east-1')}:{account}:unused-by-clguard"
    return load_settings(env, account_id=account)


def _preflight(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from clguard.usecases import preflight  # noqa: PLC0415 - only this command needs it

    if args.sample < 1:
        raise UsageError("--sample must be at least 1")
    settings = _reading_settings(args)
    role = resolve_role(args.role)
    bucket, prefix = args.output or (None, "")
    request = preflight.Request(
        role_arn=role,
        project_arn=args.project_arn,
        training_manifests=tuple(args.training_manifest),
        testing_manifests=tuple(args.testing_manifest),
        kms_key_id=args.kms_key_id,
        output_bucket=bucket,
        output_prefix=prefix,
    )
    report = preflight.preflight(request, settings, sample=args.sample)
    return report.exit_status, report.document()


def _doctor(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from clguard.usecases import doctor  # noqa: PLC0415 - only this command needs it

    env = _environment(args.stack)
    settings = load_settings({**_UNUSED, **env}, account_id=operator.caller_account())
    report = doctor.run(settings, env, stack=args.stack)
    return report.exit_status, report.document()


def _status(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from clguard.usecases import status  # noqa: PLC0415 - only this command needs it

    env = _environment(args.stack)
    if not env.get("STATE_TABLE"):
        raise UsageError("the guard's STATE_TABLE is not known: pass --stack NAME (or set STATE_TABLE)")
    account = operator.caller_account()
    if not env.get("ALERT_TOPIC_ARN"):  # the settings require it; status publishes nothing
        env["ALERT_TOPIC_ARN"] = f"arn:aws:sns:{env.get('AWS_REGION', 'us-east-1')}:{account}:unused-by-clguard"
    report = status.run(load_settings(env, account_id=account), stack=args.stack)
    return report.exit_status, report.document()


def _explain(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from clguard.usecases import explain  # noqa: PLC0415 - only this command needs it

    settings = _reading_settings(args)
    if args.resource.startswith("s3://"):
        return 0, explain.explain_object(settings, _s3_resource(args.resource))
    if is_key_reference(args.resource):
        principals = [resolve_role(p) for p in args.principal] or list(settings.training_principals)
        return 0, explain.explain_key(settings, args.resource, principals)
    raise UsageError(
        f"{args.resource[:200]!r}: give s3://bucket/key or a KMS key ARN or alias (finding ids are not stored: "
        "explain the finding's resource)"
    )


def _s3_resource(value: str) -> S3ObjectRef:
    try:
        return _s3_url(value)
    except argparse.ArgumentTypeError as error:
        raise UsageError(str(error)) from error


COMMANDS: Final[Mapping[str, Callable[[argparse.Namespace], tuple[int, dict[str, Any]]]]] = {
    "preflight": _preflight,
    "doctor": _doctor,
    "explain": _explain,
    "status": _status,
}


def _quiet_logs(verbose: bool) -> None:
    """The guard's logger writes JSON lines to stdout for Lambda; here they go to stderr."""
    for handler in logging.getLogger(SERVICE).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    logging.getLogger(SERVICE).setLevel(logging.INFO if verbose else logging.ERROR)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = parser().parse_args(argv)
    except UsageError as usage:
        err.write(f"clguard: {usage}\n")
        return USAGE_ERROR
    except SystemExit as done:  # --help
        return int(done.code or 0)
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = args.region
    elif os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    _quiet_logs(args.verbose)
    try:
        with contextlib.redirect_stdout(err):  # anything printed on the way (metrics) is not the document
            status, document = COMMANDS[args.command](args)
    except (UsageError, ConfigError) as usage:
        err.write(f"clguard {args.command}: {usage}\n")
        return USAGE_ERROR
    except AwsError as error:
        err.write(f"clguard {args.command}: an AWS call failed: {error}\n")
        return USAGE_ERROR if args.command == "doctor" else 3
    if args.json:
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        from clguard.cli import render  # noqa: PLC0415 - rich only when people read the output

        render.show(args.command, document, out)
    return status
