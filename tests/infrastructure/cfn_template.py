"""Read template.yaml the way CloudFormation does, for tests.

The loader lives in ``localaws.template`` (one loader for the project: the local runtime deploys
the template with it); this module re-exports it under its old name for the infrastructure tests.
"""

from __future__ import annotations

from localaws.template import (
    NO_VALUE,
    PSEUDO_PARAMETERS,
    REPO_ROOT,
    TEMPLATE_PATH,
    TEST_PARAMETERS,
    Deployed,
    check_parameters,
    condition_holds,
    event_matches,
    function_policy_actions,
    function_policy_statements,
    load_template,
    parameter_values,
    resolve,
    resources_of_type,
    rule_patterns,
)

__all__ = [
    "NO_VALUE",
    "PSEUDO_PARAMETERS",
    "REPO_ROOT",
    "TEMPLATE_PATH",
    "TEST_PARAMETERS",
    "Deployed",
    "check_parameters",
    "condition_holds",
    "event_matches",
    "function_policy_actions",
    "function_policy_statements",
    "load_template",
    "parameter_values",
    "resolve",
    "resources_of_type",
    "rule_patterns",
]
