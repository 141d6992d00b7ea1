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


def test_written_files_respect_the_umask_not_0600(tmp_path):
    import os

    from jetsynth.storage import atomic_write

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        atomic_write(tmp_path / "b.bin", lambda tmp: tmp.write_bytes(b"x"))
        os.umask(0o027)
        write_json(tmp_path / "c.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o640


def test_remove_partial_writes_removes_only_temporary_files(tmp_path):
    from jetsynth.storage import remove_partial_writes

    member = tmp_path / "members" / "g02-m00"
    member.mkdir(parents=True)
    (member / ".member.json.abc123.tmp").write_text("{")
    (member / "genome.json").write_text("{}")
    (tmp_path / ".config.json.x.tmp").write_text("")
    removed = remove_partial_writes(tmp_path)
    assert sorted(p.name for p in removed) == [".config.json.x.tmp", ".member.json.abc123.tmp"]
    assert [p.name for p in member.iterdir()] == ["genome.json"]


def test_genomes_respect_the_umask(tmp_path):
    import os

    from jetsynth.core.genome import ancestor_genome, save_genome

    old = os.umask(0o022)
    try:
        save_genome(ancestor_genome("lenet5", (1, 28, 28), 10, 0), tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"genome.json": 0o644, "genome.safetensors": 0o644}


def test_json_depth_by_hand():
    from jetsynth.storage import json_depth

    assert json_depth("1") == 0
    assert json_depth('{"a": [1, {"b": []}]}') == 4
    assert json_depth('{"a": "[[[{{{\\"[["}') == 1  # brackets inside strings do not nest
    assert json_depth("[" * 100 + "]" * 100, limit=5) == 6  # counted one past the limit, no further


def test_deeply_nested_json_is_refused_without_recursion(tmp_path):
    import pytest

    from jetsynth.storage import MAX_JSON_DEPTH, RefusedJSON

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RefusedJSON, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        read_json(path)
    path.write_text("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert read_json(path) is not None


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    import os

    import pytest

    fifo = tmp_path / "member.json"
    os.mkfifo(fifo)  # no writer: a plain read would block forever
    with pytest.raises(OSError, match="is not a regular file"):
        read_json(fifo)
    with pytest.raises(OSError, match="is not a regular file"):
        read_json(tmp_path)
    with pytest.raises(OSError, match="is not a regular file"):
        read_json("/dev/zero")
    with pytest.raises(OSError, match="is not a regular file"):
        read_jsonl(fifo)


def test_a_deeply_nested_event_line_is_skipped(tmp_path):
    log = tmp_path / "events.jsonl"
    append_jsonl(log, {"event": "a"})
    with open(log, "a") as handle:
        handle.write("[" * 100_000 + "]" * 100_000 + "\n")
    append_jsonl(log, {"event": "b"})
    assert read_jsonl(log) == [{"event": "a"}, {"event": "b"}]


def test_sha256_of_a_file_by_hand(tmp_path):
    from jetsynth.storage import sha256_file

    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
