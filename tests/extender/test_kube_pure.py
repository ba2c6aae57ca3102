"""The pure helpers of extender.kube: backoff sequence and token bucket."""

import pytest

from extender.kube import BackoffSettings, TokenBucket, backoff_delay


def test_backoff_doubles_up_to_the_maximum() -> None:
    settings = BackoffSettings(initial=0.5, maximum=4.0, factor=2.0, jitter=0.2)
    delays = [backoff_delay(i, settings, rand=0.5) for i in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 0.8), (0.5, 1.0), (0.999999, 1.2)])
def test_backoff_jitter_spreads_within_bounds(rand: float, expected: float) -> None:
    settings = BackoffSettings(initial=1.0, jitter=0.2)
    assert backoff_delay(0, settings, rand=rand) == pytest.approx(expected, abs=1e-5)


def test_backoff_survives_huge_attempt_counts() -> None:
    assert backoff_delay(10_000, BackoffSettings(maximum=30.0), rand=0.5) == 30.0


def test_token_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.0) == pytest.approx(1.0)  # queued behind the previous one


def test_token_bucket_refills_with_time_but_not_beyond_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (1.0, 0)])
def test_token_bucket_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate=rate, burst=burst, now=0.0)
