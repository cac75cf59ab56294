"""Settings the chosen optimizer or task never reads. A request that sets one to a
value other than what it would resolve to anyway is refused with a 422 naming the
field: `amsgrad: true` under sgd trained plain SGD while the stored spec said
AMSGrad. A value equal to the default passes, so a resolved spec submitted again (it
carries every field) is accepted.

Checked: the optimizer's own knobs (they describe the optimizer that ran) and the
recurrent model and split on lag_paper_linreg (a linear regression on fixed data).
Not checked: a rule's knobs under another rule (`xi` under dense, `bits` under
lag_wk), which stay visibly inert in the results (every round uploads, 32-bit bytes)
and which one base spec shared by several rules carries on purpose; likewise
`embedding_dim` on tasks without token inputs (docs/decisions.md).

A sweep that combines such settings (e.g. `optimizer.name` searched over sgd and adam
with `momentum: 0.9` in the base) is refused at submit: its check resolves the base
at every corner of the space and names the field and the corner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from service.schemas.jobspec import JobSpec

Problem = tuple[str, str]
Filled = Callable[[JobSpec], dict[str, Any]]

# Not bias_correction: under sgd it resolves by rule (off for CADA rules, on for the
# others), so one base shared by several rules carries a value right for some only.
_ADAM_ONLY = ("beta1", "beta2", "eps", "amsgrad")
_RECURRENT_MODEL = ("cell", "hidden_size", "num_layers", "dropout", "embedding_dim")


def _ignored(kind: str, optimizer: str) -> Iterator[tuple[str, str, str]]:
    """(section, field, why) for every field a `kind` task under `optimizer` (the
    resolved name: the paper task's default is sgd) does not read."""
    if optimizer == "sgd":
        for name in _ADAM_ONLY:
            yield "optimizer", name, "applies to adam only; optimizer.name is sgd"
    else:
        yield "optimizer", "momentum", "applies to sgd only; optimizer.name is adam"
    if kind == "lag_paper_linreg":
        why = "lag_paper_linreg is the paper's linear regression on fixed per-worker data"
        for name in _RECURRENT_MODEL:
            yield "model", name, why
        yield "distributed", "split", why


def unused_settings(spec: JobSpec, filled: dict[str, Any], fill: Filled) -> list[Problem]:
    """The fields of `spec` set to a value its choices ignore; `filled` is the spec
    resolved, `fill` resolves a spec (to compare with the field left out)."""
    chosen = [
        (section, name, why)
        for section, name, why in _ignored(spec.task.kind, filled["optimizer"]["name"])
        if name in getattr(spec, section).model_fields_set
    ]
    if not chosen:
        return []
    request = spec.model_dump(exclude_unset=True)
    for section, name, _why in chosen:
        request[section].pop(name)
    baseline = fill(JobSpec.model_validate(request))
    return [
        (f"{section}.{name}", f"{why} (leave it out)")
        for section, name, why in chosen
        if filled[section][name] != baseline[section][name]
    ]
