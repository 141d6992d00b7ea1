from jetsynth.agent.power import parse_tegrastats, power_summary


def test_tegrastats_rails_old_and_new_formats():
    tx1 = ("RAM 1461/3964MB (lfb 395x4MB) SWAP 0/1982MB (cached 0MB) CPU [2%@102,1%@102] "
           "EMC_FREQ 0% GR3D_FREQ 0% PLL@22C CPU@24.5C POM_5V_IN 2984/3012 POM_5V_GPU 120/118 "
           "POM_5V_CPU 409/400")
    assert parse_tegrastats(tx1) == {"POM_5V_IN": 2984, "POM_5V_GPU": 120, "POM_5V_CPU": 409}
    orin = "RAM 2000/7620MB GR3D_FREQ 0% VDD_IN 5012mW/5012mW VDD_CPU_GPU_CV 801mW/801mW VDD_SOC 1441mW/1441mW"
    assert parse_tegrastats(orin) == {"VDD_IN": 5012, "VDD_CPU_GPU_CV": 801, "VDD_SOC": 1441}


def test_power_summary_means_and_energy_per_image_by_hand():
    samples = [{"POM_5V_IN": 3000, "POM_5V_GPU": 100}, {"POM_5V_IN": 5000, "POM_5V_GPU": 300}]
    power = power_summary(samples, fps=400.0)
    assert power["rails_mw"] == {"POM_5V_IN": 4000.0, "POM_5V_GPU": 200.0}
    assert power["input_rail"] == "POM_5V_IN"
    assert power["mj_per_image"] == 10.0
    assert power_summary([], 100.0) is None
