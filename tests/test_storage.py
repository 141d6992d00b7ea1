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


def test_append_after_a_torn_line_starts_a_fresh_line(tmp_path):
    log = tmp_path / "events.jsonl"
    append_jsonl(log, {"event": "a"})
    with open(log, "a") as handle:
        handle.write('{"event": "b", "ti')
    append_jsonl(log, {"event": "c"})
    append_jsonl(log, {"event": "d"})
    assert read_jsonl(log) == [{"event": "a"}, {"event": "c"}, {"event": "d"}]


def test_a_torn_line_in_the_middle_and_stray_values_are_skipped(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(b'{"event": "a"}\n{"eve\xff\n42\n{"event": "b"}\n')
    assert read_jsonl(log) == [{"event": "a"}, {"event": "b"}]
