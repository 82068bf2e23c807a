"""digest: SQS batch of findings (the alerts topic's raw deliveries) -> SQS partial batch response.

Thin: the human topic from the environment, then the shared logic (clguard.usecases.digest).
"""

from __future__ import annotations

import os
from typing import Any

from clguard.boundary.config import load_digest_settings
from clguard.observability import logger, metrics
from clguard.usecases import digest


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return digest.handle_batch(event, load_digest_settings(os.environ))
