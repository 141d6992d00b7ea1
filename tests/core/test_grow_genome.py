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


def test_a_wider_deeper_layer_traces_compacts_breeds_and_exports(tmp_path):
    """deep(4,3,2,1,24): a 24-channel layer in front of conv 4 (16 inputs), its residual zero-padded:
    project adds into conv 0's channels, grow writes 8 new ones that conv 4 reads through feed."""
    import onnxruntime

    from jetsynth.ship.export import export_genome

    genome = ancestor_genome("small-cnn", (1, 16, 16), 10, 0)
    grown = grow_genome(genome, [Transform("deep", "4", 3, 2, 1, 24), Transform("deep", "8", 1, 2, 2, 48)])
    assert grown.arch == "small-cnn|deep(4,3,2,1,24)|deep(8,1,2,2,48)"
    layers = {layer.name: layer for layer in grown.topology.layers}
    assert layers["4.deep1.project"].out_space == layers["0"].out_space  # the residual stream
    assert layers["4.deep1.grow"].out_units == 8 and layers["4.deep1.feed"].in_units == 8
    assert set(layers["4.deep1.feed"].in_spaces) == {layers["4.deep1.grow"].out_space}
    assert layers["4.deep1.feed"].out_space == layers["4.base"].out_space  # conv 4 reads all 24
    assert torch.equal(grown.state["4.base.weight"], genome.state["4.weight"])
    assert int(grown.tags["4.deep1.feed"].min()) >= TAG_BLOCK
    x = torch.randn(4, 1, 16, 16)
    for train in (True, False):
        assert torch.allclose(genome.build().train(train)(x), grown.build().train(train)(x), atol=1e-5)
    save_genome(grown, tmp_path / "g")
    assert torch.allclose(load_genome(tmp_path / "g").build().eval()(x), genome.build().eval()(x), atol=1e-5)
    child = synthesize(grown, SynthesisConfig(cluster="filter", keep=0.6),
                       torch.Generator().manual_seed(0), Lineage("g02-m00", 2, 0, ("g01-m00",)))
    assert child.arch == grown.arch
    assert sum(int(m.sum()) for m in child.masks.values()) < sum(int(m.sum()) for m in grown.masks.values())
    compacted = compact(child.build(), child.topology, child.masks)
    assert torch.allclose(compacted.model.eval()(x), child.build().eval()(x), atol=1e-4)
    result = export_genome(child, tmp_path / "grown.onnx", "fp32", parity_images=x)
    assert result.parity["max_abs_diff"] < 1e-4
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), child.build().eval()(x), atol=1e-4)
