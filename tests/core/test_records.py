import json

import pytest

from jetsynth.core.records import DamagedRecord, MemberRecord

RECORD = {
    "id": "g02-m00", "generation": 2, "member": 0, "parents": ["g01-m00"], "seed": 7,
    "accuracy": 0.95, "val_accuracy": None, "synapses": 10, "clusters": 4, "kernels": 4,
    "units": 3, "macs": 100, "synaptic_efficiency": 2.0, "cluster_efficiency": 1.5,
    "mac_reduction": 1.2, "layers": [{"name": "conv1", "synapses": 10, "clusters": 4}],
    "layer_cluster_efficiency": [1.5], "layer_synaptic_efficiency": [2.0], "fps": None,
    "environment": {"m": 1, "R": 0.5, "r": 0.5}, "train_seconds": 1.25, "epochs": 1,
}


def test_round_trip_keeps_exactly_the_written_fields():
    record = MemberRecord.from_json(json.loads(json.dumps(RECORD)))
    assert record.to_json() == RECORD
    assert record.parents == ("g01-m00",) and record.train_seconds == 1.25
    assert record.environment.keep == 0.5 and record.extra == {} and record.epochs == 1
    assert json.dumps(record.to_json()) == json.dumps(RECORD)  # the keys in the order written


BENCH = {"retimed": 0, "backend": "ort-cpu", "threads": 1, "produced_by": "onnxruntime 1.20",
         "latency_ms": 0.25, "source": "measured", "predictor": None, "precision": "fp32",
         "batch": 8, "onnx_bytes": 1234, "onnx_macs": 100, "architecture": "ab" * 32,
         "features": [1.0, 2.5]}


def test_speed_fields_are_typed_and_written_back_as_read():
    data = {**RECORD, "fps": 4000.0, "fps_iqr": [3900.0, 4100.0], "fps_predicted": None,
            "bench": BENCH}
    record = MemberRecord.from_json(json.loads(json.dumps(data)))
    assert record.fps_iqr == (3900.0, 4100.0) and record.bench.batch == 8
    assert record.bench.features == (1.0, 2.5) and record.bench.source == "measured"
    assert record.bench.extra["latency_ms"] == 0.25
    assert json.dumps(record.to_json()) == json.dumps(data)


def test_with_speed_adds_the_speed_fields_after_the_written_ones():
    from jetsynth.core.records import BenchRecord, Speed

    record = MemberRecord.from_json(RECORD)
    bench = BenchRecord.from_json({"backend": "ort-cpu", "source": "predicted", "batch": 1})
    timed = record.with_speed(Speed(None, None, 512.0, bench))
    written = timed.to_json()
    assert list(written)[-4:] == ["epochs", "fps_iqr", "fps_predicted", "bench"]
    assert written["fps_iqr"] is None and written["fps_predicted"] == 512.0
    assert written["bench"] == {"backend": "ort-cpu", "source": "predicted", "batch": 1}


def test_fps_may_be_absent_and_efficiency_infinite():
    data = {k: v for k, v in RECORD.items() if k != "fps"}
    data["layer_cluster_efficiency"] = [float("inf")]
    assert MemberRecord.from_json(data).fps is None


@pytest.mark.parametrize(("data", "problem"), [
    ([1, 2], "a JSON object expected, found list"),
    ({"id": "x"}, "missing accuracy"),
    ({**RECORD, "accuracy": 1.5}, "wrong value for accuracy"),
    ({**RECORD, "accuracy": float("nan")}, "wrong value for accuracy"),
    ({**RECORD, "generation": 0}, "wrong value for generation"),
    ({**RECORD, "synapses": True}, "wrong value for synapses"),
    ({**RECORD, "layers": [{"name": 3}]}, "wrong value for layers"),
    ({**RECORD, "parents": "g01-m00"}, "wrong value for parents"),
    ({**RECORD, "fps": -1.0}, "wrong value for fps"),
    ({**RECORD, "fps_iqr": [1.0]}, "wrong value for fps_iqr"),
    ({**RECORD, "bench": {"batch": 0}}, "wrong value for bench"),
    ({**RECORD, "bench": {"features": ["x"]}}, "wrong value for bench"),
    ({**RECORD, "environment": {"m": 1}}, "wrong value for environment"),
])
def test_invalid_records_name_the_file(data, problem):
    with pytest.raises(DamagedRecord) as caught:
        MemberRecord.from_json(data, "RUN/members/g02-m00/member.json")
    assert caught.value.problem.startswith(problem)
    assert str(caught.value).startswith("RUN/members/g02-m00/member.json is damaged")


@pytest.mark.parametrize(("text", "problem"), [("", "empty"), ("{{", "not JSON")])
def test_read_of_an_empty_or_garbage_file(tmp_path, text, problem):
    path = tmp_path / "member.json"
    path.write_text(text)
    with pytest.raises(DamagedRecord) as caught:
        MemberRecord.read(path)
    assert caught.value.problem == problem and caught.value.path == path


def test_sha256_is_optional_and_written_back_only_when_present():
    digest = "ab" * 32
    assert MemberRecord.from_json(RECORD).sha256 is None
    assert "sha256" not in MemberRecord.from_json(RECORD).to_json()  # a run of an earlier version
    assert MemberRecord.from_json({**RECORD, "sha256": digest}).to_json()["sha256"] == digest
    for bad in ("AB" * 32, "ab", 5):
        with pytest.raises(DamagedRecord, match="wrong value for sha256"):
            MemberRecord.from_json({**RECORD, "sha256": bad})


@pytest.mark.parametrize(("change", "folder", "problem"), [
    ({}, "g02-m00", None),
    ({}, "g02-m01", "its id 'g02-m00' is not its folder's name 'g02-m01'"),
    ({"id": "../g02-m00"}, "../g02-m00", "is not its folder's name"),
    ({"member": 3}, "g02-m00", "contradicts its generation 2 and member 3"),
    ({"parents": ["../../../../etc/passwd"]}, "g02-m00", "'../../../../etc/passwd' is not a member"),
    ({"parents": ["g02-m01"]}, "g02-m00", "'g02-m01' is not a member of an earlier generation"),
    ({"id": "g01-m00", "generation": 1, "parents": []}, "g01-m00", None),
])
def test_identity_problems(change, folder, problem):
    from jetsynth.core.records import identity_problem

    found = identity_problem(MemberRecord.from_json({**RECORD, **change}), folder)
    assert found == problem if problem is None else problem in found
