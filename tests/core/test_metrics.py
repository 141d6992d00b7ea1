import pytest

from jetsynth.core.genome import ancestor_genome
from jetsynth.core.metrics import efficiency, size_metrics


def test_lenet5_ancestor_figures():
    metrics = size_metrics(ancestor_genome("lenet5", (1, 28, 28), 10, seed=0))
    assert metrics["synapses"] == 430500
    assert metrics["clusters"] == metrics["kernels"] == 20 + 1000 + 500 + 10
    assert size_metrics(ancestor_genome("lenet5", (1, 28, 28), 10, seed=0), "filter")[
        "clusters"] == 20 + 50 + 500 + 10
    assert metrics["units"] == 580
    assert metrics["macs"] == 20 * 25 * 576 + 50 * 20 * 25 * 64 + 500 * 800 + 10 * 500


def test_macs_count_the_compacted_network():
    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    mask = genome.masks["3"].clone()
    mask[25:] = False  # half of conv2's filters die
    metrics = size_metrics(genome.with_masks({**genome.masks, "3": mask}, genome.lineage))
    assert metrics["layers"][1]["units"] == 25
    assert metrics["layers"][2]["macs"] == 500 * 25 * 16


def test_efficiency_by_hand():
    ancestor = {"synapses": 100, "clusters": 10, "macs": 50,
                "layers": [{"synapses": 60, "clusters": 6}, {"synapses": 40, "clusters": 4}]}
    current = {"synapses": 25, "clusters": 5, "macs": 10,
               "layers": [{"synapses": 20, "clusters": 3}, {"synapses": 5, "clusters": 2}]}
    eff = efficiency(ancestor, current)
    assert eff["synaptic_efficiency"] == 4.0
    assert eff["cluster_efficiency"] == 2.0
    assert eff["mac_reduction"] == 5.0
    assert eff["layer_cluster_efficiency"] == [2.0, 2.0]
    assert eff["layer_synaptic_efficiency"] == pytest.approx([3.0, 8.0])




def test_chance_is_the_most_common_class_and_learning_starts_five_percent_above_it():
    from jetsynth.core.metrics import at_chance, chance_accuracy

    assert chance_accuracy([5, 3, 2]) == 0.5 and chance_accuracy([10] * 10) == 0.1
    assert at_chance(0.144, 0.1) and not at_chance(0.146, 0.1)  # 0.1 + 0.9 × 0.05 = 0.145
    assert at_chance(0.52, 0.5) and not at_chance(0.53, 0.5)  # 0.5 + 0.5 × 0.05 = 0.525
