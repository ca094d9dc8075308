"""The ladder holds its shape: lean twins, each step's own flags, each feature in exactly one step.

These are the limits of README's "The ladder" (and of the house style), checked on the
files as they are now, so they cannot drift.
"""

import re

import pytest

from shared.flags import build_parser
from tools.ladder import (
    COMMON_FLAGS,
    MAX_CODE_LINES,
    MAX_CODE_LINES_ANY_TWIN,
    MAX_LINE_LENGTH,
    PACKAGES,
    REPO,
    STEPS,
    code_lines,
    twin_path,
)

TWINS = [(package, step.example) for step in STEPS for package in PACKAGES]

# The flags each step adds to the common ones: the ladder's table, written out as the oracle.
BY_EPOCHS = {"--epochs", "--limit-train", "--limit-val"}  # steps 1-3; step 4 counts steps
OWN_FLAGS = {
    "mnist_feedforward": BY_EPOCHS | {"--dataset", "--hidden-size"},
    "cnn_classifier": BY_EPOCHS | {"--dataset", "--momentum", "--lr-step-gamma",
                                   "--checkpoint-dir", "--resume", "--test", "--predict",
                       "--devices", "--num-nodes"},
    "sum_dataset": BY_EPOCHS | {"--hidden-size", "--num-features", "--num-samples", "--num-workers",
                    "--deterministic",
                    "--early-stopping-patience", "--early-stopping-min-delta", "--find-lr",
                    "--find-batch-size",
                    "--gradient-clip-val", "--gradient-clip-algorithm", "--precision",
                    "--accumulate-grad-batches"},
    "tiny_gpt": {"--max-steps", "--corpus", "--context", "--warmup-steps", "--weight-decay",
                 "--eval-interval", "--eval-batches", "--checkpoint-dir", "--checkpoint-every",
                 "--resume", "--precision", "--sample-length", "--prompt", "--temperature",
                 "--compile", "--devices", "--num-nodes"},
}
# Step 4 is the capstone: it brings earlier steps' features (a scheduler, checkpoints and
# resume, DDP, predict, mixed precision) together as today's recipe, so it may reuse them;
# steps 1-3 keep each feature in exactly one of them.
CAPSTONE = "tiny_gpt"

# Each feature, the one step that teaches it, and what marks its use in each twin (code, not
# comments):
# (step, Lightning's marker, the plain twin's, the Fabric twin's).
FEATURES = {
    "scheduler": ("cnn_classifier", r"StepLR|lr_scheduler", r"StepLR|scheduler\.step",
                  r"StepLR|scheduler\.step"),
    "checkpoints and resume": ("cnn_classifier", r"ModelCheckpoint|ckpt_path|load_from_checkpoint",
                               r"Checkpoints\(|resume\(|load_checkpoint_unchecked",
                               r"Checkpoints\(|fabric\.load|resume"),
    "DataModule": ("cnn_classifier", r"LightningDataModule|datamodule", None, None),
    "DDP": ("cnn_classifier", r"strategy=|sync_dist",
            r"DistributedDataParallel|DistributedSampler|join_process_group",
            r"strategy=|all_reduce|\bddp\b"),
    "test and predict": ("cnn_classifier", r"trainer\.test|trainer\.predict|test_step|predict_step",
                         r"args\.test|args\.predict", r"args\.test|args\.predict"),
    "custom Dataset": ("sum_dataset", r"make_sum_dataset", r"make_sum_dataset",
                       r"make_sum_dataset"),
    "worker seeding and determinism": ("sum_dataset", r"workers=True|deterministic|num_workers",
                                       r"seed_worker|deterministic|num_workers",
                                       r"workers=True|deterministic|num_workers"),
    "early stopping": ("sum_dataset", r"EarlyStopping|early_stopping",
                       r"EarlyStopping|early_stopping",
                       r"EarlyStopping|early_stopping"),
    "LR finder": ("sum_dataset", r"lr_find", r"lr_range_test|find_lr", r"lr_range_test|find_lr"),
    "batch-size finder": ("sum_dataset", r"scale_batch_size", r"scale_batch_size",
                          r"scale_batch_size"),
    "gradient clipping": ("sum_dataset", r"gradient_clip", r"clip_grad|gradient_clip",
                          r"clip_gradients|gradient_clip"),
    "mixed precision": ("sum_dataset", r"precision", r"autocast|grad_scaler|precision",
                        r"precision"),
    "training by steps": ("tiny_gpt", r"max_steps", r"max_steps", r"max_steps"),
    "warmup and cosine per step": ("tiny_gpt", r"LambdaLR", r"warmup_cosine", r"warmup_cosine"),
    "gradient accumulation": ("sum_dataset", r"accumulate_grad_batches", r"accumulate_grad_batches",
                              r"accumulate_grad_batches|no_backward_sync"),
}


def code_text(package: str, example: str) -> str:
    """The twin's source without comments and docstrings (roughly: what runs)."""
    from tools.ladder import code_line_numbers

    path = twin_path(package, example)
    lines = (REPO / path).read_text().splitlines()
    return "\n".join(lines[n - 1].split("  #")[0] for n in sorted(code_line_numbers(path)))


@pytest.mark.parametrize("package, example", TWINS)
def test_twin_is_lean(package, example):
    """Every twin is within its code-line budget (step 1: 80 plain and Fabric, 60 Lightning; any:
    150), lines within 100."""
    path = twin_path(package, example)
    assert code_lines(path) <= MAX_CODE_LINES.get((package, example), MAX_CODE_LINES_ANY_TWIN)
    too_long = [n for n, line in enumerate((REPO / path).read_text().splitlines(), 1)
                if len(line) > MAX_LINE_LENGTH]
    assert too_long == []


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "by_hand").glob("*.py")))
def test_by_hand_files_keep_the_twins_line_limit(path):
    """The longer hand-written features are read beside the twins, so their lines stay within
    100 characters too."""
    text = (REPO / "by_hand" / path).read_text()
    assert [n for n, line in enumerate(text.splitlines(), 1) if len(line) > MAX_LINE_LENGTH] == []


def test_code_line_counter_skips_blanks_comments_and_docstrings(tmp_path, monkeypatch):
    """The counter behind the budgets counts code only, and every line of a statement spread over
    several."""
    import tools.ladder

    (tmp_path / "x.py").write_text('"""Doc\nstring."""\n\n# a comment\nx = [1,\n     2]  # why\n\n'
                                   'def f():\n    """Doc."""\n    return x\n')
    monkeypatch.setattr(tools.ladder, "REPO", tmp_path)
    assert tools.ladder.code_lines("x.py") == 4  # x = [1, / 2] / def f(): / return x


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.example)
def test_each_step_takes_the_common_flags_and_its_own(step):
    """A step's parser has exactly the common flags plus that step's own, as the ladder's table
    says."""
    flags = {opt for action in build_parser(step.example)._actions for opt in action.option_strings}
    assert flags - {"-h", "--help"} == set(COMMON_FLAGS) | OWN_FLAGS[step.example]
    assert set(step.flags) == OWN_FLAGS[step.example]


@pytest.mark.parametrize("feature", FEATURES)
def test_each_feature_lives_in_exactly_one_step(feature):
    """The feature's code appears in its own step's twins and in no other step's (but the
    capstone, step 4, which may reuse them)."""
    home, lightning_marker, plain_marker, fabric_marker = FEATURES[feature]
    for package, marker in (("lightning_version", lightning_marker),
                            ("plain_pytorch", plain_marker),
                            ("fabric_version", fabric_marker)):
        if marker is None:
            continue
        where = {step.example for step in STEPS if re.search(marker,
                                                             code_text(package, step.example))}
        if home != CAPSTONE:
            where.discard(CAPSTONE)
        assert where == {home}, f"{feature} in {package}: {sorted(where)}"


def test_the_beginners_step_is_the_classic_loop_and_nothing_else():
    """Step 1 imports nothing from by_hand/ or Lightning's callbacks and tuner: the classic loop
    only."""
    plain, lightning = code_text("plain_pytorch",
                                 "mnist_feedforward"), code_text("lightning_version",
                                                                 "mnist_feedforward")
    fabric = code_text("fabric_version", "mnist_feedforward")
    assert "by_hand" not in plain + fabric and "seeding" not in plain + fabric
    assert "plugins" not in fabric
    assert "lightning.pytorch.callbacks" not in lightning and "tuner" not in lightning
