"""A job's data plane: one gloo process group among the gang's own actors, as Ray
Train does (Ray places and supervises the actors, torch moves the tensors). The
driver is rank 0 and hosts the rendezvous store; replica r is rank r + 1.

Only vectors travel here: the parameters from the driver to each replica it calls,
and each upload (its rule's wire form, as raw bytes) from a replica to the driver.
A skip sends nothing. Control (round, RHS, the small part of a reply) stays on Ray
calls, so a dead actor still surfaces as a Ray error where the driver waits for its
reply; every wait on the group is bounded by the group's timeout as well.

The group is an object of the job's role, not torch's process-global default group,
so a pooled warm actor (workers.warm_pool) that served one job keeps nothing of it:
`close` waits for its pending sends and shuts the group down, and a new job builds a
new group on a new store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed

# torch's c10d bindings carry no type information for these two.
TCPStore: Any = getattr(torch.distributed, "TCPStore")  # noqa: B009
ProcessGroupGloo: Any = getattr(torch.distributed, "ProcessGroupGloo")  # noqa: B009

# The longest any operation on the group may wait (init included): long enough for a
# slow actor to start its step, short enough that a lost peer ends the job.
TIMEOUT_S = 120.0
PARAMS_TAG = 1
UPLOAD_TAG = 2


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
    """This process's member of a job's gloo group, with a count of the bytes it
    sent and received over it (tests hold the rule's `bytes_up` accounting to it)."""

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
        self.bytes_sent = 0
        self.bytes_received = 0
        self.sends = 0
        self._pending: list[tuple[Any, torch.Tensor]] = []

    def send(self, tensor: torch.Tensor, dst: int, tag: int) -> None:
        """Post a send of `tensor` (kept alive until `wait_sends`)."""
        tensor = tensor.contiguous()
        self._pending.append((self.group.send([tensor], dst, tag), tensor))
        self.bytes_sent += tensor.numel() * tensor.element_size()
        self.sends += 1

    def send_array(self, array: np.ndarray, dst: int, tag: int) -> WireArray:
        wire = WireArray.of(array)
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        self.send(torch.from_numpy(raw), dst, tag)
        return wire

    def wait_sends(self) -> None:
        pending, self._pending = self._pending, []
        for work, _tensor in pending:
            work.wait()

    def recv_into(self, tensor: torch.Tensor, src: int, tag: int) -> Any:
        """Post a receive into `tensor`; returns the work to wait on."""
        work = self.group.recv([tensor], src, tag)
        self.bytes_received += tensor.numel() * tensor.element_size()
        return work

    def recv_arrays(self, wires: dict[int, WireArray], tag: int) -> dict[int, np.ndarray]:
        """One array from each source rank, received concurrently."""
        buffers = {src: torch.empty(wire.nbytes, dtype=torch.uint8) for src, wire in wires.items()}
        works = [self.recv_into(buffer, src, tag) for src, buffer in buffers.items()]
        for work in works:
            work.wait()
        return {
            src: buffers[src].numpy().view(np.dtype(wire.dtype)).reshape(wire.shape)
            for src, wire in wires.items()
        }

    def stats(self) -> dict[str, int]:
        return {
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "sends": self.sends,
        }

    def close(self) -> None:
        """Wait for this member's pending sends, then shut its group down."""
        try:
            self.wait_sends()
        finally:
            self.group.shutdown()
