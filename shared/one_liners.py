"""Count, from the code itself, what each Lightning one-liner replaces.

    python -m shared.one_liners                  # prints README's table "The one-liner and what it does"
    python -m shared.one_liners --update-readme  # writes it into README.md, between its markers

For each feature, the Lightning side is the set of lines in `lightning_version/sum_dataset.py`
that match its patterns; the hand-written side is the matching lines of
`plain_pytorch/sum_dataset.py` plus the whole of the feature's own file(s) in
`plain_pytorch/by_hand/` or `shared/`. Only code lines count: no blank lines, comments or
docstrings. "Lines saved" is hand-written minus Lightning. tests/test_readme.py checks that
README's table is exactly what this prints, so the numbers cannot go stale.
"""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAIN, LIGHTNING = "plain_pytorch/sum_dataset.py", "lightning_version/sum_dataset.py"

# (feature, the one-liner to show, Lightning patterns, plain patterns, whole files of the hand-written twin)
FEATURES = [
    ("TensorBoard logging", '`self.log(...)` + `TensorBoardLogger(...)`', r"TensorBoardLogger|log_every_n_steps",
     r"writer|SummaryWriter", []),
    ("progress bar", "default `TQDMProgressBar`", r"enable_progress_bar", r"\bbar\b|tqdm", []),
    ("checkpoints and resume", '`ModelCheckpoint(monitor="val_loss", save_last=True)`, `fit(ckpt_path=...)`',
     r"ModelCheckpoint|save_hyperparameters|ckpt_path|enable_checkpointing|monitor=\"val_loss\"|RngInCheckpoint",
     r"[Cc]heckpoint|resume|hparams", ["plain_pytorch/by_hand/checkpointing.py"]),
    ("early stopping", '`EarlyStopping(monitor="val_loss", patience=..., min_delta=...)`',
     r"EarlyStopping|min_delta=args", r"early_stopping|\bstop\b", ["plain_pytorch/by_hand/early_stopping.py"]),
    ("LR finder", "`Tuner(trainer).lr_find(model)`", r"lr_find|lr_finder", r"find_lr|lr_finder|lr_range_test",
     ["plain_pytorch/by_hand/lr_finder.py"]),
    ("batch-size finder", "`Tuner(trainer).scale_batch_size(model, mode=...)`", r"scale_batch_size|find_batch_size",
     r"find_batch_size|batch_size_finder|scale_batch_size", ["plain_pytorch/by_hand/batch_size_finder.py"]),
    ("seeding and determinism", "`seed_everything(seed, workers=True)`, `Trainer(deterministic=True)`",
     r"seed_everything|deterministic=", r"seed_everything|seed_worker|deterministic", ["shared/seeding.py"]),
    ("gradient clipping", "`Trainer(gradient_clip_val=..., gradient_clip_algorithm=...)`", r"gradient_clip",
     r"clip|unscale_", []),
    ("mixed precision", '`Trainer(precision="bf16-mixed")`', r"precision=", r"autocast|scaler",
     ["plain_pytorch/by_hand/precision.py"]),
    ("gradient accumulation", "`Trainer(accumulate_grad_batches=N)`", r"accumulate_grad_batches",
     r"accumulate_grad_batches", []),
    ("LR scheduler", "`configure_optimizers` returning a `StepLR`", r"scheduler|lr_step_gamma is None",
     r"scheduler", []),
    ("test and predict", "`LightningDataModule`, `trainer.test`, `trainer.predict`",
     r"TensorDataModule|datamodule=datamodule\)|test_step|predict_step|trainer\.test|trainer\.predict|predict_loader|args\.test|args\.predict|self\.log\(\"test",
     r"args\.test|args\.predict|test_loss|def predict|predict\(|test_set\)", []),
]


def code_lines(path: str) -> dict[int, str]:
    """Line number -> text of every line that is code: not blank, not a comment, not a docstring."""
    source = (REPO / path).read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    return {
        number: line
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    }


def matching(path: str, pattern: str) -> list[int]:
    """Code lines that match `pattern`, and every line of an `if args.flag`/`if name` block that matches it."""
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
    rows = ["| feature | Lightning | hand-written twin (file: lines) | Lightning lines | hand-written lines | lines saved |",
            "|---|---|---|---|---|---|"]
    for name, one_liner, lightning_pattern, plain_pattern, files in FEATURES:
        lightning = len(matching(LIGHTNING, lightning_pattern))
        plain_numbers = matching(PLAIN, plain_pattern)
        where = [f"`{PLAIN}`: {ranges(plain_numbers)}"] if plain_numbers else []
        where += [f"`{f}`: all {len(code_lines(f))}" for f in files]
        written = len(plain_numbers) + sum(len(code_lines(f)) for f in files)
        rows.append(f"| {name} | {one_liner} | {'; '.join(where)} | {lightning} | {written} | {written - lightning} |")
    return "\n".join(rows)


def update_readme() -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    begin, end = "<!-- one-liners: begin -->\n", "\n<!-- one-liners: end -->"
    readme.write_text(text[: text.index(begin) + len(begin)] + table() + text[text.index(end) :])


if __name__ == "__main__":
    import sys

    update_readme() if "--update-readme" in sys.argv[1:] else print(table())
