"""Selection policies: which kept images go to (human or automatic) review, and the automatic triage.

``all`` every candidate; ``random:<fraction>`` a seeded random fraction; ``uncertain`` the images the triage calls
uncertain (a score inside its band), plus a seeded ``audit_rate`` share of the others; ``confident`` detector
confidence at or above the top of the confidence band; ``first:<n>`` the first ``n`` images per identity (by
image_id, so the choice is stable).

**Triage** (:func:`triage`) reads up to three scores per image, each with a band ``[low, high)``:

=================== ======================== =========================== ===========================
score               below the band           inside the band             at or above the band
=================== ======================== =========================== ===========================
``conf`` (detector) pass (the filter kept it) uncertain                  pass
``identity_score``  reject: identity_inconsistent  uncertain             pass
``view_score``      reject: view_inconsistent      uncertain             pass
=================== ======================== =========================== ===========================

A missing score (the consistency checks did not run, or could not score the image) passes. Any reject wins (the
identity check is named first), then any uncertain; an image that passes every score is ``accept``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_manifests import Reason
from data_manifests.enums import Triage
from data_manifests.seeds import rng

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


Band = tuple[float, float]


def check_band(band: Band | list[float], name: str) -> Band:
    """``[low, high)`` with ``low < high``, as a tuple; the error names the config key."""
    try:
        low, high = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers [low, high], got {band!r}") from None
    if not low < high:
        raise ValueError(f"{name} needs low < high, got [{low}, {high}]")
    return low, high


@dataclass(frozen=True)
class Bands:
    """The bands of the triage: detector confidence, identity score and view score (None = not used)."""

    conf: Band = (0.25, 0.6)
    identity: Band | None = None
    view: Band | None = None


# Scores in the order their rejects are named, with the reason code of a score below its band.
_REJECTING = (
    ("identity_score", "identity", Reason.IDENTITY_INCONSISTENT),
    ("view_score", "view", Reason.VIEW_INCONSISTENT),
)


def triage(candidates: pd.DataFrame, bands: Bands) -> pd.DataFrame:
    """``candidates`` with two more columns: ``triage`` (accept | reject | uncertain) and ``triage_reason`` (the
    reason code of a reject, else None). Columns used: conf, and identity_score / view_score when present."""
    c = candidates.copy()
    n = len(c)
    reject = np.zeros(n, dtype=bool)
    reason = np.full(n, None, dtype=object)
    uncertain = np.zeros(n, dtype=bool)
    conf = c["conf"].to_numpy(dtype=float) if "conf" in c else np.full(n, np.nan)
    uncertain |= (conf >= bands.conf[0]) & (conf < bands.conf[1])
    for column, name, code in _REJECTING:
        band = getattr(bands, name)
        if band is None or column not in c:
            continue
        score = c[column].to_numpy(dtype=float)  # NaN (not scored) compares False everywhere: it passes
        low = score < band[0]
        reason[low & ~reject] = code.value
        reject |= low
        uncertain |= (score >= band[0]) & (score < band[1])
    c["triage"] = np.where(
        reject, Triage.REJECT.value, np.where(uncertain, Triage.UNCERTAIN.value, Triage.ACCEPT.value)
    )
    c["triage_reason"] = reason
    return c


def audit_draw(n: int, rate: float, seed: int) -> np.ndarray:
    """A seeded boolean draw per row (``True`` with probability ``rate``); same seed and order = same draw."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"review audit_rate must be in [0, 1], got {rate}")
    return rng(seed, "review.audit").random(n) < rate


def select(
    candidates: pd.DataFrame,
    policy: Policy,
    *,
    seed: int = 0,
    uncertain_low: float = 0.25,
    uncertain_high: float = 0.6,
    bands: Bands | None = None,
    audit_rate: float = 0.0,
) -> pd.DataFrame:
    """The rows of ``candidates`` (columns image_id, identity_id, conf[, identity_score, view_score]) that the policy
    selects, sorted stably, with the triage columns (see :func:`triage`) and ``audit`` (True for rows outside the
    band that the ``uncertain`` policy's audit draw added)."""
    bands = bands or Bands(conf=(uncertain_low, uncertain_high))
    c = triage(candidates.sort_values(["identity_id", "image_id"], kind="stable").reset_index(drop=True), bands)
    c["audit"] = False
    if policy.name == "all":
        return c
    if policy.name == "random":
        # One seeded draw per candidate in the stable order above: same seed + same candidates = same selection.
        draw = rng(seed, "review.sample")
        return c[draw.random(len(c)) < policy.fraction].reset_index(drop=True)
    if policy.name == "uncertain":
        band = (c["triage"] == Triage.UNCERTAIN.value).to_numpy()
        c["audit"] = ~band & audit_draw(len(c), audit_rate, seed)
        return c[band | c["audit"].to_numpy()].reset_index(drop=True)
    if policy.name == "confident":
        return c[c["conf"] >= bands.conf[1]].reset_index(drop=True)
    if policy.name == "first":
        return c.groupby("identity_id", sort=False).head(policy.n).reset_index(drop=True)
    raise ValueError(f"unknown policy {policy}")
