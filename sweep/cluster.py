"""Joining an existing Ray cluster and checking that it runs the driver's Ray and Python.

A study's rows are only comparable if every node computed them with the same code: a node with
another Ray fails in obscure ways (pickling, protocol errors) and one with another Python may
compute different floats. :func:`join` therefore

1. calls ``ray.init(address=...)`` and turns Ray's own refusal (``RuntimeError: Version
   mismatch: ...``, raised when the driver differs from the head) into one line
   (:class:`~sweep.errors.StudyError`);
2. runs one tiny task on every alive node (pinned with a node-affinity strategy, zero CPUs so a
   busy node or a head started with ``--num-cpus=0`` still answers) that returns
   ``ray.__version__`` and ``sys.version_info[:3]``; Ray checks a worker node against the head
   when it joins, but not the Python a node's workers actually run;
3. :func:`check_versions` compares the reports with the driver and either returns a one-line
   summary or raises a one-line error naming the nodes that differ.

Before any of that, :func:`probe` checks within a bounded time that a Ray GCS answers at the
address at all: ``ray.init`` itself retries an unreachable address for minutes, and runs a
local Ray instead when handed a dashboard URL.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sweep.errors import StudyError

PROBE_TIMEOUT_S = 60.0
"""How long every node has to report its versions (estimate: a cold worker start is 1-5 s on a
loaded node; 60 s leaves room for a node that is still pulling its runtime environment)."""

PyVersion = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class NodeVersions:
    """What one node's worker reported."""

    node: str
    """``ip (node id prefix)``: the IP alone is ambiguous when several nodes share a host."""
    ray: str
    python: PyVersion


def driver_versions() -> tuple[str, PyVersion]:
    info = sys.version_info
    return ray.__version__, (info.major, info.minor, info.micro)


def _py(version: PyVersion) -> str:
    return ".".join(map(str, version))


def check_versions(
    reports: Sequence[NodeVersions],
    driver: tuple[str, PyVersion] | None = None,
    address: str = "the cluster",
) -> str:
    """One line saying the cluster matches ``driver``; StudyError (one line) if it does not.

    Ray versions must be equal; Python versions must be equal up to the patch level (Ray's own
    default, ``RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=patch``).
    """
    ray_version, python = driver if driver is not None else driver_versions()
    if not reports:
        raise StudyError(f"ray.address: {address} has no alive node to run the study on")
    odd = [r for r in reports if r.ray != ray_version or tuple(r.python) != tuple(python)]
    if odd:
        shown = "; ".join(f"{r.node} has Ray {r.ray}, Python {_py(r.python)}" for r in odd[:4])
        more = f" and {len(odd) - 4} more" if len(odd) > 4 else ""
        raise StudyError(
            f"ray.address: {len(odd)} of {len(reports)} nodes of {address} do not match the "
            f"driver (Ray {ray_version}, Python {_py(python)}): {shown}{more}; run the driver "
            "with the cluster's Ray and Python, or rebuild the nodes' environment"
        )
    nodes = "1 node" if len(reports) == 1 else f"{len(reports)} nodes"
    versions = f"Ray {ray_version} and Python {_py(python)}"
    return f"{address}: {nodes}, {versions} everywhere, as on the driver"


_RAY_MISMATCH = re.compile(r"Ray:\s*(\S+)\s+Python:\s*(\S+)")


def mismatch_line(message: str, address: str = "the cluster") -> str:
    """Ray's multi-line ``Version mismatch`` text from ``ray.init`` as one line."""
    found = _RAY_MISMATCH.findall(message)
    if len(found) < 2:
        return f"ray.address: {address}: " + " ".join(message.split())
    (cluster_ray, cluster_py), (own_ray, own_py) = found[0], found[1]
    return (
        f"ray.address: {address} runs Ray {cluster_ray} with Python {cluster_py}, this driver "
        f"Ray {own_ray} with Python {own_py}; run the driver with the cluster's Ray and Python"
    )


@ray.remote(num_cpus=0, max_retries=0)
def _versions_here() -> tuple[str, PyVersion]:
    return driver_versions()


def node_versions(timeout_s: float = PROBE_TIMEOUT_S) -> list[NodeVersions]:
    """Ask one worker on every alive node of the connected cluster for its versions."""
    refs: dict[Any, str] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        label = f"{node.get('NodeManagerAddress', '?')} ({node['NodeID'][:8]})"
        refs[_versions_here.options(scheduling_strategy=strategy).remote()] = label
    ready, missing = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    if missing:
        late = ", ".join(refs[ref] for ref in missing[:4])
        raise StudyError(
            f"ray.address: {len(missing)} of {len(refs)} nodes did not report their Ray and "
            f"Python versions within {timeout_s:.0f} s ({late}); check that their workers start"
        )
    reports = []
    for ref in ready:
        try:
            ray_version, python = ray.get(ref)
        except ray.exceptions.RayError as exc:
            # A worker that cannot even start (broken environment) is a mismatch too.
            reason = " ".join(str(exc).split())[:160]
            raise StudyError(
                f"ray.address: node {refs[ref]} could not run a version probe: {reason}"
            ) from None
        reports.append(NodeVersions(refs[ref], ray_version, tuple(python)))  # type: ignore[arg-type]
    return sorted(reports, key=lambda r: r.node)


def _host_port(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _speaks_http(sock: socket.socket, host: str, deadline: float) -> bool:
    """Whether the server on ``sock`` answers an HTTP/1 request (a dashboard does, a GCS does not).

    A gRPC server such as the GCS answers any first bytes with an HTTP/2 SETTINGS frame or
    closes the connection; only an HTTP/1 server starts its reply with ``HTTP/``.
    """
    try:
        sock.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def _gcs_state(target: str, timeout_s: float) -> str:
    """``serving``, ``token`` (a GCS that wants an auth token) or ``silent`` (no GCS answers).

    The GCS's standard gRPC health check (``grpc.health.v1.Health/Check``: an empty request,
    SERVING is field 1 = 1, bytes ``08 01``) needs no token; ``GetClusterId``, the first call
    ``ray.init`` makes, does on a cluster with token authentication. Messages are hand-encoded
    so that no protobuf stubs are needed (grpcio ships without the health service's).
    """
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:

        def call(method: str) -> grpc.RpcError | bytes:
            stub = channel.unary_unary(
                method,
                request_serializer=lambda message: message,
                response_deserializer=lambda message: message,
            )
            try:
                return bytes(stub(b"", timeout=max(0.1, deadline - time.monotonic())))
            except grpc.RpcError as exc:
                return exc

        if call("/grpc.health.v1.Health/Check") != b"\x08\x01":
            return "silent"
        answer = call("/ray.rpc.NodeInfoGcsService/GetClusterId")
        if isinstance(answer, grpc.Call) and answer.code() == grpc.StatusCode.UNAUTHENTICATED:
            return "token"
        return "serving"


def probe(address: str | None, timeout_s: float, key: str = "ray.address") -> None:
    """Fail with one line unless a Ray GCS answers at ``address`` within ``timeout_s`` seconds.

    ``address`` is what ``ray.init`` would be given: ``host:port``, ``auto`` (``RAY_ADDRESS``,
    else the cluster ``ray start`` recorded on this machine) or None (``RAY_ADDRESS``); ``key``
    names the setting in the message. A connection that is refused is retried until the
    deadline (a head may still be starting). A dashboard URL (``http://host:8265``, or a
    ``host:port`` answering HTTP) is rejected: given one, Ray silently starts a local instance.
    So is a cluster that requires an auth token when this process has none configured.
    ``ray://`` (Ray Client) addresses are only checked for a TCP answer.
    """
    if address in (None, "auto") and os.environ.get("RAY_ADDRESS"):
        address, key = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    if address is None or address == "local":
        return
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address  # Ray's own lookup

        try:
            address = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError) as exc:
            raise StudyError(f"{key}: auto: {' '.join(str(exc).split())}") from None
        if address is None:
            return
    scheme, _, rest = address.partition("://") if "://" in address else ("", "", address)
    if scheme in ("http", "https"):
        raise StudyError(_dashboard_message(key, address))
    parsed = _host_port(rest.rstrip("/"))
    if parsed is None:
        return  # not host:port: ray.init gives its own one-line error
    host, port = parsed
    deadline = time.monotonic() + timeout_s
    sock: socket.socket | None = None
    while sock is None:
        try:
            sock = socket.create_connection(
                (host, port), timeout=max(0.1, deadline - time.monotonic())
            )
        except OSError:
            if time.monotonic() + 0.5 >= deadline:
                raise StudyError(_silent_message(key, rest, timeout_s)) from None
            time.sleep(0.5)
    with sock:
        if _speaks_http(sock, host, deadline):
            raise StudyError(_dashboard_message(key, address))
    if scheme == "ray":
        return
    state = _gcs_state(rest, deadline - time.monotonic())
    if state == "silent":
        raise StudyError(_silent_message(key, rest, timeout_s))
    if state == "token" and os.environ.get("RAY_AUTH_MODE") != "token":
        # ray.init would retry the refused calls for about 20 s, printing a warning a second.
        raise StudyError(
            f"{key}: the Ray cluster at {rest} requires token authentication (as clusters "
            "started with `ray start` do since Ray 2.59): set RAY_AUTH_MODE=token and give the "
            "driver the cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)"
        )


def _silent_message(key: str, address: str, timeout_s: float) -> str:
    return f"{key}: no Ray cluster answers at {address} within {timeout_s:g} s"


def _dashboard_message(key: str, address: str) -> str:
    url = address if address.startswith(("http://", "https://")) else f"http://{address}"
    return (
        f"{key}: {address} answers HTTP, so it is a Ray dashboard, not a cluster's GCS "
        "address (Ray would silently run locally instead); give the head's GCS address "
        "(host:6379, the port of `ray start --head --port`), or run the study on the cluster "
        f"with `ray job submit --address {url} -- python -m sweep ...`"
    )


def join(address: str | None, **init_kwargs: Any) -> str:
    """``ray.init`` an existing cluster (``None``: ``RAY_ADDRESS``) and check its versions.

    Returns the one-line summary of :func:`check_versions`. A version mismatch is a
    StudyError; other failures of ``ray.init`` (no cluster at the address) propagate.
    """
    where = address or "RAY_ADDRESS"
    try:
        ray.init(address=address, **init_kwargs)
    except RuntimeError as exc:
        if "Version mismatch" not in str(exc):
            raise
        raise StudyError(mismatch_line(str(exc), where)) from None
    start = time.monotonic()
    summary = check_versions(node_versions(), address=ray.get_runtime_context().gcs_address)
    return f"{summary} (checked in {time.monotonic() - start:.1f} s)"


__all__ = [
    "NodeVersions",
    "check_versions",
    "driver_versions",
    "join",
    "mismatch_line",
    "node_versions",
    "probe",
]
