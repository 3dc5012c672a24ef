"""The one resumable store: a file bound to its config, JSON rows by key, and the one-time
import of the JSONL files earlier versions wrote."""

import json

import pytest

from frugal.sqlite_file import ConfigMismatchError, RowStore, SQLiteFile


def test_claim_resumes_the_same_config_and_refuses_another(tmp_path):
    path = tmp_path / "s.sqlite"
    with SQLiteFile(path) as f:
        assert f.claim({"a": 1, "b": (1, 2), "runs": ["x"]}, ("a", "b"))["a"] == 1
        assert "torch" in f.get_meta("versions")
    with SQLiteFile(path) as f:  # tuples come back as lists: still the same config
        f.claim({"a": 1, "b": (1, 2), "runs": ["y"]}, ("a", "b"), grow=("runs",))
        assert f.get_meta("config")["runs"] == ["x", "y"]
        with pytest.raises(ConfigMismatchError) as exc:
            f.claim({"a": 2, "b": (1, 2)}, ("a", "b"), hint="use another --out")
    assert (
        str(exc.value) == f"{path} holds a frugal database made with a=1, not 2; use another --out"
    )
    with SQLiteFile(path) as f:  # the refused run changed nothing
        assert f.get_meta("config")["a"] == 1


def test_claim_upgrades_configs_written_before_a_field_existed(tmp_path):
    path = tmp_path / "s.sqlite"
    with SQLiteFile(path) as f:
        f.set_meta("config", {"a": 1})
        with_default = lambda old: {"c": 0} | old  # noqa: E731
        f.claim({"a": 1, "c": 0}, ("a", "c"), upgrade=with_default)
        with pytest.raises(ValueError, match="made with c=0, not 5"):
            f.claim({"a": 1, "c": 5}, ("a", "c"), upgrade=with_default)


def test_row_store_keeps_first_order_and_replaces_in_place(tmp_path):
    with RowStore(tmp_path / "r.sqlite") as s:
        s.put("b", {"v": 1})
        s.put("a", {"v": 2})
        s.put("b", {"v": 3})
        assert s.rows() == [{"v": 3}, {"v": 2}] and len(s) == 2
        assert s.get("a") == {"v": 2} and s.get("zz") is None


def test_jsonl_of_earlier_versions_is_imported_once(tmp_path):
    old = tmp_path / "results.jsonl"
    rows = [{"k": "x", "v": 1}, {"k": "y", "v": 2}]
    lines = [json.dumps({"config": {"a": 1}}), *map(json.dumps, rows), '{"k": "z", "v"']
    old.write_text("\n".join(lines))  # the last line was cut by a kill
    with RowStore(tmp_path / "r.sqlite") as s:
        assert s.import_jsonl(old, lambda h: h["config"], lambda r: r["k"]) == 2
        assert s.rows() == rows and s.get_meta("config") == {"a": 1}
        s.put("x", {"k": "x", "v": 9})
        assert s.import_jsonl(old, lambda h: h["config"], lambda r: r["k"]) == 0
        assert s.get("x")["v"] == 9  # a second import would have undone the new row
    (tmp_path / "bad.jsonl").write_text('{"config": ')
    with RowStore(tmp_path / "r2.sqlite") as s, pytest.raises(ValueError, match="no header"):
        s.import_jsonl(tmp_path / "bad.jsonl", dict, str)


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a frugal database"):
        RowStore(bad)
