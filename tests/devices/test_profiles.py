import pytest

from jetsynth.devices.profiles import PROFILES, disagreements, get_profile
from jetsynth.errors import JetsynthError


def test_no_profile_name_is_no_profile():
    assert get_profile(None) is None


def test_an_unknown_profile_names_the_known_ones():
    with pytest.raises(JetsynthError, match="no device profile 'agx'; known profiles: tx1, nano, xavier-nx, "
                                            "orin-nano"):
        get_profile("agx")


def test_profile_as_dict_writes_the_compute_capability_as_text():
    data = get_profile("xavier-nx").as_dict()
    assert data["compute_capability"] == "7.2" and data["tensorrt_major"] == 8 and data["int8"]


@pytest.mark.parametrize("facts", [{}, {"tensorrt": "present"}, {"gpu": None}, {"gpu": {}}])
def test_facts_a_probe_could_not_read_raise_no_warning(facts):
    assert disagreements(PROFILES["nano"], facts) == []


def test_each_disagreement_is_one_warning():
    facts = {"tensorrt": "8.5.2", "gpu": {"compute_capability": "8.7"}}
    warnings = disagreements(PROFILES["orin-nano"], facts)
    assert warnings == ["profile orin-nano expects TensorRT 10.x, the device has 8.5.2"]


def test_every_built_in_profile_evolves_in_groups_of_8():
    assert {name: p.channel_multiple for name, p in PROFILES.items()} == {
        "tx1": 8, "nano": 8, "xavier-nx": 8, "orin-nano": 8}
    assert get_profile("tx1").as_dict()["channel_multiple"] == 8
