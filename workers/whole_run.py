"""run_on_ray: a whole job on Ray outside the service (tests and benchmarks), its
events yielded as the gang sends them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from service.schemas.resolved import ResolvedSpec
from workers.aggregation.rule import AggregationRule
from workers.ray_job import JobEvent, RayJob
from workers.warm_pool import WarmPool


def run_on_ray(
    spec: ResolvedSpec,
    *,
    job_key: str,
    artifacts_url: str,
    dtype: str | None = None,
    datasets: Mapping[str, str] | None = None,
    resume: tuple[str, str] | None = None,
    ready_timeout_s: float = 120.0,
    rule: AggregationRule | None = None,
    pool: WarmPool | None = None,
) -> Iterator[JobEvent]:
    """Run a whole job on Ray, yielding its events (tests and benchmarks use this)."""
    job = RayJob(
        spec,
        job_key=job_key,
        artifacts_url=artifacts_url,
        datasets=datasets,
        dtype=dtype,
        rule=rule,
        pool=pool,
    )
    try:
        job.start(ready_timeout_s=ready_timeout_s, resume=resume)
        yield from job.events()
    finally:
        job.stop()
