"""The lesson ladder: the three twin pairs in reading order, what each teaches, and its flags.

    python -m tools.ladder                  # prints README's ladder table, lines counted now
    python -m tools.ladder --update         # writes it into README.md (and docs/which-one.md's
                                            # code-line table into that file), between their markers

Each Lightning feature lives in exactly one step, the one where the classic tutorials
teach it; `tests/test_ladder.py` holds the files to that, and to the size limits below.
README's walk through the ladder, the one-liner table (`tools/one_liners.py`) and the
tests read this module, so there is one place that says what the ladder is.
"""

import ast
import io
import tokenize
from pathlib import Path
from typing import NamedTuple

from shared.flags import flag_names
from shared.registry import EXAMPLE_NAMES, EXAMPLES, PACKAGES, TWINS, twin_file

REPO = Path(__file__).resolve().parents[1]


class Step(NamedTuple):
    number: int  # from shared/registry.py
    example: str  # the file name in every twin's package (shared/registry.py lists them)
    title: str
    teaches: str  # plain, by hand <-> Lightning
    fabric: str  # what the Fabric twin hands to Fabric, and what it still writes
    flags: tuple[str, ...]  # the flags this step adds to COMMON_FLAGS, read from its parser


def _common_flags() -> tuple[str, ...]:
    """The flags every example takes, in --help's order (shared/flags.py's parser)."""
    first, *others = (flag_names(example) for example in EXAMPLE_NAMES)
    return tuple(flag for flag in first if all(flag in flags for flags in others))


COMMON_FLAGS = _common_flags()

# What each step teaches, by example: (title, teaches, fabric).
LESSONS = {
    "mnist_feedforward": (
        "the classic 784-500-10 MLP on MNIST",
        "device choice and `.to(device)`; the DataLoader; `model.train()`/`model.eval()`; "
        "`zero_grad`, forward, loss, `backward`, `step` ⟷ `training_step` + `Trainer`; "
        "validation under `no_grad` ⟷ `validation_step`; accuracy; `SummaryWriter` ⟷ `self.log` "
        "+ `TensorBoardLogger`; tqdm ⟷ the default progress bar; `--dry-run` ⟷ `fast_dev_run`",
        "hands over the device (`fabric.setup`, `fabric.setup_dataloaders`), `fabric.backward`, "
        "`fabric.log_dict`; still writes the loop, train/eval modes, validation, the bar, "
        "`--dry-run`"),
    "cnn_classifier": (
        "a real training job: a conv net with dropout",
        "dropout, and why train/eval modes matter; SGD with momentum and `StepLR` ⟷ "
        "`configure_optimizers` returning a scheduler; best and last checkpoints, resuming, and "
        "rebuilding the best model ⟷ two `ModelCheckpoint`s, `fit(ckpt_path=...)`, "
        "`load_from_checkpoint`; stopping at a nan loss ⟷ the same check in `on_train_batch_end` "
        "and `on_validation_epoch_end`; loaders in `main` ⟷ a `LightningDataModule`; `evaluate` "
        "on the test split and plain inference ⟷ `trainer.test`, `trainer.predict`; one process "
        "per device, launched by torchrun, with `DistributedSampler` and "
        "`DistributedDataParallel` ⟷ `Trainer(strategy=\"ddp\", devices=N)` and "
        "`self.log(..., sync_dist=True)`",
        "hands over checkpoint IO (`fabric.save`, `fabric.load`), DDP "
        "(`Fabric(strategy=\"ddp\")`, `fabric.launch()`, `fabric.all_reduce`); still writes the "
        "scheduler's step, which checkpoint is best, the nan check, test and predict"),
    "sum_dataset": (
        "Lightning's extras, on a custom Dataset",
        "a custom `Dataset` with `__len__` and `__getitem__`; seeding every generator and each "
        "worker ⟷ `seed_everything(workers=True)`, `deterministic`; early stopping; the LR "
        "finder; the batch-size finder; gradient clipping; mixed precision (bf16 on CPU, "
        "16-mixed on CUDA); gradient accumulation",
        "hands over seeding (`fabric.seed_everything`), precision, `fabric.clip_gradients`, "
        "`fabric.no_backward_sync`; still writes early stopping and both finders (from "
        "`by_hand/`), determinism, the accumulation window"),
    "tiny_gpt": (
        "how people train models today: a small GPT, by steps",
        "a decoder-only transformer on characters, batches of random windows from a generator "
        "of their own; a loop by steps ⟷ `max_steps`; evaluating every N steps on N batches ⟷ "
        "`val_check_interval`, `check_val_every_n_epoch=None`, `limit_val_batches`; AdamW with "
        "decay and no-decay groups; warmup then cosine, set before each step ⟷ a `LambdaLR` with "
        "`\"interval\": \"step\"`; logging the rate ⟷ `LearningRateMonitor`; a checkpoint every "
        "N steps and a resume mid-run ⟷ `ModelCheckpoint(every_n_train_steps=N)`, the "
        "iterable's `state_dict` saved by the Trainer; sampling ⟷ `predict_step`; bf16 autocast "
        "⟷ `precision=\"bf16-mixed\"`; `torch.compile`",
        "hands over precision (`fabric.autocast()`), checkpoint IO of the training iterable "
        "(`fabric.save`, `fabric.load`), logging, DDP; still writes the loop by steps, the "
        "rate's schedule, evaluation, when to checkpoint, sampling"),
}
STEPS = tuple(Step(example.step, example.name, *LESSONS[example.name],
                   tuple(flag for flag in flag_names(example.name) if flag not in COMMON_FLAGS))
              for example in EXAMPLES)

# The size limits (code lines: not blank, not comment, not docstring).
MAX_CODE_LINES = {("plain_pytorch", "mnist_feedforward"): 80,
                  ("fabric_version", "mnist_feedforward"): 80,
                  ("lightning_version", "mnist_feedforward"): 60}
MAX_CODE_LINES_ANY_TWIN = 150
MAX_LINE_LENGTH = 100  # so `diff -y -W 210` shows both files' lines whole


def twin_path(package: str, example: str) -> str:
    return twin_file(package, example)


def code_line_numbers(path: str) -> set[int]:
    """The numbers of the lines of `path` (relative to the repository) that hold code.

    Not blank, not a comment, not part of a docstring; a statement spread over several
    lines counts each of them.
    """
    source = (REPO / path).read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    lines = {n for t in tokens if t.type not in skip for n in range(t.start[0], t.end[0] + 1)}
    return lines - docstrings


def code_lines(path: str) -> int:
    """How many code lines `path` has (see `code_line_numbers`)."""
    return len(code_line_numbers(path))


def table() -> str:
    """README's ladder table: each step, what it teaches, its own flags, its twins' code lines."""
    labels = " / ".join(twin.label for twin in TWINS)
    rows = ["| step | example | what it teaches (plain, by hand ⟷ Lightning) | the Fabric twin | "
            f"its own flags | code lines {labels} |", "|---|---|---|---|---|---|"]
    for step in STEPS:
        counts = " / ".join(str(code_lines(twin_path(package, step.example)))
                            for package in PACKAGES)
        files = f"[`{step.example}`]({twin_path(PACKAGES[0], step.example)}) ({step.title})"
        flags = ", ".join(f"`{flag}`" for flag in step.flags)
        rows.append(f"| {step.number} | {files} | {step.teaches} | {step.fabric} | {flags} "
                    f"| {counts} |")
    return "\n".join(rows)


def by_hand_files(package: str, example: str) -> list[str]:
    """The files of by_hand/ that a twin imports, in import order."""
    tree = ast.parse((REPO / twin_path(package, example)).read_text())
    modules = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    return [f"{module.replace('.', '/')}.py" for module in modules if module.startswith("by_hand.")]


def code_lines_table() -> str:
    """docs/which-one.md's table: each twin's code lines, alone and with the by_hand/ files it
    imports."""
    rows = ["| step | " + " | ".join(twin.label for twin in TWINS) + " |",
            "|---|" + "---|" * len(TWINS)]
    for step in STEPS:
        cells = []
        for package in PACKAGES:
            own = code_lines(twin_path(package, step.example))
            files = by_hand_files(package, step.example)
            extra = sum(code_lines(path) for path in files)
            names = ", ".join(Path(path).stem for path in files)
            cells.append(f"{own} + {extra} ({names}) = {own + extra}" if files else str(own))
        rows.append(f"| {step.number} `{step.example}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# Where each generated table lives, between `<!-- NAME: begin -->` and `<!-- NAME: end -->`.
BLOCKS = {"ladder": "README.md", "main-job": "README.md", "one-liners": "docs/features.md",
          "lightning-1x": "docs/lightning-1x.md", "code-lines": "docs/which-one.md"}


def replace_block(text: str, name: str, content: str) -> str:
    """`text` with what stands between `<!-- NAME: begin -->` and `<!-- NAME: end -->` replaced."""
    begin, end = f"<!-- {name}: begin -->\n", f"\n<!-- {name}: end -->"
    return text[: text.index(begin) + len(begin)] + content + text[text.index(end) :]


def doc_block(name: str) -> str:
    """What the file that holds block `name` (README.md or a file in docs/) holds there now."""
    text = (REPO / BLOCKS[name]).read_text()
    begin, end = f"<!-- {name}: begin -->\n", f"\n<!-- {name}: end -->"
    return text[text.index(begin) + len(begin) : text.index(end)]


def update_block(name: str, content: str) -> None:
    """Write `content` into the file that holds block `name`, between its markers."""
    path = REPO / BLOCKS[name]
    path.write_text(replace_block(path.read_text(), name, content))


if __name__ == "__main__":
    import sys

    if "--update" in sys.argv[1:]:
        update_block("ladder", table())
        update_block("code-lines", code_lines_table())
    else:
        print(table(), code_lines_table(), sep="\n\n")
