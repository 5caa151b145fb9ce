"""Alerts to a Slack incoming webhook, a generic JSON webhook (CRM, Opsgenie bridge, ...) and PagerDuty.

Events: run_failed, gate_failed, champion_promoted, champion_rolled_back, high_risk. Webhook URLs
and the token come from the environment only (`AlertResource.from_env`), by reference, so Dagster's
UI and run config show the variable's name, never the secret. Delivery retries connection errors,
429 and 5xx with exponential backoff; `send` never raises, because an alert outage must not fail
the run that raised the alert. With no sink configured alerts are only logged: local runs need no service.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import dagster as dg

if TYPE_CHECKING:
    import requests

LOG = logging.getLogger(__name__)

Severity = Literal["info", "warning", "error"]
SLACK_MARKS = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}
SLACK_SECTION_LIMIT = 3000  # characters Slack accepts in one section block
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PAGED_EVENTS = frozenset({"run_failed", "gate_failed"})  # failures page; promotions and business alerts do not


class AlertResource(dg.ConfigurableResource[Any]):
    """Posts each alert to every configured sink; see the module docstring for the contract."""

    slack_webhook_url: str = ""
    webhook_url: str = ""
    webhook_token: str = ""
    pagerduty_routing_key: str = ""  # an Events API v2 integration key
    pagerduty_url: str = PAGERDUTY_EVENTS_URL
    ui_url: str = "http://127.0.0.1:3000"
    max_attempts: int = 4
    backoff_seconds: float = 0.5
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, ui_url: str) -> AlertResource:
        """ML_PLATFORM_SLACK_WEBHOOK, ML_PLATFORM_ALERT_WEBHOOK, ML_PLATFORM_ALERT_TOKEN,
        ML_PLATFORM_PAGERDUTY_ROUTING_KEY (all secrets, by reference); `ui_url` for the links."""

        def secret(name: str) -> Any:
            return dg.EnvVar(name) if os.environ.get(name) else ""  # EnvVar fails on unset variables

        return cls(
            slack_webhook_url=secret("ML_PLATFORM_SLACK_WEBHOOK"),
            webhook_url=secret("ML_PLATFORM_ALERT_WEBHOOK"),
            webhook_token=secret("ML_PLATFORM_ALERT_TOKEN"),
            pagerduty_routing_key=secret("ML_PLATFORM_PAGERDUTY_ROUTING_KEY"),
            ui_url=ui_url,
        )

    @property
    def configured(self) -> bool:
        return bool(self.slack_webhook_url or self.webhook_url or self.pagerduty_routing_key)

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def send(
        self,
        event: str,
        title: str,
        text: str,
        severity: Severity = "error",
        details: dict[str, Any] | None = None,
        link: str | None = None,
        dedup_key: str | None = None,
    ) -> bool:
        """Deliver to every configured sink; True if at least one received it. Never raises. `dedup_key`
        names what failed (e.g. a gate and its partitions): PagerDuty keeps one incident per key, so a
        repeated failure of the same thing does not page twice."""
        if not self.configured:
            LOG.warning("alert %s (no sink configured): %s: %s", event, title, text)
            return False
        try:
            with self._session() as session:
                sinks = self._sinks(event, title, text, severity, details, link, dedup_key)
                if not sinks:  # e.g. only PagerDuty is configured, and it takes failures only
                    LOG.info("alert %s (no configured sink takes this event): %s", event, title)
                    return False
                received = [self._post(session, *sink) for sink in sinks]
        except Exception:  # e.g. details that are not JSON: the caller's run must go on regardless
            LOG.exception("alert %s %r could not be sent", event, title)
            return False
        if not all(received):
            LOG.error("alert %s %r not delivered to %d of %d sinks", event, title, received.count(False), len(received))
        return any(received)

    def _session(self) -> requests.Session:
        """A session whose adapter retries connection errors, 429 and 5xx with exponential backoff
        (urllib3's Retry: the first retry at once, then `backoff_seconds` * 2 ** (n - 1); Retry-After
        is honoured); another 4xx is final: resending cannot fix it."""
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(
            total=self.max_attempts - 1,
            backoff_factor=self.backoff_seconds,
            allowed_methods=None,
            status_forcelist=[429, *range(500, 600)],
            raise_on_status=False,
        )
        session = requests.Session()
        for scheme in ("http://", "https://"):
            session.mount(scheme, HTTPAdapter(max_retries=retry))
        return session

    def _sinks(
        self,
        event: str,
        title: str,
        text: str,
        severity: str,
        details: dict[str, Any] | None,
        link: str | None,
        dedup_key: str | None = None,
    ) -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
        """(name, url, payload, extra headers) per configured sink."""
        sinks: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
        if self.pagerduty_routing_key and event in PAGED_EVENTS:
            payload = _pagerduty_payload(
                self.pagerduty_routing_key, event, title, text, severity, details, link, dedup_key
            )
            sinks.append(("pagerduty", self.pagerduty_url, payload, {}))
        if self.slack_webhook_url:
            sinks.append(("slack", self.slack_webhook_url, _slack_payload(event, title, text, severity, link), {}))
        if self.webhook_url:
            payload = {
                "event": event,
                "title": title,
                "text": text,
                "severity": severity,
                "details": details or {},
                "link": link,
                "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            auth = {"Authorization": f"Bearer {self.webhook_token}"} if self.webhook_token else {}
            sinks.append(("webhook", self.webhook_url, payload, auth))
        return sinks

    def _post(
        self, session: requests.Session, sink: str, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> bool:
        """POST once through the retrying session; log why the sink did not take it."""
        import requests

        body = json.dumps(payload, default=str)  # details may hold numpy scalars or timestamps
        try:
            response = session.post(
                url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=self.timeout_seconds
            )
        except requests.RequestException as exc:
            LOG.warning(
                "alert to the %s sink failed after %d attempt(s): %s",
                sink,
                self.max_attempts,
                _redacted(f"{type(exc).__name__}: {exc}", url),
            )
            return False
        if not response.ok:
            LOG.warning("alert to the %s sink refused: HTTP %s %r", sink, response.status_code, response.text[:200])
        return response.ok


def _redacted(message: str, url: str) -> str:
    """A Slack webhook's secret is its URL path, which requests' errors quote: keep it out of the logs."""
    path = urlsplit(url).path
    return message.replace(path, "/<redacted>") if len(path) > 1 else message


def _pagerduty_payload(
    routing_key: str,
    event: str,
    title: str,
    text: str,
    severity: str,
    details: dict[str, Any] | None,
    link: str | None,
    dedup_key: str | None,
) -> dict[str, Any]:
    """A PagerDuty Events API v2 trigger; the same `dedup_key` joins the open incident instead of paging again."""
    key = dedup_key or f"{event}:{title}"
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"ml_platform/{key}"[:255],
        "payload": {
            "summary": title[:1024],
            "source": "ml_platform",
            "severity": severity,
            "component": str((details or {}).get("use_case", "")) or None,
            "class": event,
            "custom_details": {"text": text, **(details or {})},
        },
        "links": [{"href": link, "text": "Open in Dagster"}] if link else [],
    }


def _slack_payload(event: str, title: str, text: str, severity: str, link: str | None) -> dict[str, Any]:
    """Slack incoming-webhook message: `text` feeds notifications, `blocks` is what the channel shows."""
    context = f"`{event}` · {severity}" + (f" · <{link}|open in Dagster>" if link else "")
    section = f"{SLACK_MARKS.get(severity, '')} *{title}*\n{text}"
    return {
        "text": f"{title}: {text}"[:SLACK_SECTION_LIMIT],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section[:SLACK_SECTION_LIMIT]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }
