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
