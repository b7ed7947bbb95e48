"""PK sampling for Re-ID: batches of P identities x K images each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from data_manifests import seeds


class PKSampler(Sampler[int]):
    """Yields indices so that every consecutive ``P * K`` form one batch of ``P`` identities with ``K`` images each.

    Use with ``DataLoader(batch_size=P * K, sampler=PKSampler(...))``. Identities with fewer than ``K`` images are
    sampled with replacement; identities are visited in a random order each epoch (``set_epoch``), and each
    identity contributes ``ceil(n_images / K)`` groups per epoch so large identities are not under-sampled.
    With several processes (accelerate/DDP batch sharding) every process receives whole batches.

    Args:
        identities: one label per dataset item (``labels[i]`` = identity of item ``i``).
        p: identities per batch (needs at least ``p`` identities).
        k: images per identity.
        seed: base seed; the order of epoch ``e`` depends on ``(seed, e)`` only.
    """

    def __init__(self, identities: Sequence[int] | np.ndarray, p: int, k: int, seed: int = 0) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"P and K must be >= 1, got P={p}, K={k}")
        labels = np.asarray(identities)
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        uniques, inverse = np.unique(labels, return_inverse=True)
        if len(uniques) < p:
            raise ValueError(f"PK sampling needs at least P={p} identities, the dataset has {len(uniques)}")
        self.groups = [np.flatnonzero(inverse == j) for j in range(len(uniques))]
        self._len = self._count()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _count(self) -> int:
        chunks = sum(max(1, -(-len(g) // self.k)) for g in self.groups)
        return (chunks // self.p) * self.p * self.k

    def _chunks(self, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
        out = []
        for ident, members in enumerate(self.groups):
            n_chunks = max(1, -(-len(members) // self.k))
            need = n_chunks * self.k
            pool = rng.permutation(members)
            if len(pool) < need:
                pool = np.concatenate([pool, rng.choice(members, need - len(pool), replace=True)])
            out.extend((ident, pool[c * self.k : (c + 1) * self.k]) for c in range(n_chunks))
        return out

    def __iter__(self) -> Iterator[int]:
        rng = seeds.rng(self.seed, "reid.pk_sampler", self.epoch)
        # Greedily fill batches with P chunks of P distinct identities, drawing chunks in random order.
        pending = self._chunks(rng)
        order = rng.permutation(len(pending))
        queue = [pending[i] for i in order]
        emitted = 0
        while emitted < self._len:
            batch_ids: set[int] = set()
            batch: list[np.ndarray] = []
            rest = []
            for ident, chunk in queue:
                if len(batch) < self.p and ident not in batch_ids:
                    batch_ids.add(ident)
                    batch.append(chunk)
                else:
                    rest.append((ident, chunk))
            if len(batch) < self.p:
                # The leftover chunks cover too few identities: top the batch up with fresh draws from others,
                # so that every epoch has exactly len(self) indices.
                others = [j for j in rng.permutation(len(self.groups)) if j not in batch_ids][: self.p - len(batch)]
                for j in others:
                    members = self.groups[j]
                    batch.append(rng.choice(members, self.k, replace=len(members) < self.k))
            queue = rest
            for chunk in batch:
                yield from (int(x) for x in chunk)
            emitted += self.p * self.k

    def __len__(self) -> int:
        return self._len
