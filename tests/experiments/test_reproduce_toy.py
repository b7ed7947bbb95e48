"""The toy experiment driver (scripts/reproduce_toy.py) and its tables (scripts/results_tables.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


driver = _load("reproduce_toy")
tables = _load("results_tables")


def test_profiles_and_conditions_are_checked() -> None:
    spec, conditions, protocols = driver.load_spec("quick", None)
    assert set(spec["conditions"]) <= set(conditions) and "none" in conditions and "mae" in conditions
    assert protocols == ["frozen_knn_mean", "frozen_knn_cls", "linear_probe", "supervised", "unsupervised"]
    with pytest.raises(SystemExit, match="unknown profile 'huge'; valid profiles: quick, full"):
        driver.load_spec("huge", None)
    with pytest.raises(SystemExit, match="unknown condition.*maee.*valid conditions: none, mae"):
        driver.load_spec("quick", "mae,maee")
    spec, _, _ = driver.load_spec("full", "none, vehiclemae")
    assert spec["conditions"] == ["none", "vehiclemae"] and spec["seeds"] == [0, 1, 2]


def test_cli_rejects_unknown_profile(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit, match="valid profiles"):
        driver.main(["--profile", "nope", "--runs", "/nonexistent/runs"])


def _results() -> dict:
    rows = []
    for seed, (none, mae, vm) in enumerate([(2.0, 7.0, 8.0), (2.2, 7.4, 7.0), (1.8, 6.6, 8.6)]):
        for cond, value in (("none", none), ("mae", mae), ("vehiclemae", vm)):
            rows.append(
                {
                    "pretrain": cond,
                    "protocol": "frozen_knn_cls",
                    "seed": seed,
                    "mAP": value,
                    "rank1": 2 * value,
                    "cross_view_mAP": value - 1,
                    "same_view_mAP": None,
                }
            )
    return {
        "profile": "full",
        "commit": "0123456789abcdef",
        "world": {"identities": 8, "family_size": 4},
        "pretrain_world": {"identities": 16, "first_index": 10000},
        "pretrain_source": "toyworld",
        "budget": {"pretrain": {"epochs": 1}, "finetune": {}},
        "baselines": {"hist_map": 5.1, "hist_r1": 8.9, "oracle_map": 26.3, "chance_map": 1.3},
        "rows": rows,
        "pretrain_runs": {"mae-seed0": {"steps": 10, "images_seen": 320, "seconds": 3.0}},
    }


def test_tables_report_mean_std_and_paired_differences() -> None:
    text = tables.section(_results())
    assert "**mAP 5.1**" in text and "oracle mAP 26.3" in text
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    # none: mean 2.0 ± 0.2; paired none - mae per seed: -5.0, -5.2, -4.8 -> -5.0 ± 0.2, ahead on 0 of 3 seeds
    assert "2.0 ± 0.2" in lines["none"] and "-5.0 ± 0.2 (0/3)" in lines["none"]
    # vehiclemae - mae: +1.0, -0.4, +2.0 -> +0.9 ± 1.2 (2/3); same-view mAP missing -> "-"
    assert "+0.9 ± 1.2 (2/3)" in lines["vehiclemae"] and lines["vehiclemae"].count("| - |") == 1
    assert "| mae-seed0 | 10 | 320 | 3 |" in text


def test_tables_update_markers(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_results()))
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- reproduce-toy:full:begin -->\nold\n<!-- reproduce-toy:full:end -->\nrest\n")
    assert tables.main([str(results), "--update", str(doc)]) == 0
    content = doc.read_text()
    assert "old" not in content and "**mAP 5.1**" in content and content.endswith("rest\n")
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        tables.main([str(results), "--update", str(doc)])
    assert tables.main([str(tmp_path / "missing.json")]) == 2


def test_profile_overrides() -> None:
    spec, _, _ = driver.load_spec("full", None, ["pretrain.epochs=3", "pretrain_source=toyworld", "seeds=[5]"])
    assert spec["pretrain"]["epochs"] == 3 and spec["pretrain_source"] == "toyworld" and spec["seeds"] == [5]
    assert driver.load_spec("full", None)[0]["pretrain"]["epochs"] != 3  # the file's profile is not modified
    for bad in ("pretrain.epoch=3", "nonsense", "world.size.x=1"):
        with pytest.raises(SystemExit, match="expected KEY=VALUE"):
            driver.load_spec("full", None, [bad])


def test_tables_report_paired_ablations() -> None:
    results = _results()
    for row in [r for r in results["rows"] if r["pretrain"] == "vehiclemae"]:
        results["rows"].append({**row, "pretrain": "vehiclemae_same_patches", "mAP": row["mAP"] - 1.0})
    text = tables.section(results)
    ablation = [line for line in text.splitlines() if "complementary vs same_patches" in line]
    # complementary - same_patches: +1.0 mAP on every seed (cross-view mAP was copied unchanged: +0.0)
    assert len(ablation) == 1 and "| frozen_knn_cls | +1.0 ± 0.0 (3/3) | +0.0 ± 0.0 (0/3) |" in ablation[0]
    assert "asymmetric vs symmetric" not in text  # vmim_symmetric was not run: no row


def test_cli_rejects_unknown_protocols() -> None:
    with pytest.raises(SystemExit, match="unknown protocol.*knn.*valid protocols: frozen_knn_mean"):
        driver.main(["--profile", "quick", "--protocols", "supervised,knn", "--runs", "/nonexistent/runs"])


def test_report_only_collects_finished_cells_without_running(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit, match="no finished baselines"):
        driver.main(["--profile", "quick", "--runs", str(runs), "--report-only"])
    (runs / "cells").mkdir(parents=True, exist_ok=True)
    base = {"histogram": {"mAP": 5.1, "rank1": 8.9}, "oracle": {"mAP": 26.3}, "chance": {"mAP": 1.3}}
    (runs / "baselines.json").write_text(json.dumps({"results": base}))
    (runs / "commit.txt").write_text("abc123\n")
    cell = {"pretrain": "mae", "protocol": "frozen_knn_cls", "seed": 0, "mAP": 7.0, "rank1": 9.0}
    (runs / "cells" / "mae__frozen_knn_cls__seed0.json").write_text(json.dumps(cell))
    assert (
        driver.main(["--profile", "quick", "--runs", str(runs), "--data", str(tmp_path / "none"), "--report-only"]) == 0
    )
    results = json.loads((runs / "results.json").read_text())
    assert results["partial"] and results["commit"] == "abc123" and results["rows"] == [cell]
    assert results["img_size"] == 64  # the encoder input the cells were made at
    assert not (tmp_path / "none").exists()  # nothing was rendered or run
    assert "Partial" in tables.section(results)


def _experiment(tmp_path: Path, **spec_overrides):
    spec, conditions, protocols = driver.load_spec("quick", None)
    spec.update(spec_overrides)
    return driver.Experiment(spec, conditions, protocols, "quick", tmp_path / "runs", tmp_path / "data", tmp_path)


def _save_encoder(path: Path, value: float, metadata: dict[str, str] | None = None) -> Path:
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.full((2, 3), value), "b": torch.zeros(3)}, str(path), metadata=metadata)
    return path


def test_encoder_digest_is_the_tensors_not_the_file(tmp_path: Path) -> None:
    a = _save_encoder(tmp_path / "a.safetensors", 1.0, {"mode": "mae"})
    b = _save_encoder(tmp_path / "b.safetensors", 1.0, {"mode": "vmim"})
    c = _save_encoder(tmp_path / "c.safetensors", 1.0 + 1e-7)
    assert a.read_bytes() != b.read_bytes()
    assert driver.encoder_digest(a) == driver.encoder_digest(b) != driver.encoder_digest(c)


def test_identical_encoders_share_cells_of_the_same_seed_only(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    mae = _save_encoder(tmp_path / "mae.safetensors", 1.0)
    exp.reuse_cells("mae", 0, mae)
    exp.write_cell("mae", "frozen_knn_cls", 0, {"mAP": 6.5, "rank1": 9.0})
    exp.write_cell("mae", "supervised", 1, {"mAP": 11.0})  # another seed: never copied to seed 0
    vmim = _save_encoder(tmp_path / "vmim.safetensors", 1.0, {"mode": "vmim"})
    exp.reuse_cells("vmim", 0, vmim)
    row = json.loads(exp.cell_path("vmim", "frozen_knn_cls", 0).read_text())
    assert row["pretrain"] == "vmim" and row["mAP"] == 6.5 and row["extra"]["same_encoder_as"] == "mae"
    assert not exp.cell_path("vmim", "supervised", 0).exists()
    # A different encoder of the same seed gets nothing.
    other = _save_encoder(tmp_path / "other.safetensors", 2.0)
    exp.reuse_cells("vehiclemae", 0, other)
    assert not exp.cell_path("vehiclemae", "frozen_knn_cls", 0).exists()
    assert set(json.loads((exp.runs / "encoders.json").read_text())) == {"mae-seed0", "vmim-seed0", "vehiclemae-seed0"}


def test_pool_uses_the_projects_toy_models(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, toy_models="models/toy")
    models = tmp_path / "pool-models"
    exp.install_toy_models(models)
    assert (models / "toy-yolo.pt").read_bytes() == (ROOT / "models/toy/toy-yolo.pt").read_bytes()
    assert (models / "segment/sam_view.pt").read_bytes() == (ROOT / "models/toy/sam_view.pt").read_bytes()
    exp = _experiment(tmp_path, toy_models="models/does-not-exist")
    exp.install_toy_models(tmp_path / "empty")  # falls back to training: nothing copied
    assert not (tmp_path / "empty").exists()


def test_tables_name_rows_copied_from_an_identical_encoder() -> None:
    results = _results()
    for row in results["rows"]:
        if row["pretrain"] == "vehiclemae":
            row["extra"] = {"same_encoder_as": "mae"}
    assert "| vehiclemae (encoder identical to mae) |" in tables.section(results)
    results["rows"][2]["extra"] = {}  # seed 0's vehiclemae row computed, not copied
    assert "| vehiclemae (encoder identical to mae for seeds 1, 2) |" in tables.section(results)


def test_threads_setting_reaches_every_step(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, threads=1)
    exp.sh("env", sys.executable, "-c", "import os; print('threads', os.environ['OMP_NUM_THREADS'])")
    assert "threads 1" in (exp.logs / "env.log").read_text()
    spec, _, _ = driver.load_spec("full", None, ["threads=1"])
    assert spec["threads"] == 1 and spec["pretrain"]["epochs"] == 8 and {"cmae", "clmae"} <= set(spec["conditions"])
    for bad in ("0", "two", "1.5"):
        with pytest.raises(SystemExit, match="jobs must be a positive integer"):
            driver.load_spec("quick", None, [f"jobs={bad}"])


class _Recording(driver.Experiment):
    """The driver with every command recorded instead of run; each writes what the driver reads back."""

    def __init__(self, tmp_path: Path, overrides: list[str]) -> None:
        spec, conditions, protocols = driver.load_spec("quick", "none,mae", overrides)
        super().__init__(spec, conditions, protocols, "quick", tmp_path / "runs", tmp_path / "data", tmp_path)
        self.commands: list[list[str]] = []

    def sh(self, log_name: str, *argv) -> None:
        cmd = [str(a) for a in argv]
        self.commands.append(cmd)
        if cmd[1] == "train":
            out = next(a.partition("=")[2] for a in cmd if a.startswith("output_dir="))
            Path(out).mkdir(parents=True, exist_ok=True)
        if cmd[1] == "probe":
            out = Path(cmd[cmd.index("--out") + 1])
            out.write_text(json.dumps({"results": {name: {"mAP": 1.0} for name in driver.FROZEN.values()}}))
        if cmd[1] == "finetune":
            out = Path(cmd[cmd.index("--out") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "result.json").write_text(json.dumps({"best": {"mAP": 2.0}, "selection": "validation"}))


def _size_flags(cmd: list[str]) -> list[str]:
    pairs = zip(cmd, cmd[1:])
    return [b for a, b in pairs if a == "--img-size" or (a == "--set" and b.startswith("model.img_size="))]


@pytest.mark.parametrize("overrides, size", [([], "64"), (["img_size=96"], "96")])
def test_img_size_reaches_pretraining_probes_and_finetuning(tmp_path: Path, overrides, size) -> None:
    exp = _Recording(tmp_path, overrides)
    for condition in ("none", "mae"):
        encoder = exp.pretrain(condition, 0)
        exp.frozen(condition, 0, encoder)
        for mode in driver.FINETUNED:
            exp.finetune(condition, mode, 0, encoder)
    sized = {cmd[1]: _size_flags(cmd) for cmd in exp.commands if cmd[1] != "export"}
    expected = {"train": f"model.img_size={size}", "probe": size, "finetune": f"model.img_size={size}"}
    assert sized == {k: [v] for k, v in expected.items()}
    assert len([c for c in exp.commands if c[1] == "probe"]) == 2  # none's random encoder is built at that size too
    assert all(_size_flags(c) for c in exp.commands if c[1] in expected)
    for bad in ("60", "0", "big"):
        with pytest.raises(SystemExit, match="img_size must be a positive multiple of the toy encoder's 8-px patch"):
            driver.load_spec("quick", None, [f"img_size={bad}"])


class _Scripted(driver.Experiment):
    """The driver's scheduling with the commands replaced by short sleeps: ``mae`` and ``vmim`` export the same
    encoder; ``mae``'s protocols are slow, so ``vmim`` (registered later) must wait for them to copy its cells."""

    def __init__(self, tmp_path: Path, jobs: int, fail: str | None = None) -> None:
        spec, conditions, protocols = driver.load_spec("quick", "none,mae,vmim,vehiclemae")
        spec.update(jobs=jobs, seeds=[0, 1])
        super().__init__(spec, conditions, protocols, "quick", tmp_path / "runs", tmp_path / "data", tmp_path)
        self.fail, self.running, self.peak, self.ran = fail, 0, 0, []

    def render(self, out, args, log) -> None:
        pass

    def build_pool(self) -> None:
        pass

    def baselines(self) -> dict:
        return {}

    def _busy(self, seconds: float) -> None:
        import time

        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1

    def pretrain(self, condition: str, seed: int):
        if condition == self.fail:
            raise SystemExit(f"step failed ({condition})")
        if condition == "none":
            return None
        self._busy(0.05)
        value = 1.0 if condition in ("mae", "vmim") else 2.0
        return _save_encoder(self.runs / "pretrain" / f"{condition}-seed{seed}.safetensors", value + seed)

    def frozen(self, condition: str, seed: int, encoder) -> None:
        for protocol in driver.FROZEN:
            if not self.cell_path(condition, protocol, seed).is_file():
                self._busy(0.3 if condition == "mae" else 0.01)
                self.write_cell(condition, protocol, seed, {"mAP": 1.0})
                self.ran.append((condition, protocol, seed))

    def finetune(self, condition: str, mode: str, seed: int, encoder) -> None:
        if not self.cell_path(condition, mode, seed).is_file():
            self._busy(0.01)
            self.write_cell(condition, mode, seed, {"mAP": 2.0})
            self.ran.append((condition, mode, seed))


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_parallel_units_give_every_cell_and_reuse_an_earlier_twin(tmp_path: Path, jobs: int) -> None:
    exp = _Scripted(tmp_path, jobs)
    results = exp.run("abc")
    assert len(results["rows"]) == 4 * 2 * 5  # every condition x seed x protocol
    assert exp.peak <= jobs and (jobs == 1 or exp.peak > 1)
    # vmim never ran a protocol: its encoder is mae's, so every cell was copied (after waiting for mae's).
    assert not [r for r in exp.ran if r[0] == "vmim"]
    copied = [r for r in results["rows"] if r["pretrain"] == "vmim"]
    assert len(copied) == 10 and all(r["extra"]["same_encoder_as"] == "mae" for r in copied)


def test_a_unit_waits_only_for_earlier_units_of_its_own_seed(tmp_path: Path) -> None:
    """Seed 1's units must not wait for a slow seed-0 pre-training: with 2 jobs, seed 1's `mae` finishes first."""

    class SlowSeed0(_Scripted):
        def pretrain(self, condition: str, seed: int):
            if (condition, seed) == ("vehiclemae", 0):
                import time

                time.sleep(3.0)
            return super().pretrain(condition, seed)

    exp = SlowSeed0(tmp_path, jobs=2)
    exp.spec["conditions"] = ["mae", "vehiclemae"]
    exp.run("abc")
    done = [(c, s) for c, p, s in exp.ran if p == "unsupervised"]
    assert done.index(("mae", 1)) < done.index(("vehiclemae", 0))


def test_a_finished_unit_does_not_wait_for_an_earlier_running_one(tmp_path: Path) -> None:
    """Resuming: `vehiclemae` seed 0 is finished, so its worker goes on to seed 1 while `vmim` seed 0 pre-trains."""

    class SlowVmim(_Scripted):
        def pretrain(self, condition: str, seed: int):
            encoder = super().pretrain(condition, seed)
            if (condition, seed) == ("vmim", 0):
                import time

                time.sleep(2.0)
                self.ran.append((condition, "pretrained", seed))
            return encoder

    exp = SlowVmim(tmp_path, jobs=2)
    exp.spec["conditions"] = ["mae", "vmim", "vehiclemae"]
    for condition in ("mae", "vehiclemae"):
        for protocol in exp.protocols:
            exp.write_cell(condition, protocol, 0, {"mAP": 1.0})
    results = exp.run("abc")
    assert len(results["rows"]) == 3 * 2 * 5
    assert exp.ran.index(("mae", "frozen_knn_mean", 1)) < exp.ran.index(("vmim", "pretrained", 0))


def test_a_failing_unit_stops_the_run_and_starts_nothing_new(tmp_path: Path) -> None:
    exp = _Scripted(tmp_path, jobs=2, fail="mae")
    with pytest.raises(SystemExit, match="step failed"):
        exp.run("abc")
    assert not any(seed == 1 for _, _, seed in exp.ran)  # the units queued behind the failure never started
    assert not exp.cell_path("mae", "frozen_knn_cls", 0).exists()
