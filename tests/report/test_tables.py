"""Markdown tables: alignment, number formats, escaping, empty input, and the sweep pivot's best cell."""

from __future__ import annotations

import math

import pytest

from prunelab.report.tables import column_winners, format_table, pivot, short_labels


def test_numbers_right_aligned_text_left_aligned() -> None:
    text = format_table([{"name": "a", "n": 5}, {"name": "longer", "n": 12345}])
    assert text.splitlines() == [
        "| name   | n     |",
        "|--------|------:|",
        "| a      |     5 |",
        "| longer | 12345 |",
    ]


def test_true_and_false_are_text_not_numbers() -> None:
    assert format_table([{"flag": True}, {"flag": False}]).splitlines() == ["| flag  |", "|-------|", "| True  |", "| False |"]


def test_floats_whole_numbers_and_huge_values() -> None:
    rows = [{"x": 0.123456}, {"x": 123456.0}, {"x": 1e20}, {"x": None}]
    cells = [line.strip("| ").strip() for line in format_table(rows).splitlines()[2:]]
    assert cells == ["0.1235", "123456", "1e+20", ""]


def test_pipes_and_line_breaks_do_not_break_the_table() -> None:
    lines = format_table([{"a|b": "x|y\nz"}]).splitlines()
    assert len(lines) == 3
    assert lines[0] == "| a\\|b   |" and lines[2] == "| x\\|y z |"


def test_no_rows_is_said_plainly() -> None:
    assert format_table([]) == "(no rows)"
    assert pivot([], "policy", [], "final_acc") == "(no rows)"


def test_a_nan_mean_is_never_the_best_wherever_it_comes() -> None:
    for first in (math.nan, 0.5):
        second = 0.5 if math.isnan(first) else math.nan
        results = [({"p": "a"}, {"final_acc": {"mean": first, "std": 0.0}}),
                   ({"p": "b"}, {"final_acc": {"mean": second, "std": 0.0}}),
                   ({"p": "c"}, {"final_acc": {"mean": 0.4, "std": 0.0}})]
        text = pivot(results, "p", [], "final_acc")
        assert "**50.00**" in text and "**nan" not in text and text.count("**") == 2


@pytest.mark.parametrize(
    ("value", "high", "low", "best"),
    [("wall_seconds", 3.0, 2.0, "**2.00**"), ("instability", 0.3, 0.01, "**1.00**"),
     ("remaining_parameters", 3000.0, 2000.0, "**2000.00**"), ("total_epochs", 30.0, 20.0, "**20.00**")],
)
def test_lower_is_better_for_losses_times_counts_budgets_and_instability(value, high, low, best) -> None:
    """Instability is seed 002's error barrier (in percent points): about 0 when stable."""
    results = [({"p": "a"}, {value: {"mean": high, "std": 0.0}}), ({"p": "b"}, {value: {"mean": low, "std": 0.0}})]
    text = pivot(results, "p", [], value)
    assert best in text and text.count("**") == 2


def test_formatted_statistics_read_as_numbers_and_are_right_aligned() -> None:
    from prunelab.report import format_stat

    cells = {
        "final_acc": format_stat("final_acc", {"mean": 0.93912, "std": 0.0051}),
        "sparsity": format_stat("sparsity", {"mean": 0.9, "std": 0.0}),
        "parameters": format_stat("parameters", {"mean": 28298.0, "std": 0.0}),
        "wall_seconds": format_stat("wall_seconds", {"mean": 16.49, "std": 1.26}),
        "d1": format_stat("d1", {"mean": 0.71865, "std": 0.0}),
        "final_loss": format_stat("final_loss", {"mean": 0.31234, "std": 0.012345}),
        "images_per_second": format_stat("images_per_second", {"mean": 9254.2, "std": 3829.0}),
        "speedup": format_stat("speedup", {"mean": 12.3456, "std": 0.0123}),
    }
    assert cells == {"final_acc": "93.91% ± 0.51", "sparsity": "90.00%", "parameters": "28,298",
                     "wall_seconds": "16.5 s ± 1.3", "d1": "0.7187", "final_loss": "0.3123 ± 0.012", "images_per_second": "9,254/s ± 3,829",
                     "speedup": "12.35x ± 0.01"}  # fmt: skip
    rule = format_table([{"metric": k, "value": v} for k, v in cells.items()]).splitlines()[1]
    assert rule.endswith(":|")  # the value column is right-aligned
    # a sensitivity analysis' layer that no sparsity leaves within tolerance: below the lowest
    assert format_table([{"up to": "< 20%"}, {"up to": "50%"}]).splitlines()[1] == "|------:|"


def test_a_pivot_without_columns_is_a_column_of_the_value_each_cell_with_its_spread() -> None:
    """Where any run's seeds differ, a cell whose seeds agree shows its ± 0.00 too: a bare
    80.00 beside 90.00 ± 1.00 read as a single seed's."""
    results = [({"p": "a"}, {"final_acc": {"mean": 0.9, "std": 0.01}}), ({"p": "b"}, {"final_acc": {"mean": 0.8, "std": 0.0}})]
    lines = pivot(results, "p", [], "final_acc").splitlines()
    assert [line.split("|")[2].strip() for line in [lines[0], *lines[2:]]] == ["final_acc", "**90.00 ± 1.00**", "80.00 ± 0.00"]


def test_a_pivot_keeps_the_rows_in_the_order_of_the_runs_and_leaves_a_missing_value_empty() -> None:
    results = [({"p": "b"}, {"final_acc": {"mean": 0.9, "std": 0.0}}), ({"p": "a"}, {"sparsity": {"mean": 0.9, "std": 0.0}}),
               ({"p": "c"}, {"final_acc": {"mean": 0.8, "std": 0.0}})]  # fmt: skip
    lines = pivot(results, "p", [], "final_acc").splitlines()[2:]
    assert [[cell.strip() for cell in line.split("|")[1:3]] for line in lines] == [["b", "**90.00**"], ["a", ""], ["c", "80.00"]]


def test_a_pivot_of_sparsity_is_in_percent_like_the_summaries() -> None:
    results = [({"p": "a"}, {"sparsity": {"mean": 0.9, "std": 0.0}})]
    assert "**90.00**" in pivot(results, "p", [], "sparsity")


def cross(means: dict[tuple[object, str], float], std: float = 0.002, value: str = "final_acc", column: str = "eval.lr_policy") -> list:
    return [({"criterion": c, column: p}, {value: {"mean": m, "std": std}}) for (c, p), m in means.items()]


def winners(results: list, value: str = "final_acc", column: str = "eval.lr_policy") -> str:
    return column_winners(results, "criterion", [column], value)


def test_one_method_best_under_every_recipe_is_the_consistent_winner() -> None:
    """Seed 004: "If one method consistently wins in both cases, we are more confident"."""
    results = cross({("l1", "ft"): 0.938, ("bn", "ft"): 0.927, ("l1", "llr"): 0.964, ("bn", "llr"): 0.959})
    assert winners(results) == (
        "Best in every column (lr_policy ft, lr_policy llr): criterion l1, the consistent winner (seed 004's cross-validation)."
    )


def test_a_lead_within_one_standard_deviation_is_named() -> None:
    results = cross({("l1", "ft"): 0.938, ("bn", "ft"): 0.927, ("l1", "llr"): 0.964, ("bn", "llr"): 0.960}, std=0.005)
    assert winners(results).endswith(
        "; its lead is within one standard deviation under lr_policy llr (a lead of 0.40, a std of 0.50)."
    )


@pytest.mark.parametrize(("l1_std", "bn_std"), [(0.25, 0.0), (0.0, 0.25)])
def test_a_lead_is_within_the_larger_std_of_the_two_rows_up_to_and_with_it(l1_std, bn_std) -> None:
    """Under LLR, l1 leads bn by 25 points with a std of 25, l1's or bn's: a lead within one
    standard deviation. Under FT, a lead of 50 points with no spread is clear."""
    results = [({"criterion": c, "eval.lr_policy": p}, {"final_acc": {"mean": m, "std": s}})
               for c, p, m, s in [("l1", "ft", 0.75, 0.0), ("bn", "ft", 0.25, 0.0), ("l1", "llr", 0.75, l1_std), ("bn", "llr", 0.5, bn_std)]]
    assert winners(results) == (
        "Best in every column (lr_policy ft, lr_policy llr): criterion l1, the consistent winner (seed 004's cross-validation); "
        "its lead is within one standard deviation under lr_policy llr (a lead of 25.00, a std of 25.00)."
    )


def test_a_winner_behind_by_exactly_one_standard_deviation_is_not_reversed() -> None:
    """y leads x by 25 points under LLR, x's std there: within it, so no interaction."""
    results = [({"criterion": c, "eval.lr_policy": p}, {"final_acc": {"mean": m, "std": s}})
               for c, p, m, s in [("x", "ft", 0.75, 0.0), ("y", "ft", 0.25, 0.0), ("x", "llr", 0.5, 0.25), ("y", "llr", 0.75, 0.0)]]
    assert winners(results).startswith("No criterion wins every column")


def test_leads_of_a_value_not_in_percent_are_named_as_they_are() -> None:
    results = cross({("l1", "ft"): 0.30, ("bn", "ft"): 0.40, ("l1", "llr"): 0.20, ("bn", "llr"): 0.21}, std=0.02, value="final_loss")
    assert winners(results, "final_loss").endswith("under lr_policy llr (a lead of 0.01, a std of 0.02).")


def test_a_winner_behind_by_less_than_either_row_s_std_is_not_reversed() -> None:
    """y leads x by 10 points under LLR, within x's std of 15 there though beyond y's own 1."""
    results = [({"criterion": c, "eval.lr_policy": p}, {"final_acc": {"mean": m, "std": s}})
               for c, p, m, s in [("x", "ft", 0.9, 0.01), ("y", "ft", 0.7, 0.01), ("x", "llr", 0.7, 0.15), ("y", "llr", 0.8, 0.01)]]
    assert winners(results).startswith("No criterion wins every column (criterion x under lr_policy ft, criterion y under "
                                       "lr_policy llr), and no winner is reversed by more than a standard deviation elsewhere")  # fmt: skip


def test_different_winners_per_recipe_are_an_interaction_and_the_best_cell_weighs_more() -> None:
    """Seed 004: otherwise "the case delivering higher performance weighs more"."""
    results = cross({("l1", "ft"): 0.938, ("bn", "ft"): 0.927, ("l1", "llr"): 0.955, ("bn", "llr"): 0.961})
    assert winners(results) == (
        "The best criterion depends on the column (criterion l1 under lr_policy ft, criterion bn under lr_policy llr): the "
        "method and the recipe interact (seed 004), and the best cell, criterion bn under lr_policy llr, weighs more."
    )


def test_a_tie_is_no_winner_whatever_the_rows_are() -> None:
    results = cross({(None, "ft"): 0.938, ("bn", "ft"): 0.927, (None, "llr"): 0.955, ("bn", "llr"): 0.955})
    assert winners(results) == (
        "No criterion wins every column (criterion null under lr_policy ft, a tie under lr_policy llr), and no winner is "
        "reversed by more than a standard deviation elsewhere: neither a consistent winner nor an interaction of the "
        "method and the recipe (seed 004); more seeds may tell."
    )  # an unset criterion reads as null


def test_rows_tied_for_best_are_each_a_winner_that_may_reverse_another() -> None:
    """x leads y by 20 points under FT; under LLR y and z tie for best, both 20 ahead of x: y,
    one of LLR's winners, reverses x."""
    results = cross({("x", "ft"): 0.9, ("y", "ft"): 0.7, ("z", "ft"): 0.6, ("x", "llr"): 0.7, ("y", "llr"): 0.9, ("z", "llr"): 0.9})
    assert winners(results) == (
        "The best criterion depends on the column (criterion x under lr_policy ft, a tie under lr_policy llr): the method "
        "and the recipe interact (seed 004), and the best cell, criterion x under lr_policy ft, weighs more."
    )


def test_a_diverged_run_never_wins_a_column() -> None:
    """bn wins both columns; l1's NaN under FT (a diverged run) is left out, not ranked first."""
    results = cross({("l1", "ft"): math.nan, ("bn", "ft"): 0.9, ("x", "ft"): 0.8, ("l1", "llr"): 0.7, ("bn", "llr"): 0.9, ("x", "llr"): 0.8})
    assert winners(results).startswith("Best in every column (lr_policy ft, lr_policy llr): criterion bn, the consistent winner")


def test_winners_that_swap_places_beyond_the_noise_interact_whatever_the_runner_up() -> None:
    """x leads y by 20 points under FT, y leads x by 20 under LLR, though z is a close second
    there: a reversal of the winners."""
    results = [({"criterion": c, "eval.lr_policy": p}, {"final_acc": {"mean": m, "std": 0.005}})
               for (c, p), m in {("x", "ft"): 0.90, ("y", "ft"): 0.70, ("z", "ft"): 0.60,
                                 ("x", "llr"): 0.70, ("y", "llr"): 0.90, ("z", "llr"): 0.899}.items()]  # fmt: skip
    assert winners(results).startswith("The best criterion depends on the column (criterion x under lr_policy ft, criterion y "
                                       "under lr_policy llr): the method and the recipe interact (seed 004)")  # fmt: skip


def test_winners_that_differ_only_within_one_standard_deviation_are_no_interaction() -> None:
    """A reversal needs both leads beyond the noise: l1 ahead by 1.1 under FT (std 0.2), bn
    ahead by 0.1 under LLR, less than the std."""
    results = cross({("l1", "ft"): 0.938, ("bn", "ft"): 0.927, ("l1", "llr"): 0.955, ("bn", "llr"): 0.956})
    assert winners(results) == (
        "No criterion wins every column (criterion l1 under lr_policy ft, criterion bn under lr_policy llr), and no winner "
        "is reversed by more than a standard deviation elsewhere: neither a consistent winner nor an interaction of the "
        "method and the recipe (seed 004); more seeds may tell; leads within one standard deviation under lr_policy llr "
        "(a lead of 0.10, a std of 0.20)."
    )


def test_the_winner_of_a_lower_is_better_value_is_the_lowest() -> None:
    results = cross({("l1", "ft"): 0.01, ("bn", "ft"): 0.05, ("l1", "llr"): 0.02, ("bn", "llr"): 0.09}, value="instability")
    assert "criterion l1, the consistent winner" in winners(results, "instability")
    # l1 lowest by 4 points under FT, bn lowest by 7 under LLR, each beyond the std of 0.2: an interaction
    reversed_ = cross({("l1", "ft"): 0.01, ("bn", "ft"): 0.05, ("l1", "llr"): 0.09, ("bn", "llr"): 0.02}, value="instability")
    assert winners(reversed_, "instability") == (
        "The best criterion depends on the column (criterion l1 under lr_policy ft, criterion bn under lr_policy llr): the "
        "method and the recipe interact (seed 004), and the best cell, criterion l1 under lr_policy ft, weighs more."
    )


def test_no_verdict_without_two_rows_and_two_columns_of_training_recipes() -> None:
    assert winners(cross({("l1", "ft"): 0.9, ("bn", "ft"): 0.8})) == ""
    assert winners(cross({("l1", "ft"): 0.9, ("l1", "llr"): 0.8})) == ""
    # columns of other sparsities are other tasks: the best cell would be the lowest sparsity's
    other_tasks = cross({("l1", 0.5): 0.95, ("bn", 0.5): 0.94, ("l1", 0.9): 0.80, ("bn", 0.9): 0.85}, column="prune.sparsity")
    assert winners(other_tasks, column="prune.sparsity") == ""
    # a recipe and a sparsity per column: still other tasks
    mixed = [({"criterion": c, "eval.lr_policy": p, "prune.sparsity": s}, {"final_acc": {"mean": m, "std": 0.0}})
             for c, p, s, m in [("l1", "ft", 0.5, 0.95), ("bn", "ft", 0.5, 0.94), ("l1", "llr", 0.9, 0.85), ("bn", "llr", 0.9, 0.80)]]
    assert column_winners(mixed, "criterion", ["eval.lr_policy", "prune.sparsity"], "final_acc") == ""


def test_a_short_label_is_never_another_setting_s_whole_name() -> None:
    """A model option named as a top-level setting of the recipe (``device``) keeps its section."""
    assert short_labels(["model.options.device", "prune.sparsity"]) == {"model.options.device": "options.device", "prune.sparsity": "sparsity"}


def test_a_grid_value_left_unset_shows_as_null() -> None:
    results = [({"find.stop_epoch": e}, {"final_acc": {"mean": m, "std": 0.0}}) for e, m in [(10, 0.9), (None, 0.8)]]
    lines = pivot(results, "find.stop_epoch", [], "final_acc").splitlines()
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["10", "null"]


def test_an_unset_grid_value_reads_as_null_in_headers_and_verdicts() -> None:
    results = cross({("l1", None): 0.938, ("bn", None): 0.927, ("l1", "llr"): 0.955, ("bn", "llr"): 0.951})
    assert pivot(results, "criterion", ["eval.lr_policy"], "final_acc").splitlines()[0].split("|")[2].strip() == "lr_policy null"
    assert winners(results).startswith("Best in every column (lr_policy null, lr_policy llr): criterion l1")
