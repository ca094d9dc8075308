"""Count, from the code itself, what each Lightning one-liner replaces, in the step that teaches it.

    python -m tools.one_liners           # prints the table of docs/features.md
    python -m tools.one_liners --update  # writes it into docs/features.md, between its markers

For each feature, the Lightning side is the set of lines in `lightning_version/EXAMPLE.py`
that match its patterns, EXAMPLE being the step that teaches the feature; the hand-written
side is the matching lines of `plain_pytorch/EXAMPLE.py` plus the whole of the feature's own
file(s) in `by_hand/` or `shared/`. The Fabric side is the matching lines of
`fabric_version/EXAMPLE.py` plus what it reuses of those files ("FILE:NAME" counts one class
or function of FILE). Only code lines count: no blank lines, comments or docstrings.
tests/test_readme.py checks that the docs' table is exactly what this prints, so the numbers
cannot go stale.
"""

import ast
import re
from typing import NamedTuple

from tools.ladder import REPO, STEPS, code_line_numbers, update_block


class Feature(NamedTuple):
    name: str
    example: str  # the step that teaches it
    one_liner: str  # what Lightning asks of you, as README shows it
    lightning: str  # pattern of its lines in the Lightning twin
    plain: str  # pattern of its lines in the plain twin
    files: tuple[str, ...] = ()  # whole files of the hand-written twin
    fabric_call: str = "none: yours, as by hand"  # what Fabric offers for it
    fabric: str = ""  # pattern of its lines in the Fabric twin ("": the plain pattern)
    fabric_files: tuple[str, ...] = ()  # what the Fabric twin reuses from by_hand/ or shared/
    everywhere: bool = False  # taught in this step, then used by every later step too


FEATURES = [
    Feature("TensorBoard logging", "mnist_feedforward",
            "`self.log(...)` + `TensorBoardLogger(...)`",
            r"TensorBoardLogger|log_every_n_steps", r"writer|SummaryWriter",
            fabric_call="`fabric.log_dict(...)` + `TensorBoardLogger(...)`",
            fabric=r"TensorBoardLogger|log_dict|loggers|finalize", everywhere=True),
    Feature("progress bar", "mnist_feedforward", "default `TQDMProgressBar`",
            r"enable_progress_bar",
            r"\bbar\b|tqdm", everywhere=True),
    Feature("one-batch dry run", "mnist_feedforward", "`Trainer(fast_dev_run=True)`",
            r"fast_dev_run",
            r"dry_run", everywhere=True),
    Feature("LR scheduler", "cnn_classifier", "`configure_optimizers` returning a `StepLR`",
            r"scheduler|StepLR", r"scheduler|StepLR"),
    Feature("checkpoints and resume", "cnn_classifier",
            '`ModelCheckpoint(monitor="val_loss")` and `ModelCheckpoint(filename="last")`, '
            '`fit(ckpt_path=...)`, '
            '`load_from_checkpoint`',
            r"ModelCheckpoint|save_hyperparameters|ckpt_path|enable_checkpointing|RngInCheckpoint|"
            r"load_from_checkpoint|checkpoint|folder|\[best, last\]",
            r"[Cc]heckpoint|resume|hparams|first_epoch|folder", ("by_hand/checkpointing.py",),
            fabric_call="`fabric.save(path, state)`, `fabric.load(path, state)`",
            fabric=r"[Cc]heckpoint|resume|hparams|first_epoch|folder|state|saved|rng_states",
            fabric_files=("by_hand/checkpointing.py:Checkpoints",)),
    Feature("DDP on N processes", "cnn_classifier",
            '`Trainer(strategy="ddp", devices=N)`, `self.log(..., sync_dist=True)`',
            r"strategy=|devices=args|num_nodes=|sync_dist|is_global_zero",
            r"\bddp\b|DistributedSampler|DistributedDataParallel|"
            r"join_process_group|mean_across_processes",
            ("by_hand/distributed.py",),
            fabric_call='`Fabric(strategy="ddp", devices=N)`, `fabric.launch()`, '
                        '`fabric.all_reduce(...)`',
            fabric=r"\bddp\b|strategy=|devices=args|num_nodes=|launch\(|all_reduce|broadcast|"
                   r"is_global_zero"),
    Feature("test and predict", "cnn_classifier", "`trainer.test`, `trainer.predict`",
            r"test_step|predict_step|loss_and_accuracy|test_dataloader|predict_dataloader|"
            r"trainer\.test|trainer\.predict|args\.test|args\.predict|self\.log\(\"test|"
            r"show_predictions",
            r"args\.test|args\.predict|test_loss|def "
            r"predict|predict\(|predictions|show_predictions|"
            r"predict_set"),
    Feature("seeding and determinism", "sum_dataset",
            "`seed_everything(seed, workers=True)`, `Trainer(deterministic=True)`",
            r"seed_everything|deterministic=", r"seed_everything|seed_worker|deterministic",
            ("shared/seeding.py",), fabric_call="`fabric.seed_everything(seed, workers=True)`",
            fabric=r"seed_everything|deterministic",
            fabric_files=("shared/seeding.py:use_deterministic_algorithms",)),
    Feature("early stopping", "sum_dataset",
            '`EarlyStopping(monitor="val_loss", patience=..., min_delta=...)`',
            r"EarlyStopping|early_stopping|patience=|min_delta=", r"early_stopping|EarlyStopping",
            ("by_hand/early_stopping.py",),
            fabric_files=("by_hand/early_stopping.py",)),
    Feature("LR finder", "sum_dataset", "`Tuner(trainer).lr_find(model)`",
            r"lr_find|lr_finder|figure",
            r"find_lr|lr_finder|lr_range_test", ("by_hand/lr_finder.py",),
            fabric_files=("by_hand/lr_finder.py",)),
    Feature("batch-size finder", "sum_dataset",
            "`Tuner(trainer).scale_batch_size(model, mode=...)`",
            r"scale_batch_size|find_batch_size", r"find_batch_size|scale_batch_size|new_optimizer",
            ("by_hand/batch_size_finder.py",),
            fabric_files=("by_hand/batch_size_finder.py",)),
    Feature("gradient clipping", "sum_dataset",
            "`Trainer(gradient_clip_val=..., gradient_clip_algorithm=...)`",
            r"gradient_clip", r"clip|unscale_",
            fabric_call="`fabric.clip_gradients(model, optimizer, max_norm=...)`",
            fabric=r"clip"),
    Feature("mixed precision", "sum_dataset", '`Trainer(precision="bf16-mixed")`', r"precision=",
            r"autocast|scaler", ("by_hand/precision.py",),
            fabric_call='`Fabric(precision="bf16-mixed")`', fabric=r"precision="),
    Feature("gradient accumulation", "sum_dataset", "`Trainer(accumulate_grad_batches=N)`",
            r"accumulate_grad_batches", r"accumulate_grad_batches|last_batch",
            fabric_call="`with fabric.no_backward_sync(model, enabled=...)` (the window by hand)",
            fabric=r"accumulate_grad_batches|last_batch|no_backward_sync|if window_ends"),
]


def code_lines(path: str) -> dict[int, str]:
    """Line number -> text of every code line of `path` (see tools.ladder.code_line_numbers).

    "FILE:NAME" keeps only the lines of the class or function NAME defined in FILE.
    """
    path, _, name = path.partition(":")
    lines = (REPO / path).read_text().splitlines()
    numbers = sorted(code_line_numbers(path))
    if name:
        tree = ast.parse((REPO / path).read_text())
        node = next(node for node in tree.body if getattr(node, "name", None) == name)
        numbers = [n for n in numbers if node.lineno <= n <= node.end_lineno]
    return {number: lines[number - 1] for number in numbers}


def matching(path: str, pattern: str) -> list[int]:
    """Code lines that match `pattern`, and every line of an `if args.flag`/`if name` block that
    matches it."""
    lines = code_lines(path)
    chosen = {number for number, line in lines.items() if re.search(pattern, line.split("  #")[0])}
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        condition = ast.unparse(node.test) if isinstance(node, ast.If) else ""
        # Only feature switches count as a whole block: `if args.test:`, `if writer:`, ...
        if re.fullmatch(r"args\.\w+.*|\w+", condition) and re.search(pattern, condition):
            chosen.update(n for n in range(node.lineno, node.end_lineno + 1) if n in lines)
    return sorted(chosen)


def ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def table() -> str:
    step_of = {step.example: step.number for step in STEPS}
    rows = ["| feature | step | Lightning | Fabric | hand-written twin (file: lines) | "
            "code lines by hand / Fabric / Lightning |", "|---|---|---|---|---|---|"]
    for feature in FEATURES:
        plain_file = f"plain_pytorch/{feature.example}.py"
        lightning_file = f"lightning_version/{feature.example}.py"
        lightning = len(matching(lightning_file, feature.lightning))
        plain_numbers = matching(plain_file, feature.plain)
        where = [f"`{plain_file}`: {ranges(plain_numbers)}"] if plain_numbers else []
        where += [f"`{f}`: all {len(code_lines(f))}" for f in feature.files]
        written = len(plain_numbers) + sum(len(code_lines(f)) for f in feature.files)
        fabric = len(matching(f"fabric_version/{feature.example}.py",
                              feature.fabric or feature.plain))
        fabric += sum(len(code_lines(f)) for f in feature.fabric_files)
        rows.append(f"| {feature.name} | {step_of[feature.example]} `{feature.example}` | "
                    f"{feature.one_liner} | "
                    f"{feature.fabric_call} | {'; '.join(where)} | {written} / {fabric} / "
                    f"{lightning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    update_block("one-liners", table()) if "--update" in sys.argv[1:] else print(table())
