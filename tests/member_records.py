"""Member records for tests that care about a few fields: `member(accuracy=0.9, fps=100.0)` is a
real `MemberRecord` (read through `MemberRecord.from_json`, so nested bench and environment
entries are typed as a run's would be), the fields not given filled with a small member."""

from jetsynth.core.records import MemberRecord


def member(**fields) -> MemberRecord:
    generation, index = fields.get("generation", 1), fields.get("member", 0)
    data = {
        "id": f"g{generation:02d}-m{index:02d}", "generation": generation, "member": index,
        "parents": [] if generation == 1 else ["g01-m00"], "seed": 0, "accuracy": 0.9,
        "val_accuracy": None, "synapses": 100, "clusters": 10, "kernels": 10, "units": 10,
        "macs": 1000, "synaptic_efficiency": 1.0, "cluster_efficiency": 1.0, "mac_reduction": 1.0,
        "layers": [{"name": "fc", "synapses": 100, "clusters": 10}],
        "layer_cluster_efficiency": [1.0], "layer_synaptic_efficiency": [1.0], "fps": None,
    }
    return MemberRecord.from_json({**data, **fields})


def members(*records: dict) -> list[MemberRecord]:
    return [member(**record) for record in records]
