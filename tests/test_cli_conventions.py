"""CLI conventions of ``diffveri`` and ``vehiclemae`` (data_manifests.cli): ``--root`` for every data root,
``--config`` always with ``--set`` and ``--print-config``, old spellings as deprecated aliases that warn and work."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from pipeline.cli import build_parser as diffveri_parser
from pipeline.cli import main as diffveri_main
from vehiclemae.cli import build_parser as vehiclemae_parser
from vehiclemae.cli import main as vehiclemae_main


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every runnable (leaf) command: (its words, its parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _commands(child, (*prefix, name))


ALL = [(("diffveri", *words), p) for words, p in _commands(diffveri_parser())] + [
    (("vehiclemae", *words), p) for words, p in _commands(vehiclemae_parser())
]


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("words, parser", ALL, ids=[" ".join(w) for w, _ in ALL])
def test_every_command_follows_the_conventions(words: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    options = _options(parser)
    if "--config" in options:
        assert {"--set", "--print-config"} <= options, words
    # a data root is always --root (a positional root is only a hidden, deprecated alias)
    for action in parser._actions:
        if action.dest == "root" and action.help != argparse.SUPPRESS:
            assert action.option_strings == ["--root"], words
        assert not (not action.option_strings and "root" in action.dest and action.help != argparse.SUPPRESS), words
    for spelling in ("--imgsz", "--lr0", "--batch", "--pilot", "--png", "--gt"):
        if spelling in options:  # old spellings stay only as hidden aliases
            assert parser._option_string_actions[spelling].help == argparse.SUPPRESS, (words, spelling)
    # a visible --json is only ever the "print JSON instead of a table" switch; a file is --out (or --metrics)
    if "--json" in options:
        json_option = parser._option_string_actions["--json"]
        assert json_option.help == argparse.SUPPRESS or isinstance(json_option, argparse._StoreTrueAction), words


def test_old_command_names_are_hidden_but_still_parse() -> None:
    listed = {name for words, _ in ALL if words[0] == "diffveri" for name in words[1:2]}
    assert {"toy", "toyworld", "toyworld-detector", "toy-models"} <= listed
    help_text = diffveri_parser().format_help()
    assert " toy " in help_text and "toyworld" not in help_text and "toy-models" not in help_text


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "assemble", "--config", "toy", "--root", "unused"],
        ["plan", "--config", "paper", "--images", "10"],
        ["report", "filter", "--root", "unused"],
        ["review", "checks", "--config", "toy", "--root", "unused"],
        ["review", "export", "--root", "unused", "--out", "unused"],
        ["segment", "finetune", "--config", "toy", "--root", "unused"],
        ["truth", "--root", "unused"],
        ["toy", "models"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_print_config_shows_the_resolved_pipeline_profile(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing is written: the command only prints
    assert diffveri_main([*argv, "--print-config", "--set", "dreambooth.learning_rate=1e-4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["dreambooth"]["learning_rate"] == 1e-4 and isinstance(printed["dreambooth"]["learning_rate"], float)
    assert set(printed) >= {"seed", "runtime", "filter", "review", "segment", "assemble", "plan"}
    assert list(tmp_path.iterdir()) == []


def test_print_config_shows_the_resolved_vehiclemae_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert vehiclemae_main(["train", "--config", "toy", "--set", "optim.blr=1e-4", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["blr"] == 1e-4 and printed["output_dir"] == "runs/vehiclemae-toy"
    assert printed["data"]["root"] == "data/toy"
    assert vehiclemae_main(["train", "--config", "toy", "--root", "data/other", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"]["root"] == "data/other"  # --root = --set data.root
    argv = ["finetune", "--config", "finetune_toy", "--mode", "unsupervised", "--print-config"]
    assert vehiclemae_main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["mode"] == "unsupervised" and printed["optim"]["lr"] == 1e-3


def test_out_is_the_run_folder_of_both_trainers(capsys: pytest.CaptureFixture[str]) -> None:
    for command, config in (("train", "toy"), ("finetune", "finetune_toy")):
        assert vehiclemae_main([command, "--config", config, "--out", "runs/x", "--print-config"]) == 0
        captured = capsys.readouterr()
        assert yaml.safe_load(captured.out)["output_dir"] == "runs/x" and "deprecated" not in captured.err
    assert vehiclemae_main(["finetune", "--config", "finetune_toy", "--output-dir", "runs/y", "--print-config"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["output_dir"] == "runs/y"
    assert "warning: --output-dir is deprecated and will be removed; use --out" in captured.err


def test_a_misspelt_section_is_one_error_line_with_the_nearest_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert diffveri_main(["plan", "--config", "toy", "--images", "10", "--set", "filtr.conf_min=0.9"]) == 2
    assert "unknown section 'filtr' (did you mean 'filter'?)" in capsys.readouterr().err
    assert vehiclemae_main(["train", "--config", "toy", "--set", "optim.blrr=1", "--print-config"]) == 2
    assert "did you mean 'blr'?" in capsys.readouterr().err


def test_root_is_accepted_and_the_positional_root_is_a_deprecated_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = str(tmp_path / "empty")
    assert diffveri_main(["manifests", "stats", "--root", empty, "--json"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert diffveri_main(["manifests", "stats", empty, "--json"]) == 0
    assert f"a positional data root is deprecated and will be removed; use --root {empty}" in capsys.readouterr().err
    assert vehiclemae_main(["info", "--root", empty]) == 2  # parsed; the empty root is the error
    assert "vehiclemae info: error" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        diffveri_main(["manifests", "stats"])
    assert "the following arguments are required: --root" in capsys.readouterr().err


def test_deprecated_options_warn_and_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    parser = diffveri_parser()
    args = parser.parse_args(["toy", "detector", "--root", "r", "--imgsz", "64", "--lr0", "0.01", "--batch", "8"])
    assert (args.img_size, args.lr, args.batch_size) == (64, 0.01, 8)
    err = capsys.readouterr().err
    for old, new in (("--imgsz", "--img-size"), ("--lr0", "--lr"), ("--batch", "--batch-size")):
        assert f"warning: {old} is deprecated and will be removed; use {new}" in err
    args = parser.parse_args(["segment", "eval", "--root", "r", "--gt", "g", "--png", "p.png"])
    assert (args.gt_root, args.out) == ("g", "p.png")
    args = parser.parse_args(["plan", "--config", "toy", "--images", "1", "--pilot", "pilot"])
    assert args.root == "pilot"
    for command in (["baselines", "--root", "r"], ["probe", "--init", "scratch", "--root", "r"]):
        assert vehiclemae_parser().parse_args([*command, "--json", "x.json"]).out == "x.json"
        assert "warning: --json is deprecated and will be removed; use --out" in capsys.readouterr().err
    assert parser.parse_args(["truth", "--root", "r", "--json", "t.json"]).out == "t.json"
    assert "warning: --json is deprecated and will be removed; use --out" in capsys.readouterr().err
    assert parser.parse_args(["segment", "eval", "--root", "r", "--json", "m.json"]).metrics == "m.json"
    assert "warning: --json is deprecated and will be removed; use --metrics" in capsys.readouterr().err


def test_deprecated_commands_warn_and_still_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--identities", "2", "--images-per-identity", "2", "--size", "32", "--detection-images", "1"]
    assert diffveri_main(["toyworld", "--out", str(tmp_path / "old"), *common, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "`diffveri toyworld` is deprecated and will be removed; use `diffveri toy world`" in err
    assert "--out is deprecated and will be removed; use --root" in err
    assert diffveri_main(["toy", "world", "--root", str(tmp_path / "new"), *common, "--no-progress"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert _files(tmp_path / "old" / "VeRi") == _files(tmp_path / "new" / "VeRi")  # the same world either way


def _files(folder: Path) -> dict[str, bytes]:
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert files
    return files
