"""The command line's one-line failure shows the settings an error names as their flags."""

from jetsynth.cli.common import as_flags
from jetsynth.errors import JetsynthError


def test_settings_in_backticks_become_flags_and_the_rest_stays():
    error = JetsynthError("give `max_drop` or `accuracy_floor`, not both (max_drop stays)",
                          setting=("max_drop", "accuracy_floor"))
    assert as_flags(error) == "give --max-drop or --accuracy-floor, not both (max_drop stays)"
    assert as_flags(JetsynthError("give one `alphas` per parent", setting="alphas")) == \
        "give one --alpha per parent"
    assert as_flags(JetsynthError("`remote_dir` must be absolute", setting="remote_dir")) == \
        "--remote-dir must be absolute"
    assert as_flags(JetsynthError("no `keep` here")) == "no `keep` here"  # names no setting
