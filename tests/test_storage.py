from jetsynth.storage import append_jsonl, read_json, read_jsonl, write_json


def test_write_json_leaves_no_temporary_files(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    write_json(tmp_path / "a.json", {"x": 2})
    assert read_json(tmp_path / "a.json") == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_torn_last_event_line_is_skipped(tmp_path):
    log = tmp_path / "events.jsonl"
    append_jsonl(log, {"event": "a"})
    with open(log, "a") as handle:
        handle.write('{"event": "b", "ti')
    assert read_jsonl(log) == [{"event": "a"}]
