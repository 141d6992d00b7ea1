import pytest
import torch

from jetsynth.nn.finite import all_finite


@pytest.mark.parametrize(("values", "dtype", "finite"), [
    ([1.0, -2.0, 0.0], torch.float32, True),
    ([3e38, 3e38, 3e38], torch.float32, True),  # their fp32 sum would overflow; the fp64 one does not
    ([65504.0, 65504.0], torch.float16, True),
    ([1.0, float("nan")], torch.float32, False),
    ([float("inf"), 1.0], torch.bfloat16, False),
    ([float("inf"), float("-inf")], torch.float32, False),  # their sum is NaN
    ([1, 2], torch.int8, True),
    ([True], torch.bool, True),
])
def test_all_finite_by_hand(values, dtype, finite):
    assert all_finite(torch.tensor(values, dtype=dtype)) is finite
