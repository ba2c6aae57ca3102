"""The kube-scheduler extender protocol v1 on the wire (``k8s.io/kube-scheduler/extender/v1``).

Keys are Go field names.  Go's ``encoding/json`` matches keys case-insensitively (an exact match
wins), so decoding here does too: the top-level object is first decoded as ``{key: Raw}``, which
only scans the values, the keys are mapped to their canonical spelling, and each value is decoded
by itself.  Values we may hand back unchanged (``NodeNames``, ``Nodes``) stay ``msgspec.Raw`` so
the filter answer for an unmanaged pod splices the request's bytes instead of re-encoding
thousands of names.  Nested Go structs (``Victims``, ``MetaVictims``, ``MetaPod``) are
normalised the same way; Kubernetes objects inside (``Pod``, ``Node``) are left as sent.

Every decoding problem raises ``WireError`` with a message naming the field; the app turns it
into a 400.

Speed: at 5,000 nodes the ``NodeNames`` list is 120 kB, and kube-scheduler offers the same list
again and again (every pod of a cycle sees the same feasible nodes; prioritize gets back exactly
the list filter answered).  ``locate_node_names`` finds the list in the compact body Go writes
without scanning it, ``NameLists`` recognises a list seen before by comparing bytes (``memcmp``,
microseconds) instead of decoding it, and the answers built from a known list are memoised as
bytes, so a pod whose answer is already known costs nothing proportional to the number of nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import msgspec

__all__ = [
    "NULL",
    "Encodings",
    "ExtenderArgs",
    "ExtenderBindingArgs",
    "ExtenderBindingResult",
    "ExtenderFilterResult",
    "ExtenderPreemptionArgs",
    "ExtenderPreemptionResult",
    "HostPriority",
    "MetaPod",
    "MetaVictims",
    "NameList",
    "NameLists",
    "NodeHead",
    "PodParts",
    "RawArgs",
    "Victims",
    "WireError",
    "decode_args",
    "decode_binding_args",
    "decode_node_heads",
    "decode_node_names",
    "decode_pod",
    "decode_pod_parts",
    "decode_preemption_args",
    "decode_raw_args",
    "encode",
    "encode_binding_result",
    "encode_filter_result",
    "encode_names",
    "encode_node_list",
    "encode_preemption_result",
    "encode_scores",
    "filter_names_parts",
    "filter_result_parts",
    "grouped_map",
    "grouped_map_parts",
    "is_null",
    "locate_node_names",
]

NULL = msgspec.Raw(b"null")
_T = TypeVar("_T")


class WireError(ValueError):
    """A request body that is not a valid extender message; the message names the field."""


# -- the protocol's types (Go field names) ------------------------------------------------------
class ExtenderArgs(msgspec.Struct):
    """Filter and prioritize arguments.  ``Nodes`` / ``NodeNames`` are kept raw (``NULL`` when nil)."""

    Pod: dict[str, Any]
    Nodes: msgspec.Raw = NULL
    NodeNames: msgspec.Raw = NULL


class ExtenderFilterResult(msgspec.Struct):
    Nodes: dict[str, Any] | None = None
    NodeNames: list[str] | None = None
    FailedNodes: dict[str, str] | None = None
    FailedAndUnresolvableNodes: dict[str, str] | None = None
    Error: str = ""


class HostPriority(msgspec.Struct):
    Host: str
    Score: int


class MetaPod(msgspec.Struct):
    UID: str = ""


class MetaVictims(msgspec.Struct):
    Pods: list[MetaPod] = msgspec.field(default_factory=list)
    NumPDBViolations: int = 0


class Victims(msgspec.Struct):
    Pods: list[dict[str, Any]] = msgspec.field(default_factory=list)
    NumPDBViolations: int = 0


class ExtenderPreemptionArgs(msgspec.Struct):
    Pod: dict[str, Any]
    NodeNameToVictims: dict[str, Victims] | None = None
    NodeNameToMetaVictims: dict[str, MetaVictims] | None = None


class ExtenderPreemptionResult(msgspec.Struct):
    NodeNameToMetaVictims: dict[str, MetaVictims] | None = None


class ExtenderBindingArgs(msgspec.Struct):
    PodName: str
    PodNamespace: str
    PodUID: str
    Node: str


class ExtenderBindingResult(msgspec.Struct):
    Error: str = ""


class _NodeMeta(msgspec.Struct):
    name: str = ""
    resourceVersion: str = ""


class NodeHead(msgspec.Struct):
    """Just enough of a full Node object to find it in the cache; the rest is skipped."""

    metadata: _NodeMeta = msgspec.field(default_factory=_NodeMeta)


class PodParts(msgspec.Struct, forbid_unknown_fields=True):
    """A Pod with its ``spec`` left as JSON (``decode_pod_parts``); any other key refuses it."""

    apiVersion: Any = None
    kind: Any = None
    metadata: Any = None
    spec: msgspec.Raw = NULL
    status: Any = None


class _NodeList(msgspec.Struct):
    items: list[msgspec.Raw] | None = None


class _NodeListOut(msgspec.Struct):
    metadata: dict[str, Any]
    items: list[msgspec.Raw]


# -- decoding -----------------------------------------------------------------------------------
_ENCODER = msgspec.json.Encoder()
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_OBJECT = msgspec.json.Decoder(dict[str, Any])
_ANY = msgspec.json.Decoder()
_NAMES = msgspec.json.Decoder(list[str])
_NODE_LIST = msgspec.json.Decoder(_NodeList)
_NODE_HEAD = msgspec.json.Decoder(NodeHead)
_POD_PARTS = msgspec.json.Decoder(PodParts)


def _fields(*names: str) -> dict[str, str]:
    return {name.lower(): name for name in names}


_ARGS = _fields("Pod", "Nodes", "NodeNames")
_PREEMPT = _fields("Pod", "NodeNameToVictims", "NodeNameToMetaVictims")
_BIND = _fields("PodName", "PodNamespace", "PodUID", "Node")
_VICTIMS = _fields("Pods", "NumPDBViolations")
_META_POD = _fields("UID")


def _canonical(raw: Mapping[str, _T], fields: Mapping[str, str]) -> dict[str, _T]:
    """Keys spelled as Go field names; unknown keys dropped (Go ignores them too)."""
    out: dict[str, _T] = {}
    for key, value in raw.items():
        name = fields.get(key.lower())
        if name is not None:
            out[name] = value  # like Go: the last occurrence wins
    return out


def _top(body: bytes, what: str, fields: Mapping[str, str]) -> dict[str, msgspec.Raw]:
    try:
        raw = _TOP.decode(body)
    except msgspec.ValidationError:
        raise WireError(f"{what}: the body must be a JSON object") from None
    except msgspec.DecodeError as err:
        raise WireError(f"{what}: malformed JSON: {err}") from None
    if all(key in fields.values() for key in raw):
        return raw
    return _canonical(raw, fields)


def is_null(raw: msgspec.Raw | None) -> bool:
    if raw is None:
        return True
    view = memoryview(raw)  # no copy: NodeNames can be hundreds of kB
    return len(view) == 4 and view.tobytes() == b"null"


def _starts(raw: msgspec.Raw, char: bytes) -> bool:
    return memoryview(raw)[:1].tobytes() == char


def _pod(raw: msgspec.Raw | None, what: str) -> dict[str, Any]:
    if is_null(raw):
        raise WireError(f"{what}: Pod is required")
    try:
        return _OBJECT.decode(raw)  # type: ignore[arg-type]
    except msgspec.DecodeError:
        raise WireError(f"{what}: Pod must be a JSON object") from None


class RawArgs(NamedTuple):
    """``ExtenderArgs`` with the Pod still JSON: a Pod seen before is not decoded again."""

    Pod: msgspec.Raw
    Nodes: msgspec.Raw
    NodeNames: msgspec.Raw


def decode_raw_args(body: bytes, *, node_names: msgspec.Raw | None = None) -> RawArgs:
    """``ExtenderArgs`` with every value left raw (their shape is checked).

    ``node_names``: the list ``locate_node_names`` found in the body (which then has null)."""
    fields = _top(body, "ExtenderArgs", _ARGS)
    pod = fields.get("Pod", NULL)
    if is_null(pod):
        raise WireError("ExtenderArgs: Pod is required")
    if not _starts(pod, b"{"):
        raise WireError("ExtenderArgs: Pod must be a JSON object")
    nodes = fields.get("Nodes", NULL)
    names = fields.get("NodeNames", NULL) if node_names is None else node_names
    if not is_null(nodes) and not _starts(nodes, b"{"):
        raise WireError("ExtenderArgs: Nodes must be a NodeList object or null")
    if not is_null(names) and not _starts(names, b"["):
        raise WireError("ExtenderArgs: NodeNames must be a list of strings or null")
    if is_null(nodes) and is_null(names):
        raise WireError("ExtenderArgs: one of Nodes or NodeNames is required")
    return RawArgs(pod, nodes, names)


def decode_pod(raw: msgspec.Raw | bytes) -> dict[str, Any]:
    """The Pod of ``RawArgs`` as a dict (``WireError`` as ``decode_args`` raises it)."""
    return _pod(msgspec.Raw(raw) if isinstance(raw, bytes) else raw, "ExtenderArgs")


def decode_pod_parts(raw: bytes) -> PodParts | None:
    """The Pod's metadata and status decoded, its ``spec`` left as JSON (the replicas of one
    template send the same spec bytes: ``extender.verbs.Caches.pod_json``); ``None`` when the
    Pod has another top-level key or is not a JSON object (``decode_pod`` then decodes it as a
    whole and names the problem).  ``spec`` is only skipped over, not checked for UTF-8: the
    caller decodes it in full unless it is bytes it decoded before."""
    try:
        return _POD_PARTS.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def decode_args(body: bytes) -> ExtenderArgs:
    """``ExtenderArgs`` with ``Nodes`` / ``NodeNames`` left raw (their shape is checked)."""
    raw = decode_raw_args(body)
    pod = _pod(raw.Pod, "ExtenderArgs")
    return ExtenderArgs(Pod=pod, Nodes=raw.Nodes, NodeNames=raw.NodeNames)


_NAMES_KEY = b',"NodeNames":['
_NAMES_NULL = b',"NodeNames":null}'


def locate_node_names(body: bytes) -> tuple[bytes, int] | None:
    """The body with ``NodeNames`` set to null, and where the raw list starts (it ends before
    the body's last byte), for the compact JSON Go writes
    (``{"Pod":{...},"Nodes":null,"NodeNames":[...]}``); ``None`` for any other shape.  The list
    is not copied: ``NameLists.parse_at`` compares it in place.

    No scan of the list: the key is found by its first occurrence, and the list is everything up
    to the closing brace.  Why that is exact: the quote after the comma cannot be escaped, so if
    the returned body is a valid JSON object its last key is this ``NodeNames`` of the top-level
    object; the original body is then valid and means the same with the list put back, provided
    the list itself is valid JSON, which the caller checks (``NameLists.parse_at``).  A key found
    inside the Pod makes the returned body invalid, and the caller falls back to ``decode_args``.
    """
    if not body.endswith(b"]}"):
        return None
    at = body.find(_NAMES_KEY)
    if at < 0:
        return None
    return body[:at] + _NAMES_NULL, at + len(_NAMES_KEY) - 1


class NameList:
    """One offered ``NodeNames`` list: its names (in the order first seen).  Hashable by
    identity, so caches of what was computed from the list can be keyed on it.  A list read but
    not yet matched against the known ones (``NameLists.read_at``) keeps its bytes until it is."""

    __slots__ = ("__weakref__", "_set", "_spelling", "names")

    def __init__(self, names: tuple[str, ...], spelling: bytes | None = None) -> None:
        self.names = names
        self._set: frozenset[str] | None = None
        self._spelling = spelling

    def name_set(self) -> frozenset[str]:
        if self._set is None:
            self._set = frozenset(self.names)
        return self._set


class NameLists:
    """The last ``size`` spellings of offered name lists, found again by comparing bytes.

    Lists of one length are few (consecutive calls mostly offer the very same list), and bytes
    equality is a ``memcmp`` that stops at the first difference: far cheaper than decoding, or
    even hashing, 120 kB.  kube-scheduler filters nodes in parallel, so the same feasible nodes
    can come in another order: a list whose bytes are new is decoded (in C) and, if it holds
    the names of a known list, becomes another spelling of that list (a set comparison in C),
    so whatever was computed for the list is reused instead of a Python walk over every name.
    The names keep the order first seen; kube-scheduler does not read the order of an answer.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._by_length: dict[int, list[tuple[bytes, NameList]]] = {}
        self._order: list[tuple[bytes, NameList]] = []
        self._added: dict[int, tuple[object, tuple[bytes, NameList]]] = {}
        self._read: NameList | None = None  # the last list read and not yet matched

    def find(self, raw: bytes | msgspec.Raw) -> NameList | None:
        data = raw if isinstance(raw, bytes) else bytes(raw)  # a copy (fast)
        return self.find_at(data, 0, len(data))

    def find_at(self, body: bytes, start: int, end: int) -> NameList | None:
        """The known list spelled ``body[start:end]``, compared in place (a ``memcmp``, no copy
        of the 120 kB)."""
        found = self._spelling_at(body, start, end)
        return None if found is None else found[1]

    def _spelling_at(self, body: bytes, start: int, end: int) -> tuple[bytes, NameList] | None:
        for spelling in self._by_length.get(end - start, ()):
            if body.startswith(spelling[0], start):
                return spelling
        return None

    def parse(self, raw: bytes | msgspec.Raw) -> NameList:
        """The known list with these bytes, or a new one; ``WireError`` if not a list of strings."""
        data = raw if isinstance(raw, bytes) else bytes(raw)
        return self.parse_at(data, 0, len(data))

    def parse_at(self, body: bytes, start: int, end: int) -> NameList:
        """``parse(body[start:end])``, copying the bytes only when the list is new."""
        return self.known(self.read_at(body, start, end))

    def read_at(self, body: bytes, start: int, end: int) -> NameList:
        """The known list spelled ``body[start:end]``, or the names decoded (``WireError`` if
        not a list of strings) into a list not yet matched against the known ones: ``known``
        does that, only for a request that needs the offered names grouped.  A pod no policy
        manages passes every offered node through and never pays for the matching."""
        known = self.find_at(body, start, end)
        if known is not None:
            return known
        read = self._read
        if read is not None and read._spelling is not None:
            spelling = read._spelling
            if len(spelling) == end - start and body.startswith(spelling, start):
                return read
        data = body if start == 0 and end == len(body) else body[start:end]
        listed = NameList(tuple(decode_node_names(msgspec.Raw(data))), spelling=data)
        self._read = listed  # prioritize offers the same bytes again moments later
        return listed

    def known(self, listed: NameList) -> NameList:
        """``listed`` as the known list with the same names, if one is (another order of it),
        else remembered as a new one; a list that came from here already is returned as is."""
        data = listed._spelling
        if data is None:
            return listed
        listed._spelling = None
        names = listed.names
        offered: frozenset[str] | None = None
        for _, other in reversed(self._order):  # newest first
            if len(other.names) != len(names):
                continue
            if offered is None:
                offered = frozenset(names)
                if len(offered) != len(names):
                    break  # a name twice: not another order of a known list
            if other.name_set() == offered:
                return self._remember(data, other)
        if offered is not None and len(offered) == len(names):
            listed._set = offered
        return self._remember(data, listed)

    def add(self, raw: bytes | msgspec.Raw, names: tuple[str, ...]) -> NameList:
        """Remember a list (also one the extender encoded itself: prioritize offers it back).

        The same object added again while its spelling is still known costs nothing: filter
        adds the memoised encoding of one unit's names for every pod it sends there, and
        copying and comparing 115 kB (5,000 nodes) each time is work proportional to the nodes
        for an answer already known."""
        added = self._added.get(id(raw))
        if added is not None and added[0] is raw and any(s is added[1] for s in self._order):
            return added[1][1]
        data = raw if isinstance(raw, bytes) else bytes(raw)  # a copy (fast)
        spelling = self._spelling_at(data, 0, len(data))
        if spelling is None:
            self._remember(data, NameList(names))
            spelling = self._order[-1]
        if len(self._added) >= 4 * self.size:
            self._added.clear()
        self._added[id(raw)] = (raw, spelling)  # the object is kept: its id is not reused
        return spelling[1]

    def _remember(self, raw: bytes, entry: NameList) -> NameList:
        spelling = (raw, entry)
        self._by_length.setdefault(len(raw), []).insert(0, spelling)
        self._order.append(spelling)
        if len(self._order) > self.size:
            old = self._order.pop(0)
            same = self._by_length[len(old[0])]
            same.remove(old)
            if not same:
                del self._by_length[len(old[0])]
        return entry


def decode_node_names(raw: msgspec.Raw) -> list[str]:
    try:
        return _NAMES.decode(raw)
    except msgspec.DecodeError:
        raise WireError("ExtenderArgs: NodeNames must be a list of strings") from None


def decode_node_heads(raw: msgspec.Raw) -> list[tuple[NodeHead, msgspec.Raw]]:
    """The items of a raw NodeList, each with its name and resourceVersion."""
    try:
        items = _NODE_LIST.decode(raw).items or []
        heads = [(_NODE_HEAD.decode(item), item) for item in items]
    except msgspec.DecodeError as err:
        raise WireError(f"ExtenderArgs: Nodes is not a NodeList: {err}") from None
    for i, (head, _) in enumerate(heads):
        if not head.metadata.name:
            raise WireError(f"ExtenderArgs: Nodes.items[{i}].metadata.name is required")
    return heads


def _convert(obj: Any, type_: type[_T], what: str) -> _T:
    try:
        return msgspec.convert(obj, type_)
    except msgspec.ValidationError as err:
        raise WireError(f"{what}: {err}") from None


def _victims_map(raw: Any, *, meta: bool, where: str) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise WireError(f"{where}: expected an object keyed by node name")
    out = {}
    for node, value in raw.items():
        if not isinstance(value, dict):
            raise WireError(f"{where}[{node!r}]: expected an object")
        value = _canonical(value, _VICTIMS)
        pods = value.get("Pods")
        if meta and isinstance(pods, list):
            value["Pods"] = [_canonical(p, _META_POD) if isinstance(p, dict) else p for p in pods]
        out[node] = value
    return out


def decode_preemption_args(body: bytes) -> ExtenderPreemptionArgs:
    fields = _top(body, "ExtenderPreemptionArgs", _PREEMPT)
    pod = _pod(fields.get("Pod"), "ExtenderPreemptionArgs")
    try:
        victims = _ANY.decode(fields.get("NodeNameToVictims", NULL))
        meta = _ANY.decode(fields.get("NodeNameToMetaVictims", NULL))
    except msgspec.DecodeError as err:  # pragma: no cover - the top level already parsed
        raise WireError(f"ExtenderPreemptionArgs: {err}") from None
    where = "ExtenderPreemptionArgs"
    return ExtenderPreemptionArgs(
        Pod=pod,
        NodeNameToVictims=_convert(
            _victims_map(victims, meta=False, where=f"{where}.NodeNameToVictims"),
            dict[str, Victims] | None,  # type: ignore[arg-type]
            where,
        ),
        NodeNameToMetaVictims=_convert(
            _victims_map(meta, meta=True, where=f"{where}.NodeNameToMetaVictims"),
            dict[str, MetaVictims] | None,  # type: ignore[arg-type]
            where,
        ),
    )


def decode_binding_args(body: bytes) -> ExtenderBindingArgs:
    fields = _top(body, "ExtenderBindingArgs", _BIND)
    try:
        values = {key: _ANY.decode(value) for key, value in fields.items()}
    except msgspec.DecodeError as err:  # pragma: no cover - the top level already parsed
        raise WireError(f"ExtenderBindingArgs: {err}") from None
    args = _convert(values, ExtenderBindingArgs, "ExtenderBindingArgs")
    for name in ("PodName", "PodNamespace", "Node"):
        if not getattr(args, name):
            raise WireError(f"ExtenderBindingArgs: {name} must not be empty")
    return args


# -- encoding -----------------------------------------------------------------------------------
def encode(obj: Any) -> bytes:
    return _ENCODER.encode(obj)


def _as_raw(obj: Mapping[str, str] | msgspec.Raw | None) -> msgspec.Raw:
    if obj is None:
        return NULL
    if isinstance(obj, msgspec.Raw):
        return obj
    return msgspec.Raw(_ENCODER.encode(obj))


def filter_result_parts(
    *,
    nodes: msgspec.Raw = NULL,
    node_names: msgspec.Raw = NULL,
    failed: Mapping[str, str] | msgspec.Raw | None = None,
    unresolvable: Mapping[str, str] | msgspec.Raw | Sequence[bytes] | None = None,
    error: str = "",
) -> tuple[bytes | memoryview, ...]:
    """ExtenderFilterResult as pieces to write in order (``extender.http1`` writes them with one
    ``writev``): large node lists and refusal maps are not copied (``unresolvable`` may be
    ``grouped_map_parts``)."""
    if unresolvable is None or isinstance(unresolvable, (Mapping, msgspec.Raw)):
        refused: Sequence[bytes | memoryview] = (memoryview(_as_raw(unresolvable)),)
    else:
        refused = unresolvable
    return (
        b'{"Nodes":',
        memoryview(nodes),  # views: no copy
        b',"NodeNames":',
        memoryview(node_names),
        b',"FailedNodes":',
        memoryview(_as_raw(failed)),
        b',"FailedAndUnresolvableNodes":',
        *refused,
        b',"Error":',
        _ENCODER.encode(error),
        b"}",
    )


def encode_filter_result(
    *,
    nodes: msgspec.Raw = NULL,
    node_names: msgspec.Raw = NULL,
    failed: Mapping[str, str] | msgspec.Raw | None = None,
    unresolvable: Mapping[str, str] | msgspec.Raw | None = None,
    error: str = "",
) -> bytes:
    """ExtenderFilterResult, spliced from raw parts (one copy of large node lists)."""
    return b"".join(
        filter_result_parts(
            nodes=nodes,
            node_names=node_names,
            failed=failed,
            unresolvable=unresolvable,
            error=error,
        )
    )


def filter_names_parts(
    accepted: Sequence[str],
    *,
    refused: Sequence[tuple[Sequence[str], str]],
    failed: Mapping[str, str],
    memo: Encodings | None = None,
) -> tuple[bytes | memoryview, ...]:
    """ExtenderFilterResult with NodeNames: ``accepted``, refused groups of names sharing one
    reason, and failed names, as pieces to write in order, spliced from the memoised encodings
    of the groups (the offer cache hands out the same tuples for every pod that sees the same
    list); none of them is copied here."""
    return filter_result_parts(
        node_names=encode_names(accepted, memo=memo),
        failed=dict(failed) or None,
        unresolvable=grouped_map_parts(refused, memo=memo),
    )


def encode_node_list(items: Sequence[msgspec.Raw]) -> msgspec.Raw:
    return msgspec.Raw(_ENCODER.encode(_NodeListOut({}, list(items))))


def encode_preemption_result(victims: Mapping[str, MetaVictims]) -> bytes:
    return _ENCODER.encode(ExtenderPreemptionResult(dict(victims)))


def encode_binding_result(error: str = "") -> bytes:
    return _ENCODER.encode(ExtenderBindingResult(error))


class _IdentityMemo:
    """Values computed from a tuple, keyed by the tuple's identity (see ``Encodings``)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: dict[tuple[int, Any], tuple[object, Any]] = {}

    def get(self, obj: object, extra: Any, make: Callable[[], Any]) -> Any:
        key = (id(obj), extra)
        hit = self._items.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = make()
        if len(self._items) >= self.size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (obj, value)
        return value


class Encodings:
    """Encodings of the name tuples the offer cache hands out, keyed by the tuple's identity.

    One per app (``extender.verbs.Caches.encodings``; the rules of every memo are in that
    docstring).  The same tuple object comes back for every pod that sees the same offered list,
    so its encoding is computed once; the tuple itself is kept so its id cannot be reused.
    Lists and templates share one table; whole ``{name: reason}`` maps have their own, since
    many policies' reasons must not evict the lists.  Callers that pass no ``memo`` to the
    encoders share the module's own (tests, the demo).
    """

    __slots__ = ("lists", "maps")

    def __init__(self, size: int = 64) -> None:
        self.lists = _IdentityMemo(size)
        self.maps = _IdentityMemo(size)


_SHARED = Encodings()


def encode_names(names: Sequence[str], *, memo: Encodings | None = None) -> msgspec.Raw:
    """A JSON list of names (memoised for tuples, which the offer cache shares)."""
    if not isinstance(names, tuple):
        return msgspec.Raw(_ENCODER.encode(names))
    table = (memo or _SHARED).lists
    raw: msgspec.Raw = table.get(names, "list", lambda: msgspec.Raw(_ENCODER.encode(names)))
    return raw


_HOLE = b"\x00"  # never in JSON text: encoders escape NUL as \u0000


def _template(names: Sequence[str], memo: Encodings) -> bytes:
    """``"a":<hole>,"b":<hole>`` for a group of names (memoised for shared tuples)."""

    def make() -> bytes:
        return b",".join(_ENCODER.encode(name) + b":" + _HOLE for name in names)

    if not isinstance(names, tuple):
        return make()
    template: bytes = memo.lists.get(names, "template", make)
    return template


def grouped_map(
    groups: Sequence[tuple[Sequence[str], str]],
    extra: Mapping[str, str] | None = None,
    *,
    memo: Encodings | None = None,
) -> msgspec.Raw:
    """``{name: reason}`` for groups of names that share a reason, plus ``extra`` entries.

    A group's map is its memoised template with the reason put in every hole by one
    ``bytes.replace`` in C; the whole map is memoised too, since the replicas of one workload
    are refused the same nodes for the same reason.
    """
    return msgspec.Raw(b"".join(grouped_map_parts(groups, extra, memo=memo)))


def grouped_map_parts(
    groups: Sequence[tuple[Sequence[str], str]],
    extra: Mapping[str, str] | None = None,
    *,
    memo: Encodings | None = None,
) -> list[bytes]:
    """``grouped_map`` as pieces to write in order: the groups' memoised maps are not copied."""
    memo = memo or _SHARED
    parts = [b"{"]
    for names, reason in groups:
        if names:
            if len(parts) > 1:
                parts.append(b",")
            parts.append(_group_map(names, reason, memo))
    if extra:
        if len(parts) > 1:
            parts.append(b",")
        parts.append(_ENCODER.encode(dict(extra))[1:-1])
    parts.append(b"}")
    return parts


def _group_map(names: Sequence[str], reason: str, memo: Encodings) -> bytes:
    def make() -> bytes:
        return _template(names, memo).replace(_HOLE, _ENCODER.encode(reason))

    if not isinstance(names, tuple) or len(names) < 64:
        return make()
    body: bytes = memo.maps.get(names, reason, make)
    return body


def encode_scores(names: Sequence[str], score: int, *, memo: Encodings | None = None) -> bytes:
    """A HostPriorityList giving every name the same score (memoised for shared tuples)."""

    def make() -> bytes:
        return _ENCODER.encode([HostPriority(name, score) for name in names])

    if not isinstance(names, tuple):
        return make()
    body: bytes = (memo or _SHARED).lists.get(names, ("scores", score), make)
    return body
