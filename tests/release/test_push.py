"""The push path against HfApi with its network calls replaced (no network)."""

from types import SimpleNamespace

import httpx2 as httpx  # the HTTP client huggingface_hub 2.x raises with
import pytest
from huggingface_hub.errors import HfHubHTTPError

from instdecay.release import push_release


class FakeApi:
    def __init__(self, fail_first_commit_with=None):
        self.calls = []
        self.fail = fail_first_commit_with

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def create_commit(self, repo_id, operations, **kw):
        if self.fail:
            status, self.fail = self.fail, None
            response = httpx.Response(status, request=httpx.Request("POST", "https://hub.invalid"))
            raise HfHubHTTPError(f"{status} error", response=response)
        self.calls.append(("create_commit", repo_id, [op.path_in_repo for op in operations], kw))
        return SimpleNamespace(pr_revision="refs/pr/7" if kw.get("create_pr") else None)

    def create_tag(self, repo_id, **kw):
        self.calls.append(("create_tag", repo_id, kw))


def test_push_commits_in_batches_then_tags(toy_release):
    out, _ = toy_release
    api = FakeApi()
    push_release(out, "org/preds", api=api, tag="v1.0", private=True, revision="main")
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "create_commit", "create_commit", "create_tag"]
    assert api.calls[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    data_commit, card_commit = api.calls[1], api.calls[2]
    figures = sorted(p.relative_to(out).as_posix() for p in (out / "figures").glob("*.png"))
    assert figures and data_commit[2] == sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet")) + figures
    assert card_commit[2] == ["LICENSE.md", "eval.yaml", "manifest.json", "README.md"]  # the card goes last
    assert data_commit[3]["repo_type"] == "dataset" and data_commit[3]["revision"] == "main"
    assert api.calls[3][2]["tag"] == "v1.0"


def test_batches_hold_at_most_100_files(toy_release, monkeypatch):
    from instdecay.release import push as push_module

    out, _ = toy_release
    monkeypatch.setattr(push_module, "MAX_FILES_PER_COMMIT", 4)
    plan = push_module.plan_push(out, "org/preds", batch_size=4)
    n_data = len(list(out.rglob("*.parquet"))) + len(list((out / "figures").glob("*.png")))
    assert [len(b) for b in plan.batches[:-1]] == [4] * (n_data // 4) + ([n_data % 4] if n_data % 4 else [])
    assert len(plan.batches[-1]) == 4


def test_retry_with_backoff_on_429(toy_release):
    out, _ = toy_release
    api, waits = FakeApi(fail_first_commit_with=429), []
    push_release(out, "org/preds", api=api, sleep=waits.append, backoff_s=2.0)
    assert waits == [2.0] and sum(c[0] == "create_commit" for c in api.calls) == 2


def test_client_errors_are_not_retried(toy_release):
    out, _ = toy_release
    api, waits = FakeApi(fail_first_commit_with=403), []
    with pytest.raises(ValueError, match="HTTP 403"):
        push_release(out, "org/preds", api=api, sleep=waits.append)
    assert waits == []


def test_create_pr_sends_later_batches_to_the_same_pr(toy_release):
    out, _ = toy_release
    api = FakeApi()
    push_release(out, "org/preds", api=api, create_pr=True)
    commits = [c for c in api.calls if c[0] == "create_commit"]
    assert commits[0][3]["create_pr"] is True
    assert commits[1][3]["create_pr"] is False and commits[1][3]["revision"] == "refs/pr/7"


def test_dry_run_uploads_nothing(toy_release, capsys):
    out, _ = toy_release
    api = FakeApi()
    push_release(out, "org/preds", api=api, dry_run=True, tag="v1")
    assert api.calls == []
    printed = capsys.readouterr().out
    n_files = len(list(out.rglob("*.parquet"))) + len(list((out / "figures").glob("*.png"))) + 4
    assert f"would upload {n_files} files" in printed and "README.md" in printed and "figures/" in printed


def test_refuses_an_invalid_release(toy_release):
    out, _ = toy_release
    (out / "runs/toy.parquet").write_bytes(b"x")
    with pytest.raises(ValueError, match="refusing to push"):
        push_release(out, "org/preds", api=FakeApi())


@pytest.mark.parametrize("repo_id, tag, message", [
    ("", None, "repo id ''"), ("../../etc", None, "not valid on the Hub"), ("owner/<script>", None, "not valid"),
    ("justaname", None, "expected 'owner/name'"), ("org/preds", "v1 $(id)", "tag 'v1 $(id)' is not a valid git ref"),
    ("org/preds", "../x", "not a valid git ref"),
])
def test_repo_ids_and_tags_are_checked_like_the_hub(toy_release, repo_id, tag, message):
    out, _ = toy_release
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        push_release(out, repo_id, tag=tag, dry_run=True)


def test_network_failures_are_one_line(toy_release):
    out, _ = toy_release

    class Offline(FakeApi):
        def create_repo(self, repo_id, **kw):
            raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(ValueError, match=r"create_repo failed: ConnectError: .* \(check the network"):
        push_release(out, "org/preds", api=Offline())
    with pytest.raises(ValueError, match="commit 1/2 failed: HTTP 403"):
        push_release(out, "org/preds", api=FakeApi(fail_first_commit_with=403))
