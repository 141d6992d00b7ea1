import pytest
import torch

from jetsynth.errors import JetsynthError
from jetsynth.nn.device import describe, resolve_amp, resolve_devices


def gpus(n):
    return lambda: n


def test_auto_is_every_gpu_or_the_cpu():
    assert resolve_devices("auto", gpus(0)) == ["cpu"]
    assert resolve_devices("auto", gpus(2)) == ["cuda:0", "cuda:1"]
    assert resolve_devices("cpu", gpus(2)) == ["cpu"]
    assert resolve_devices("cuda", gpus(3)) == ["cuda:0", "cuda:1", "cuda:2"]
    assert resolve_devices("CUDA:1", gpus(2)) == ["cuda:1"]


def test_this_machine_without_cuda_resolves_auto_to_the_cpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_devices("auto") == ["cpu"]
    with pytest.raises(JetsynthError, match="no CUDA GPU"):
        resolve_devices("cuda")


@pytest.mark.parametrize("text, count, message", [
    ("cuda", 0, r"`device` cuda: torch finds no CUDA GPU .*use `device` cpu"),
    ("cuda:0", 0, r"`device` cuda:0: torch finds no CUDA GPU"),
    ("cuda:2", 2, r"`device` cuda:2: this machine has 2 GPU\(s\), cuda:0 to cuda:1"),
    ("cuda:x", 2, r"`device` cuda:x: expected auto, cpu, cuda or cuda:N"),
    ("tpu", 2, r"`device` tpu: expected auto, cpu, cuda or cuda:N"),
])
def test_devices_this_machine_lacks_are_one_line(text, count, message):
    with pytest.raises(JetsynthError, match=message) as caught:
        resolve_devices(text, gpus(count))
    assert "\n" not in str(caught.value)


def test_amp_defaults_to_bf16_on_a_gpu_that_has_it_and_off_on_the_cpu():
    assert resolve_amp(None, "cpu") == "off"
    assert resolve_amp(None, "cuda:0", bf16=lambda: True) == "bf16"
    assert resolve_amp(None, "cuda:1", bf16=lambda: False) == "fp16"
    assert resolve_amp("bf16", "cpu") == "bf16"
    assert resolve_amp("off", "cuda:0") == "off"
    with pytest.raises(JetsynthError, match="`amp` fp16 needs a GPU"):
        resolve_amp("fp16", "cpu")
    with pytest.raises(JetsynthError, match="`amp` fp8: expected one of bf16, fp16, off"):
        resolve_amp("fp8", "cpu")


def test_the_line_says_what_trains():
    assert describe(["cpu"], "off") == "training on the CPU in fp32 (--device, --amp)"
    assert describe(["cpu"], "bf16") == "training on the CPU in mixed precision bf16 (--device, --amp)"
