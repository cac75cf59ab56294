"""A job's data plane: one gloo process group among the gang's own actors, as Ray
Train does (Ray places and supervises the actors, torch moves the tensors). The
driver is rank 0 and hosts the rendezvous store; replica r is rank r + 1.

Per round nothing goes through Ray: the driver sends each replica it calls one
message, a small control part (round, RHS) followed by θ; the replica answers with
one message, its reply (loss, lhs, counters, the upload's shape) followed by the
upload as raw bytes. A skip's answer is the control part alone. Each replica runs
its side of the rounds in one long Ray call (`serve`), which is what Ray supervises:
a replica that dies ends that call with a Ray error, which the driver raises
(workers.round_exchange).

The group is an object of the job's role, not torch's process-global default group,
so a pooled warm actor (workers.warm_pool) that served one job keeps nothing of it:
`close` waits for its pending sends and shuts the group down, and a new job builds a
new group on a new store.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed

# torch's c10d bindings carry no type information for these two.
TCPStore: Any = getattr(torch.distributed, "TCPStore")  # noqa: B009
ProcessGroupGloo: Any = getattr(torch.distributed, "ProcessGroupGloo")  # noqa: B009

# The longest an exchange that should be immediate may wait (init included): long
# enough for a slow actor under load, short enough that a lost peer ends the job.
TIMEOUT_S = 120.0
# Waits that last as long as a round's compute, or the driver's evaluation and
# checkpoint between rounds: not bounded by the group (a dead peer's closed socket,
# or Ray's verdict on its actor, ends them instead).
UNBOUNDED = timedelta(days=7)
TAG = 1
# A message's control part: 4 bytes of length, a pickle (a few hundred bytes), zero
# padding; the vector's bytes follow. A receive may be larger than what arrives
# (gloo fills a prefix), so one buffer of the largest size takes any message.
CONTROL_BYTES = 1024


@dataclass(frozen=True)
class Rendezvous:
    host: str
    port: int
    size: int  # driver + replicas


@dataclass(frozen=True)
class WireArray:
    """What the receiver needs to rebuild an array sent as raw bytes."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.shape, dtype=np.int64)))

    @classmethod
    def of(cls, array: np.ndarray) -> WireArray:
        return cls(array.dtype.str, tuple(int(n) for n in array.shape))


def node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def encode(
    message: Any, vector: np.ndarray | None = None, *, into: torch.Tensor | None = None
) -> torch.Tensor:
    """One message: the pickled control part, then `vector`'s bytes if given. `into`:
    a buffer to reuse if it has the message's size (no send of it may be pending)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > CONTROL_BYTES - 4:
        raise ValueError(f"control message of {len(data)} bytes (at most {CONTROL_BYTES - 4})")
    extra = 0 if vector is None else vector.nbytes
    if into is not None and into.numel() == CONTROL_BYTES + extra:
        buffer = into
    else:
        buffer = torch.empty(CONTROL_BYTES + extra, dtype=torch.uint8)
    raw = buffer.numpy()
    raw[:4] = np.frombuffer(len(data).to_bytes(4, "little"), dtype=np.uint8)
    raw[4 : 4 + len(data)] = np.frombuffer(data, dtype=np.uint8)
    raw[4 + len(data) : CONTROL_BYTES] = 0
    if vector is not None:
        raw[CONTROL_BYTES:] = np.ascontiguousarray(vector).reshape(-1).view(np.uint8)
    return buffer


def decode(buffer: torch.Tensor) -> Any:
    """The control part of a message."""
    raw = buffer.numpy()
    size = int.from_bytes(raw[:4].tobytes(), "little")
    return pickle.loads(raw[4 : 4 + size].tobytes())  # from this job's own gang


def vector_of(buffer: torch.Tensor, wire: WireArray) -> np.ndarray:
    """The vector after a message's control part (a view of `buffer`)."""
    raw = buffer.numpy()[CONTROL_BYTES : CONTROL_BYTES + wire.nbytes]
    return raw.view(np.dtype(wire.dtype)).reshape(wire.shape)


class RendezvousHost:
    """The rendezvous store, in the driver's process for the job's lifetime."""

    def __init__(self, size: int, *, timeout_s: float = TIMEOUT_S) -> None:
        host = node_ip()
        self.store = TCPStore(
            host,
            0,
            world_size=size,
            is_master=True,
            timeout=timedelta(seconds=timeout_s),
            wait_for_workers=False,
        )
        self.rendezvous = Rendezvous(host, int(self.store.port), size)


class GangGroup:
    """This process's member of a job's gloo group. It counts what it sent and
    received: vectors (`bytes_*`, `sends`: tests hold the rule's `bytes_up`
    accounting to them) apart from control messages (`control_bytes_*`)."""

    def __init__(
        self,
        rendezvous: Rendezvous,
        rank: int,
        *,
        timeout_s: float = TIMEOUT_S,
        store: Any = None,  # the host's own store (rank 0), else a client is opened
    ) -> None:
        timeout = timedelta(seconds=timeout_s)
        self.rank = rank
        self.store = store or TCPStore(
            rendezvous.host, rendezvous.port, is_master=False, timeout=timeout
        )
        options = ProcessGroupGloo._Options()
        options._timeout = timeout
        # Bind to this node's Ray address (not whatever the hostname resolves to), so
        # a gang spread over nodes connects over the network Ray itself uses.
        options._devices = [ProcessGroupGloo.create_device(hostname=node_ip())]
        self.group: Any = ProcessGroupGloo(self.store, rank, rendezvous.size, options)
        self.counts = dict.fromkeys(
            (
                "bytes_sent",
                "bytes_received",
                "sends",
                "control_bytes_sent",
                "control_bytes_received",
            ),
            0,
        )
        self._pending: list[Any] = []

    def send(self, message: torch.Tensor, dst: int, *, vector_bytes: int = 0) -> None:
        """Post a send of an encoded message (`vector_bytes` of it are the vector)."""
        self._pending.append(self.group.send([message], dst, TAG))
        self.counted(sent=(message.numel(), vector_bytes))

    def recv(self, buffer: torch.Tensor, src: int) -> Any:
        """Post a receive of one message into `buffer` (at least its size); returns
        the work to wait on. Count it with `counted` once its size is known."""
        return self.group.recv([buffer], src, TAG)

    def counted(
        self, *, sent: tuple[int, int] = (0, 0), received: tuple[int, int] = (0, 0)
    ) -> None:
        """Count (message bytes, of which vector bytes) sent and received."""
        for direction, (total, vector) in (("sent", sent), ("received", received)):
            self.counts[f"control_bytes_{direction}"] += total - vector
            self.counts[f"bytes_{direction}"] += vector
        if sent[1]:
            self.counts["sends"] += 1

    def take_sends(self) -> list[Any]:
        """The works of the sends posted since the last call (a gloo send's work
        holds its tensor until it completes)."""
        pending, self._pending = self._pending, []
        return pending

    def wait_sends(self) -> None:
        for work in self.take_sends():
            work.wait()

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    def close(self) -> None:
        """Wait for this member's pending sends, then shut its group down."""
        try:
            self.wait_sends()
        finally:
            self.group.shutdown()
