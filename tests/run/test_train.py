import math
import threading
import time

import pytest
import torch

from jetsynth.core.genome import ancestor_genome
from jetsynth.core.synthesis import SynthesisConfig, synthesize
from jetsynth.errors import JetsynthError
from jetsynth.run import train
from jetsynth.run.train import TrainConfig, eval_rows, restrict_precision, train_genome


def test_training_learns_digits_and_keeps_masks(digits):
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    child = synthesize(genome, SynthesisConfig(keep=0.3), torch.Generator().manual_seed(0),
                       genome.lineage)
    steps = []
    result = train_genome(child, digits, TrainConfig(epochs=3), seed=0,
                          on_step=lambda d, t: steps.append((d, t)))
    assert result.metrics["accuracy"] > 0.8
    assert steps[-1][0] == steps[-1][1] == 3 * math.ceil(len(digits.train_x) / 128)
    for layer in child.layers:
        weight = result.genome.state[f"{layer.name}.weight"]
        assert (weight[~child.masks[layer.name]] == 0).all()
        assert (weight[child.masks[layer.name]] != child.state[f"{layer.name}.weight"][
            child.masks[layer.name]]).any()
    assert set(result.metrics) == {"accuracy", "val_accuracy", "train_seconds", "epochs", "device",
                                   "amp"}
    assert (result.metrics["device"], result.metrics["amp"]) == ("cpu", "off")
    assert result.metrics["val_accuracy"] > 0.8


def test_training_is_deterministic(digits):
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    a = train_genome(genome, digits, TrainConfig(epochs=1), seed=3)
    b = train_genome(genome, digits, TrainConfig(epochs=1), seed=3)
    assert a.metrics["accuracy"] == b.metrics["accuracy"]
    assert torch.equal(a.genome.state["0.weight"], b.genome.state["0.weight"])


def test_fp16_restriction(digits):
    state = restrict_precision({"w": torch.tensor([1.0 + 2**-12, 0.1]), "n": torch.tensor([3])},
                               "fp16")
    assert state["w"].tolist() == [1.0, torch.tensor(0.1).half().item()]
    assert state["n"].dtype == torch.int64
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    result = train_genome(genome, digits, TrainConfig(epochs=1, precision="fp16"), seed=0)
    weight = result.genome.state["3.weight"]
    assert torch.equal(weight, weight.half().float())
    assert result.genome.precision == "fp16"


def test_fit_steps_epochs_and_hooks(digits):
    from jetsynth.run.train import fit

    torch.manual_seed(0)
    net = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0).build()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    after, progress, epochs = [], [], []
    before = net[0].weight.detach().clone()
    fit(net, digits, TrainConfig(epochs=2, batch_size=256), optimizer, torch.Generator().manual_seed(0),
        first_epoch=1, after_step=lambda: after.append(1), on_step=lambda d, t: progress.append((d, t)),
        after_epoch=epochs.append)
    per_epoch = math.ceil(len(digits.train_x) / 256)
    assert len(after) == per_epoch
    assert progress[0] == (per_epoch + 1, 2 * per_epoch)
    assert progress[-1] == (2 * per_epoch, 2 * per_epoch)
    assert epochs == [2]
    assert optimizer.param_groups[0]["lr"] < 1e-3
    assert not torch.equal(net[0].weight, before)
    assert net[0].weight.is_contiguous()


def test_a_network_trains_on_after_evaluation(digits):
    from jetsynth.run.train import evaluate, fit

    net = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0).build()
    evaluate(net, digits.val_x, digits.val_y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    fit(net, digits, TrainConfig(epochs=1), optimizer, torch.Generator().manual_seed(0))
    assert evaluate(net, digits.val_x, digits.val_y) > 0.5


def test_inherited_loss_of_a_silent_network_is_log_classes(digits):
    """All weights and biases zero: every logit is 0, so the cross-entropy is ln 10 per image."""
    from jetsynth.run.train import inherited_loss

    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    silent = genome.with_state({k: torch.zeros_like(v) for k, v in genome.state.items()})
    loss = inherited_loss(silent, digits.train_x[:100], digits.train_y[:100])
    assert loss == pytest.approx(math.log(10), abs=1e-6)
    assert inherited_loss(genome, digits.train_x[:100], digits.train_y[:100]) != pytest.approx(loss)


def test_screening_rows_are_a_fixed_sample_without_repeats():
    from jetsynth.run.train import SCREEN_IMAGES, screening_rows

    rows = screening_rows(10_000, seed=3)
    assert len(rows) == SCREEN_IMAGES == len(set(rows.tolist()))
    assert torch.equal(rows, screening_rows(10_000, seed=3))
    assert not torch.equal(rows, screening_rows(10_000, seed=4))
    assert sorted(screening_rows(50, seed=0).tolist()) == list(range(50))


def test_a_new_head_trains_alone_first(digits):
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    config = TrainConfig(epochs=0, batch_size=64, lr=1e-2, head="9", head_epochs=1)
    steps = []
    trained = train_genome(genome, digits, config, seed=0, on_step=lambda done, total: steps.append(total))
    before, after = genome.state, trained.genome.state
    assert torch.equal(after["0.weight"], before["0.weight"])
    assert torch.equal(after["7.bias"], before["7.bias"])
    assert not torch.equal(after["9.weight"], before["9.weight"])  # only the head learned
    assert set(steps) == {math.ceil(len(digits.train_x) / 64)}  # one epoch of the head, counted
    whole = train_genome(genome, digits, TrainConfig(epochs=1, batch_size=64, lr=1e-2, head="9",
                                                     head_epochs=1), seed=0)
    assert not torch.equal(whole.genome.state["0.weight"], before["0.weight"])


def test_a_kill_during_the_head_epochs_resumes_to_the_same_weights(digits, tmp_path):
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    config = TrainConfig(epochs=1, batch_size=256, lr=1e-2, head="9", head_epochs=2)
    whole = train_genome(genome, digits, config, seed=0)
    per_epoch = math.ceil(len(digits.train_x) / 256)

    def kill(done, _total):
        if done == per_epoch + 1:  # inside the second head epoch, the first one saved
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_genome(genome, digits, config, seed=0, on_step=kill, checkpoint_dir=tmp_path)
    resumed = train_genome(genome, digits, config, seed=0, checkpoint_dir=tmp_path)
    assert all(torch.equal(resumed.genome.state[k], v) for k, v in whole.genome.state.items())


@pytest.mark.parametrize(("value", "precision"), [(float("nan"), "fp32"), (1e6, "fp16")])
def test_weights_that_are_not_finite_after_training_are_never_recorded(digits, value, precision):
    """NaN weights, or weights fp16 cannot hold (65,504 at most), end the training with one line
    instead of a member that later generations would be bred from."""
    from jetsynth.errors import JetsynthError

    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    genome.state["0.bias"][0] = value
    with pytest.raises(JetsynthError, match=r"g01-m00: training diverged \(0.bias holds NaN or "
                                            r"infinite values"):
        train_genome(genome, digits, TrainConfig(epochs=0, precision=precision), seed=1)


def test_bf16_autocast_trains_on_the_cpu_and_keeps_masks(digits):
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    child = synthesize(genome, SynthesisConfig(keep=0.3), torch.Generator().manual_seed(0),
                       genome.lineage)
    result = train_genome(child, digits, TrainConfig(epochs=2, amp="bf16"), seed=0)
    assert result.metrics["amp"] == "bf16" and result.metrics["accuracy"] > 0.7
    for layer in child.layers:
        weight = result.genome.state[f"{layer.name}.weight"]
        assert weight.dtype == torch.float32  # autocast computes in bf16, the weights stay fp32
        assert (weight[~child.masks[layer.name]] == 0).all()
    fp32 = train_genome(child, digits, TrainConfig(epochs=2), seed=0)
    assert not torch.equal(fp32.genome.state["0.weight"], result.genome.state["0.weight"])


def test_evaluation_chunks_bound_the_pixels_on_the_cpu():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert eval_rows((1, 3, 28, 28), cpu) == 256  # small images: as before
    assert eval_rows((1, 3, 224, 224), cpu) == 256 * 64 * 64 // (224 * 224) == 20
    assert eval_rows((1, 3, 4096, 4096), cpu) == 1
    assert eval_rows((1, 3, 224, 224), gpu) == 256


def test_out_of_gpu_memory_names_the_member_the_batch_and_what_to_lower(digits, monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train, "fit", exhausted)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    genome = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0)
    with pytest.raises(JetsynthError) as caught:
        train_genome(genome, digits, TrainConfig(epochs=1, batch_size=96), seed=0)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{genome.lineage.id}: out of GPU memory")
    assert "batches of 96 images of 1×28×28" in message and "--batch-size (e.g. 48)" in message
    assert "--resume" in message


def test_a_training_step_waits_while_its_gpu_is_timed(digits, tmp_path, monkeypatch):
    """The trainer holds its GPU for each step (nn.gpu_lock): while a timing holds it, no step
    runs, and training goes on when the timing ends. The CPU trainer stands in for one on cuda:0
    for the lock only."""
    from jetsynth.nn.gpu_lock import gpu_turn
    from jetsynth.run.train import fit

    folder = tmp_path / "locks"
    monkeypatch.setattr(train, "gpu_turn", lambda device: gpu_turn("cuda:0", folder))
    net = ancestor_genome("lenet5", digits.input_shape, digits.classes, seed=0).build()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    progress = []
    stepping = threading.Event()

    def trained() -> None:
        fit(net, digits, TrainConfig(epochs=2, batch_size=16), optimizer,
            torch.Generator().manual_seed(0),
            on_step=lambda done, total: (progress.append(done), stepping.set()))

    trainer = threading.Thread(target=trained)
    trainer.start()
    try:
        assert stepping.wait(60)
        with gpu_turn("cuda:0", folder):  # a member timed on the GPU
            held = len(progress)
            time.sleep(0.5)
            assert len(progress) <= held + 1  # at most the step that had begun when it was asked
            during = len(progress)
            time.sleep(0.5)
            assert len(progress) == during
    finally:
        trainer.join(120)
    assert progress[-1] == 2 * math.ceil(len(digits.train_x) / 16)
