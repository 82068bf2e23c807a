"""verify_object_encryption: SQS batch of EventBridge events -> SQS partial batch response.

Thin: settings from the environment, then the shared logic (clguard.usecases.verify).
"""

from __future__ import annotations

import os
from typing import Any

from clguard.boundary.config import current_settings
from clguard.boundary.lambda_context import account_id
from clguard.observability import logger, metrics
from clguard.usecases import verify


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = current_settings(os.environ, account_id=account_id(context))
    return verify.handle_batch(event, context, settings)
