"""What the explorer keeps between updates so that moving the coreset share (and revisiting a tau) costs
little, with the very scores a fresh `PatchCore.fit` / `predict` gives.

- SoftPatch's outlier scores depend on the training patches, the denoiser, k and the seed, not on tau:
  they are computed once (`ExploreCache.outlier_scores`) and re-thresholded by `denoise` for each tau.
- The greedy coreset's and the random subset's picks for n rows are the first n of their picks for any
  larger n (same rows, seed and projection: the greedy loop's first n steps do not depend on n; the random
  subset is a prefix of one permutation). So the picks are kept per bank order (`BankOrder`) and sliced.
- The search of the test patches in a prefix bank of n picks: the nearest row among the first n picks is
  the running minimum over the picks in order. `BankOrder` keeps that running minimum, extended segment
  by segment (the segments end at the offered coreset shares), with a snapshot at every segment end;
  a smaller share reads its snapshot, a larger one searches only the picks it adds. A later segment
  replaces the running nearest only when strictly closer, so ties go to the earlier pick as in one search
  over the prefix. Where the bfloat16 screen pays (AMX, `PREFIX_SCREEN_MIN_ROWS` new picks or more: a new bank),
  all the new segments come from one screened product (`ScreenedExact.prefix_nearest`, ~3x faster than a
  faiss search per segment here); else each segment is one search by the same engine as a fit's.

`PrefixPatchCore` is a `PatchCore` fitted from these caches; its predictions go through PatchCore's own
`score_embedding`, so image scores (Eq. 7 included) and maps are computed by the same code.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adlib.bank import search
from adlib.bank.denoise import denoise, outlier_scores
from adlib.bank.sampling import coreset_size
from adlib.bank.search import NearestNeighbours
from adlib.data.datasets import Sample
from adlib.detectors.patchcore import PatchCore, PatchCoreSettings
from adlib.features.extractor import FeatureExtractor, FeatureSettings, PatchEmbedding

#: New picks from which one screened product for all segments beats a faiss search per segment (pill, 94k test
#: patches, one thread: 0.9x at 627 rows in one segment, 1.5x at 1,254, 2.5x at 1,881 in three; benchmarks/NOTES.md).
PREFIX_SCREEN_MIN_ROWS = 1024
PREFIX_SAMPLERS = ("approximate_greedy", "random")  # the samplers whose picks for n are a prefix of those for more


def takes_prefix_path(settings: object) -> bool:
    """Whether `settings` fit a PatchCore whose bank is a prefix of one pick order, searched exactly with one
    neighbour (the cached path); K-means, learned proxies, cosine top-k and IVF-PQ are fitted afresh."""
    return (
        isinstance(settings, PatchCoreSettings)
        and settings.sampler in PREFIX_SAMPLERS
        and settings.search == "exact"
        and settings.distance != "cosine"
        and settings.top_k == 1
    )


def share_sizes(total: int, shares: Sequence[float]) -> list[int]:
    """The coreset sizes (`coreset_size`) of `shares` of `total` rows that are non-empty, sorted, distinct."""
    return sorted({int(total * share) for share in shares if int(total * share) >= 1})


@dataclass
class BankOrder:
    """One pick order of candidate rows and the test search over its prefixes.

    The candidates are `patches` [N, D] (all training patches), or the rows `kept` of them (SoftPatch's
    denoising; held as indices, so that each tau costs no copy of the patches between updates). `picks` are
    the first len(picks) rows of the order (extended by recomputing, which repeats the prefix);
    `snapshots[m]` is (squared distances [Q, 1], indices into the first m picks [Q, 1]) of the nearest of
    the first m picks to each test query."""

    patches: torch.Tensor
    kept: torch.Tensor | None
    sampler: object
    seed: int
    picks: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    snapshots: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def rows(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """The candidate rows (those at `index` among them, if given)."""
        if self.kept is None:
            return self.patches if index is None else self.patches[index.to(self.patches.device)]
        return self.patches[(self.kept if index is None else self.kept[index]).to(self.patches.device)]

    def first(self, n: int) -> torch.Tensor:
        """The first `n` picks (int64, CPU). When fewer are known they are computed afresh (the loop does not
        resume), for n the first time and then for at least twice as many as before, so that a slider moving
        up one step at a time recomputes them a few times, not at every step."""
        if n > len(self.picks):
            rows = self.rows()
            wanted = n if len(self.picks) == 0 else min(max(n, 2 * len(self.picks)), len(rows))
            self.picks = self.sampler.select(rows, wanted, self.seed).cpu()
        return self.picks[:n]

    def nearest(
        self, queries: torch.Tensor, n: int, stops: Sequence[int], backend: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(squared distances [Q, 1], indices into the first n picks [Q, 1]) of the nearest of the first `n`
        picks to each query; the running minimum is extended in segments ending at `stops` (and n)."""
        if n in self.snapshots:
            return self.snapshots[n]
        done = max((m for m in self.snapshots if m < n), default=0)
        if done == 0:
            squared = torch.full((len(queries), 1), torch.inf, device=queries.device)
            nearest = torch.zeros((len(queries), 1), dtype=torch.int64, device=queries.device)
        else:
            squared, nearest = (tensor.clone() for tensor in self.snapshots[done])
        picks = self.first(n)
        ends = [m for m in stops if done < m < n] + [n]
        for end, (found, index) in zip(ends, self._segments(queries, picks, done, ends, squared, backend)):
            closer = found < squared.to(found.device)
            squared = torch.where(closer, found, squared.to(found.device))
            nearest = torch.where(closer, index, nearest.to(index.device))
            self.snapshots[end] = (squared, nearest)
        return squared, nearest

    def _segments(
        self,
        queries: torch.Tensor,
        picks: torch.Tensor,
        done: int,
        ends: list[int],
        reached: torch.Tensor,
        backend: str,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """For each of `ends`, (squared distances [Q, 1], indices into `picks` [Q, 1]) of a nearest pick whose
        running minimum with `reached` is that of the picks up to it. Where the bfloat16 screen pays (a CPU with
        AMX, `PREFIX_SCREEN_MIN_ROWS` new picks or more), all ends come from one screened product over the picks
        from `done` on, rescoring only picks that could be closer than `reached` (where none is: +inf); else
        each segment, from the end before, is one search of its own."""
        screened = backend == "auto" and not queries.is_cuda and ends[-1] - done >= PREFIX_SCREEN_MIN_ROWS
        if screened and search.bfloat16_products_are_fast():
            screen = search.ScreenedExact(self.rows(picks[done : ends[-1]]))
            found, index = screen.prefix_nearest(queries, [end - done for end in ends], reached[:, 0])
            yield from zip(found.T[:, :, None], index.T[:, :, None] + done)
            return
        for start, end in zip([done] + ends, ends):
            found, index = NearestNeighbours(self.rows(picks[start:end]), backend=backend).search(queries, 1)
            yield found, index + start


def _image_key(sample: Sample) -> tuple:
    """What an image's features depend on: its file and, for a transformed training copy, the transform."""
    return sample.image, sample.transform


class RememberingExtractor(FeatureExtractor):
    """A FeatureExtractor that keeps every image's patch features in memory until `forget`: the explorer
    refits on the same images again and again, and the locally aware pooling of cached maps is a
    large part of an update. (Each image's features depend on that image alone, so this changes no number.)"""

    STACKED = 2  # image lists kept stacked: a training and a test set
    RECENT = 0  # FeatureExtractor's memory of its last results: this class remembers every image itself

    def __init__(
        self, settings: FeatureSettings, device: torch.device | str | None = None, cache_dir: Path | None = None
    ):
        super().__init__(settings, device=device, cache_dir=cache_dir)
        self._features: dict[tuple, torch.Tensor] = {}  # by `_image_key`
        self._grid: tuple[int, int] | None = None
        self._stacked: dict[tuple, PatchEmbedding] = {}  # the last few image lists, stacked

    def stacked(self, samples: Sequence[Sample], progress: bool = True) -> PatchEmbedding:
        """The patch features of `samples`, shared: the same list as one of the last `STACKED` gives the same
        object (the explorer's cached path reads it and changes nothing in it)."""
        names = tuple(_image_key(sample) for sample in samples)
        if names in self._stacked:
            return self._stacked[names]
        missing = list({_image_key(s): s for s in samples if _image_key(s) not in self._features}.values())
        if missing:
            embedding = super().embed(missing, progress)
            self._features.update(zip((_image_key(sample) for sample in missing), embedding.features))
            self._grid = embedding.grid
        embedding = PatchEmbedding(torch.stack([self._features[name] for name in names]), self._grid)
        while len(self._stacked) >= self.STACKED:
            self._stacked.pop(next(iter(self._stacked)))
        self._stacked[names] = embedding
        return embedding

    def embed(self, samples: Sequence[Sample], progress: bool = True) -> PatchEmbedding:
        """A copy of `stacked`: what a detector changes in place does not reach the remembered features."""
        shared = self.stacked(samples, progress)
        return PatchEmbedding(shared.features.clone(), shared.grid)

    def forget(self) -> None:
        self._features.clear()
        self._stacked.clear()


class ExploreCache:
    """Outlier scores and bank orders of the last `training_sets` training sets the explorer has used, by the
    caller's key for a training set and its test set (e.g. category, noise, seed and feature settings: a bank
    order's searches are of that key's test patches); `clear` forgets them all."""

    def __init__(self, training_sets: int = 3) -> None:
        if training_sets < 1:
            raise ValueError(f"training_sets={training_sets}: keep the caches of at least one training set")
        self.training_sets = training_sets
        self._keys: list[Hashable] = []  # least recently used first
        self._scores: dict[Hashable, torch.Tensor] = {}
        self._orders: dict[Hashable, BankOrder] = {}

    def clear(self) -> None:
        self._keys.clear()
        self._scores.clear()
        self._orders.clear()

    def _use(self, key: Hashable) -> None:
        """Marks `key` as the latest training set, forgetting the oldest beyond `training_sets` (its orders hold
        its patches and searches)."""
        if key in self._keys:
            self._keys.remove(key)
        self._keys.append(key)
        for old in self._keys[: -self.training_sets]:
            for cached in (self._scores, self._orders):
                for entry in [entry for entry in cached if entry[0] == old]:
                    del cached[entry]
        del self._keys[: -self.training_sets]

    def outlier_scores(self, key: Hashable, features: torch.Tensor, settings: PatchCoreSettings) -> torch.Tensor:
        """SoftPatch's outlier scores [N, P] of training features [N, P, D], as `PatchCore.fit` computes them."""
        self._use(key)
        score_key = (key, settings.denoise, settings.lof_k if settings.denoise == "lof" else None, settings.seed)
        if score_key not in self._scores:
            self._scores[score_key] = outlier_scores(
                features, settings.denoise, lof_k=settings.lof_k, seed=settings.seed
            )
        return self._scores[score_key]

    def order(
        self, key: Hashable, patches: torch.Tensor, kept: torch.Tensor | None, settings: PatchCoreSettings
    ) -> BankOrder:
        """The pick order of `settings`' sampler over `patches` [N, D] (the rows `kept` of them, if given, by
        `settings`' denoising and tau); `key` names the training set."""
        self._use(key)
        drop = (settings.denoise, settings.lof_k, settings.tau) if settings.denoise is not None else None
        order_key = (key, drop, settings.sampler, settings.projection_dim, settings.seed)
        if order_key not in self._orders:
            self._orders[order_key] = BankOrder(patches, kept, settings.bank_sampler, settings.seed)
        return self._orders[order_key]


class PrefixPatchCore(PatchCore):
    """A PatchCore fitted from an `ExploreCache` (`fit_cached`): the same bank, soft weights and bank source as
    `PatchCore.fit`, and, on the test embedding given there, the cached prefix search."""

    _prefix: tuple | None = None  # (order, test embedding, n, stops) once fitted with a pick order

    def fit_cached(
        self,
        cache: ExploreCache,
        key: Hashable,
        train: PatchEmbedding,
        test: PatchEmbedding,
        shares: Sequence[float] = (),
    ) -> PrefixPatchCore:
        """Fits on the training embedding as `PatchCore.fit` does, and readies the search of `test`; the
        running search stops at each of `shares` (the coreset shares the caller offers) on its way."""
        s = self.settings
        if not takes_prefix_path(s):
            raise ValueError(f"sampler={s.sampler!r}, search={s.search!r}, distance={s.distance!r}: no cached path")
        features = train.features
        patches = features.reshape(-1, features.shape[-1])
        source = torch.arange(len(patches), device=patches.device)
        weights, kept = None, None
        if s.denoise is not None:
            dropped = denoise(cache.outlier_scores(key, features, s), s.denoise, s.tau)
            keep = dropped.keep.reshape(-1)
            source = source[keep]
            kept = source.cpu()
            weights = dropped.weights.reshape(-1)[keep] if s.soft_weight else None
        n = coreset_size(len(source), s.coreset_ratio)
        if n == len(source):  # Selector.sample keeps the whole bank in its own order: no pick order
            chosen, self._prefix = torch.arange(n), None
        else:
            order = cache.order(key, patches, kept, s)
            chosen = order.first(n)
            self._prefix = (order, test, n, share_sizes(len(source), shares))
        chosen_on = chosen.to(source.device)
        bank = patches[source[chosen_on]].contiguous()
        self._set_bank(bank, train.grid, None if weights is None else weights[chosen_on])
        self.bank_source = source[chosen_on].cpu()
        return self

    def _search(self, embedding: PatchEmbedding, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        prefix = getattr(self, "_prefix", None)
        if prefix is None or k != 1 or embedding is not prefix[1]:
            return super()._search(embedding, k)
        order, test, n, stops = prefix
        queries = test.features.reshape(-1, test.features.shape[-1])
        squared, nearest = order.nearest(queries, n, stops, self.backend)
        return test.features, squared, nearest
