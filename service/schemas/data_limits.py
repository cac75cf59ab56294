"""How much data a job needs, shared by the submit check and the workers' tasks.

The validation hold-out sizes, the training / validation sample counts derived from
them and the builtin datasets' shapes live here, and both the service (which rejects
a spec at submit) and workers/training/tasks (which build the data) use them, so the
two cannot drift apart. `check_data` lists what would make building the task fail.

Pure: pydantic and the standard library only (the workers import it too).
"""

from __future__ import annotations

from pydantic import BaseModel

from service.schemas.jobspec import MAX_SEQ_LEN
from service.schemas.resolved import ResolvedSpec, ResolvedTask

# sequence_classification, adding, copy_memory: a seeded random share of the samples
# is held out (at least one); capped so an evaluation stays cheap.
VAL_FRACTION = 0.2
MAX_VAL_SAMPLES = 1024
# char_lm: the last share of the text (at least one character); at most this many
# validation target characters are scored.
VAL_TEXT_FRACTION = 0.1
MAX_VAL_TOKENS = 32_768

# builtin:digits, scikit-learn's 8x8 digits (tests/training checks these numbers
# against the data).
DIGITS_ROWS = 1797
DIGITS_VALUES = 64
DIGITS_CLASSES = 10
# builtin:shakespeare, the twelve-play subset of workers/training/data_files.py.
SHAKESPEARE_CHARS = 1_519_392
SHAKESPEARE_DISTINCT_CHARS = 80

MAX_CLASSES = 10_000

# An uploaded CSV's values must fit float32, the default model dtype (a larger
# finite value became infinity on the worker); float64 models get the same data.
# The bound is float32's overflow point, halfway between its largest value and
# 2**128: anything below rounds to a finite float32 (its printed maximum
# 3.4028235e38 included, a review), the halfway point itself to infinity.
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103

# How an uploaded dataset's bytes are decoded, at upload and on the worker alike:
# UTF-8 with a leading byte order mark dropped. Excel's "CSV UTF-8" and Notepad write
# one; read as a character it made a headerless CSV's first label "\ufeff0" (so the
# first data row a header) and entered a text's vocabulary. "utf-8-sig" drops it only
# at the very start of the stream (also when split across upload chunks).
UPLOAD_ENCODING = "utf-8-sig"


class CsvShape(BaseModel):
    """An uploaded labelled-sequence CSV, summarised at upload (header excluded)."""

    rows: int
    columns: int
    integer_labels: bool  # every label (first column) is an integer >= 0
    classes: int  # largest label + 1; 0 without integer labels


class TextShape(BaseModel):
    """An uploaded text, counted as the worker reads it (newlines unified)."""

    chars: int
    distinct_chars: int
    # The first this many characters already hold two distinct ones (None: never).
    two_distinct_within: int | None


DatasetShape = CsvShape | TextShape


def is_blank_record(fields: list[str]) -> bool:
    """A CSV record that is skipped: no fields, or only whitespace."""
    return all(not field.strip() for field in fields)


def is_integer(field: str) -> bool:
    try:
        int(field)
    except ValueError:
        return False
    return True


def is_header_record(fields: list[str]) -> bool:
    """The first non-blank CSV record is a header when its first field (the label
    column) is not an integer."""
    return not is_integer(fields[0].strip())


def validation_samples(num_samples: int) -> int:
    return min(max(1, round(num_samples * VAL_FRACTION)), MAX_VAL_SAMPLES)


def training_samples(num_samples: int) -> int:
    return num_samples - validation_samples(num_samples)


def min_samples_for(workers: int) -> int:
    """The fewest samples that leave every worker one training sample."""
    num_samples = workers + 1
    while training_samples(num_samples) < workers:  # non-decreasing in num_samples
        num_samples += 1
    return num_samples


def text_split(num_chars: int) -> tuple[int, int]:
    """(training, validation) characters of a text of `num_chars`."""
    num_val = max(1, int(num_chars * VAL_TEXT_FRACTION))
    return num_chars - num_val, num_val


def text_windows(num_chars: int, seq_len: int) -> tuple[int, int]:
    """(training, validation) windows of seq_len inputs plus the next-character target."""
    train_chars, val_chars = text_split(num_chars)
    train = max(0, (train_chars - 1) // seq_len)
    val = max(0, min((val_chars - 1) // seq_len, MAX_VAL_TOKENS // seq_len))
    return train, val


def check_data(spec: ResolvedSpec, shape: DatasetShape | None) -> list[tuple[str, str]]:
    """(field, message) for each reason building the task would fail. `shape` is the
    uploaded dataset's summary; None for builtin datasets and generated tasks (their
    shapes are known here) and for uploads recorded before shapes were, which are not
    checked."""
    task = spec.task
    workers = spec.distributed.workers
    if task.kind in ("adding", "copy_memory"):
        return _check_samples(task.num_samples, workers, f"task.num_samples = {task.num_samples}")
    if task.kind == "sequence_classification":
        if task.dataset == "builtin:digits":
            shape = CsvShape(
                rows=DIGITS_ROWS,
                columns=DIGITS_VALUES + 1,
                integer_labels=True,
                classes=DIGITS_CLASSES,
            )
        if not isinstance(shape, CsvShape):
            return []
        assert task.dataset is not None and task.seq_len is not None  # resolved
        return _check_csv(shape, task.dataset, task.seq_len, workers)
    if task.kind == "char_lm":
        if task.dataset == "builtin:shakespeare":
            shape = TextShape(
                chars=SHAKESPEARE_CHARS,
                distinct_chars=SHAKESPEARE_DISTINCT_CHARS,
                two_distinct_within=2,
            )
        if not isinstance(shape, TextShape):
            return []
        assert task.max_chars is not None and task.seq_len is not None  # resolved
        return _check_text(shape, min(shape.chars, task.max_chars), task.seq_len, workers)
    return []


def _check_samples(num_samples: int, workers: int, described: str) -> list[tuple[str, str]]:
    train = training_samples(num_samples)
    if train >= workers:
        return []
    return [
        (
            "distributed.workers",
            f"{workers} workers need at least one training sample each; with {described}, "
            f"{train} remain after the validation hold-out; {min_samples_for(workers)} "
            "samples (hold-out included) are needed",
        )
    ]


def _check_csv(shape: CsvShape, dataset: str, seq_len: int, workers: int) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    values = shape.columns - 1
    if not shape.integer_labels:
        problems.append(("task.dataset", "every label (first column) must be an integer >= 0"))
    elif shape.classes < 2:
        problems.append(("task.dataset", "sequence_classification needs at least two classes"))
    elif shape.classes > MAX_CLASSES:
        # The model gets one output per class up to the largest label.
        problems.append(
            (
                "task.dataset",
                f"labels must be below {MAX_CLASSES} (the largest is {shape.classes - 1})",
            )
        )
    if values < 1:
        problems.append(("task.dataset", "every row needs values after its label"))
    elif values % seq_len:
        # The task's default (8) is digits'; an upload's width rarely fits it: say what does.
        longest = min(values, MAX_SEQ_LEN)
        fits = [str(steps) for steps in range(2, longest + 1) if values % steps == 0]
        shown = ", ".join(fits[:12]) + (", …" if len(fits) > 12 else "")  # 3780 has 47
        hint = f"; seq_len may be {shown}" if fits else ""
        problems.append(
            (
                "task.seq_len",
                f"{dataset} has {values} values per sample, not a multiple of seq_len "
                f"{seq_len}{hint}",
            )
        )
    return problems + _check_samples(shape.rows, workers, f"{dataset}'s {shape.rows} rows")


def _check_text(
    shape: TextShape, used_chars: int, seq_len: int, workers: int
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if shape.two_distinct_within is None or shape.two_distinct_within > used_chars:
        problems.append(("task.dataset", "the text used needs at least two distinct characters"))
    train, val = text_windows(used_chars, seq_len)
    if val < 1:
        problems.append(
            (
                "task.seq_len",
                f"{seq_len} is longer than the validation text (10 % of the {used_chars} "
                "characters used); shorten seq_len or use more text (task.max_chars)",
            )
        )
    if train < workers:
        problems.append(
            (
                "distributed.workers",
                f"{workers} workers need at least one training window each, but "
                f"{used_chars} characters give {train} windows of seq_len {seq_len}; "
                "shorten seq_len, use more text (task.max_chars) or fewer workers",
            )
        )
    return problems


def generated_steps(task: ResolvedTask) -> int:
    """Steps of one generated sequence: adding's seq_len; copy_memory's symbols, delay
    and recall (workers/training/tasks/synthetic.py builds exactly these)."""
    seq_len = task.seq_len
    assert seq_len is not None, "resolve fills seq_len for the generated tasks"
    if task.kind == "copy_memory":
        return seq_len + 2 * task.copy_length
    return seq_len
