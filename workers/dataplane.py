"""A job's data plane: one gloo process group among the gang's own actors, as Ray
Train does (Ray places and supervises the actors, torch moves the tensors). The
driver is rank 0 and hosts the rendezvous store; replica r is rank r + 1.

Per round nothing goes through Ray: the driver sends each replica it calls a small
control message (round, RHS) and the parameters; the replica answers with its reply
(loss, lhs, counters, and the upload's shape) and then the upload itself, as raw
bytes. A skip sends the reply and no upload. Each replica runs its side of the rounds
in one long Ray call (`serve`), which is what Ray supervises: a replica that dies
ends that call with a Ray error, which the driver raises (workers.ray_actors).

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
CONTROL_TAG = 1
PARAMS_TAG = 2
UPLOAD_TAG = 3
# A control message: 4 bytes of length, then a pickle (a few hundred bytes).
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


def encode(message: Any) -> torch.Tensor:
    """A control message as a fixed-size byte tensor (gloo receives known sizes)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > CONTROL_BYTES - 4:
        raise ValueError(f"control message of {len(data)} bytes (at most {CONTROL_BYTES - 4})")
    buffer = torch.zeros(CONTROL_BYTES, dtype=torch.uint8)
    raw = buffer.numpy()
    raw[:4] = np.frombuffer(len(data).to_bytes(4, "little"), dtype=np.uint8)
    raw[4 : 4 + len(data)] = np.frombuffer(data, dtype=np.uint8)
    return buffer


def decode(buffer: torch.Tensor) -> Any:
    raw = buffer.numpy()
    size = int.from_bytes(raw[:4].tobytes(), "little")
    return pickle.loads(raw[4 : 4 + size].tobytes())  # from this job's own gang


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
        self._pending: list[tuple[Any, torch.Tensor]] = []

    def send(self, tensor: torch.Tensor, dst: int, tag: int) -> None:
        """Post a send of `tensor` (kept alive until its work is waited for)."""
        tensor = tensor.contiguous()
        self._pending.append((self.group.send([tensor], dst, tag), tensor))
        size = tensor.numel() * tensor.element_size()
        if tag == CONTROL_TAG:
            self.counts["control_bytes_sent"] += size
        else:
            self.counts["bytes_sent"] += size
            self.counts["sends"] += 1

    def send_message(self, message: Any, dst: int) -> None:
        self.send(encode(message), dst, CONTROL_TAG)

    def send_array(self, array: np.ndarray, dst: int, tag: int) -> None:
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self.send(torch.from_numpy(raw), dst, tag)

    def take_sends(self) -> list[Any]:
        """The works of the sends posted since the last call (a gloo send's work
        holds its tensor until it completes)."""
        pending, self._pending = self._pending, []
        return [work for work, _tensor in pending]

    def wait_sends(self) -> None:
        for work in self.take_sends():
            work.wait()

    def recv(self, tensor: torch.Tensor, src: int, tag: int) -> Any:
        """Post a receive into `tensor`; returns the work to wait on."""
        work = self.group.recv([tensor], src, tag)
        size = tensor.numel() * tensor.element_size()
        self.counts["control_bytes_received" if tag == CONTROL_TAG else "bytes_received"] += size
        return work

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    def close(self) -> None:
        """Wait for this member's pending sends, then shut its group down."""
        try:
            self.wait_sends()
        finally:
            self.group.shutdown()
