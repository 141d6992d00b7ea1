import pytest
import torch

from jetsynth.core.genome import Lineage, ancestor_genome, load_genome, save_genome
from jetsynth.errors import JetsynthError


def test_ancestor_tags_are_unique_per_cluster():
    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    tags = torch.cat([t.flatten() for t in genome.tags.values()])
    assert len(tags) == 20 * 1 + 50 * 20 + 500 * 50 + 10 * 500
    assert len(torch.unique(tags)) == len(tags)
    assert all(m.all() for m in genome.masks.values())


def test_save_load_round_trip(tmp_path):
    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    mask = genome.masks["0"].clone()
    mask[0] = False
    masks = {**genome.masks, "0": mask}
    child = genome.with_masks(masks, Lineage("g02-m00", 2, 0, ("g01-m00",)))
    save_genome(child, tmp_path / "g")
    loaded = load_genome(tmp_path / "g")
    assert loaded.lineage == child.lineage
    assert loaded.layers == child.layers
    for key in child.state:
        assert torch.equal(loaded.state[key], child.state[key])
    assert torch.equal(loaded.masks["0"], mask) and loaded.masks["0"].dtype == torch.bool
    assert float(loaded.state["0.weight"][0].abs().sum()) == 0.0
    assert float(loaded.state["0.bias"][0]) == 0.0


def test_corrupt_genome_is_a_clear_error(tmp_path):
    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    save_genome(genome, tmp_path / "g")
    (tmp_path / "g" / "genome.safetensors").write_bytes(b"garbage")
    with pytest.raises(JetsynthError, match="unreadable safetensors"):
        load_genome(tmp_path / "g")
    with pytest.raises(JetsynthError, match="no saved genome"):
        load_genome(tmp_path / "missing")


def test_a_format_1_genome_loads_and_a_future_one_is_refused(tmp_path):
    """Format 1 (the chain-only core) saved the same tensors plus a list of chain layers."""
    import json

    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    save_genome(genome, tmp_path / "g")
    meta_path = tmp_path / "g" / "genome.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format"] == 2
    meta_path.write_text(json.dumps({**meta, "format": 1, "layers": [{"name": "0", "kind": "conv"}]}))
    loaded = load_genome(tmp_path / "g")
    assert all(torch.equal(loaded.masks[k], genome.masks[k]) for k in genome.masks)
    meta_path.write_text(json.dumps({**meta, "format": 3}))
    with pytest.raises(JetsynthError, match="genome format 3 is not supported"):
        load_genome(tmp_path / "g")


def test_a_genome_of_another_network_is_refused(tmp_path):
    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    save_genome(genome, tmp_path / "g")
    other = ancestor_genome("lenet5", (1, 28, 28), 5, seed=0)
    with pytest.raises(JetsynthError, match="does not belong to this run"):
        load_genome(tmp_path / "g", other.topology)


def test_a_genome_travels_as_one_safetensors_blob(tmp_path):
    from safetensors.torch import load

    from jetsynth.core.genome import blob_header, genome_bytes, genome_from_bytes

    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    masks = {k: torch.rand(v.shape) > 0.5 for k, v in genome.masks.items()}
    genome = genome.with_masks(masks, Lineage("g02-m01", 2, 1, ("g01-m00",)))
    blob = genome_bytes(genome)
    assert set(load(blob)) >= {"mask/0", "state/0.weight", "tag/0"}  # a plain safetensors file
    assert blob_header(blob)["lineage"]["parents"] == ["g01-m00"]
    back = genome_from_bytes(blob, genome.topology)
    assert back.lineage == genome.lineage
    for name in genome.state:
        assert torch.equal(back.state[name], genome.state[name])
    for name in genome.masks:
        assert torch.equal(back.masks[name], genome.masks[name])
    with pytest.raises(JetsynthError, match="not a genome blob"):
        blob_header(b"\x00" * 16)
