"""Running a whole job in this process (the command's --sync, the demo), batch by batch."""

from collections.abc import Callable

from generation.models import GenerationItem, GenerationJob
from generation.services.batches import generation_batch_run
from generation.services.jobs import generation_batches


def generation_job_run_sync(
    *, job: GenerationJob, worker: str, progress: Callable[[int], None] | None = None
) -> GenerationJob:
    """Run every pending batch here, with the same service a generate worker runs.

    A temporary error gives the batch's items back and propagates; running again resumes.
    """
    for generator_id, item_ids in generation_batches(job=job):
        generation_batch_run(
            job_id=job.pk, generator_id=generator_id, item_ids=item_ids, worker=worker
        )
        if progress is not None:
            finished = job.items.exclude(status__in=GenerationItem.OPEN).count()
            progress(finished)
    job.refresh_from_db()
    return job
