"""Loss curves of several runs on one chart: the main job draws one per step; the lessons too."""

from pathlib import Path

# The first curve wide and pale, the others thin on top of it: identical curves stay visible.
STYLES = [dict(linewidth=3, alpha=0.6), dict(linestyle="--", color="black", linewidth=1),
          dict(linestyle=":", color="tab:red", linewidth=1.5)]


def plot_losses(plain: dict, *others: dict, path: str | Path | None = None,
                labels: tuple[str, ...] | None = None):
    """The twins' per-step training losses on one chart; the title gives the largest difference.

    `plain` and each of `others` (one or two) are metrics records (`--metrics-out` JSON, or
    `asdict(record)`); `labels` name the curves in the legend, in that order (by default "plain
    PyTorch" and "Lightning", with "Fabric" between them when there are three). The largest
    difference is from `plain` to any other. Returns the matplotlib Figure, saved as a PNG at
    `path` when given. A bare Figure draws with the Agg backend: no window, no pyplot state,
    so it works in scripts and tests.
    """
    from matplotlib.figure import Figure

    if labels is None:
        labels = ("plain PyTorch", "Lightning") if len(others) == 1 else ("plain PyTorch",
                                                                          "Fabric", "Lightning")
    if len(labels) != 1 + len(others):
        raise ValueError(f"{1 + len(others)} curves need as many labels, not {len(labels)}")
    steps = len(plain["train_loss"])
    same_length = all(steps == len(other["train_loss"]) for other in others)
    largest = max((abs(a - b) for other in others for a, b in zip(plain["train_loss"],
                                                                  other["train_loss"])),
                  default=0.0)
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    ax = figure.subplots()
    for record, label, style in zip((plain, *others), labels, STYLES):
        ax.plot(record["train_loss"], label=label, **style)
    ax.set_xlabel("training step")
    ax.set_ylabel("train_loss")
    ax.legend()
    difference = f"largest |difference| {largest:.3g}" if same_length else "step counts differ"
    ax.set_title(f"{plain['example']}: {steps} steps, {difference}")
    if path is not None:
        figure.savefig(path, format="png")
    return figure
