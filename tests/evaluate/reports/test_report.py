import json

import numpy as np
import pytest

from instdecay.cli import main
from instdecay.evaluate import decay_bounds, simulate
from instdecay.evaluate.reports.ladder import analyze_ladder
from instdecay.evaluate.reports.report import bounds_matrix, write_report


@pytest.fixture(scope="module")
def ladder_report():
    sim = simulate(400, sizes=("s", "m", "l", "xl"), n_pretrain=4, n_finetune=2, seed=0)
    return sim, analyze_ladder(sim.scores, n_boot=50, seed=0, progress=False)


def test_ladder_tables_agree_with_the_estimators(ladder_report):
    sim, rep = ladder_report
    assert list(rep.accuracy["size"]) == ["s", "m", "l", "xl"]
    np.testing.assert_allclose(rep.accuracy["accuracy"], [sim.scores[k].mean() for k in sim.sizes])
    assert len(rep.bounds) == 6 and len(rep.momentum) == 3  # (s, m, l), (m, l, xl) and (s, l, xl)
    row = rep.bounds.iloc[2]
    assert (row["smaller"], row["larger"]) == ("s", "xl")
    assert row["decay"] == decay_bounds(sim.scores["s"], sim.scores["xl"], n_boot=0).decay
    matrix = bounds_matrix(rep)
    assert matrix.loc["s", "xl"] == row["improve"] and matrix.loc["xl", "s"] == row["decay"]


def test_write_report_files(tmp_path, ladder_report):
    _, rep = ladder_report
    written = write_report(rep, tmp_path)
    assert {p.name for p in written} == {"report.md", "report.json", "ecdf.png",
                                         "accuracy_by_size.png", "decomposition.png"}
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["sizes"] == ["s", "m", "l", "xl"] and len(data["bounds"]) == 6
    md = (tmp_path / "report.md").read_text()
    assert "| s1 \\ s2 |" in md and "![ecdf.png]" in md
    assert (tmp_path / "accuracy_by_size.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_report_runs_end_to_end(tmp_path, capsys):
    assert main(["report", "--simulated", "--out", str(tmp_path), "--instances", "300", "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED ladder" in out and "Decay / improve lower bounds" in out
    assert (tmp_path / "report.md").exists()


def test_cli_user_error_is_one_line(capsys):
    assert main(["report", "--simulated", "--instances", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("instdecay report: error:") and "\n" not in err


def test_cli_help_lists_subcommands_and_the_workflow(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "workflow:" in out
    for step in ("instdecay report", "submit import-csv", "submit validate", "instdecay evaluate", "leaderboard build",
                 "generate grid", "release build"):
        assert step in out


@pytest.mark.parametrize("group", ["submit", "leaderboard", "release", "generate"])
def test_cli_groups_say_what_they_are_for(group, capsys):
    with pytest.raises(SystemExit):
        main([group, "--help"])
    out = capsys.readouterr().out
    description = out.split("positional arguments")[0].split("\n\n", 1)[1]
    assert len(description.split()) >= 15 and "example:" in out


def test_cli_push_shows_its_default_repo_id(capsys):
    with pytest.raises(SystemExit):
        main(["release", "push", "--help"])
    assert "default:" in capsys.readouterr().out.split("repo_id", 2)[2]


def test_cli_report_on_a_reference_folder(tmp_path, toy_release, capsys):
    out, _ = toy_release
    assert main(["report", "--reference", str(out), "--split", "validation", "--n-boot", "20",
                 "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    assert "task toy, evaluation set validation" in printed and "tiny" in printed
    assert (tmp_path / "rep" / "toy_validation" / "report.json").exists()


def test_cli_report_on_a_missing_reference(tmp_path, capsys):
    assert main(["report", "--reference", str(tmp_path / "nope" / "deeper")]) == 2
    assert "neither a dataset folder nor a Hub dataset id" in capsys.readouterr().err
