"""Where an error in the user's own code is said to be."""

from pathlib import Path

import pytest

from prunelab import user_code
from prunelab.user_code import user_error


def test_a_file_beside_a_library_folder_of_a_longer_name_is_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A library folder's path is no prefix of the user's: src/prunelab took src/prunelab_models/ for its own.
    monkeypatch.setattr(user_code, "LIBRARIES", (str(tmp_path / "lib"),))
    namespace: dict = {}
    exec(compile("def fail():\n    raise ValueError('deep')\n", str(tmp_path / "lib" / "deep.py"), "exec"), namespace)
    exec(compile("def forward(fail):\n    fail()\n", str(tmp_path / "lib_models.py"), "exec"), namespace)
    with pytest.raises(ValueError) as caught:
        namespace["forward"](namespace["fail"])
    assert user_error("model 'mine' fails", caught.value) == f"model 'mine' fails: ValueError: deep ({tmp_path / 'lib_models.py'}, line 2)"
