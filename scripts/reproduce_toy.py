"""The toy-world pre-training experiment: every condition x protocol x seed, as a user would run it.

    python scripts/reproduce_toy.py --profile quick [--runs RUNS] [--data DATA] [--conditions mae,vehiclemae]

(``make reproduce-toy PROFILE=quick|full`` runs it through the offline runtime.) Profiles and conditions are in
``configs/reproduce_toy.yaml``. Steps:

1. Render the downstream benchmark world (its VeRi layout) and the disjoint pre-training world with
   ``diffveri toy world``; with ``pretrain_source: pipeline`` the pre-training table is assembled by the pipeline's
   stages (subjects -> toy-world synthesis -> filter -> segment -> review -> assemble) like a user's real build.
2. Training-free baselines (``vehiclemae baselines``): colour histogram, family-attribute oracle, chance.
3. Per seed and condition: pre-train (``vehiclemae train`` + ``export``; equal steps and images for every condition),
   then every protocol: frozen kNN on mean-pooled tokens and on the class token and a linear probe
   (``vehiclemae probe``), supervised and unsupervised fine-tuning (``vehiclemae finetune``, model chosen on
   validation identities).
4. ``RUNS/results.json``: ``{"profile", "commit", "world", "pretrain_world", "baselines", "rows", "pretrain"}``.

Every finished cell leaves a file under ``RUNS/cells`` and is skipped on the next run, so a killed run resumes
where it stopped (an interrupted pre-training continues from its last checkpoint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from data_manifests.cli import add_set_option

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "reproduce_toy.yaml"
PRETRAIN_CONFIG = ROOT / "configs" / "vehiclemae" / "toy.yaml"
FINETUNE_CONFIG = ROOT / "configs" / "vehiclemae" / "finetune_toy.yaml"
PIPELINE_CONFIG = ROOT / "configs" / "pipeline" / "toy.yaml"
# Our protocol names -> `vehiclemae probe` protocol names.
FROZEN = {"frozen_knn_mean": "knn_mean", "frozen_knn_cls": "knn_cls", "linear_probe": "linear_probe"}
FINETUNED = ("supervised", "unsupervised")
METRICS = ("mAP", "rank1", "cross_view_mAP", "same_view_mAP")


class Experiment:
    """One profile's runs under ``runs`` (cells, logs, results) with worlds under ``data``."""

    def __init__(
        self,
        spec: dict[str, Any],
        conditions: dict[str, Any],
        protocols: list[str],
        name: str,
        runs: Path,
        data: Path,
        bin_dir: Path,
    ) -> None:
        self.spec, self.conditions, self.protocols, self.name = spec, conditions, protocols, name
        self.runs, self.data, self.bin = runs, data, bin_dir
        self.cells = runs / "cells"
        self.logs = runs / "logs"
        for folder in (self.cells, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.world = data / "world"
        self.pool = data / "pretrain-world"
        self.pool_root = data / "pretrain-pipeline" if spec["pretrain_source"] == "pipeline" else self.pool
        self.lock = threading.Lock()
        # When units run in parallel (jobs > 1): "condition-seedN" -> its unit, and an event set once its encoder's
        # digest is registered (or it has none, or it failed).
        self.futures: dict[str, Future] = {}
        self.registered: dict[str, threading.Event] = defaultdict(threading.Event)

    # ------------------------------------------------------------------------------------------------ helpers
    def sh(self, log_name: str, *argv: str | Path) -> None:
        """Run a project command, its output to ``RUNS/logs/<log_name>.log``; a failure stops the experiment."""
        cmd = [str(a) for a in argv]
        log = self.logs / f"{log_name}.log"
        env = dict(os.environ)
        if self.spec.get("threads"):  # torch/OpenMP threads of every step (1 when another job shares the CPU)
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.spec["threads"])
        with open(log, "a") as handle:
            handle.write(f"$ {shlex.join(cmd)}\n")
            handle.flush()
            done = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        if done.returncode != 0:
            tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
            raise SystemExit(f"step failed ({log_name}, exit {done.returncode}); last lines of {log}:\n{tail}")

    def cli(self, name: str) -> Path:
        return self.bin / name

    @staticmethod
    def step(text: str) -> float:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)
        return time.monotonic()

    # ------------------------------------------------------------------------------------------------ worlds
    def render(self, out: Path, args: dict[str, Any], log: str) -> None:
        stamp = out / ".reproduce-toy-done"
        if stamp.is_file() and json.loads(stamp.read_text()) == args:
            return
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in args.items()]
        t0 = self.step(f"render {out.name}: {' '.join(flags)}")
        self.sh(
            log,
            self.cli("diffveri"),
            "toy",
            "world",
            "--root",
            out,
            *flags,
            # detection scenes only where the pipeline's toy detector is trained on them
            "--detection-images",
            400 if out == self.pool and self.spec["pretrain_source"] == "pipeline" else 16,
            "--workers",
            2,
            "--no-progress",
        )
        stamp.write_text(json.dumps(args))
        self.step(f"  done: render {out.name} in {time.monotonic() - t0:.0f} s")

    def build_pool(self) -> None:
        """The pre-training table: the pre-training world's own ``diffveri`` table, or one assembled by the stages."""
        self.render(self.pool, self.spec["pretrain_world"], "world-pretrain")
        if self.spec["pretrain_source"] != "pipeline":
            return
        stamp = self.pool_root / ".reproduce-toy-done"
        if stamp.is_file():
            return
        t0 = self.step("pre-training pool through the pipeline stages (toy-world backend)")
        extra = [str(o) for o in self.spec.get("pipeline_overrides") or []]  # configs/pipeline/toy.yaml keys
        root = self.pool_root
        root.mkdir(parents=True, exist_ok=True)
        models = root / "models"
        self.install_toy_models(models)
        if not (models / "toy-yolo.pt").is_file():
            self.sh(
                "pipeline",
                self.cli("diffveri"),
                "toy",
                "detector",
                "--root",
                self.pool,
                "--out",
                models / "toy-yolo.pt",
                "--epochs",
                20,
            )
        if not (models / "segment" / "sam_view.pt").is_file():
            self.sh(
                "pipeline",
                self.cli("diffveri"),
                "segment",
                "finetune",
                "--config",
                PIPELINE_CONFIG,
                "--root",
                self.pool,
                "--set",
                f"segment.finetune.out_dir={models / 'segment'}",
                "--set",
                f"segment.checkpoint={models / 'segment' / 'sam_view.pt'}",
                *[x for o in extra for x in ("--set", o)],
            )
        # The toy profile's stages (filter, review, segment at 128 px), with only rendered images: the toy-world
        # synthesis backend needs no DreamBooth adapter.
        overrides = [
            f"subjects.path={self.pool}",
            "synthesize.plan=[{backend: toyworld, images_per_view: 2}]",
            *extra,
        ]
        for stage in ("subjects", "synthesize", "filter", "review", "segment", "assemble"):
            self.sh(
                "pipeline",
                self.cli("diffveri"),
                "run",
                stage,
                "--config",
                PIPELINE_CONFIG,
                "--root",
                root,
                *[x for o in overrides for x in ("--set", o)],
            )
        stamp.write_text("{}")
        self.step(f"  done: pre-training pool in {time.monotonic() - t0:.0f} s")

    def install_toy_models(self, models: Path) -> None:
        """Copy the project's trained toy detector and view segmenter (``toy_models``, e.g. ``models/toy`` from
        ``make toy-models``, as the demo does) into the pool's ``models/``; without them the pool's own are trained."""
        source = self.spec.get("toy_models")
        if not source:
            return
        source = ROOT / source
        pairs = [
            (source / "toy-yolo.pt", models / "toy-yolo.pt"),
            (source / "sam_view.pt", models / "segment" / "sam_view.pt"),
        ]
        if not all(src.is_file() for src, _ in pairs):
            self.step(f"  {source} has no trained toy models: training the pool's own detector and segmenter")
            return
        for src, dst in pairs:
            if not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_suffix(".tmp")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)

    # ------------------------------------------------------------------------------------------------ cells
    def cell_path(self, condition: str, protocol: str, seed: int) -> Path:
        return self.cells / f"{condition}__{protocol}__seed{seed}.json"

    def write_cell(self, condition: str, protocol: str, seed: int, metrics: dict[str, Any]) -> None:
        row = {"pretrain": condition, "protocol": protocol, "seed": seed}
        row.update({k: metrics.get(k) for k in METRICS})
        row["extra"] = {k: v for k, v in metrics.items() if k not in METRICS}
        write_json(self.cell_path(condition, protocol, seed), row)

    def pretrain(self, condition: str, seed: int) -> Path | None:
        """The exported encoder of ``condition`` (None for ``none``), pre-training it when missing."""
        overrides = self.conditions[condition]
        if overrides is None:
            return None
        out = self.runs / "pretrain" / f"{condition}-seed{seed}"
        encoder = out / "encoder.safetensors"
        if encoder.is_file():
            return encoder
        budget = self.spec["pretrain"]
        splits = "[train,query,gallery]"  # every identity of the pool is disjoint from the benchmark's
        sets = {
            "output_dir": out,
            "data.root": self.pool_root,
            "data.splits": splits,
            "epochs": budget["epochs"],
            "optim.batch_size": budget["batch_size"],
            "seed": seed,
            "model.img_size": self.spec["img_size"],
            "log_every": 1,  # one JSON line per step: the budget (steps, images seen) is read back from it
            **overrides,
        }
        t0 = self.step(f"pre-train {condition} seed {seed} ({budget['epochs']} epochs)")
        self.sh(
            f"pretrain-{condition}-seed{seed}",
            self.cli("vehiclemae"),
            "train",
            "--config",
            PRETRAIN_CONFIG,
            *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")],
        )  # an interrupted run resumes from its checkpoints/checkpoint-last.pt
        self.sh(
            f"pretrain-{condition}-seed{seed}", self.cli("vehiclemae"), "export", "--checkpoint", out, "--out", encoder
        )
        seconds = time.monotonic() - t0
        (out / "budget.json").write_text(json.dumps({"seconds": seconds, **self._budget(out)}))
        self.step(f"  done: pre-train {condition} seed {seed} in {seconds:.0f} s")
        return encoder

    def _budget(self, out: Path) -> dict[str, Any]:
        """Optimiser steps (no accumulation here) and images seen, read from the run's JSON-lines log."""
        steps = 0
        log = out / "log.jsonl"
        if log.is_file():
            for line in log.read_text().splitlines():
                steps = max(steps, int(json.loads(line).get("step", 0) or 0))
        return {"steps": steps, "images_seen": steps * int(self.spec["pretrain"]["batch_size"])}

    def frozen(self, condition: str, seed: int, encoder: Path | None) -> None:
        wanted = [p for p in FROZEN if p in self.protocols]
        if all(self.cell_path(condition, p, seed).is_file() for p in wanted) or not wanted:
            return
        out = self.runs / "frozen" / f"{condition}-seed{seed}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        source = ["--checkpoint", encoder] if encoder else ["--init", "scratch", "--seed", seed]
        t0 = self.step(f"frozen protocols {condition} seed {seed}")
        self.sh(
            f"frozen-{condition}-seed{seed}",
            self.cli("vehiclemae"),
            "probe",
            *source,
            "--dataset",
            "veri776",
            "--root",
            self.world / "VeRi",
            "--protocols",
            ",".join(FROZEN[p] for p in wanted),
            "--img-size",
            self.spec["img_size"],
            "--seed",
            seed,
            "--out",
            out,
        )
        result = json.loads(out.read_text())["results"]
        for protocol in wanted:
            self.write_cell(condition, protocol, seed, result[FROZEN[protocol]])
        self.step(f"  done: frozen protocols {condition} seed {seed} in {time.monotonic() - t0:.0f} s")

    def finetune(self, condition: str, mode: str, seed: int, encoder: Path | None) -> None:
        if mode not in self.protocols or self.cell_path(condition, mode, seed).is_file():
            return
        out = self.runs / "finetune" / f"{condition}-{mode}-seed{seed}"
        epochs = self.spec["finetune"][f"{mode}_epochs"]
        init = (
            ["--set", "model.init=scratch"]
            if encoder is None
            else ["--set", "model.init=export", "--set", f"model.init_path={encoder}"]
        )
        t0 = self.step(f"{mode} fine-tuning {condition} seed {seed} ({epochs} epochs)")
        self.sh(
            f"{mode}-{condition}-seed{seed}",
            self.cli("vehiclemae"),
            "finetune",
            "--config",
            FINETUNE_CONFIG,
            "--mode",
            mode,
            "--out",
            out,
            "--set",
            f"data.root={self.world / 'VeRi'}",
            "--set",
            f"optim.epochs={epochs}",
            "--set",
            f"seed={seed}",
            "--set",
            f"model.img_size={self.spec['img_size']}",
            *(["--set", f"threads={self.spec['threads']}"] if self.spec.get("threads") else []),
            *init,
        )
        result = json.loads((out / "result.json").read_text())
        best = dict(result["best"])
        best.setdefault("rank1", best.get("Rank-1"))
        best["selection"] = result.get("selection")
        self.write_cell(condition, mode, seed, best)
        self.step(f"  done: {mode} fine-tuning {condition} seed {seed} in {time.monotonic() - t0:.0f} s")

    # ------------------------------------------------------------------------------------------------ reuse
    def reuse_cells(self, condition: str, seed: int, encoder: Path) -> None:
        """Copy the cells of another condition whose exported encoder has exactly the same weights (same seed).

        Every downstream protocol is a deterministic function of (encoder weights, seed), so re-running it would
        reproduce the same numbers; e.g. ``vmim``'s RGB encoder is bit-identical to ``mae``'s (the branches meet
        only in PPMD). A copied row says so in ``extra.same_encoder_as``; the tables show it.
        """
        registry = self.runs / "encoders.json"
        key = f"{condition}-seed{seed}"
        digest = encoder_digest(encoder)
        with self.lock:  # parallel units share the registry
            digests = json.loads(registry.read_text()) if registry.is_file() else {}
            if key not in digests:
                digests[key] = digest
                write_json(registry, digests)
        self.registered[key].set()
        if all(self.cell_path(condition, protocol, seed).is_file() for protocol in self.protocols):
            return  # a finished unit (a resumed run) has nothing to copy, so it waits for no one
        # In parallel runs, the units of this seed before this one (they started earlier, so waiting on them cannot
        # deadlock) decide which cells can be copied: wait for their digests, then for an identical encoder's protocols.
        order = list(self.futures)
        earlier = [n for n in order[: order.index(key)] if n.endswith(f"-seed{seed}")] if key in order else []
        for name in earlier:
            self.registered[name].wait()
        with self.lock:
            digests = json.loads(registry.read_text())
        twins = [
            name.rsplit("-seed", 1)[0]
            for name in digests
            if digests[name] == digests[key] and name != key and name.endswith(f"-seed{seed}")
        ]
        for name in earlier:
            if name in digests and digests[name] == digests[key]:
                self.futures[name].result()
        for protocol in self.protocols:
            if self.cell_path(condition, protocol, seed).is_file():
                continue
            for twin in twins:
                source = self.cell_path(twin, protocol, seed)
                if source.is_file():
                    row = json.loads(source.read_text())
                    row["pretrain"] = condition
                    row.setdefault("extra", {})["same_encoder_as"] = row["extra"].get("same_encoder_as", twin)
                    write_json(self.cell_path(condition, protocol, seed), row)
                    self.step(f"  {protocol} {condition} seed {seed}: encoder identical to {twin}'s, cell copied")
                    break

    # ------------------------------------------------------------------------------------------------ main
    def baselines(self) -> dict[str, Any]:
        out = self.runs / "baselines.json"
        if not out.is_file():
            self.sh("baselines", self.cli("vehiclemae"), "baselines", "--root", self.world / "VeRi", "--out", out)
        res = json.loads(out.read_text())["results"]
        return {
            "hist_map": res["histogram"]["mAP"],
            "hist_r1": res["histogram"]["rank1"],
            "oracle_map": res["oracle"]["mAP"],
            "chance_map": res["chance"]["mAP"],
            "detail": res,
        }

    def unit(self, condition: str, seed: int) -> None:
        """Everything of one (condition, seed): pre-training, then every protocol on its encoder."""
        try:
            encoder = self.pretrain(condition, seed)
            if encoder is not None:
                self.reuse_cells(condition, seed, encoder)
        finally:
            self.registered[f"{condition}-seed{seed}"].set()  # later units may stop waiting for this one's digest
        self.frozen(condition, seed, encoder)
        for mode in FINETUNED:
            self.finetune(condition, mode, seed, encoder)

    def run(self, commit: str) -> dict[str, Any]:
        self.render(self.world, self.spec["world"], "world-benchmark")
        self.build_pool()
        baselines = self.baselines()
        units = [(condition, seed) for seed in self.spec["seeds"] for condition in self.spec["conditions"]]
        jobs = int(self.spec.get("jobs") or 1)
        if jobs == 1:
            for condition, seed in units:
                self.unit(condition, seed)
        else:
            # Units in order, `jobs` at a time (each step a subprocess with `threads` threads). A unit submitted
            # earlier always starts earlier, so waiting on an earlier unit (reuse_cells) cannot deadlock.
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                # Every event made before any thread runs: two threads missing the same key at once could each
                # get their own event from the defaultdict, and one of them would never be set.
                for condition, seed in units:
                    self.registered[f"{condition}-seed{seed}"] = threading.Event()
                for condition, seed in units:
                    self.futures[f"{condition}-seed{seed}"] = pool.submit(self.unit, condition, seed)
                done, _ = wait(self.futures.values(), return_when=FIRST_EXCEPTION)
                failed = [f for f in self.futures.values() if f in done and f.exception() is not None]
                if failed:
                    pool.shutdown(wait=True, cancel_futures=True)  # let running steps finish, start nothing new
                    raise failed[0].exception()
        return self.collect(commit, baselines)

    def collect(self, commit: str, baselines: dict[str, Any]) -> dict[str, Any]:
        rows = []
        for seed in self.spec["seeds"]:
            for condition in self.spec["conditions"]:
                for protocol in self.protocols:
                    path = self.cell_path(condition, protocol, seed)
                    if path.is_file():
                        rows.append(json.loads(path.read_text()))
        budgets = {}
        for path in sorted((self.runs / "pretrain").glob("*/budget.json")):
            budgets[path.parent.name] = json.loads(path.read_text())
        return {
            "profile": self.name,
            "commit": commit,
            "world": self.spec["world"],
            "pretrain_world": self.spec["pretrain_world"],
            "pretrain_source": self.spec["pretrain_source"],
            "conditions": self.spec["conditions"],
            "seeds": self.spec["seeds"],
            "budget": {"pretrain": self.spec["pretrain"], "finetune": self.spec["finetune"]},
            "img_size": self.spec["img_size"],
            "baselines": baselines,
            "rows": rows,
            "pretrain_runs": budgets,
        }


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented JSON, written atomically (a killed run never leaves half a cell)."""
    from data_manifests import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(value, indent=1, default=float) + "\n").encode())


def encoder_digest(path: Path) -> str:
    """SHA-256 of an exported encoder's tensors (names, dtypes, shapes, bytes; not the file's metadata)."""
    from safetensors.numpy import load_file

    digest = hashlib.sha256()
    for name, array in sorted(load_file(str(path)).items()):
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_spec(
    profile: str, only: str | None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The profile's settings (with ``KEY=VALUE`` overrides, dotted keys, YAML values), the condition table and the
    protocols; clear errors for unknown names."""
    config = yaml.safe_load(CONFIG.read_text())
    profiles = config["profiles"]
    if profile not in profiles:
        raise SystemExit(f"unknown profile {profile!r}; valid profiles: {', '.join(profiles)}")
    spec = json.loads(json.dumps(profiles[profile]))
    for text in overrides:
        key, sep, raw = text.partition("=")
        parts = key.split(".")
        node = spec
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not sep or not isinstance(node, dict) or parts[-1] not in node:
            raise SystemExit(
                f"--set {text!r}: expected KEY=VALUE with KEY one of the profile's settings "
                f"({', '.join(sorted(spec))}; nested with dots, e.g. pretrain.epochs=4)"
            )
        node[parts[-1]] = yaml.safe_load(raw)
    jobs = spec.setdefault("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SystemExit(f"jobs must be a positive integer (units run at once), got {jobs!r}")
    size = spec.setdefault("img_size", 64)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 8:
        raise SystemExit(f"img_size must be a positive multiple of the toy encoder's 8-px patch, got {size!r}")
    conditions = config["conditions"]
    unknown = [c for c in spec["conditions"] if c not in conditions]
    if only:
        picked = [c.strip() for c in only.split(",") if c.strip()]
        unknown += [c for c in picked if c not in conditions]
        spec["conditions"] = picked
    if unknown:
        raise SystemExit(f"unknown condition(s) {', '.join(unknown)}; valid conditions: {', '.join(conditions)}")
    return spec, conditions, list(config["protocols"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", help="a profile of configs/reproduce_toy.yaml (quick, full)")
    parser.add_argument("--runs", default=None, help="output folder (default runs/reproduce-toy-PROFILE)")
    parser.add_argument("--data", default=None, help="worlds folder (default data/reproduce-toy-PROFILE)")
    parser.add_argument("--conditions", default=None, help="comma-separated subset of the profile's conditions")
    parser.add_argument(
        "--protocols", default=None, help="comma-separated subset of the protocols (default: all, see the config)"
    )
    add_set_option(
        parser, "override a profile setting, e.g. --set pretrain.epochs=4 (recorded in results.json; repeatable)"
    )
    parser.add_argument("--bin", default=str(Path(sys.executable).parent), help="folder of diffveri/vehiclemae")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write results.json from the cells finished so far (e.g. of a run still going) without running anything",
    )
    args = parser.parse_args(argv)
    spec, conditions, protocols = load_spec(args.profile, args.conditions, args.overrides)
    if args.protocols:
        from vehiclemae.config import parse_names

        try:
            protocols = parse_names(args.protocols, protocols, "protocol")
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    runs = Path(args.runs or f"runs/reproduce-toy-{args.profile}").resolve()
    data = Path(args.data or f"data/reproduce-toy-{args.profile}").resolve()
    exp = Experiment(spec, conditions, protocols, args.profile, runs, data, Path(args.bin))
    t0 = time.monotonic()
    from vehiclemae.config import git_sha  # "-dirty" when the work tree differs from the commit

    stamp = runs / "commit.txt"  # the commit the cells were computed with (a report may come from a later checkout)
    if args.report_only:
        if not (runs / "baselines.json").is_file():
            raise SystemExit(f"{runs} holds no finished baselines yet; nothing to report")
        commit = stamp.read_text().strip() if stamp.is_file() else "unknown"
        results = exp.collect(commit, exp.baselines())
        results["partial"] = True  # cells of a run that may not have finished
    else:
        runs.mkdir(parents=True, exist_ok=True)
        stamp.write_text(git_sha(ROOT) + "\n")
        results = exp.run(git_sha(ROOT))
    results["seconds"] = round(time.monotonic() - t0, 1)
    results["overrides"] = args.overrides
    out = runs / "results.json"
    write_json(out, results)
    print(f"results: {out} ({len(results['rows'])} rows, {results['seconds']:.0f} s this run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
