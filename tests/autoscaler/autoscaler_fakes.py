"""Fakes of the autoscaler tests: a fake ESS OpenAPI server, a fake clock, a group builder.

A module of its own (not conftest) so test modules can import it without a package: a
``tests/autoscaler/__init__.py`` would shadow the real ``autoscaler`` package.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web


@dataclass
class FakeClock:
    """Seconds since the epoch, moved only by the test."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def group_doc(name: str, **fields: Any) -> dict[str, Any]:
    """A node group as the groups file has it: 4 cpu / 16 GiB / 110 pods, 0 to 10 nodes,
    labelled ``pool: NAME``; ``fields`` override."""
    return {
        "name": name,
        "instanceType": {"cpu": "4", "memory": "16Gi", "maxPods": 110},
        "labels": {"pool": name},
        "min": 0,
        "max": 10,
        **fields,
    }


@dataclass
class EssGroup:
    id: str
    min_size: int
    max_size: int
    desired: int
    instances: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


class FakeEss:
    """Answers the RPC-style requests ``alibabacloud-ess20220222`` really sends.

    The SDK POSTs to ``/`` with the action in the ``x-acs-action`` header, the parameters in the
    query string (lists flattened to ``InstanceIds.1``, ``InstanceIds.2`` ...) and an
    ``ACS3-HMAC-SHA256`` Authorization header; errors are JSON with Code/Message/RequestId.
    """

    def __init__(self, access_key_id: str, access_key_secret: str) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.groups: dict[str, EssGroup] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.failures: dict[str, list[tuple[int, str]]] = {}
        self.port = 0
        self._serial = 0

    def add_group(
        self, gid: str, *, min_size: int = 0, max_size: int = 10, desired: int = 0
    ) -> None:
        group = EssGroup(gid, min_size, max_size, desired)
        self.groups[gid] = group
        for _ in range(desired):
            group.instances.append(self._new_instance())

    def fail(
        self, action: str, *, status: int = 500, code: str = "InternalError", times: int = 1
    ) -> None:
        self.failures.setdefault(action, []).extend([(status, code)] * times)

    def actions(self) -> list[str]:
        return [a for a, _ in self.calls]

    def _new_instance(self) -> str:
        self._serial += 1
        return f"i-fake{self._serial:04d}"

    async def handle(self, request: web.Request) -> web.Response:
        action = request.headers.get("x-acs-action") or request.query.get("Action", "")
        params = dict(request.query)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(f"ACS3-HMAC-SHA256 Credential={self.access_key_id},"):
            return _error(403, "InvalidAccessKeyId.NotFound", "bad credentials")
        if not _signature_ok(request, auth, self.access_key_secret, await request.read()):
            return _error(400, "SignatureDoesNotMatch", "the request signature does not match")
        if request.headers.get("x-acs-version") != "2022-02-22":
            return _error(400, "InvalidVersion", "version")
        self.calls.append((action, params))
        pending = self.failures.get(action)
        if pending:
            status, code = pending.pop(0)
            return _error(status, code, f"injected failure of {action}")
        handler = getattr(self, f"_{action}", None)
        if handler is None:
            return _error(400, "InvalidAction.NotFound", action)
        result: web.Response = handler(params)
        return result

    def _group(self, params: dict[str, str]) -> EssGroup | None:
        return self.groups.get(params.get("ScalingGroupId", ""))

    def _DescribeScalingGroups(self, params: dict[str, str]) -> web.Response:
        ids = [v for k, v in params.items() if re.fullmatch(r"ScalingGroupIds\.\d+", k)]
        found = [
            {
                "ScalingGroupId": g.id,
                "MinSize": g.min_size,
                "MaxSize": g.max_size,
                "DesiredCapacity": g.desired,
                "TotalCapacity": len(g.instances) + len(g.pending),
                "LifecycleState": "Active",
            }
            for g in self.groups.values()
            if not ids or g.id in ids
        ]
        return _ok(
            {"ScalingGroups": found, "TotalCount": len(found), "PageNumber": 1, "PageSize": 50}
        )

    def _DescribeScalingInstances(self, params: dict[str, str]) -> web.Response:
        group = self._group(params)
        if group is None:
            return _error(404, "InvalidScalingGroupId.NotFound", "no such group")
        rows = [{"InstanceId": i, "LifecycleState": "InService"} for i in group.instances]
        rows += [{"InstanceId": i, "LifecycleState": "Pending"} for i in group.pending]
        page, size = int(params.get("PageNumber", "1")), int(params.get("PageSize", "10"))
        chunk = rows[(page - 1) * size : page * size]
        return _ok(
            {
                "ScalingInstances": chunk,
                "TotalCount": len(rows),
                "PageNumber": page,
                "PageSize": size,
            }
        )

    def _set_desired(self, group: EssGroup, desired: int) -> web.Response | None:
        if not group.min_size <= desired <= group.max_size:
            return _error(400, "InvalidParameter.DesiredCapacity", "out of range")
        group.desired = desired
        while len(group.instances) + len(group.pending) < desired:
            group.pending.append(self._new_instance())
        return None

    def _ModifyScalingGroup(self, params: dict[str, str]) -> web.Response:
        group = self._group(params)
        if group is None:
            return _error(404, "InvalidScalingGroupId.NotFound", "no such group")
        if "DesiredCapacity" in params:
            err = self._set_desired(group, int(params["DesiredCapacity"]))
            if err is not None:
                return err
        return _ok({})

    def _ScaleWithAdjustment(self, params: dict[str, str]) -> web.Response:
        group = self._group(params)
        if group is None:
            return _error(404, "InvalidScalingGroupId.NotFound", "no such group")
        if params.get("AdjustmentType") != "TotalCapacity":
            return _error(400, "InvalidParameter", "only TotalCapacity in the fake")
        err = self._set_desired(group, int(params["AdjustmentValue"]))
        return err or _ok({"ScalingActivityId": "asa-1"})

    def _RemoveInstances(self, params: dict[str, str]) -> web.Response:
        group = self._group(params)
        if group is None:
            return _error(404, "InvalidScalingGroupId.NotFound", "no such group")
        ids = [v for k, v in sorted(params.items()) if re.fullmatch(r"InstanceIds\.\d+", k)]
        for i in ids:
            if i not in group.instances and i not in group.pending:
                return _error(400, "InvalidInstanceId.NotFound", f"{i} is not in the group")
        if len(group.instances) + len(group.pending) - len(ids) < group.min_size:
            return _error(400, "InvalidParameter.MinSize", "below MinSize")
        for i in ids:
            (group.instances if i in group.instances else group.pending).remove(i)
        if params.get("DecreaseDesiredCapacity", "true").lower() == "true":
            group.desired -= len(ids)
        return _ok({"ScalingActivityId": "asa-2"})


def _signature_ok(request: web.Request, auth: str, secret: str, body: bytes) -> bool:
    """Check an ACS3-HMAC-SHA256 signature (Alibaba Cloud's V3 request signing) from scratch."""
    fields = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    payload = request.headers.get("x-acs-content-sha256", "")
    if payload != hashlib.sha256(body).hexdigest():
        return False
    query = "&".join(
        f"{k}={quote(v, safe='~')}" for k, v in sorted(request.query.items(), key=lambda kv: kv[0])
    )
    headers = "".join(f"{h}:{request.headers.get(h, '').strip()}\n" for h in signed)
    canonical = "\n".join(
        [request.method, request.path or "/", query, headers, ";".join(signed), payload]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("Signature", ""))


def _ok(body: dict[str, Any]) -> web.Response:
    return web.json_response({"RequestId": "req-ok", **body})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"Code": code, "Message": message, "RequestId": "req-err"}),
        content_type="application/json",
    )
