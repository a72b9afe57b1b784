"""One fit for two evaluations: a noisy training set is shared by the overlap and no-overlap settings.

Under SoftPatch's noise protocol the two settings share the training set (the same seeded draw moves
the same anomalous images into it, and the low-shot draw acts on that set), and the overlap test set is
the no-overlap one plus the moved images. Scores are per image, so predicting the overlap test set once
and dropping the moved images gives the no-overlap evaluation (`adlib.evaluation.evaluate.restricted`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from adlib.data.datasets import Category
from adlib.evaluation.keys import evaluation_request

if TYPE_CHECKING:
    from adlib.evaluation.jobs import Job


def sibling(job: Job) -> Job | None:
    """The same evaluation under the other overlap setting, when one fit and one prediction give both.

    Not with a test subset (it is drawn from each setting's own test set), not with transformed training
    copies (they exist only under overlap) and not without a store (nothing would keep the second result).
    """
    protocol = job.protocol
    if protocol.noise_ratio <= 0 or protocol.test_images is not None or protocol.noise_transform is not None:
        return None
    if job.runtime.store is None:
        return None
    other = dataclasses.replace(protocol, noise_overlap=not protocol.noise_overlap)
    return dataclasses.replace(job, protocol=other)


def sibling_to_store(job: Job, category: Category) -> tuple[Job, Category, str, dict[str, object]] | None:
    """The sibling of `job` (whose prepared category is `category`): its job, category, key and request,
    when it can be derived and the store lacks it."""
    other = sibling(job)
    if other is None:
        return None
    try:
        other_category, _ = other.prepare()
    except ValueError:  # the ratio fits one setting's limit but not the other's
        return None
    if other_category.train != category.train:
        return None
    store = job.runtime.store
    other_request = evaluation_request(other, other_category)
    other_key = store.key(other_request)
    if store.path(other_key).is_file():
        return None
    return other, other_category, other_key, other_request
