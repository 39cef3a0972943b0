import pytest

from pubg_lib import paths
from pubg_lib.notebook_parameters import ParameterError, check_parameters, declared_parameters, parse_assignment
from pubg_lib.reproduce import notebooks

NB01 = paths.NOTEBOOKS / "01_dataset_construction.ipynb"


def test_every_notebook_declares_smoke_and_seed():
    for nb in notebooks():
        declared = declared_parameters(nb)
        assert isinstance(declared.get("smoke"), bool), nb.name
        assert isinstance(declared.get("seed"), int), nb.name


def test_a_typo_in_a_parameter_is_refused_with_a_suggestion():
    with pytest.raises(ParameterError, match="did you mean 'min_share'"):
        check_parameters(NB01, {"min_shar": 0.5})


def test_a_parameter_of_the_wrong_type_is_refused():
    with pytest.raises(ParameterError, match="must be float"):
        check_parameters(NB01, {"min_share": "high"})
    check_parameters(NB01, {"min_share": 1})  # an int where a float is declared is fine
    check_parameters(NB01, {"smoke": True, "forget_sizes": [5]})


def test_assignments_parse_as_literals():
    assert parse_assignment("steps=10") == ("steps", 10)
    assert parse_assignment("methods=['GA','PUBG']") == ("methods", ["GA", "PUBG"])
    assert parse_assignment("instruction=privacy") == ("instruction", "privacy")
    with pytest.raises(ParameterError):
        parse_assignment("steps")


def test_only_selects_by_the_whole_number():
    """`--only 03` is the loss derivation alone, not also the specificity sweep 03b (which rewrites settings)."""
    assert [p.name for p in notebooks(["03"])] == ["03_loss_derivation.ipynb"]
    assert [p.name for p in notebooks(["03b"])] == ["03b_specificity.ipynb"]
