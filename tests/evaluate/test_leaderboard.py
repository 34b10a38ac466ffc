"""The leaderboard: ranking, caching, idempotence, escaping, rejection; the page in headless Chromium."""

import json
import shutil

import pytest

from instdecay.evaluate.leaderboard import build_leaderboard
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


def test_leaderboard_ranks_caches_and_is_idempotent(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    board = build_leaderboard(subs, tmp / "release", site, n_boot=50)
    kinds = sorted(r["kind"] for r in board["rows"])
    assert kinds == ["reference", "reference", "submission", "submission"]
    accuracies = [r["accuracy"] for r in board["rows"]]
    assert accuracies == sorted(accuracies, reverse=True)
    files = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    cache = sorted((site / "cache").glob("*.json"))
    assert len(cache) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in cache}
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == files  # idempotent
    assert {p: p.stat().st_mtime_ns for p in cache} == mtimes  # cached: not recomputed


def test_html_is_escaped(tmp_path, board_world):
    tmp, subs = board_world
    site = tmp_path / "site"
    build_leaderboard(subs, tmp / "release", site, n_boot=50)
    index = (site / "index.html").read_text()
    assert "<script>alert(1)</script>" not in index and "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "<script>alert" not in (site / "models" / "m2.html").read_text()
    assert "http://" not in index and "https://" not in index  # no external resources


def test_escaping_names_and_duplicates_are_rejected(tmp_path, board_world):
    tmp, subs = board_world
    mine = tmp_path / "subs"
    shutil.copytree(subs, mine)
    shutil.copytree(mine / "m1", mine / "copy-of-m1")  # same model name as m1
    shutil.copytree(mine / "m1", mine / "..weird")  # hidden-looking names are skipped
    (mine / "loose.csv").write_text("instance_id\n")
    board = build_leaderboard(mine, tmp / "release", tmp_path / "site", n_boot=50)
    rejected = " | ".join(board["rejected"])
    assert "loose.csv: each submission must be a folder" in rejected
    assert "model name 'alpha' is already used by copy-of-m1; not overwritten" in rejected
    assert not (tmp_path / "site" / "models" / "m1.html").exists() or "alpha" in (tmp_path / "site" / "models" / "m1.html").read_text()


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

        browser.get((site / "index.html").as_uri())
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        def column(k):
            return [r.find_elements(By.TAG_NAME, "td")[k].get_attribute("data-value")
                    for r in browser.find_elements(By.CSS_SELECTOR, "#board tbody tr")]
        header = browser.find_elements(By.CSS_SELECTOR, "#board th")
        header[0].click()  # sort by model name, ascending
        names = column(0)
        assert names == sorted(names)
        header[4].click()  # accuracy, ascending
        acc = [float(v) for v in column(4)]
        assert acc == sorted(acc)
        header[4].click()  # and descending
        assert [float(v) for v in column(4)] == sorted(acc, reverse=True)
        browser.find_element(By.LINK_TEXT, "alpha").click()
        img = browser.find_element(By.CSS_SELECTOR, "img[alt='ecdf.png']")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.quit()
