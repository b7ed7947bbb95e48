"""How a pipeline root's products compare with the toy world's truth (``segments_gt``).

The toy world's synthesis backend writes the exact masks of every image it renders into ``segments_gt``; images of
the diffusion backend have none (in the toy profile they are the noise of an untrained model). From that truth:

* **Filter.** An image *should be kept* iff it has an ok ground-truth row whose true box passes the filter's own
  geometric rules: :func:`pipeline.filter.rules.judge` on that one box at confidence 1 (one vehicle, large enough,
  clear of the border, plausible aspect). Images without ground truth should be rejected. Reported: precision and
  recall of "keep", the reasons of the wrongly rejected, and how many truth-less images were rejected.
* **Views.** The *true dominant view* of an image is the class with most vehicle pixels after mapping the truth's
  classes onto the segmenter's (``COLLAPSE_TO_PVEN``: left/right -> side); it is compared with the
  ``dominant_view`` of the image's ``segments`` row. Reported: accuracy, per-class recall and the confusion matrix,
  next to the majority-class baseline (always answering the commonest true view) on the same images.

The functions over row lists (:func:`filter_truth`, :func:`view_truth`) are what tests call; :func:`compare_root`
reads the tables of a root. ``diffveri truth --root R`` prints the report (``pipeline/commands/truth.py``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

import data_manifests as dm
from data_manifests import COLLAPSE_TO_PVEN, VIEW_CLASSES_PVEN

from .filter.rules import FilterRules, Verdict, judge

Row = Mapping[str, Any]

# The acceptance figures (#20), checked by :func:`targets`.
MIN_KEEP_RECALL = 0.95
MIN_VIEW_ACCURACY = 0.85
MIN_CLASS_RECALL = 0.5
MIN_CLASS_SUPPORT = 5  # classes with fewer true images are reported but not held to MIN_CLASS_RECALL
REQUIRED_VIEWS = ("front", "rear", "side", "top")


@dataclass(frozen=True)
class FilterTruth:
    """The filter's keep/reject decisions against the truth (counts over images with a ``detections`` row)."""

    images: int
    should_keep: int  # truth: one whole vehicle that passes the rules
    kept: int
    kept_correctly: int  # kept and should be kept (true positives)
    missed: dict[str, int]  # should be kept but were not: reason code (or status) -> count
    without_truth: int  # images with no ground truth (toy profile: the diffusion backend's noise)
    without_truth_rejected: int
    truth_rejects: dict[str, int] = field(default_factory=dict)  # true boxes the rules reject: reason -> count

    @property
    def precision(self) -> float | None:
        """Share of kept images that should be kept (``None`` when nothing was kept)."""
        return self.kept_correctly / self.kept if self.kept else None

    @property
    def recall(self) -> float | None:
        """Share of the images that should be kept that were kept (``None`` when none should be)."""
        return self.kept_correctly / self.should_keep if self.should_keep else None


@dataclass(frozen=True)
class ViewTruth:
    """Dominant views predicted by the segmenter against the true ones (one count per image)."""

    classes: tuple[str, ...]  # the evaluation classes (the segmenter's, background excluded)
    confusion: dict[str, dict[str, int]]  # true view -> predicted view -> images
    without_truth: int = 0  # segmented images with no usable ground truth (not scored)

    @property
    def images(self) -> int:
        return sum(sum(row.values()) for row in self.confusion.values())

    @property
    def correct(self) -> int:
        return sum(self.confusion.get(c, {}).get(c, 0) for c in self.classes)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.images if self.images else None

    def support(self, cls: str) -> int:
        """Images whose true dominant view is ``cls``."""
        return sum(self.confusion.get(cls, {}).values())

    def recall(self, cls: str) -> float | None:
        n = self.support(cls)
        return self.confusion.get(cls, {}).get(cls, 0) / n if n else None

    @property
    def majority_class(self) -> str | None:
        """The commonest true view (ties: the first in ``classes``)."""
        supports = [(self.support(c), -i, c) for i, c in enumerate(self.classes)]
        best = max(supports, default=(0, 0, None))
        return best[2] if best[0] else None

    @property
    def majority_accuracy(self) -> float | None:
        """Accuracy of always answering :attr:`majority_class` (its recall is 1, every other class's 0)."""
        cls = self.majority_class
        return self.support(cls) / self.images if cls else None


@dataclass(frozen=True)
class TruthReport:
    root: str
    filter: FilterTruth
    views: ViewTruth
    dataset_views: dict[str, int] = field(default_factory=dict)  # dominant views of the assembled table
    pixels: dict[str, Any] | None = None  # optional pixel-level scores (pipeline.segment.evaluate.evaluate_tables)


# ------------------------------------------------------------------------------------------------ ground truth
def truth_verdict(truth: Row | None, image_hw: tuple[int, int], rules: FilterRules) -> Verdict | None:
    """The filter rules applied to the true box alone at confidence 1 (their class list ignored: the truth knows it
    is a vehicle); ``None`` when there is no ok ground-truth row with a box."""
    if truth is None or truth.get("status") != dm.Status.OK or truth.get("bbox") is None:
        return None
    box = np.asarray([[*truth["bbox"], 1.0, 0.0]], dtype=np.float64)
    return judge(box, image_hw, dataclasses.replace(rules, vehicle_classes=None))


def should_keep(truth: Row | None, image_hw: tuple[int, int], rules: FilterRules) -> bool:
    """Whether the truth says the filter should keep the image: an ok ground-truth row whose true box passes
    ``rules`` (:func:`truth_verdict`)."""
    verdict = truth_verdict(truth, image_hw, rules)
    return verdict is not None and verdict.kept


def true_dominant_view(truth: Row, classes: tuple[str, ...] = VIEW_CLASSES_PVEN) -> str | None:
    """The class of ``classes`` (background first) with most vehicle pixels, after mapping the truth's classes onto
    them (``COLLAPSE_TO_PVEN``); ``None`` for a row without vehicle pixels or with a class ``classes`` lacks."""
    if truth.get("status") != dm.Status.OK or not truth.get("view_fractions"):
        return None
    totals = dict.fromkeys(classes[1:], 0.0)
    for name, share in zip(truth["view_classes"], truth["view_fractions"], strict=True):
        if name == "background" or not share:
            continue
        mapped = name if name in totals else COLLAPSE_TO_PVEN.get(name)
        if mapped not in totals:
            return None
        totals[mapped] += float(share)
    best = max(totals, key=lambda c: totals[c])  # first of equal shares, in class order
    return best if totals[best] > 0 else None


# ------------------------------------------------------------------------------------------------ comparisons
def filter_truth(
    generations: Iterable[Row], detections: Iterable[Row], truths: Iterable[Row], rules: FilterRules
) -> FilterTruth:
    """Score ``detections`` rows against the truth. ``generations`` give image sizes (``height``, ``width``);
    ``truths`` are ``segments_gt`` rows. Images without a detections row are not counted."""
    gens = {g["image_id"]: g for g in generations}
    truth_of = {t["image_id"]: t for t in truths}
    images = should = kept = correct = without = without_rejected = 0
    missed: Counter[str] = Counter()
    truth_rejects: Counter[str] = Counter()
    for det in detections:
        gen = gens.get(det["image_id"])
        if gen is None:
            raise ValueError(f"detections image_id={det['image_id']} has no generations row; validate the root")
        truth = truth_of.get(det["image_id"])
        is_kept = det["status"] == dm.Status.OK.value
        verdict = truth_verdict(truth, (int(gen["height"]), int(gen["width"])), rules)
        keep = verdict is not None and verdict.kept
        images += 1
        kept += is_kept
        should += keep
        correct += is_kept and keep
        if keep and not is_kept:
            missed[det.get("reason") or det["status"]] += 1
        if verdict is not None and verdict.reason is not None:
            truth_rejects[verdict.reason.value] += 1
        if truth is None:
            without += 1
            without_rejected += not is_kept
    return FilterTruth(
        images, should, kept, correct, dict(missed.most_common()), without, without_rejected, dict(truth_rejects)
    )


def view_truth(
    segments: Iterable[Row], truths: Iterable[Row], classes: tuple[str, ...] = VIEW_CLASSES_PVEN
) -> ViewTruth:
    """Score the ``dominant_view`` of ok ``segments`` rows against the truth's dominant view in ``classes``."""
    truth_of = {t["image_id"]: t for t in truths}
    views = tuple(classes[1:])
    confusion: dict[str, dict[str, int]] = {c: {} for c in views}
    without = 0
    for seg in segments:
        if seg["status"] != dm.Status.OK.value:
            continue
        truth = truth_of.get(seg["image_id"])
        true_view = true_dominant_view(truth, classes) if truth is not None else None
        if true_view is None:
            without += 1
            continue
        row = confusion[true_view]
        pred = seg.get("dominant_view") or "none"
        row[pred] = row.get(pred, 0) + 1
    return ViewTruth(views, confusion, without)


def dataset_views(root: Path) -> dict[str, int]:
    """Dominant views of the assembled ``diffveri`` table's segmented rows (``{}`` when it does not exist)."""
    if not dm.table_exists(root, "diffveri"):
        return {}
    rows = dm.read_rows(root, "diffveri", columns=["dominant_view"], filter=pc.field("status") == dm.Status.OK)
    # Real photos (source: real) carry no masks, hence no dominant view: they are not counted here.
    return dict(sorted(Counter(r["dominant_view"] for r in rows if r["dominant_view"]).items()))


def compare_root(root: Path, rules: FilterRules, classes: tuple[str, ...] = VIEW_CLASSES_PVEN) -> TruthReport:
    """Read ``root``'s generations, detections, segments, segments_gt and diffveri tables and score them."""
    root = Path(root)
    for table in ("generations", "segments_gt", "detections", "segments"):
        if not dm.table_exists(root, table):
            raise FileNotFoundError(
                f"{root}/manifests/{table} does not exist: the truth comparison needs a root built with the toyworld "
                "synthesis backend (segments_gt) and the filter and segment stages run"
            )
    gens = dm.read_rows(root, "generations", columns=["image_id", "width", "height"])
    truths = dm.read_rows(root, "segments_gt", columns=["image_id", "status", "bbox", "view_classes", "view_fractions"])
    detections = dm.read_rows(root, "detections", columns=["image_id", "status", "reason"])
    segments = dm.read_rows(root, "segments", columns=["image_id", "status", "dominant_view"])
    return TruthReport(
        root=str(root),
        filter=filter_truth(gens, detections, truths, rules),
        views=view_truth(segments, truths, classes),
        dataset_views=dataset_views(root),
    )


# ------------------------------------------------------------------------------------------------ reporting
def targets(report: TruthReport) -> list[tuple[str, bool]]:
    """The acceptance checks of issue #20: ``(description, met)`` pairs."""
    f, v = report.filter, report.views
    keep_text = f"filter keeps >= {MIN_KEEP_RECALL:.0%} of the images the truth says to keep"
    view_text = f"dominant view agrees with the truth on >= {MIN_VIEW_ACCURACY:.0%} of images"
    checks = [
        (keep_text, (f.recall or 0) >= MIN_KEEP_RECALL),
        ("filter rejects every image without ground truth (noise)", f.without_truth_rejected == f.without_truth),
        (view_text, (v.accuracy or 0) >= MIN_VIEW_ACCURACY),
    ]
    for c in v.classes:
        if v.support(c) >= MIN_CLASS_SUPPORT:
            checks.append((f"recall of {c} >= {MIN_CLASS_RECALL:.0%}", (v.recall(c) or 0) >= MIN_CLASS_RECALL))
    missing = [c for c in REQUIRED_VIEWS if not report.dataset_views.get(c)]
    checks.append((f"the assembled table's views include {', '.join(REQUIRED_VIEWS)}", not missing))
    return checks


def _pct(value: float | None) -> str:
    return "  n/a" if value is None else f"{100 * value:5.1f}%"


def format_report(report: TruthReport) -> str:
    """The report as readable lines (what the demo prints at its end)."""
    f, v = report.filter, report.views
    missed = ", ".join(f"{k} {n}" for k, n in f.missed.items()) or "none"
    lines = [
        f"Filter vs truth ({f.images} images; {f.should_keep} should be kept, {f.without_truth} have no ground truth)",
        f"  kept {f.kept}: precision {_pct(f.precision)}  recall {_pct(f.recall)}  "
        f"({f.kept_correctly}/{f.should_keep}; wrongly rejected: {missed})",
        f"  images without ground truth rejected: {f.without_truth_rejected}/{f.without_truth}",
        "  true boxes the filter rules reject (not to be kept): "
        + (", ".join(f"{k} {n}" for k, n in f.truth_rejects.items()) or "none"),
        f"Dominant view vs truth ({v.images} segmented images with ground truth, classes {', '.join(v.classes)})",
        f"  {'':14}{'segmenter':>10}{'majority (' + str(v.majority_class) + ')':>22}",
        f"  {'accuracy':14}{_pct(v.accuracy):>10}{_pct(v.majority_accuracy):>22}",
    ]
    for c in v.classes:
        base = None if not v.support(c) else float(c == v.majority_class)
        lines.append(f"  {'recall ' + c:14}{_pct(v.recall(c)):>10}{_pct(base):>22}   ({v.support(c)} images)")
    predicted = list(v.classes) + sorted({p for row in v.confusion.values() for p in row} - set(v.classes))
    lines.append("  confusion, rows: true view, columns: predicted")
    lines.append(f"  {'':14}" + "".join(f"{p:>7}" for p in predicted))
    for c in v.classes:
        lines.append(f"  {c:14}" + "".join(f"{v.confusion[c].get(p, 0):>7}" for p in predicted))
    if report.pixels is not None:
        lines.append(
            f"  pixels: view mIoU {report.pixels.get('view_miou') or 0:.3f}, vehicle IoU "
            f"{report.pixels.get('vehicle_iou') or 0:.3f} (segments vs segments_gt)"
        )
    views = ", ".join(f"{k} {n}" for k, n in report.dataset_views.items()) or "no assembled table"
    lines.append(f"Assembled table: dominant views {views}")
    lines.append("Targets (issue #20):")
    lines += [f"  [{'met' if ok else 'NOT MET'}] {text}" for text, ok in targets(report)]
    return "\n".join(lines)


def filter_figures(f: FilterTruth) -> dict[str, Any]:
    """JSON-ready filter figures: the counts plus precision and recall of keep."""
    return {**dataclasses.asdict(f), "precision": f.precision, "recall": f.recall}


def view_figures(v: ViewTruth) -> dict[str, Any]:
    """JSON-ready view figures: accuracy, per-class recall and support, confusion, the majority baseline."""
    return {
        "classes": list(v.classes),
        "images": v.images,
        "accuracy": v.accuracy,
        "recall": {c: v.recall(c) for c in v.classes},
        "support": {c: v.support(c) for c in v.classes},
        "confusion": v.confusion,
        "majority_class": v.majority_class,
        "majority_accuracy": v.majority_accuracy,
        "without_truth": v.without_truth,
    }


def report_dict(report: TruthReport) -> dict[str, Any]:
    """JSON-ready figures (counts, rates, the confusion matrix and the targets)."""
    return {
        "root": report.root,
        "filter": filter_figures(report.filter),
        "views": view_figures(report.views),
        "dataset_views": report.dataset_views,
        "pixels": report.pixels,
        "targets": [{"target": t, "met": ok} for t, ok in targets(report)],
    }
