"""The shared-parameter population holds one copy of what its members share."""

import torch

from jetsynth.nn.growth import Transform, join_arch
from jetsynth.nn.models import small_cnn
from jetsynth.nn.population import SharedPopulation


def test_members_share_tensors_and_memory_grows_with_new_weights_only(tmp_path):
    population = SharedPopulation(small_cnn, (1, 16, 16), 10)
    base = population.build("small-cnn")
    base_scalars = population.numel()
    archs = [join_arch("small-cnn", [Transform("wide", "4", 3, 2, uid)]) for uid in range(1, 10)]
    members = [population.build(arch) for arch in archs]
    block = sum(p.numel() for n, p in members[0].named_parameters() if "wide" in n)
    block += sum(b.numel() for n, b in members[0].named_buffers() if "wide" in n)
    assert population.numel() == base_scalars + 9 * block  # not 10 copies of the base
    for member in members:
        assert member[4].base.weight is base[4].weight
        assert member[0].weight is base[0].weight
    # training one member changes what every member shares
    before = base[0].weight.detach().clone()
    optimizer = torch.optim.SGD(population.parameters(), lr=0.1)
    members[3](torch.randn(4, 1, 16, 16)).sum().backward()
    optimizer.step()
    assert not torch.equal(base[0].weight, before)
    assert torch.equal(members[5][0].weight, base[0].weight)
    # saved and loaded: still one copy, the same values
    population.save(tmp_path / "p.safetensors")
    again = SharedPopulation(small_cnn, (1, 16, 16), 10)
    again.load(tmp_path / "p.safetensors")
    rebuilt = [again.build(a) for a in archs]
    assert again.numel() == population.numel()
    assert rebuilt[0][0].weight is rebuilt[1][0].weight
    x = torch.randn(2, 1, 16, 16)
    assert torch.allclose(rebuilt[2].eval()(x), members[2].eval()(x))


def test_a_damaged_population_file_is_one_line(tmp_path):
    import pytest
    from safetensors.torch import load_file, save_file

    from jetsynth.errors import JetsynthError

    population = SharedPopulation(small_cnn, (1, 16, 16), 10)
    population.build("small-cnn")
    population.save(tmp_path / "shared.safetensors")
    tensors = load_file(str(tmp_path / "shared.safetensors"))
    key = next(k for k in sorted(tensors) if k.startswith("p/"))
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, str(tmp_path / "nan.safetensors"))
    tensors[key] = tensors[key].to(torch.int8)
    save_file(tensors, str(tmp_path / "int8.safetensors"))
    (tmp_path / "garbage.safetensors").write_bytes(b"xx")
    for name, problem in (("nan", "holds NaN or infinite values"), ("int8", "is torch.int8"),
                          ("garbage", "unreadable safetensors file")):
        fresh = SharedPopulation(small_cnn, (1, 16, 16), 10)
        with pytest.raises(JetsynthError, match=problem):
            fresh.load(tmp_path / f"{name}.safetensors")
