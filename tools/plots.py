"""Loss curves of two runs on one chart: the main job draws one per twin pair, and the lessons use it."""

from pathlib import Path


def plot_losses(plain: dict, lightning: dict, path: str | Path | None = None,
                labels: tuple[str, str] = ("plain PyTorch", "Lightning")):
    """Both twins' per-step training losses on one chart; the title gives the largest difference.

    `plain` and `lightning` are metrics records (`--metrics-out` JSON, or `asdict(record)`).
    `labels` name the two curves in the legend. Returns the matplotlib Figure, saved as a
    PNG at `path` when given. A bare Figure draws
    with the Agg backend: no window, no pyplot state, so it works in scripts and tests.
    """
    from matplotlib.figure import Figure

    steps = len(plain["train_loss"])
    same_length = steps == len(lightning["train_loss"])
    largest = max((abs(a - b) for a, b in zip(plain["train_loss"], lightning["train_loss"])), default=0.0)
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(plain["train_loss"], label=labels[0], linewidth=3, alpha=0.6)
    ax.plot(lightning["train_loss"], label=labels[1], linestyle="--", color="black", linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("train_loss")
    ax.legend()
    difference = f"largest |difference| {largest:.3g}" if same_length else "step counts differ"
    ax.set_title(f"{plain['example']}: {steps} steps, {difference}")
    if path is not None:
        figure.savefig(path, format="png")
    return figure
