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


def test_a_check_of_prunelab_s_own_names_the_user_s_line_that_led_to_it(tmp_path: Path) -> None:
    # The check is prunelab's, and the __init__ a dataclass makes at run time ("<string>") nobody's file.
    import torch

    from prunelab.data import Dataset

    namespace: dict = {"Dataset": Dataset, "torch": torch}
    code = "def load():\n    x = torch.zeros(1)\n    return Dataset('mine', x, x, x, x, num_classes=0)\n"
    exec(compile(code, str(tmp_path / "my_data.py"), "exec"), namespace)
    with pytest.raises(ValueError) as caught:
        namespace["load"]()
    assert user_error("dataset 'mine' cannot be loaded", caught.value) == (
        f"dataset 'mine' cannot be loaded: ValueError: mine: num_classes must be a positive int, got 0 ({tmp_path / 'my_data.py'}, line 3)")


def test_an_error_raised_in_an_installed_package_names_the_user_s_line(tmp_path: Path) -> None:
    # torch's Python code (its modules' forward) is installed, not the user's: the model's forward line says more.
    import torch

    namespace: dict = {"torch": torch}
    exec(compile("def forward(x):\n    layer = torch.nn.Linear(4, 3)\n    return layer(x)\n", str(tmp_path / "my_models.py"), "exec"), namespace)
    with pytest.raises(RuntimeError) as caught:
        namespace["forward"](torch.zeros(2, 5))
    assert user_error("model 'mine' fails", caught.value).endswith(f" ({tmp_path / 'my_models.py'}, line 3)")


def test_an_error_without_text_is_named_by_its_type_alone(tmp_path: Path) -> None:
    namespace: dict = {}
    exec(compile("def load():\n    raise KeyError\n", str(tmp_path / "my_data.py"), "exec"), namespace)
    with pytest.raises(KeyError) as caught:
        namespace["load"]()
    assert user_error("dataset 'mine' cannot be loaded", caught.value) == f"dataset 'mine' cannot be loaded: KeyError ({tmp_path / 'my_data.py'}, line 2)"


def test_an_error_raised_in_the_standard_library_names_the_user_s_line(tmp_path: Path) -> None:
    # json's decoder raised it, yet the line of the user's loader that read the bad text says more.
    import json

    namespace: dict = {"json": json}
    exec(compile("def load(text):\n    return json.loads(text)\n", str(tmp_path / "my_data.py"), "exec"), namespace)
    with pytest.raises(json.JSONDecodeError) as caught:
        namespace["load"]("{")
    assert user_error("dataset 'mine' cannot be loaded", caught.value) == (
        f"dataset 'mine' cannot be loaded: JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1) "
        f"({tmp_path / 'my_data.py'}, line 2)")
