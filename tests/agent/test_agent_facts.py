from jetsynth.agent.facts import parse_l4t, parse_nvpmodel


def test_device_fact_parsers_on_real_formats():
    release = "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19"
    assert parse_l4t(release) == "32.7.1"
    assert parse_l4t("") is None
    assert parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert parse_nvpmodel("NV Power Mode: 5W\n1\n") == {"name": "5W", "id": 1}
    assert parse_nvpmodel(None) is None
