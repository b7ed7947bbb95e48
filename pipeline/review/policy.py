"""Selection policies: which kept images go to (human or automatic) review.

``all`` every candidate; ``random:<fraction>`` a seeded random fraction; ``uncertain`` detector confidence inside
the band ``[uncertain_low, uncertain_high)``; ``confident`` confidence at or above ``uncertain_high`` (useful for
automatic acceptance beside a human-reviewed uncertain band); ``first:<n>`` the first ``n`` images per identity
(by image_id, so the choice is stable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

POLICY_NAMES = ("all", "random:<fraction>", "uncertain", "confident", "first:<n>")


@dataclass(frozen=True)
class Policy:
    name: str  # all | random | uncertain | confident | first
    fraction: float = 1.0
    n: int = 0

    def __str__(self) -> str:
        if self.name == "random":
            return f"random:{self.fraction:g}"
        if self.name == "first":
            return f"first:{self.n}"
        return self.name


def parse_policy(text: str) -> Policy:
    """``"random:0.1"`` -> ``Policy("random", fraction=0.1)``; errors list the valid forms."""
    name, _, arg = str(text).strip().partition(":")
    try:
        if name in ("all", "uncertain", "confident") and not arg:
            return Policy(name)
        if name == "random":
            fraction = float(arg)
            if not 0.0 < fraction <= 1.0:
                raise ValueError
            return Policy("random", fraction=fraction)
        if name == "first":
            n = int(arg)
            if n < 1:
                raise ValueError
            return Policy("first", n=n)
    except ValueError:
        pass
    raise ValueError(
        f"unknown review policy {text!r}; valid forms: {', '.join(POLICY_NAMES)} (fraction in (0, 1], n >= 1)"
    )


def select(
    candidates: pd.DataFrame,
    policy: Policy,
    *,
    seed: int = 0,
    uncertain_low: float = 0.25,
    uncertain_high: float = 0.6,
) -> pd.DataFrame:
    """The rows of ``candidates`` (columns image_id, identity_id, conf) that the policy selects, sorted stably."""
    c = candidates.sort_values(["identity_id", "image_id"], kind="stable").reset_index(drop=True)
    if policy.name == "all":
        return c
    if policy.name == "random":
        # One seeded draw per candidate in the stable order above: same seed + same candidates = same selection.
        rng = np.random.default_rng(seed)
        return c[rng.random(len(c)) < policy.fraction].reset_index(drop=True)
    if policy.name == "uncertain":
        return c[(c["conf"] >= uncertain_low) & (c["conf"] < uncertain_high)].reset_index(drop=True)
    if policy.name == "confident":
        return c[c["conf"] >= uncertain_high].reset_index(drop=True)
    if policy.name == "first":
        return c.groupby("identity_id", sort=False).head(policy.n).reset_index(drop=True)
    raise ValueError(f"unknown policy {policy}")
