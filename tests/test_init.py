"""The package's public names: imported on first use, each from the module defining it."""

import subprocess
import sys

import pytest

import prunelab


def test_every_public_name_resolves_to_its_module_object():
    assert sorted(prunelab._EXPORTS) == prunelab.__all__
    for name, module in prunelab._EXPORTS.items():
        assert getattr(prunelab, name) is getattr(sys.modules[module], name)


def test_dir_lists_the_public_names_and_subpackages_before_any_is_imported():
    code = "import prunelab, sys\nprint(dir(prunelab), 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    listed, torch_loaded = result.stdout.rsplit(" ", 1)
    assert eval(listed) == sorted([*prunelab.__all__, *prunelab.SUBPACKAGES, "__version__"]) and torch_loaded.strip() == "False"


def test_the_subpackages_are_the_folders_of_code():
    assert prunelab.SUBPACKAGES == ("analysis", "config", "criteria", "data", "masks", "methods", "models", "report", "runs",
                                    "schedules", "structured", "train")  # fmt: skip


def test_a_subpackage_is_reached_as_an_attribute_without_importing_it_first():
    code = "import prunelab\nprunelab.models.register\nprunelab.data.register\nprint(prunelab.models.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "prunelab.models"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Prunner'"):
        prunelab.Prunner
    with pytest.raises(ImportError, match="Prunner"):
        exec("from prunelab import Prunner", {})


def test_help_and_version_answer_without_loading_torch():
    code = (
        "import sys\nfrom prunelab.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['--version']):\n"
        "    try:\n        main(argv)\n    except SystemExit as exit:\n        assert exit.code == 0, argv\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
