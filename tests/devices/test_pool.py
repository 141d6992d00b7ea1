import threading

import pytest

from jetsynth.devices.inventory import Device
from jetsynth.devices.pool import DevicePool, one_kind
from jetsynth.errors import JetsynthError


def test_a_pool_is_one_kind_of_board_each_named_once():
    a, b = Device("tx1-a", "10.0.0.1", profile="tx1"), Device("tx1-b", "10.0.0.2", profile="tx1")
    assert one_kind([a, b], ["tx1-a", "tx1-b"]) == [a, b]
    with pytest.raises(JetsynthError, match=r"different boards \(tx1-a: tx1, nx: xavier-nx\)"):
        one_kind([a, Device("nx", "10.0.0.3", profile="xavier-nx")], ["tx1-a", "nx"])
    with pytest.raises(JetsynthError, match="`bench` ort-cpu times on this machine"):
        one_kind([a, "ort-cpu"], ["tx1-a", "ort-cpu"])
    # boards behind one host, reached on two ports, get the port in their names
    gate = [Device("gate", "gate", "pi", 2201), Device("gate", "gate", "pi", 2202)]
    assert [d.name for d in one_kind(gate, ["pi@gate:2201", "pi@gate:2202"])] == ["gate-2201", "gate-2202"]


def test_a_device_is_lent_to_one_thread_at_a_time():
    pool = DevicePool([Device("a", "h1"), Device("b", "h2")])
    both = threading.Barrier(2, timeout=10)
    held = []

    def use() -> None:
        with pool.lease() as device:
            held.append(device.name)
            both.wait()  # two threads hold a device at once

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(held) == ["a", "b"]
    with pool.lease() as first, pool.lease() as second:  # both were given back
        assert {first.name, second.name} == {"a", "b"}
    with pool.lease(avoid=["a"]) as device:  # a board that failed a network is not lent it again
        assert device.name == "b"
