"""grant_training_access: EventBridge CloudTrail event (Rekognition training calls; KMS key
lifecycle calls) -> summary.

Thin: settings from the environment, then the shared logic (clguard.usecases.training, or
clguard.usecases.keylifecycle for a key disabled or scheduled for deletion).
"""

from __future__ import annotations

import os
from typing import Any

from clguard.boundary.config import current_settings
from clguard.boundary.events import is_key_state_change
from clguard.boundary.lambda_context import account_id
from clguard.observability import logger, metrics
from clguard.usecases import keylifecycle, training


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = current_settings(os.environ, account_id=account_id(context))
    if is_key_state_change(event):
        return keylifecycle.handle_key_event(event, settings)
    return training.handle_training_event(event, settings, lambda_context=context)
