"""Lease-based leader election against the API emulator, in fake time."""

from __future__ import annotations

import asyncio

import pytest
from autoscaler_fakes import FakeClock
from kube_emulator import KubeEmulator
from kubernetes_asyncio import client

from autoscaler.leader import LeaseElector, LeaseSettings

SETTINGS = LeaseSettings(name="lock", namespace="kube-system", lease_duration=15, renew_deadline=10)


def _pair(api: client.ApiClient, clock: FakeClock) -> tuple[LeaseElector, LeaseElector]:
    a = LeaseElector(api, identity="a", settings=SETTINGS, clock=clock)
    b = LeaseElector(api, identity="b", settings=SETTINGS, clock=clock)
    return a, b


async def test_exactly_one_leads_and_the_other_takes_over_after_expiry(
    kube_api: KubeEmulator, kube_client: client.ApiClient, clock: FakeClock
) -> None:
    a, b = _pair(kube_client, clock)
    assert await a.step()
    assert not await b.step()
    lease = kube_api.get("leases", "lock", "kube-system")
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    for _ in range(5):  # a renews, b keeps waiting
        clock.advance(5)
        assert await a.step()
        assert not await b.step()
    # a stops renewing (crashed): b must wait a full lease duration after it last saw a change.
    clock.advance(10)
    assert not await b.step()
    assert not a.is_leader  # past a's renew deadline: a stopped acting before b may start
    clock.advance(5)
    assert await b.step()
    lease = kube_api.get("leases", "lock", "kube-system")
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    assert not await a.step()  # a is back, sees b renewing, follows


async def test_simultaneous_candidates_produce_one_leader(
    kube_client: client.ApiClient, clock: FakeClock
) -> None:
    electors = [
        LeaseElector(kube_client, identity=f"r{i}", settings=SETTINGS, clock=clock)
        for i in range(4)
    ]
    results = await asyncio.gather(*(e.step() for e in electors))
    assert sum(results) == 1
    clock.advance(SETTINGS.lease_duration + 1)
    # Everyone now thinks the lease expired; still exactly one wins the optimistic race.
    results = await asyncio.gather(*(e.step() for e in electors))
    assert sum(results) == 1


async def test_release_hands_over_at_once(kube_client: client.ApiClient, clock: FakeClock) -> None:
    a, b = _pair(kube_client, clock)
    assert await a.step()
    assert not await b.step()
    await a.release()
    assert not a.is_leader
    clock.advance(1)
    assert await b.step()


async def test_api_errors_keep_leadership_until_the_renew_deadline(
    kube_api: KubeEmulator, kube_client: client.ApiClient, clock: FakeClock
) -> None:
    a, _ = _pair(kube_client, clock)
    assert await a.step()
    kube_api.fail("/leases/lock", status=500, times=100)
    clock.advance(5)
    assert await a.step()  # renew failed, but still within the deadline
    clock.advance(5)
    assert not await a.step()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        LeaseSettings(lease_duration=5, renew_deadline=10)
