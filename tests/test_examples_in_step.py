"""The three examples wire Lightning's features the same way, so a fix to one reaches all.

Each example is a standalone lesson, so the training loop is written out in each plain
twin and the Trainer in each Lightning twin. These tests compare the parts that must not
differ between examples (comments aside), so that they cannot drift apart unnoticed.
"""

import ast
import inspect

import pytest

from tests.conftest import EXAMPLES, twin


def statements(package: str, example: str, function: str, kind: type) -> list[str]:
    """Every `kind` statement inside `function` of one twin, as source without comments."""
    tree = ast.parse(inspect.getsource(getattr(twin(package, example), function)))
    return [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, kind)]


@pytest.mark.parametrize("example", EXAMPLES[:2])
def test_plain_training_loops_are_the_same_in_every_example(example):
    """train_one_epoch and main's epoch loop read the same in all three plain twins."""
    for function, kind in (("train_one_epoch", ast.FunctionDef), ("main", ast.For), ("main", ast.If)):
        assert statements("plain_pytorch", example, function, kind) == statements("plain_pytorch", "sum_dataset", function, kind)


@pytest.mark.parametrize("example", EXAMPLES[:2])
def test_lightning_trainers_are_the_same_in_every_example(example):
    """Every Lightning twin builds the same Trainer, callbacks and tuner calls."""
    for kind in (ast.If, ast.Call):
        mine = [s for s in statements("lightning_version", example, "main", kind) if "Trainer(" in s or "Tuner(" in s
                or "callbacks" in s or kind is ast.If]
        showcase = [s for s in statements("lightning_version", "sum_dataset", "main", kind) if "Trainer(" in s
                    or "Tuner(" in s or "callbacks" in s or kind is ast.If]
        assert mine == showcase
