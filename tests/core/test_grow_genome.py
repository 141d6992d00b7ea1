"""Grown genomes behave like any other: traced, compacted, saved, synthesised, exported."""

import torch

from jetsynth.core.genome import Lineage, ancestor_genome, load_genome, save_genome
from jetsynth.core.grow_genome import TAG_BLOCK, grow_genome, transform_of
from jetsynth.core.synthesis import SynthesisConfig, synthesize
from jetsynth.nn.compact import compact
from jetsynth.nn.growth import Transform

OPS = [Transform("wide", "0", 5, 2, 1), Transform("deep", "4", 1, 3, 2),
       Transform("wide", "0.wide1.expand", 3, 2, 3)]


def test_growth_keeps_weights_masks_and_tags_and_tags_new_blocks_fresh(tmp_path):
    genome = ancestor_genome("small-cnn", (1, 16, 16), 10, 0)
    grown = grow_genome(genome, OPS)
    assert grown.arch == "small-cnn|wide(0,5,2,1)|deep(4,1,3,2)|wide(0.wide1.expand,3,2,3)"
    assert torch.equal(grown.state["0.base.weight"], genome.state["0.weight"])
    assert torch.equal(grown.tags["0.base"], genome.tags["0"])
    assert torch.equal(grown.tags["13"], genome.tags["13"])
    old = set(torch.cat([t.flatten() for t in genome.tags.values()]).tolist())
    new = {name: t for name, t in grown.tags.items() if "wide" in name or "deep" in name}
    assert set(new) == {"0.wide1.expand.base", "0.wide1.expand.wide3.expand",
                        "0.wide1.expand.wide3.project", "0.wide1.project", "4.deep2.expand",
                        "4.deep2.project"}
    flat = torch.cat([t.flatten() for t in new.values()]).tolist()
    assert len(set(flat)) == len(flat) and not set(flat) & old
    assert int(grown.tags["4.deep2.expand"].min()) == 2 * TAG_BLOCK
    assert transform_of("0.wide1.expand.wide3.project") == 3
    x = torch.randn(4, 1, 16, 16)
    a, b = genome.build().eval(), grown.build().eval()
    assert torch.allclose(a(x), b(x), atol=1e-5)
    save_genome(grown, tmp_path)
    loaded = load_genome(tmp_path)
    assert loaded.arch == grown.arch
    assert torch.allclose(loaded.build().eval()(x), a(x), atol=1e-5)


def test_a_grown_genome_compacts_and_breeds_offspring():
    genome = grow_genome(ancestor_genome("small-cnn", (1, 16, 16), 10, 0), OPS)
    child = synthesize(genome, SynthesisConfig(cluster="filter", keep=0.6),
                       torch.Generator().manual_seed(0), Lineage("g02-m00", 2, 0, ("g01-m00",)))
    assert child.arch == genome.arch
    assert sum(int(m.sum()) for m in child.masks.values()) < sum(int(m.sum()) for m in genome.masks.values())
    compacted = compact(child.build(), child.topology, child.masks)
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(compacted.model.eval()(x), child.build().eval()(x), atol=1e-4)
    assert compacted.params < sum(p.numel() for p in genome.build().parameters())
