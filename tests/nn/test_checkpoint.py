import math
from dataclasses import replace

import pytest
import torch

from jetsynth.core.genome import ancestor_genome
from jetsynth.nn.checkpoint import META_FILE
from jetsynth.run.train import TrainConfig, cosine_lr, train_genome


class Killed(Exception):
    pass


@pytest.mark.parametrize("augment", [False, True])
def test_interrupted_training_resumes_to_the_same_weights(tmp_path, digits, augment):
    digits = replace(digits, augment=augment)  # the augmentation's draws resume too
    per_epoch = math.ceil(len(digits.train_x) / 128)
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    config = TrainConfig(epochs=3)
    reference = train_genome(genome, digits, config, seed=1)

    def kill_in_third_epoch(done, total):
        if done == 2 * per_epoch + 3:
            raise Killed

    with pytest.raises(Killed):
        train_genome(genome, digits, config, seed=1, on_step=kill_in_third_epoch,
                     checkpoint_dir=tmp_path)
    assert (tmp_path / META_FILE).is_file()
    steps = []
    resumed = train_genome(genome, digits, config, seed=1, on_step=lambda d, t: steps.append(d),
                           checkpoint_dir=tmp_path)
    assert steps[0] == 2 * per_epoch + 1  # two epochs were not trained again
    for key, value in reference.genome.state.items():
        assert torch.equal(resumed.genome.state[key], value), key
    assert resumed.metrics["accuracy"] == reference.metrics["accuracy"]
    assert not (tmp_path / META_FILE).exists()


def test_checkpoint_of_another_training_is_ignored(tmp_path, digits):
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)

    def stop(done, total):
        if done == 13:
            raise Killed

    with pytest.raises(Killed):
        train_genome(genome, digits, TrainConfig(epochs=2), seed=1, on_step=stop,
                     checkpoint_dir=tmp_path)
    steps = []
    train_genome(genome, digits, TrainConfig(epochs=2), seed=2,
                 on_step=lambda d, t: steps.append(d), checkpoint_dir=tmp_path)
    assert steps[0] == 1


def test_cosine_schedule_by_hand():
    assert cosine_lr(1.0, 0, 10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 5, 10) == pytest.approx(0.525)
    assert cosine_lr(1.0, 10, 10) == pytest.approx(0.05)


def _saved_checkpoint(directory):
    from jetsynth.nn.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    order = torch.Generator().manual_seed(1)
    save_checkpoint(directory, {"member": "g02-m00"}, 1, net, optimizer, order)
    return net, optimizer, order


@pytest.mark.parametrize("damage", ["nan", "int8", "shape", "optimizer inf", "meta nested",
                                    "meta a fifo", "rng missing"])
def test_a_damaged_checkpoint_is_ignored(tmp_path, damage):
    """A checkpoint that is not the network's finite weights trains the member from its start
    (load returns 0 epochs) instead of resuming from it."""
    import os

    from safetensors.torch import load_file, save_file

    from jetsynth.nn.checkpoint import TENSORS_FILE, load_checkpoint

    net, optimizer, order = _saved_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path, {"member": "g02-m00"}, net, optimizer, order) == 1
    tensors = load_file(str(tmp_path / TENSORS_FILE))
    if damage == "nan":
        tensors["model/0.weight"][0, 0] = float("nan")
    elif damage == "int8":
        tensors["model/0.weight"] = tensors["model/0.weight"].to(torch.int8)
    elif damage == "shape":
        tensors["model/0.weight"] = tensors["model/0.weight"].reshape(4, 3).contiguous()
    elif damage == "optimizer inf":
        key = next(k for k in tensors if k.startswith("optim/") and k.endswith("exp_avg"))
        tensors[key][0] = float("inf")
    elif damage == "rng missing":
        del tensors["rng/order"]
    elif damage == "meta nested":
        (tmp_path / META_FILE).write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "meta a fifo":
        (tmp_path / META_FILE).unlink()
        os.mkfifo(tmp_path / META_FILE)
    save_file(tensors, str(tmp_path / TENSORS_FILE))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert load_checkpoint(tmp_path, {"member": "g02-m00"}, net, optimizer, order) == 0
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_fp16_training_resumes_with_its_gradient_scale(tmp_path, digits, monkeypatch):
    """fp16's gradient scaler skips the steps whose scaled gradients overflow and halves its
    scale then: a resumed training that started again from 65,536 would skip other steps. Run on
    the CPU with torch's CPU GradScaler, past `resolve_amp`'s refusal of fp16 there."""
    import json

    from jetsynth.run import train

    monkeypatch.setattr(train, "resolve_amp", lambda amp, device: amp)
    # LeNet's gradients never overflow at 65,536: start high and grow often so that they do
    monkeypatch.setattr(train, "gradient_scaler", lambda device, amp: torch.amp.GradScaler(
        device.type, init_scale=2.0 ** 24, growth_interval=3))
    per_epoch = math.ceil(len(digits.train_x) / 128)
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    config = TrainConfig(epochs=2, amp="fp16")
    reference = train_genome(genome, digits, config, seed=1)

    def kill_in_second_epoch(done, total):
        if done == per_epoch + 2:
            raise Killed

    with pytest.raises(Killed):
        train_genome(genome, digits, config, seed=1, on_step=kill_in_second_epoch,
                     checkpoint_dir=tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["scaler"]["scale"] < 2.0 ** 24  # overflowed in the first epoch
    resumed = train_genome(genome, digits, config, seed=1, checkpoint_dir=tmp_path)
    for key, value in reference.genome.state.items():
        assert torch.equal(resumed.genome.state[key], value), key
    # a checkpoint of an fp16 training without its scaler state is not resumed
    with pytest.raises(Killed):
        train_genome(genome, digits, config, seed=1, on_step=kill_in_second_epoch,
                     checkpoint_dir=tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["scaler"]["scale"] = -1.0
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    steps = []
    train_genome(genome, digits, config, seed=1, on_step=lambda d, t: steps.append(d),
                 checkpoint_dir=tmp_path)
    assert steps[0] == 1


@pytest.mark.parametrize(("change", "usable"), [
    ({}, True), ({"scale": 0.0}, False), ({"scale": "65536"}, False),
    ({"_growth_tracker": 1.5}, False), ({"backoff_factor": 1.0}, False),
    ({"growth_interval": 0}, False), ({"growth_factor": True}, False)])
def test_scaler_state_by_hand(change, usable):
    from jetsynth.nn.checkpoint import _scaler_state

    state = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
             "_growth_tracker": 3}
    assert _scaler_state({**state, **change}) is usable
