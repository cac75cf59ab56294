"""Checks of a resolved spec that need the store, which the schema cannot see: an
upload:<id> dataset must exist, belong to the submitter, suit the task, and the spec
must fit the shape recorded at upload (an upload without one, from before migration
0002, is not checked); and the cost model's estimate must be within the server's
limits. Used by job and sweep submits alike, and by the sweep controller for each
trial's point (the sweep's submit checks only the corners of its space, and a shape
check such as seq_len dividing the rows need not hold between them)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.schemas.cost import CostEstimate, CostLimits, cost_problems, estimate
from service.schemas.data_limits import check_data
from service.schemas.datasets import TASK_DATASET_FORMAT, stored_shape
from service.schemas.resolve import Problem
from service.schemas.resolved import ResolvedSpec
from service.store.datasets import UPLOAD_PREFIX, owned_upload, upload_shape


def dataset_problems(*, session: Session, spec: ResolvedSpec, owner_id: int) -> list[Problem]:
    """(dotted field, message) for each way `spec`'s upload does not fit ([] for a
    builtin or generated dataset)."""
    ref = spec.task.dataset
    if ref is None or not ref.startswith(UPLOAD_PREFIX):
        return []
    dataset = owned_upload(session=session, ref=ref, owner_id=owner_id)
    if dataset is None:
        return [("task.dataset", f"no dataset {ref!r} uploaded by you")]
    wanted = TASK_DATASET_FORMAT.get(spec.task.kind)
    if wanted is not None and dataset.format != wanted:
        kind = spec.task.kind
        return [("task.dataset", f"{kind} needs a {wanted} dataset, {ref!r} is {dataset.format}")]
    return check_data(spec, stored_shape(dataset.format, dataset.shape))


def cost_check(
    *, session: Session, spec: ResolvedSpec, owner_id: int, limits: CostLimits
) -> list[Problem]:
    """(field, message) when the cost model's estimate is over the server's limits
    (memory per replica or for the coordinator, the vocabulary)."""
    shape = upload_shape(session=session, ref=spec.task.dataset, owner_id=owner_id)
    return cost_problems(spec, shape, limits)


def job_cost(*, session: Session, spec: ResolvedSpec, owner_id: int) -> CostEstimate:
    """The cost model's estimate of `spec` on its dataset (the owner's upload's stored
    shape): what the job's row keeps and each of its Ray bundles reserves."""
    return estimate(spec, upload_shape(session=session, ref=spec.task.dataset, owner_id=owner_id))


def spec_problems(
    *, session: Session, spec: ResolvedSpec, owner_id: int, limits: CostLimits
) -> list[Problem]:
    """Every store-side check, in the order a submit reports them: the dataset's, then
    (when the dataset fits) the cost's."""
    return dataset_problems(session=session, spec=spec, owner_id=owner_id) or cost_check(
        session=session, spec=spec, owner_id=owner_id, limits=limits
    )
