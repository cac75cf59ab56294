"""The recurrent networks: shapes per head, seeded initialisation, dtype."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.fresh_python import last_line_printed
from tests.specs import resolved_model
from workers.training.models import HeadKind, RecurrentNet, build_model, parameter_count


def _build(
    cell: str = "lstm",
    *,
    seed: int = 0,
    head: HeadKind = "classify",
    dtype: torch.dtype = torch.float32,
    tokens: bool = False,
    **model: object,
) -> RecurrentNet:
    spec = resolved_model(cell=cell, hidden_size=12, **model)
    return build_model(
        spec,
        head=head,
        out_features=5,
        generator=torch.Generator().manual_seed(seed),
        dtype=dtype,
        device="cpu",
        input_size=None if tokens else 3,
        vocab_size=7 if tokens else None,
    )


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(
    ("head", "expected"),
    [("language_model", (4, 6, 5)), ("classify", (4, 5)), ("regress", (4, 5))],
)
def test_heads_give_per_step_or_last_step_outputs(
    cell: str, head: HeadKind, expected: tuple[int, ...]
) -> None:
    model = _build(cell, head=head, num_layers=2)
    features = torch.rand(4, 6, 3)
    assert model(features).shape == expected
    token_model = _build(cell, head=head, tokens=True, embedding_dim=4)
    assert token_model(torch.randint(0, 7, (4, 6))).shape == expected


def test_last_step_head_reads_the_final_state() -> None:
    model = _build("gru", head="classify")
    features = torch.rand(2, 6, 3)
    states, _ = model.rnn(features)
    assert torch.allclose(model(features), model.head(states[:, -1]))
    per_step = _build("gru", head="language_model")
    states, _ = per_step.rnn(features)
    assert torch.allclose(per_step(features), per_step.head(states))


def test_cells_and_sizes_follow_the_spec() -> None:
    model = _build("rnn", num_layers=3, dropout=0.25)
    assert isinstance(model.rnn, nn.RNN) and model.rnn.nonlinearity == "tanh"
    assert model.rnn.num_layers == 3 and model.rnn.hidden_size == 12
    assert model.rnn.dropout == 0.25 and model.dropout.p == 0.25
    # torch applies (and warns about) inter-layer dropout only with several layers.
    assert _build("gru", dropout=0.25).rnn.dropout == 0.0
    assert isinstance(_build("gru").rnn, nn.GRU)
    lstm = _build("lstm", tokens=True, embedding_dim=4)
    assert isinstance(lstm.rnn, nn.LSTM)
    assert lstm.embedding is not None and lstm.embedding.embedding_dim == 4
    expected = 7 * 4 + 4 * (12 * 4 + 12 * 12 + 2 * 12) + 12 * 5 + 5
    assert parameter_count(lstm) == expected


def test_same_seed_gives_identical_weights_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first, second = _build(seed=7), _build(seed=7)
    assert torch.equal(before, torch.random.get_rng_state())
    assert _same_weights(first, second)
    assert not _same_weights(first, _build(seed=8))


def test_float64_build_is_the_float32_build_at_higher_precision() -> None:
    single = _build("lstm", dtype=torch.float32, tokens=True, embedding_dim=4)
    double = _build("lstm", dtype=torch.float64, tokens=True, embedding_dim=4)
    assert all(p.dtype == torch.float64 for p in double.parameters())
    for p, q in zip(single.parameters(), double.parameters(), strict=True):
        assert torch.equal(p, q.float())
    out = double(torch.randint(0, 7, (2, 5)))
    assert out.dtype == torch.float64


def test_initialisation_matches_torch_defaults_and_opens_the_forget_gate() -> None:
    rnn = _build("lstm").rnn
    bound = 1 / 12**0.5
    weights = rnn.get_parameter("weight_hh_l0").detach()
    assert float(weights.abs().max()) <= bound
    assert float(weights.std()) > bound / 3  # not collapsed to a constant
    forget = slice(12, 24)
    total_bias = (rnn.get_parameter("bias_ih_l0") + rnn.get_parameter("bias_hh_l0")).detach()
    assert torch.equal(total_bias[forget], torch.ones(12))
    assert float(total_bias[:12].abs().max()) <= 2 * bound


def test_exactly_one_input_kind_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RecurrentNet(
            cell="lstm",
            hidden_size=4,
            num_layers=1,
            dropout=0.0,
            head="classify",
            out_features=2,
            input_size=3,
            vocab_size=5,
            embedding_dim=2,
        )


def test_building_a_token_model_imports_no_compiler() -> None:
    """A token model's embedding built on the meta device used to draw its own
    normal_ there, which imports torch._dynamo (1.5-4.5 s of a fresh actor's first
    job). In a fresh interpreter, as an actor's process is."""
    script = (
        "import sys\n"
        "import torch\n"
        "from tests.specs import resolved_model\n"
        "from workers.training.models import build_model\n"
        "build_model(resolved_model(cell='lstm', hidden_size=4), head='language_model',"
        " out_features=3, generator=torch.Generator().manual_seed(0), dtype=torch.float32,"
        " device='cpu', vocab_size=5)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    assert last_line_printed(script) == "False"
