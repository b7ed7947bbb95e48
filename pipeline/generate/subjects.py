"""The ``subjects`` table from real photos: a folder per identity, or K images per identity of VeRi-776 / VehicleID.

Import is all-or-nothing: every candidate image is opened (PIL ``verify`` + ``load``, under the pixel limit), every
identity id checked and every row checked against the schema before anything is copied or written; any problem is
one error that lists every bad file and identity. Then the chosen photos are copied under
``ROOT/subjects/<identity>/`` (atomically, so the data root is self-contained) and the rows are written in one upsert.

Identity ids map one-to-one to folders: the folder is the id itself (no renaming), and an id that differs from
another one (in this import or already in the table) only by case or trailing dots is refused, since some file
systems would give both the same folder. Copies are named by their content (``000-<sha256 prefix>.jpg``), so an
import never overwrites a photo that a committed row names; photos the previous row of an identity named and the
new one does not are removed after the commit. Each row records the sha256 of its photos (``instance_sha256``), so
``diffveri manifests validate`` notices a swapped file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

import data_manifests as dm
from data_manifests import Source
from data_manifests.images import ENV as PIXEL_LIMIT_ENV
from data_manifests.paths import is_inside
from data_manifests.rows import subject_row
from data_manifests.seeds import derive_seed

from .common import check_image, rare_token

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# VeRi-776 train_label.xml codes (from the dataset's readme).
VERI_TYPES = {1: "sedan", 2: "suv", 3: "van", 4: "hatchback", 5: "mpv", 6: "pickup", 7: "bus", 8: "truck", 9: "estate"}
VERI_COLORS = {
    1: "yellow",
    2: "orange",
    3: "green",
    4: "gray",
    5: "red",
    6: "blue",
    7: "white",
    8: "golden",
    9: "brown",
    10: "black",
}


class SubjectImportError(ValueError):
    """The import was refused; nothing was written. The message lists every problem."""


@dataclass
class Candidate:
    """One identity to import: its photos (source files) and what is known about it."""

    identity_id: str
    class_name: str
    source: str
    files: list[Path]
    attributes: dict[str, Any] = field(default_factory=dict)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _pick(items: list[Any], k: int | None, rng: random.Random) -> list[Any]:
    """``k`` items chosen by ``rng`` (all when ``k`` is None), in their original order."""
    if k is None or len(items) <= k:
        return list(items)
    chosen = sorted(rng.sample(range(len(items)), k))
    return [items[i] for i in chosen]


# --------------------------------------------------------------------------------------------------------- sources
def from_folder(
    src: Path, class_name: str = "car", per_identity: int | None = None, limit: int | None = None, seed: int = 0
) -> list[Candidate]:
    """``src/<identity>/<photo>``: one sub-folder per identity; the folder name is the identity id.

    Identity ids may use letters, digits, ``.``, ``_`` and ``-``. A folder may hold ``subject.json`` with
    ``{"class_name": ..., "attributes": {...}}`` to override the class name and add attributes.
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"subjects folder {src} does not exist (expected one sub-folder per identity)")
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise SubjectImportError(f"{src} has no identity sub-folders (expected {src}/<identity>/<photo>.jpg)")
    rng = random.Random(derive_seed(seed, "generate.subjects"))
    out = []
    for folder in folders[:limit] if limit else folders:
        meta = _subject_meta(folder / "subject.json")
        files = _pick(_images_in(folder), per_identity, rng)
        attributes = {"source_folder": folder.name, **meta.get("attributes", {})}
        out.append(Candidate(folder.name, meta.get("class_name", class_name), Source.FOLDER, files, attributes))
    return out


def _subject_meta(path: Path) -> dict[str, Any]:
    """``subject.json`` of an identity folder (``{}`` when absent), checked: ``{"class_name": str, "attributes":
    {str: str | number | bool}}``, both optional. Anything else is a :class:`SubjectImportError` naming the file."""
    if not path.is_file():
        return {}
    example = '{"class_name": "suv", "attributes": {"color": "red"}}'
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubjectImportError(f"{path} is not valid JSON ({exc}); expected e.g. {example}") from None
    if not isinstance(meta, dict):
        raise SubjectImportError(f"{path} holds a JSON {type(meta).__name__}; expected an object, e.g. {example}")
    unknown = sorted(set(meta) - {"class_name", "attributes"})
    problems = [f"unknown key(s) {unknown}"] if unknown else []
    if "class_name" in meta and not (isinstance(meta["class_name"], str) and meta["class_name"].strip()):
        problems.append(f"class_name must be a non-empty string, got {meta['class_name']!r}")
    attributes = meta.get("attributes", {})
    if not isinstance(attributes, dict):
        problems.append(f"attributes must be an object, got {type(attributes).__name__}")
    else:
        bad = [k for k, v in attributes.items() if not isinstance(v, str | int | float | bool)]
        if bad:
            problems.append(f"attribute value(s) of {bad} must be strings, numbers or true/false")
    if problems:
        raise SubjectImportError(f"{path}: {'; '.join(problems)}; expected e.g. {example}")
    return meta


def _veri_labels(veri_root: Path) -> dict[str, dict[str, Any]]:
    """``{image name: {vehicleID, cameraID, colorID, typeID}}`` from ``train_label.xml`` (empty if absent)."""
    import xml.etree.ElementTree as ET

    path = veri_root / "train_label.xml"
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    # The file is GB2312-encoded and says so; expat cannot decode that, so decode here and drop the declaration.
    text = raw.decode("gb2312", errors="replace") if b"gb2312" in raw[:100].lower() else raw.decode("utf-8")
    text = re.sub(r"^<\?xml[^>]*\?>", "", text.lstrip())
    out = {}
    for item in ET.fromstring(text).iter("Item"):
        out[item.get("imageName")] = dict(item.attrib)
    return out


def from_veri776(veri_root: Path, per_identity: int = 4, limit: int | None = None, seed: int = 0) -> list[Candidate]:
    """K photos per identity of the VeRi-776 training split (``image_train/VVVV_cCCC_FFFFFFFF_N.jpg``).

    Photos are spread over cameras: cameras in a seeded order, one photo per camera in turn. Class and colour come
    from ``train_label.xml`` when present (type/colour codes of the dataset's readme), else the class is ``car``.
    """
    veri_root = Path(veri_root)
    image_dir = veri_root / "image_train"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir} does not exist; pass the VeRi-776 folder that holds image_train/")
    labels = _veri_labels(veri_root)
    by_id: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in _images_in(image_dir):
        parts = path.stem.split("_")
        if len(parts) < 2 or not parts[0].isdigit():
            raise SubjectImportError(f"{path}: not a VeRi-776 image name (expected VVVV_cCCC_FFFFFFFF_N.jpg)")
        by_id[parts[0]][parts[1]].append(path)
    rng = random.Random(derive_seed(seed, "generate.subjects"))
    out = []
    ids = sorted(by_id)
    for vid in ids[:limit] if limit else ids:
        cameras = sorted(by_id[vid])
        rng.shuffle(cameras)
        queues = [sorted(by_id[vid][c]) for c in cameras]
        for q in queues:
            rng.shuffle(q)
        files: list[Path] = []
        while len(files) < per_identity and any(queues):
            for q in queues:
                if q and len(files) < per_identity:
                    files.append(q.pop())
        label = labels.get(files[0].name, {}) if files else {}
        class_name = VERI_TYPES.get(int(label.get("typeID", 0) or 0), "car")
        attributes: dict[str, Any] = {"veri776_id": vid, "cameras": sorted({f.stem.split("_")[1] for f in files})}
        if label.get("colorID"):
            attributes["color_name"] = VERI_COLORS.get(int(label["colorID"]), label["colorID"])
        out.append(Candidate(f"veri{vid}", class_name, Source.VERI776, sorted(files), attributes))
    return out


def from_vehicleid(vid_root: Path, per_identity: int = 4, limit: int | None = None, seed: int = 0) -> list[Candidate]:
    """K photos per identity of the VehicleID training split (``train_test_split/train_list.txt``: ``image vid``).

    Model and colour ids come from ``attribute/model_attr.txt`` / ``color_attr.txt`` when present.
    """
    vid_root = Path(vid_root)
    split = vid_root / "train_test_split" / "train_list.txt"
    if not split.is_file():
        raise FileNotFoundError(f"{split} does not exist; pass the VehicleID_V1.0 folder")
    by_id: dict[str, list[str]] = defaultdict(list)
    for n, line in enumerate(split.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise SubjectImportError(f"{split}:{n}: expected '<image> <vehicle id>', got {line!r}")
        by_id[parts[1]].append(parts[0])
    attrs: dict[str, dict[str, str]] = defaultdict(dict)
    for name, key in (("model_attr.txt", "model_id"), ("color_attr.txt", "color_id")):
        path = vid_root / "attribute" / name
        if path.is_file():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2:
                    attrs[parts[0]][key] = parts[1]
    rng = random.Random(derive_seed(seed, "generate.subjects"))
    ids = sorted(by_id, key=lambda v: (len(v), v))
    out = []
    for vid in ids[:limit] if limit else ids:
        names = _pick(sorted(by_id[vid]), per_identity, rng)
        files = [vid_root / "image" / f"{name}.jpg" for name in names]
        out.append(Candidate(f"vid{vid}", "car", Source.VEHICLEID, files, {"vehicleid_id": vid, **attrs.get(vid, {})}))
    return out


# --------------------------------------------------------------------------------------------------------- import
_IMAGE_PROBLEMS = {
    "missing_file": "does not exist",
    "unreadable_image": "is not a readable image",
    "image_too_large": f"has more pixels than the limit ({PIXEL_LIMIT_ENV}); downscale it",
}


def folder_key(identity_id: str) -> str:
    """What a case-insensitive file system that drops trailing dots and spaces (Windows, SMB, macOS by default)
    makes of a folder name: two ids with the same key would share a folder there."""
    return identity_id.lower().rstrip(". ")


def _candidate_problems(c: Candidate) -> list[str]:
    problems = []
    if not dm.is_valid_id(c.identity_id):
        problems.append(
            f"{c.identity_id!r}: identity ids may only use letters, digits, '.', '_' and '-' (not '.'/'..')"
        )
    if not c.files:
        problems.append(f"{c.identity_id}: no instance images found")
    for f in c.files:
        reason = check_image(f)
        if reason:
            problems.append(f"{c.identity_id}: instance image {f} {_IMAGE_PROBLEMS.get(reason, reason)}")
    return problems


def _collision_problems(candidates: list[Candidate], existing: dict[str, str], replace: bool) -> list[str]:
    """Ids that would share a folder (with each other or with identities already in the table)."""
    problems = []
    taken = {folder_key(i): i for i in existing}
    seen: dict[str, str] = {}
    for c in candidates:
        key = folder_key(c.identity_id)
        if key in seen:
            problems.append(f"{c.identity_id!r}: duplicate identity id (also {seen[key]!r}); they would share a folder")
        elif key in taken and taken[key] != c.identity_id:
            problems.append(
                f"{c.identity_id!r}: collides with existing identity {taken[key]!r} (ids that differ only in case "
                "or trailing dots would share a folder); rename the folder"
            )
        seen[key] = c.identity_id
        if not replace and c.identity_id in existing and existing[c.identity_id] != c.source:
            problems.append(
                f"{c.identity_id}: already in subjects from source {existing[c.identity_id]!r}; "
                "use --replace to overwrite it"
            )
    return problems


def check_candidates(root: Path, candidates: list[Candidate], replace: bool = False) -> list[str]:
    """Every problem with the candidates, each naming the identity and file; an empty list means importable."""
    bar = tqdm(candidates, desc="subjects check", unit="id")  # opens every photo: minutes for a whole dataset
    problems = [p for c in bar for p in _candidate_problems(c)]
    existing = {r["identity_id"]: r["source"] for r in dm.read_rows(root, "subjects", missing_ok=True)}
    return problems + _collision_problems(candidates, existing, replace)


def _refuse(problems: list[str]) -> SubjectImportError:
    shown = "\n".join(f"  - {p}" for p in problems[:50])
    more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
    return SubjectImportError(f"subjects import refused ({len(problems)} problem(s); nothing written):\n{shown}{more}")


@dataclass(frozen=True)
class _Copy:
    source: Path
    dest: Path
    sha256: str


def _plan_row(root: Path, c: Candidate, token: str, copies: list[_Copy]) -> dict[str, Any]:
    """The row of one candidate; appends the copies it needs to ``copies`` (nothing is written here)."""
    folder = dm.inside_root(root, f"subjects/{c.identity_id}", "identity folder")
    rel_paths, hashes = [], []
    for i, f in enumerate(c.files):
        sha = dm.sha256_file(f)
        dest = folder / f"{i:03d}-{sha[:12]}{f.suffix.lower()}"
        copies.append(_Copy(f, dest, sha))
        rel_paths.append(f"subjects/{c.identity_id}/{dest.name}")
        hashes.append(sha)
    return subject_row(
        identity_id=c.identity_id,
        class_name=c.class_name,
        token=token,
        instance_images=rel_paths,
        instance_sha256=hashes,
        source=str(c.source),
        attributes=json.dumps({**c.attributes, "source_files": [str(f) for f in c.files]}, sort_keys=True),
    )


def _copy(item: _Copy) -> None:
    if item.dest.is_file() and dm.sha256_file(item.dest) == item.sha256:
        return  # the same photo, already in place (a re-import)
    data = item.source.read_bytes()
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise SubjectImportError(f"{item.source} changed while it was imported; nothing was written, import again")
    dm.atomic_write_bytes(item.dest, data)


def _remove_replaced(root: Path, old_rows: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Delete the photos an identity's previous row named and its new row does not (after the commit)."""
    for row in rows:
        old = old_rows.get(row["identity_id"])
        for rel in set(old["instance_images"] if old else []) - set(row["instance_images"]):
            if rel.startswith(f"subjects/{row['identity_id']}/") and is_inside(rel):
                with contextlib.suppress(FileNotFoundError):
                    (root / rel).unlink()


def import_subjects(root: Path, candidates: list[Candidate], replace: bool = False) -> int:
    """Validate every candidate, then copy the photos under ``root/subjects/`` and upsert all rows at once.

    Raises :class:`SubjectImportError` listing every problem; in that case nothing was copied or written.
    Returns the number of rows written.
    """
    root = Path(root)
    # 1. Every check first: images, ids, collisions, then the rows against the schema.
    problems = check_candidates(root, candidates, replace=replace)
    if problems:
        raise _refuse(problems)
    existing = {r["identity_id"]: r for r in dm.read_rows(root, "subjects", missing_ok=True)}
    tokens = {i: r["token"] for i, r in existing.items() if r.get("token")}
    taken = set(tokens.values())
    rows, copies = [], []
    for c in tqdm(candidates, desc="subjects hash", unit="id"):
        token = tokens.get(c.identity_id) or rare_token(c.identity_id, taken)
        taken.add(token)
        rows.append(_plan_row(root, c, token, copies))
    try:
        dm.to_arrow("subjects", rows)
    except dm.ManifestError as exc:
        raise _refuse([str(exc)]) from exc
    # 2. Copy under new (content-addressed) names, 3. commit, 4. remove photos the new rows replaced.
    for item in tqdm(copies, desc="subjects copy", unit="img"):
        _copy(item)
    dm.upsert(root, "subjects", rows)
    _remove_replaced(root, existing, rows)
    logger.info("imported %d subject(s) into %s", len(rows), root)
    return len(rows)
