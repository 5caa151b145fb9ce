"""Alerts to a chat or paging webhook (Slack incoming webhooks, PagerDuty/Opsgenie bridges, ...).

One JSON POST per alert: `{"text": ..., "title": ..., "severity": ..., "details": {...}}`;
Slack shows `text`, other receivers read the structured fields. With no URL
configured alerts are logged only, so local runs need no service.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import dagster as dg

LOG = logging.getLogger(__name__)


class AlertResource(dg.ConfigurableResource):
    webhook_url: str = ""
    timeout_seconds: float = 5.0

    def send(self, title: str, text: str, severity: str = "error", details: dict[str, Any] | None = None) -> bool:
        """Post the alert; returns whether a webhook received it. Raises on a failed delivery (callers retry)."""
        if not self.webhook_url:
            LOG.warning("alert (no webhook configured): %s: %s", title, text)
            return False
        import requests

        payload = {"title": title, "text": f"*{title}*\n{text}", "severity": severity, "details": details or {}}
        response = requests.post(
            self.webhook_url, data=json.dumps(payload, default=str), timeout=self.timeout_seconds,
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        return True
