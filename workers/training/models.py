"""Recurrent networks for every task: an Elman RNN (tanh), LSTM or GRU body, an
optional embedding for token inputs, and one of three heads.

Initial weights come from a generator seeded by the caller, never from torch's
global RNG, so two builds with the same seed are identical in any process and in
any dtype (weights are drawn in float64, then cast).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from service.schemas.resolved import ResolvedModel

HeadKind = Literal["language_model", "classify", "regress"]
CellKind = Literal["rnn", "lstm", "gru"]


class RecurrentNet(nn.Module):
    """Inputs are token ids `(batch, steps)` when `vocab_size` is given, otherwise
    features `(batch, steps, input_size)`. The recurrent state always starts at zero.

    Heads: `language_model` gives logits at every step `(batch, steps, out)`;
    `classify` gives logits from the last step `(batch, out)`; `regress` gives
    values from the last step `(batch, out)`.
    """

    def __init__(
        self,
        *,
        cell: CellKind,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        head: HeadKind,
        out_features: int,
        input_size: int | None = None,
        vocab_size: int | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if (input_size is None) == (vocab_size is None):
            raise ValueError("give exactly one of input_size (features) or vocab_size (tokens)")
        self.head_kind: HeadKind = head
        self.embedding: nn.Embedding | None = None
        if vocab_size is not None:
            if embedding_dim is None:
                raise ValueError("token inputs need embedding_dim")
            # Given its (empty) weight, the embedding skips its own normal_ draw, which
            # on the meta device imports torch._dynamo: ≈ 1.5-4.5 s of a process's
            # first model build (benchmarks/gang_start.py). init_weights fills it.
            self.embedding = nn.Embedding(
                vocab_size, embedding_dim, _weight=torch.empty(vocab_size, embedding_dim)
            )
            rnn_input = embedding_dim
        else:
            assert input_size is not None
            rnn_input = input_size
        # torch applies inter-layer dropout only between layers (and warns otherwise).
        between_layers = dropout if num_layers > 1 else 0.0
        rnn_class: Callable[..., nn.RNNBase] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_class(
            rnn_input, hidden_size, num_layers, batch_first=True, dropout=between_layers
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, out_features)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.embedding(inputs) if self.embedding is not None else inputs
        states, _ = self.rnn(features)
        states = self.dropout(states)
        if self.head_kind == "language_model":
            return self.head(states)  # type: ignore[no-any-return]
        return self.head(states[:, -1])  # type: ignore[no-any-return]


def init_weights(model: RecurrentNet, generator: torch.Generator) -> None:
    """torch's default initialisation, drawn from `generator` in float64: recurrent
    and head weights and biases U(-1/sqrt(H), 1/sqrt(H)) (the head's fan-in is H),
    embedding N(0, 1). LSTM forget-gate biases start at 1 so long-range gradients
    are not squashed at the start (Gers et al., 2000)."""
    hidden = model.rnn.hidden_size
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("embedding."):
                values = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            else:
                bound = 1.0 / math.sqrt(hidden)
                values = torch.rand(param.shape, generator=generator, dtype=torch.float64)
                values = values * (2 * bound) - bound
            if isinstance(model.rnn, nn.LSTM) and name.startswith("rnn.bias_ih"):
                values[hidden : 2 * hidden] = 1.0  # gate order i, f, g, o
            if isinstance(model.rnn, nn.LSTM) and name.startswith("rnn.bias_hh"):
                values[hidden : 2 * hidden] = 0.0
            param.copy_(values)


def build_model(
    spec: ResolvedModel,
    *,
    head: HeadKind,
    out_features: int,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device | str,
    input_size: int | None = None,
    vocab_size: int | None = None,
) -> RecurrentNet:
    """A freshly initialised network for `spec`; the module is built on the meta
    device first so construction consumes no global random numbers."""
    with torch.device("meta"):
        model = RecurrentNet(
            cell=spec.cell,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            dropout=spec.dropout,
            head=head,
            out_features=out_features,
            input_size=input_size,
            vocab_size=vocab_size,
            embedding_dim=spec.embedding_dim if vocab_size is not None else None,
        )
    model.to_empty(device=device)
    model.to(dtype)
    init_weights(model, generator)
    if isinstance(model.rnn, nn.RNNBase):
        model.rnn.flatten_parameters()
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
