"""Step retries on flaky I/O: the platform's RetryPolicy constants, exponential backoff with jitter.

The policies are the ones the platform's assets carry (`SOURCE_RETRY` on ingestion,
`MLFLOW_RETRY` on the model and champion steps); test-only assets that fail on their first
attempt show Dagster retrying them after the computed, jittered delay, and the run
succeeding. A deliberate `Failure(allow_retries=False)` (how gates fail) is not retried.
"""

import time

import dagster as dg

from ml_platform.assets import keys
from ml_platform.assets.range_step import SOURCE_RETRY
from ml_platform.assets.training import MLFLOW_RETRY
from ml_platform.definitions import build_definitions
from ml_platform.spec import UseCaseSpec


def delay_bounds(policy: dg.RetryPolicy, attempt: int) -> tuple[float, float]:
    """Exponential backoff ((2^n - 1) * delay) with +/- delay of jitter (dagster's PLUS_MINUS)."""
    centre = (2**attempt - 1) * policy.delay
    return max(0.0, centre - policy.delay), centre + policy.delay


def test_the_platform_steps_that_touch_flaky_io_carry_the_retry_policies(churn_spec: UseCaseSpec) -> None:
    for policy in (SOURCE_RETRY, MLFLOW_RETRY):
        assert policy.max_retries >= 2 and policy.delay and policy.delay > 0
        assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
    repository = build_definitions([churn_spec]).get_repository_def()
    by_key = {key: assets_def for assets_def in repository.assets_defs_by_key.values() for key in assets_def.keys}
    assert by_key[keys.raw_events(churn_spec)].op.retry_policy == SOURCE_RETRY
    assert by_key[keys.model(churn_spec)].op.retry_policy == MLFLOW_RETRY
    assert by_key[keys.champion(churn_spec)].op.retry_policy == MLFLOW_RETRY


def test_a_step_that_fails_once_is_retried_after_a_jittered_exponential_delay_and_the_run_succeeds() -> None:
    attempts: dict[str, list[float]] = {"source": [], "mlflow": []}

    @dg.asset(retry_policy=SOURCE_RETRY)
    def flaky_source(context: dg.AssetExecutionContext) -> int:
        attempts["source"].append(time.monotonic())
        if context.retry_number == 0:
            raise ConnectionError("source unavailable (simulated)")
        return 1

    @dg.asset(retry_policy=MLFLOW_RETRY)
    def flaky_tracking_call(context: dg.AssetExecutionContext) -> int:
        attempts["mlflow"].append(time.monotonic())
        if context.retry_number == 0:
            raise TimeoutError("tracking server timed out (simulated)")
        return 2

    with dg.instance_for_test() as instance:
        result = dg.materialize([flaky_source, flaky_tracking_call], instance=instance)
        assert result.success
        retries = {
            event.step_key: event.event_specific_data.seconds_to_wait
            for event in result.all_events
            if event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
        }
        restarts = [
            event.step_key for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_RESTARTED
        ]

    assert sorted(retries) == sorted(restarts) == ["flaky_source", "flaky_tracking_call"]
    for step, policy, name in (
        ("flaky_source", SOURCE_RETRY, "source"),
        ("flaky_tracking_call", MLFLOW_RETRY, "mlflow"),
    ):
        waited = retries[step]
        low, high = delay_bounds(policy, attempt=1)
        assert low <= waited <= high, (step, waited)
        assert waited != (2**1 - 1) * policy.delay  # jittered, not the bare exponential value
        first, second = attempts[name]
        assert second - first >= waited - 0.05, (step, second - first, waited)


def test_the_backoff_grows_exponentially_per_attempt() -> None:
    for policy in (SOURCE_RETRY, MLFLOW_RETRY):
        for attempt in range(1, policy.max_retries + 1):
            low, high = delay_bounds(policy, attempt)
            samples = [policy.calculate_delay(attempt) for _ in range(200)]
            assert all(low <= sample <= high for sample in samples)
            assert max(samples) - min(samples) > policy.delay  # jitter spreads retries of many runs apart
        assert delay_bounds(policy, 3)[0] > delay_bounds(policy, 1)[1]


def test_a_gate_failure_is_not_retried() -> None:
    calls: list[int] = []

    @dg.asset(retry_policy=SOURCE_RETRY)
    def gated(context: dg.AssetExecutionContext) -> None:
        calls.append(context.retry_number)
        raise dg.Failure("gate failed: 3 duplicated ids on 2025-01-02", allow_retries=False)

    with dg.instance_for_test() as instance:
        result = dg.materialize([gated], instance=instance, raise_on_error=False)
    assert not result.success
    assert calls == [0]
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
