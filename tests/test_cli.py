"""The command line (`lstm-jax`, `python -m lstm_jax`): runs, listing, resume and bad input as
exit codes with one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, files_under, records, run_cli

from lstm_jax.training import cli


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    done = run_cli(
        "run",
        "quickstart",  # a config by the name `lstm-jax list` shows
        "--variant",
        "tiny",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "training.steps=12",
    )
    assert done.returncode == 0, done.stderr
    assert "run directory" in done.stdout
    assert "steps: 12" in (out / "config.yaml").read_text()  # the resolved config, override applied
    assert [r["step"] for r in records(out) if "eval" not in r] == list(range(1, 13))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["status"] in ("budget", "solved")
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"

    # the same program in-process: bad input gets a one-line error and exit code 2
    code = cli.main(
        ["run", "configs/quickstart.yaml", "--out", str(out), "--set", "training.stpes=5"]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert "unknown key 'stpes' (did you mean 'steps'?); valid keys are [" in err
    assert "Traceback" not in err
    code = cli.main(
        ["run", str(ROOT / "configs/quickstart.yaml"), "--out", str(out), "--variant", "tiny"]
    )
    assert (
        code == cli.EXIT_BAD_INPUT
        and "already holds a run; pass --resume" in capsys.readouterr().err
    )
    for setting, message in [
        (
            "task.name=addition",
            "unknown task 'addition'; valid tasks: adding, bach_chorales, char_lm",
        ),
        (
            "model.cell=lsmt",
            "cell must be one of ['gru', 'lstm', 'mingru', 'minlstm', 'mlstm', 'rnn', 'slstm'], "
            "got 'lsmt'",
        ),
        ("model.variant=CIGF", "variant must be one of"),
        (
            "optimizer.name=adamax",
            "optimizer.name must be one of ['sgd', 'momentum', 'adam', 'adamw']",
        ),
        ("task.options.lenght=5", "lenght"),
    ]:
        code = cli.main(
            [
                "run",
                str(ROOT / "configs/quickstart.yaml"),
                "--out",
                str(tmp_path / "x"),
                "--set",
                setting,
            ]
        )
        err = capsys.readouterr().err
        assert code == cli.EXIT_BAD_INPUT and message in err, (setting, err)

    assert cli.main(["list", "--dir", str(ROOT / "configs")]) == 0
    listing = capsys.readouterr().out
    assert "  quickstart  " in listing and "adding problem" in listing


def test_corrupt_checkpoint_on_resume_is_a_clear_error_and_nothing_is_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "run",
        str(ROOT / "configs/quickstart.yaml"),
        "--variant",
        "tiny",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert cli.main(args) == 0
    for ckpt in (out / "checkpoints").rglob("*"):
        if ckpt.is_file():
            ckpt.write_bytes(ckpt.read_bytes()[:10])
    before = files_under(out)
    capsys.readouterr()
    assert cli.main([*args, "--resume"]) == cli.EXIT_CHECKPOINT
    err = capsys.readouterr().err
    assert "is corrupt or incomplete" in err and "Traceback" not in err
    assert files_under(out) == before


@pytest.mark.parametrize(
    "setting",
    [
        "training.eval_every=0",
        "training.checkpoint_every=0",
        "model.window=0",
        "model.hidden_size=0",
        "training.batch_size=0",
        "model.gradient=fulll",
        "optimizer.learning_rate=-0.01",  # would train by gradient ascent
        "optimizer.beta2=1.5",
        "model.impl=parallel",  # the quickstart's LSTM has no parallel form
    ],
)
def test_out_of_range_settings_are_config_errors(tmp_path, capsys, setting):
    code = cli.main(
        [
            "run",
            str(ROOT / "configs/quickstart.yaml"),
            "--variant",
            "tiny",
            "--out",
            str(tmp_path / "run"),
            "--set",
            setting,
        ]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and setting.split("=")[0] in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written before the config is known good


def test_resume_without_out_continues_the_default_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs/quickstart.yaml")
    assert cli.main(["run", config, "--variant", "tiny", "--no-progress"]) == 0
    assert cli.main(["run", config, "--variant", "tiny", "--no-progress"]) == 0  # a fresh dir
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "quickstart-tiny",
        "quickstart-tiny-2",
    ]
    assert cli.main(["run", config, "--variant", "tiny", "--no-progress", "--resume"]) == 0
    assert "runs/quickstart-tiny" in capsys.readouterr().out


def test_help_version_unknown_name_and_list_into_a_closed_pipe(capsys):
    """`--help` shows both commands in full, `--version` the package's, an unknown config name
    says where it looked, and `lstm-jax list | head` (a reader that leaves) is no traceback."""
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "lstm-jax list" in out and "the configs, by name" in out
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("lstm-jax ")
    assert cli.main(["run", "no_such_config"]) == cli.EXIT_BAD_INPUT
    assert "`lstm-jax list` shows the names" in capsys.readouterr().err
    assert cli.main(["list"]) == 0 and "quickstart" in capsys.readouterr().out
    child = subprocess.Popen(
        [sys.executable, "-m", "lstm_jax", "list"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # before it writes: its output meets a closed pipe
    err = child.stderr.read().decode()
    assert child.wait() == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
