"""The leaderboard: ranking, caching, idempotence, escaping, rejection; the page in headless Chromium."""

import hashlib
import json
import shutil

import pytest

from instdecay.evaluate.reports.leaderboard import Rejected, build_leaderboard
from instdecay.loaders import load_predictions
from instdecay.release import build_release


@pytest.fixture(scope="module")
def board_world(tmp_path_factory, shard_writer):
    write_toy_shards = shard_writer
    tmp = tmp_path_factory.mktemp("board")
    write_toy_shards(tmp / "ref", n_pretrain=2, n_finetune=2, n_instances=30)
    build_release(tmp / "ref", tmp / "release", progress=False, analysis=False)
    write_toy_shards(tmp / "new", sizes=(("m1", 1), ("m2", 2)), n_pretrain=2, n_finetune=2, n_instances=30, seed=5)
    build_release(tmp / "new", tmp / "new_release", progress=False, analysis=False)
    subs = tmp / "submissions"
    for size, name in (("m1", "alpha"), ("m2", "<script>alert(1)</script>")):
        folder = subs / size
        folder.mkdir(parents=True)
        df = load_predictions(tmp / "new_release", "toy", "validation", sizes=size, checkpoints=2)
        df[["instance_id", "pretrain_seed", "finetune_seed", "probs"]].to_parquet(folder / "preds.parquet")
        (folder / "submission.yaml").write_text(json.dumps({"model": name, "split": "validation", "params": 123}))
    return tmp, subs


def _rows(board, split="validation"):
    return next(sec["rows"] for sec in board["sections"] if sec["split"] == split)


def test_leaderboard_ranks_caches_and_is_idempotent(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    board = build_leaderboard(subs, tmp / "release", site, n_boot=50)
    assert [(s["task"], s["split"]) for s in board["sections"]] == [("toy", "validation"), ("toy", "heldout")]
    rows = _rows(board)
    assert sorted(r["kind"] for r in rows) == ["reference", "reference", "submission", "submission"]
    ranks = [r["rank"] for r in rows]
    assert ranks == sorted(ranks) and ranks[0] == 1
    assert all(r["kind"] == "reference" for r in _rows(board, "heldout"))  # no submission on heldout
    files = {p: p.read_bytes() for p in site.rglob("*") if p.is_file() and p.name != ".leaderboard.lock"}
    cache = sorted((site / "cache").glob("*.json"))
    assert len(cache) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in cache}
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file() and p.name != ".leaderboard.lock"} == files
    assert {p: p.stat().st_mtime_ns for p in cache} == mtimes  # cached: not recomputed


def test_rank_counts_the_models_above_by_a_paired_interval(tmp_path, board_world):
    from instdecay.evaluate import paired_bootstrap
    from instdecay.evaluate.submissions import load_submission
    from instdecay.loaders import load_tensor

    tmp, subs = board_world
    board = build_leaderboard(subs, tmp / "release", tmp_path / "site", n_boot=50)
    scores = {r["model"]: (load_tensor(tmp / "release", "toy", "validation", r["model"], checkpoints="last").values
                           if r["kind"] == "reference" else load_submission(subs / r["slug"], tmp / "release").correct)
              for r in _rows(board)}
    for r in _rows(board):
        above = sum(paired_bootstrap(scores[r["model"]], other).ci_low > 0
                    for name, other in scores.items() if name != r["model"])
        assert r["rank"] == 1 + above
    assert len({r["rank"] for r in _rows(board)}) < len(_rows(board))  # indistinguishable models share a rank


def test_html_and_markdown_are_escaped(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    index = (site / "index.html").read_text()
    assert "<script>alert(1)</script>" not in index and "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "<script>alert" not in (site / "models" / "m2.html").read_text()
    assert "<script>" not in (site / "leaderboard.md").read_text()
    assert "http://" not in index and "https://" not in index  # no external resources
    assert str(tmp_path) not in (site / "leaderboard.json").read_text()  # no local absolute paths


def test_rejections_stay_local_fail_the_build_and_keep_going_publishes_the_rest(tmp_path, board_world):
    tmp, subs = board_world
    mine = tmp_path / "subs"
    shutil.copytree(subs, mine)
    shutil.copytree(mine / "m1", mine / "copy-of-m1")  # same model name as m1, same task and evaluation set
    (mine / "loose.csv").write_text("instance_id\n")
    (mine / "empty").mkdir()
    (mine / "dangling").symlink_to(tmp_path / "nowhere")
    shutil.copytree(mine / "m1", mine / "inf")
    (mine / "inf" / "submission.yaml").write_text("model: inf\nsplit: validation\nparams: .inf\n")
    site = tmp_path / "site"
    with pytest.raises(Rejected) as caught:
        build_leaderboard(mine, tmp / "release", site, n_boot=50)
    assert not (site / "index.html").exists() and not (site / "models").exists()  # nothing published, no orphans
    rejected = " | ".join(caught.value.board["rejected"])
    assert "'loose.csv': each submission must be a folder" in rejected
    assert "'dangling': each submission must be a folder" in rejected
    assert "'empty': " in rejected and "'inf': " in rejected and "'params' must be a whole number" in rejected
    assert "model 'alpha' is already on the toy / validation board (from copy-of-m1)" in rejected
    assert (site / ".leaderboard-rejected.log").read_text().count("\n") == 5
    board = build_leaderboard(mine, tmp / "release", site, n_boot=50, keep_going=True)
    assert len(board["rejected"]) == 5 and (site / "index.html").exists()
    public = "".join((site / n).read_text() for n in ("index.html", "leaderboard.md", "leaderboard.json"))
    assert "loose.csv" not in public and "dangling" not in public and str(tmp_path) not in public


def test_one_model_on_two_evaluation_sets(tmp_path, board_world):
    tmp, subs = board_world
    mine = tmp_path / "subs"
    shutil.copytree(subs, mine)
    df = load_predictions(tmp / "new_release", "toy", "heldout", sizes="m1", checkpoints=2)
    (mine / "m1-heldout").mkdir()
    df[["instance_id", "pretrain_seed", "finetune_seed", "probs"]].to_parquet(mine / "m1-heldout" / "preds.parquet")
    (mine / "m1-heldout" / "submission.yaml").write_text(json.dumps({"model": "alpha", "split": "heldout"}))
    board = build_leaderboard(mine, tmp / "release", tmp_path / "site", n_boot=50)
    assert "alpha" in [r["model"] for r in _rows(board)] and "alpha" in [r["model"] for r in _rows(board, "heldout")]


def test_one_submission_folder_a_file_and_a_hub_id(tmp_path, board_world, monkeypatch):
    tmp, subs = board_world
    board = build_leaderboard(subs / "m1", tmp / "release", tmp_path / "one", n_boot=50)
    assert [r["model"] for r in _rows(board) if r["kind"] == "submission"] == ["alpha"] and board["rejected"] == []
    with pytest.raises(ValueError, match="a file; give a folder"):
        build_leaderboard(subs / "m1" / "preds.parquet", tmp / "release", tmp_path / "x", n_boot=50)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda repo_id, **kw: str(subs / "m1"))
    board = build_leaderboard(["someone/alpha-preds"], tmp / "release", tmp_path / "hub", n_boot=50)
    assert [r["slug"] for r in _rows(board) if r["kind"] == "submission"] == ["someone__alpha-preds"]


def test_exports_for_the_hub(tmp_path, board_world):
    import yaml

    tmp, subs = board_world
    build_leaderboard(subs, tmp / "release", tmp_path / "site", n_boot=50)
    index = yaml.safe_load((tmp_path / "site" / "models" / "m1" / "model-index.yaml").read_text())["model-index"][0]
    assert index["name"] == "alpha"
    result = index["results"][0]
    assert result["dataset"]["config"] == "toy" and result["dataset"]["split"] == "validation"
    assert result["metrics"][0]["type"] == "accuracy" and 0 <= result["metrics"][0]["value"] <= 1
    entry = yaml.safe_load((tmp_path / "site" / "models" / "m1" / "eval_results.yaml").read_text())[0]
    assert entry["dataset"] == {"id": "instdecay/predictions", "task_id": "toy_validation"}
    tasks = yaml.safe_load((tmp / "release" / "eval.yaml").read_text())["tasks"]
    assert "toy_validation" in [t["id"] for t in tasks]  # the task the entry points at is defined
    assert entry["value"] == pytest.approx(result["metrics"][0]["value"]) and entry["source"]["url"].startswith("https")


def test_writes_stay_inside_out_and_never_delete_user_files(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    (site / "models" / "important").mkdir()
    (site / "models" / "important" / "thesis.tex").write_text("mine")
    (site / "notes.txt").write_text("mine too")
    mine = tmp_path / "subs"
    shutil.copytree(subs, mine)
    shutil.rmtree(mine / "m2")  # m2 disappears: its pages go, the user's files stay
    build_leaderboard(mine, tmp / "release", site, n_boot=50)
    assert (site / "models" / "important" / "thesis.tex").read_text() == "mine" and (site / "notes.txt").exists()
    assert not (site / "models" / "m2.html").exists() and not (site / "models" / "m2").exists()
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(site / "models" / "m1")
    (site / "models" / "m1").symlink_to(outside)
    board = build_leaderboard(mine, tmp / "release", site, n_boot=50, keep_going=True)
    assert list(outside.iterdir()) == [] and any("symbolic link" in r for r in board["rejected"])


def test_the_ownership_record_cannot_make_it_delete_other_files(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (site / "notes.txt").write_text("mine")
    record = json.loads((site / ".leaderboard-files.json").read_text())
    digest = hashlib.sha256(b"keep me").hexdigest()
    record["files"].update({str(victim): digest, "../victim.txt": digest, "models/../../victim.txt": digest,
                            "notes.txt": hashlib.sha256(b"changed since").hexdigest()})
    (site / ".leaderboard-files.json").write_text(json.dumps(record))
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    assert victim.read_text() == "keep me"  # outside --out: never deleted
    assert (site / "notes.txt").read_text() == "mine"  # not the content recorded: never deleted
    assert not any("victim" in k for k in json.loads((site / ".leaderboard-files.json").read_text())["files"])


def test_a_symlinked_lock_file_is_never_opened(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    site.mkdir()
    important = tmp_path / "important"
    important.write_text("precious")
    (site / ".leaderboard.lock").symlink_to(important)
    with pytest.raises(ValueError, match="lock file"):
        build_leaderboard(subs, tmp / "release", site, n_boot=50)
    assert important.read_text() == "precious"


def test_an_edited_cache_never_reaches_the_board(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    board = build_leaderboard(subs, tmp / "release", site, n_boot=50)
    truth = {r["model"]: r["accuracy"] for r in _rows(board)}
    for path in (site / "cache").glob("*.json"):
        result = json.loads(path.read_text())
        result["accuracy"][0]["accuracy"] = 0.999
        path.write_text(json.dumps(result))
    board = build_leaderboard(subs, tmp / "release", site, n_boot=50)
    assert {r["model"]: r["accuracy"] for r in _rows(board)} == truth


def test_a_file_it_did_not_write_is_never_overwritten(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>my own page</p>")
    with pytest.raises(ValueError, match=r"index.html: exists and was not written by the leaderboard"):
        build_leaderboard(subs, tmp / "release", site, n_boot=50)
    assert (site / "index.html").read_text() == "<p>my own page</p>"


def test_concurrent_builds_take_turns(tmp_path, board_world):
    import subprocess
    import sys

    tmp, subs = board_world
    code = ("import sys; from instdecay.evaluate.reports.leaderboard import Rejected, build_leaderboard; "
            f"build_leaderboard({str(subs)!r}, {str(tmp / 'release')!r}, {str(tmp_path / 'site')!r}, n_boot=50)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0], [p.stderr.read()[-500:] for p in procs]
    assert (tmp_path / "site" / "index.html").exists()


def _chromium():
    import shutil as sh

    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    binary = sh.which("chromium") or sh.which("chromium-browser")
    driver = sh.which("chromedriver")
    if not binary or not driver:
        pytest.skip("headless Chromium test skipped: Debian packages chromium and chromium-driver are not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_page_in_headless_chromium(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    browser = _chromium()
    try:
        from selenium.webdriver.common.by import By

        browser.set_window_size(1280, 900)
        browser.get((site / "index.html").as_uri())
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        visible = [s for s in browser.find_elements(By.CSS_SELECTOR, "section.tab") if s.is_displayed()]
        assert len(visible) == 1  # one task/evaluation set at a time
        table = visible[0]

        def column(k):
            return [r.find_elements(By.TAG_NAME, "td")[k].get_attribute("data-value")
                    for r in table.find_elements(By.CSS_SELECTOR, "tbody tr") if r.is_displayed()]
        header = table.find_elements(By.TAG_NAME, "th")
        header[1].click()  # model name, ascending
        names = column(1)
        assert names == sorted(names)
        header[5].click()  # accuracy: numeric, ascending then descending
        acc = [float(v) for v in column(5)]
        assert acc == sorted(acc)
        header[5].click()
        assert [float(v) for v in column(5)] == sorted(acc, reverse=True)
        header[3].click()  # params: numbers, not text ("123" after "1,000" would be a text sort)
        params = [float(v) if v else float("inf") for v in column(3)]
        assert params == sorted(params)
        browser.find_element(By.ID, "filter").send_keys("alp")
        assert [n for n in column(1)] == ["alpha"]
        browser.find_element(By.LINK_TEXT, "toy / heldout").click()
        assert [s.get_attribute("id") for s in browser.find_elements(By.CSS_SELECTOR, "section.tab")
                if s.is_displayed()] == ["toy__heldout"]
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
        right = browser.execute_script("return document.querySelector('section.tab:not([hidden]) table.board')"
                                       ".getBoundingClientRect().right")
        assert right <= 1280  # the whole table is on screen, not cut
        notes = browser.find_element(By.ID, "how-to-read").find_element(By.XPATH, "following-sibling::ul").text
        assert "`" not in notes and "paired 95% interval" in notes
        assert "instdecay submit validate" in browser.find_element(By.ID, "how-to-submit").find_element(
            By.XPATH, "following-sibling::ol").text
        assert "manifest sha256" in browser.find_element(By.TAG_NAME, "footer").text
        browser.save_screenshot(str(tmp_path / "index.png"))
        assert (tmp_path / "index.png").stat().st_size > 10_000
        browser.get((site / "models" / "m1.html").as_uri())
        img = browser.find_element(By.CSS_SELECTOR, "img[alt='ecdf.png']")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        meta = {r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
                for r in browser.find_elements(By.CSS_SELECTOR, "table")[0].find_elements(By.TAG_NAME, "tr")}
        assert meta["model"] == "alpha" and meta["params"] == "123" and meta["training data"] == "not stated"
        headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "table")[1].find_elements(By.TAG_NAME, "th")]
        assert "Δ accuracy (submission − reference)" in headers and "delta_accuracy" not in headers
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
        browser.save_screenshot(str(tmp_path / "detail.png"))
        assert (tmp_path / "detail.png").stat().st_size > 10_000
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.quit()
