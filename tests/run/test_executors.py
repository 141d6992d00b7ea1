import threading
import time
from dataclasses import replace

import pytest

from jetsynth.errors import JetsynthError
from jetsynth.run.config import EvolveConfig
from jetsynth.run.executors import placement, placement_line, spread


def test_one_member_per_device_at_a_time_all_devices_at_once():
    devices = ["cuda:0", "cuda:1"]
    busy: dict[str, int] = {}
    most = {"together": 0}
    taken = []
    lock = threading.Lock()

    def tasks():
        for task in range(5):
            taken.append(task)
            yield task

    def work(task, device):
        with lock:
            busy[device] = busy.get(device, 0) + 1
            assert busy[device] == 1, "two members on one device"
            most["together"] = max(most["together"], sum(busy.values()))
        time.sleep(0.05 * (1 + task % 2))
        with lock:
            busy[device] -= 1
        return task * 10, device

    results = list(spread(tasks(), devices, work))
    assert sorted(task for task, _ in results) == [0, 1, 2, 3, 4]
    assert all(value == task * 10 for task, (value, _) in results)
    assert most["together"] == 2
    assert {device for _, (_, device) in results} == set(devices)
    assert results[0] == (0, (0, "cuda:0"))  # task 0 is quicker, on the first device


def test_tasks_are_bred_only_when_a_device_is_free():
    taken = []

    def tasks():
        for task in range(4):
            taken.append(task)
            yield task

    stream = spread(tasks(), ["cuda:0", "cuda:1"], lambda task, device: device)
    next(stream)
    assert len(taken) <= 3  # two running, at most one more bred once one finished
    assert len(list(stream)) == 3 and taken == [0, 1, 2, 3]


def test_an_error_in_a_member_reaches_the_caller():
    def work(task, device):
        if task == 1:
            raise JetsynthError("g02-m01: out of GPU memory")
        return task

    with pytest.raises(JetsynthError, match="out of GPU memory"):
        list(spread(range(3), ["cuda:0", "cuda:1"], work))


def test_placement_resolves_the_device_and_checks_amp_before_anything_is_written():
    config = EvolveConfig()
    assert placement(config, lambda: 0) == ["cpu"]
    assert placement(config, lambda: 2) == ["cuda:0", "cuda:1"]
    assert placement(replace(config, device="cuda:1"), lambda: 2) == ["cuda:1"]
    with pytest.raises(JetsynthError, match="`device` cuda: torch finds no CUDA GPU"):
        placement(replace(config, device="cuda"), lambda: 0)
    with pytest.raises(JetsynthError, match="`amp` fp16 needs a GPU"):
        placement(replace(config, amp="fp16"), lambda: 0)
    ray = replace(config, executor="ray", gpus_per_member=0.5)
    assert placement(ray, lambda: 0) == []  # where Ray places members: its GPU, not ours
    assert "the GPU Ray assigns" in placement_line(ray, [])
    assert placement_line(config, ["cpu"]) == "training on the CPU in fp32 (--device, --amp)"


def test_a_ray_worker_trains_on_the_gpu_ray_assigned():
    pytest.importorskip("ray")
    from jetsynth.run.ray_executor import worker_device

    assert worker_device([3]) == "cuda:0"  # Ray narrows CUDA_VISIBLE_DEVICES to GPU 3
    assert worker_device([]) == "cpu"
