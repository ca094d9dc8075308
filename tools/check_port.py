"""Check your own migration: run a plain training script and its port, and find where they part.

    check-port --plain "python train.py --epochs 2" --port "python train_lightning.py --epochs 2"
    python -m tools.check_port --plain "..." --port "..." [--metric REGEX] [--timeout SECONDS]
                               [--tensorboard PLAIN_DIR PORT_DIR] [--save-sides DIR]
    python -m tools.check_port --plain-from DIR/plain.json --port "..."

Both commands run as you would run them, side by side, each in a fresh process with stdin
from /dev/null, with nothing changed in your files: a recorder
(tools/port_recorder/sitecustomize.py) is put in front of `PYTHONPATH`, and from the moment
torch is imported it notes every backward pass, every optimizer step, every forward pass with
gradients off (validation) and the weights at the end. Then the two records are compared step
by step, and validation pass by pass. It prints "identical: N training steps and M validation
passes, bit for bit", or the first step that differs with a diagnosis drawn from the record in
this order: the models differ (which parameter), the precision differs (which dtype), the
weights differ before the step (the initialisation, or the update before it: which setting),
or the weights are equal and the loss is not (another batch, another hidden state, the forward
pass, the loss function, accumulation). Each diagnosis names the check that confirms it and
the page of docs/ that explains the fix. `--metric REGEX` compares the numbers both sides print
(every match on stdout, in order); `--tensorboard` the scalars both sides logged, tag by tag.

A plain loop that takes long need not run again for every edit of its port: `--save-sides DIR`
keeps what each side did (its record, exit status, last lines and metrics) in DIR/plain.json and
DIR/port.json, and `--plain-from DIR/plain.json` (or `--port-from`) compares against that side
instead of running it.

Exit status: 0 identical, 1 different, 2 bad input or a side that failed or ran out of time
(its last lines are shown, and how many steps agreed before), 130 after Ctrl-C and 143 after
SIGTERM, which stop both sides first.
"""

import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from shared.one_line_parser import OneLineParser
from shared.run_end import BadInput

RECORDER = Path(__file__).resolve().parent / "port_recorder"
PARITY = "docs/parity.md"
GUIDE = "docs/check-your-port.md"
VERDICTS = f'{GUIDE}, the table under "What the verdict says"'  # one row per diagnosis
TAIL_LINES = 25  # the lines of a side's output kept to show when it fails
LINE_CHARS = 2000  # a longer line (a progress bar without newlines) is cut
GRACE = 1.0  # seconds a side's output may stay open after it exited (a background child holding it)


class Stopped(Exception):
    """Ctrl-C or SIGTERM reached the check."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Side:
    """One command, its process, the tail of its output, the metrics it printed and its record."""

    def __init__(self, name: str, command: str | None, metric: re.Pattern | None,
                 folder: Path) -> None:
        """`command` None: the side is not run, its saved record is loaded (`load`)."""
        self.name, self.command, self.metric = name, command, metric
        self.saved = command is None
        try:
            self.words = [] if self.saved else shlex.split(command)
        except ValueError as error:
            raise BadInput(
                f"--{name} cannot be read: {error} (an unclosed quote?); quote the whole "
                "command once and the arguments inside it with the other kind of quote"
            ) from None
        if not self.words and not self.saved:
            raise BadInput(
                f"--{name} is empty; give the command that runs your {name} training script"
            )
        self.record = folder / f"{name}.jsonl"
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.metrics: list[str] = []
        self.partial = {"stdout": "", "stderr": ""}
        self.process: subprocess.Popen | None = None
        self.status: int | None = None
        self.ended: float | None = None
        self.timed_out = False

    def save(self, path: Path) -> None:
        """What this side did, to compare against later with --plain-from or --port-from."""
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        saved = {"side": self.name, "command": self.command, "status": self.status,
                 "timed_out": self.timed_out, "tail": list(self.tail),
                 "metric": self.metric.pattern if self.metric else None,
                 "metrics": self.metrics, "record": lines}
        path.write_text(json.dumps(saved))

    def load(self, path: Path) -> None:
        """Take what a saved side did instead of running its command."""
        try:
            saved = json.loads(path.read_text())
            status, tail, lines = saved["status"], saved["tail"], saved["record"]
            metric, metrics, self.command = saved["metric"], saved["metrics"], saved["command"]
        except OSError as error:
            raise BadInput(f"--{self.name}-from {path}: {error.strerror}; give a file that "
                           "--save-sides wrote") from None
        except ValueError:
            raise BadInput(f"--{self.name}-from {path} is not JSON, so not a side saved by "
                           "--save-sides; save one with --save-sides DIR") from None
        except (KeyError, TypeError):
            raise BadInput(f"--{self.name}-from {path} is JSON but not a side saved by "
                           "--save-sides; save one with --save-sides DIR") from None
        pattern = self.metric.pattern if self.metric else None
        if pattern is not None and metric != pattern:
            was = f"with --metric {metric}" if metric else "without --metric"
            raise BadInput(f"--{self.name}-from {path} was saved {was}, and this check gives "
                           f"--metric {pattern}; give the same --metric, or save the side again")
        self.status, self.timed_out = status, saved.get("timed_out", False)
        self.tail.extend(tail)
        self.metrics = list(metrics)
        self.record.write_text("\n".join(lines) + "\n" if lines else "")

    def start(self) -> None:
        path = os.pathsep.join(filter(None, [str(RECORDER), os.environ.get("PYTHONPATH")]))
        env = dict(
            os.environ, PORT_CHECK_RECORD=str(self.record), PYTHONPATH=path, PYTHONUNBUFFERED="1"
        )
        try:
            self.process = subprocess.Popen(
                self.words,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            raise BadInput(
                f"the {self.name} command does not start ({error.strerror}: {self.words[0]}); "
                f"check --{self.name}"
            ) from None

    def take(self, stream: str, data: bytes) -> None:
        """Lines of output: the last few kept, metrics matched on stdout; memory stays bounded."""
        text = self.partial[stream] + data.decode(errors="replace")
        *lines, rest = re.split(r"\r\n|\r|\n", text)
        self.partial[stream] = rest[-LINE_CHARS:]
        for line in lines:
            self.line(stream, line)

    def line(self, stream: str, line: str) -> None:
        line = line[:LINE_CHARS]
        if line.strip():
            self.tail.append(line)
        if stream == "stdout" and self.metric is not None:
            for match in self.metric.finditer(line):
                self.metrics.append(match.group(1) if match.groups() else match.group(0))

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self.line(stream, rest)
        self.partial = {"stdout": "", "stderr": ""}

    def stop(self, how: int = signal.SIGTERM) -> None:
        """Signal the whole process group: the command and whatever it started."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, how)
            except (ProcessLookupError, PermissionError):
                pass

    def steps(self) -> dict:
        """The record: training steps (each backward, the optimizer steps after it), evaluations,
        ..."""
        record = {"steps": [], "evals": [], "final": None, "signatures": {}, "traces": {}}
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        schedulers: dict[str, dict] = {}  # each scheduler's settings, as of its last step
        stepped = 0
        for text in lines:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue  # a line cut short when the process was killed
            kind = line["kind"]
            if kind == "backward":
                record["steps"].append(
                    dict(
                        line,
                        updates=[],
                        schedulers=list(schedulers.values()),
                        scheduler_steps=stepped,
                    )
                )
            elif kind == "step":
                if record["steps"]:
                    record["steps"][-1]["updates"].append(line)
            elif kind == "scheduler":
                schedulers[line["scheduler"]] = line
                stepped += 1
            elif kind == "eval":
                if not line["sanity"]:
                    record["evals"].append(line)
            elif kind == "final":
                record["final"] = line["weights"]
            else:
                record[kind + "s"][line["id"]] = line
        return record


def python_warning(side: Side) -> str | None:
    """A warning when the command runs a `python` other than the one running this check."""
    if side.saved:
        return None
    first = side.words[0]
    if not re.fullmatch(r"python[0-9.]*", Path(first).name):
        return None
    found = first if os.sep in first else shutil.which(first)
    if found is None:
        return None
    ours = Path(sys.executable).absolute().parent
    if (
        Path(found).absolute().parent == ours
        or Path(found).resolve() == Path(sys.executable).absolute()
    ):
        return None
    return (
        f"warning: the {side.name} command runs {found}, not the Python running this check "
        f"({sys.executable}); its torch and Lightning may be other versions, and then the bits "
        "differ"
    )


def run_both(sides: list[Side], timeout: float | None) -> None:
    """Run both commands side by side until both end; Ctrl-C, SIGTERM stop both."""
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        received.append(signum)

    before = {
        number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
    }
    selector = selectors.DefaultSelector()
    try:
        for side in sides:
            print(f"running the {side.name} side: {side.command}", flush=True)
            side.start()
            for stream in ("stdout", "stderr"):
                pipe = getattr(side.process, stream)
                os.set_blocking(pipe.fileno(), False)
                selector.register(pipe, selectors.EVENT_READ, (side, stream))
        started = time.monotonic()
        while True:
            if received:
                raise Stopped(received[0])
            for key, _ in selector.select(timeout=0.2):
                side, stream = key.data
                data = os.read(key.fd, 65536)
                if data:
                    side.take(stream, data)
                else:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
            now = time.monotonic()
            for side in sides:
                if side.status is None and side.process.poll() is not None:
                    side.status, side.ended = side.process.returncode, now
                elif (
                    side.status is None
                    and timeout is not None
                    and now - started > timeout
                    and not side.timed_out
                ):
                    side.timed_out = True
                    side.stop(signal.SIGTERM)
                elif side.timed_out and side.status is None and now - started > timeout + 5:
                    side.stop(signal.SIGKILL)
                if (
                    side.ended is not None and now - side.ended > GRACE
                ):  # something it started holds its output
                    for key in list(selector.get_map().values()):
                        if key.data[0] is side:
                            selector.unregister(key.fileobj)
                            key.fileobj.close()
                    side.stop(signal.SIGTERM)
            if not selector.get_map() and all(side.status is not None for side in sides):
                break
    except Stopped:
        for side in sides:
            side.stop(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for side in sides:
            if side.process is not None:
                try:
                    side.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    side.stop(signal.SIGKILL)
        raise
    except BaseException:  # a side that does not start, or a bug here: the other side stops too
        for side in sides:
            side.stop(signal.SIGKILL)
        raise
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
        for number, handler in before.items():
            signal.signal(number, handler)
    for side in sides:
        side.flush()
        side.stop(signal.SIGTERM)  # nothing it started outlives the check


# -- the comparison of training steps


def first_difference(plain: dict, port: dict) -> int | None:
    """The index of the first step whose loss or weights differ; None if the shared steps agree."""
    for index, (a, b) in enumerate(zip(plain["steps"], port["steps"])):
        if (
            a["loss"] != b["loss"]
            or a["weights"] != b["weights"]
            or _shapes(_signature(plain, a)) != _shapes(_signature(port, b))
        ):
            return index
    return None


def _signature(record: dict, step: dict) -> dict:
    return record["signatures"][step["signature"]]


def _shapes(signature: dict) -> list:
    """What must agree of two sets of weights: shapes and dtypes, in order (names may differ)."""
    return [(list(shape), dtype) for shape, dtype in zip(signature["shapes"], signature["dtypes"])]


def diagnose(plain: dict, port: dict, index: int) -> tuple[str, str, str, str]:
    """(what, cause, the check that confirms it, where docs/ explains it) for step `index`."""
    a, b = plain["steps"][index], port["steps"][index]
    model = _models(_signature(plain, a), _signature(port, b))
    if model:
        return model
    precision = _precision(_signature(plain, a), _signature(port, b), a, b)
    if precision:
        return precision
    if a["weights"] != b["weights"]:
        name = _first_weight(_signature(plain, a), a, b)
        if index == 0:
            return (
                f"the models start from different weights (the first that differs: {name})",
                "initialisation: the seed is set at another point, or something drew from the "
                "global generator "
                "before the model was built (another model, a dataset, a DataLoader iter()), or "
                "weights were "
                "loaded on one side only",
                "print the sum of each model's parameters right after building it, on both sides",
                f"{PARITY}, trap 1 (seeding, then the model)",
            )
        return update_differs(plain["steps"][index - 1], port["steps"][index - 1], index - 1, name)
    return loss_differs(plain, port, a, b)


def _models(sig_a: dict, sig_b: dict) -> tuple[str, str, str, str] | None:
    """The models differ: another parameter count or shape, said by name."""
    rows_a, rows_b = (
        list(zip(sig_a["names"], sig_a["shapes"])),
        list(zip(sig_b["names"], sig_b["shapes"])),
    )
    if [shape for _, shape in rows_a] == [shape for _, shape in rows_b]:
        return None
    for (name_a, shape_a), (name_b, shape_b) in zip(rows_a, rows_b):
        if shape_a != shape_b:
            first = (
                f"the first parameter that differs: plain {name_a} {tuple(shape_a)}, "
                f"port {name_b} {tuple(shape_b)}"
            )
            break
    else:
        longer, extra = (
            ("plain side", rows_a[len(rows_b)])
            if len(rows_a) > len(rows_b)
            else ("port", rows_b[len(rows_a)])
        )
        first = f"the {longer} has more: the first extra one is {extra[0]} {tuple(extra[1])}"
    return (
        f"the models differ: the plain side trains {len(rows_a)} parameter tensors, the port "
        f"{len(rows_b)}; "
        f"{first}",
        "another model: a layer added, removed or resized (a BatchNorm, a bias=False, another "
        "hidden size)",
        "print(model) on both sides and compare the layers",
        f"{VERDICTS} (the models differ)",
    )


def _precision(sig_a: dict, sig_b: dict, a: dict, b: dict) -> tuple[str, str, str, str] | None:
    """The precision differs: the weights' dtype, the loss's, or autocast."""
    why = None
    for name, dtype_a, dtype_b in zip(sig_a["names"], sig_a["dtypes"], sig_b["dtypes"]):
        if dtype_a != dtype_b:
            why = f"the weights' dtype: plain {name} is {dtype_a}, the port's {dtype_b}"
            break
    autocast_a = [entry["autocast"] for entry in a["entries"]]
    autocast_b = [entry["autocast"] for entry in b["entries"]]
    if why is None and autocast_a != autocast_b:
        why = f"autocast: plain {_autocast(autocast_a)}, port {_autocast(autocast_b)}"
    if why is None and a["loss_dtype"] != b["loss_dtype"]:
        why = f"the loss's dtype: plain {a['loss_dtype']}, port {b['loss_dtype']}"
    if why is None:
        return None
    return (
        f"the precision differs: {why}",
        "Trainer(precision=...) or Fabric(precision=...) other than the plain loop's dtype: "
        '"32-true" is float32, "64-true" converts the model to float64, "bf16-mixed" and '
        '"16-mixed" run the forward pass under autocast',
        "print next(model.parameters()).dtype and the loss's dtype inside the training step on "
        "both sides",
        "docs/features.md (mixed precision)",
    )


def _autocast(states: list) -> str:
    on = sorted({state for state in states if state})
    return f"autocast to {', '.join(on)}" if on else "no autocast"


def _first_weight(signature: dict, a: dict, b: dict) -> str:
    for name, digest_a, digest_b in zip(signature["names"], a["weights"], b["weights"]):
        if digest_a != digest_b:
            return name
    return "?"


REORDERED = "the same samples in another order (a collate_fn that sorts, a sampler that reorders)"


def _same_samples(a: dict, b: dict) -> bool:
    """Whether two steps' batches hold the same samples, in whatever order (sides saved before
    the recorder kept this fingerprint: no)."""
    samples_a = [e.get("samples") for e in a["entries"]]
    return None not in samples_a and samples_a == [e.get("samples") for e in b["entries"]]


def update_differs(a: dict, b: dict, step: int, name: str) -> tuple[str, str, str, str]:
    """The weights were equal at `step` (and its loss too) and differ after its update: why."""
    what = (
        f"the weights were equal at step {step} and differ after its update "
        f"(the first that differs: {name})"
    )
    updates_a, updates_b = a["updates"], b["updates"]
    batch_a, batch_b = [e["data"] for e in a["entries"]], [e["data"] for e in b["entries"]]
    if a["grads"] != b["grads"] and batch_a != batch_b:
        return (
            what,
            f"another batch at step {step}, with the same loss: "
            + (REORDERED if _same_samples(a, b) else "other samples that gave the same loss"),
            "print the first batch on both sides",
            f"{VERDICTS} (the batch)",
        )
    if a["grads"] != b["grads"]:
        return (
            what,
            "the gradients backward computed differ although the loss was the same: a loss scaled "
            "after it was recorded, or gradients changed by hooks",
            "print the gradients' total norm right after backward on both sides",
            "docs/features.md (gradient accumulation, mixed precision)",
        )
    if len(updates_a) != len(updates_b):
        if not updates_a or not updates_b:
            by_hand, optim = ("plain side", updates_b) if not updates_a else ("port", updates_a)
            return (
                what,
                f"a hand-written update on the {by_hand} (no torch.optim step after this "
                "backward), "
                f"{optim[0]['optimizer']}({_settings(optim[0]['groups'][0])}) on the other; or "
                "accumulation, if the other side steps only every few batches",
                "print each parameter's change in this step on both sides; write the port's "
                "update as the "
                "plain side does, in manual optimisation (self.automatic_optimization = False)",
                f"{GUIDE}, \"Weights updated by hand\"",
            )
        return (
            what,
            f"accumulation: after step {step} the plain side stepped the optimizer "
            f"{len(updates_a)} "
            f"times, the port {len(updates_b)} (Trainer(accumulate_grad_batches=N) steps once "
            "every N "
            "batches)",
            "count optimizer.step() calls per batch on both sides",
            "docs/features.md (gradient accumulation)",
        )
    if not updates_a:
        return (
            what,
            "a hand-written update: neither side used torch.optim here, and the same gradients "
            "gave "
            "other weights: another learning rate, rule, or set of parameters updated",
            "print each parameter's change in this step on both sides",
            f"{GUIDE}, \"Weights updated by hand\"",
        )
    for x, y in zip(updates_a, updates_b):
        if x["optimizer"] != y["optimizer"]:
            return (
                what,
                f"another optimizer: plain {x['optimizer']}, port {y['optimizer']}",
                "compare configure_optimizers with the plain side's optimizer",
                f"{PARITY}, trap 5 (the step)",
            )
        for group, (settings_a, settings_b) in enumerate(zip(x["groups"], y["groups"])):
            for key in sorted(set(settings_a) | set(settings_b)):
                if key in ("lr", "initial_lr") or settings_a.get(key) == settings_b.get(key):
                    continue
                return (
                    what,
                    f"the optimizer's settings: {key} is {settings_a.get(key)!r} on the plain "
                    "side, "
                    f"{settings_b.get(key)!r} on the port (parameter group {group})",
                    "print optimizer.state_dict()['param_groups'] on both sides",
                    f"{PARITY}, trap 5 (the step)",
                )
        lr_a = [group.get("lr") for group in x["groups"]]
        lr_b = [group.get("lr") for group in y["groups"]]
        if lr_a != lr_b:
            scheduler = _scheduler(a, b)
            if scheduler:
                return (
                    what,
                    f"the learning rate: plain {lr_a}, port {lr_b}: {scheduler}",
                    "print the scheduler's state_dict() after each step on both sides",
                    "docs/features.md (LR scheduler)",
                )
            if not a["schedulers"] and not b["schedulers"]:
                return (
                    what,
                    f"the learning rate: plain {lr_a}, port {lr_b}, and no scheduler had stepped "
                    "on either side: the optimizer was built with another lr (torch.optim.X(..., "
                    "lr=...), in configure_optimizers for the Trainer), or a scheduler changed it "
                    "as it was built (LambdaLR sets lr times lambda(0))",
                    "print optimizer.param_groups[0]['lr'] right after building the optimizer on "
                    "both sides",
                    f"{PARITY}, trap 5 (the step)",
                )
            return (
                what,
                f"the learning rate: plain {lr_a}, port {lr_b}: the scheduler steps at another "
                "point "
                "(per batch or per epoch, before or after validation; Lightning's interval and "
                "frequency; ReduceLROnPlateau's monitored value)",
                "print optimizer.param_groups[0]['lr'] at each step on both sides",
                f"{PARITY}, trap 5 (the step), and docs/features.md (LR scheduler)",
            )
        if x["grads"] != y["grads"]:
            return (
                what,
                "the gradients the optimizer used differ although backward computed the same ones: "
                "gradient clipping (another threshold or algorithm, or other parameters: "
                "Lightning clips "
                "the optimizer's parameters), or a GradScaler",
                "print the gradients' total norm right before optimizer.step() on both sides",
                "docs/features.md (gradient clipping, mixed precision)",
            )
    return (
        what,
        "the same optimizer, settings, learning rate and gradients, yet other weights: the "
        "optimizer's "
        "state (momentum buffers from another history), or weights changed outside the optimizer",
        "print optimizer.state_dict()['state'] on both sides",
        f"{PARITY}, trap 5 (the step)",
    )


def _scheduler(a: dict, b: dict) -> str | None:
    """The schedulers' settings, compared as of steps `a` and `b`: which one differs."""
    for x, y in zip(a["schedulers"], b["schedulers"]):
        if x["scheduler"] != y["scheduler"]:
            return f"another scheduler: plain {x['scheduler']}, port {y['scheduler']}"
        for key in sorted(set(x["settings"]) | set(y["settings"])):
            if x["settings"].get(key) != y["settings"].get(key):
                return (
                    f"the scheduler's settings: {x['scheduler']}'s {key} is "
                    f"{x['settings'].get(key)!r} on "
                    f"the plain side, {y['settings'].get(key)!r} on the port"
                )
    if a["scheduler_steps"] != b["scheduler_steps"]:
        return (
            f"the scheduler had stepped {a['scheduler_steps']} times by then on the plain side, "
            f"{b['scheduler_steps']} on the port: it steps at another point (per batch or per "
            "epoch, "
            "before or after validation; Lightning's interval and frequency)"
        )
    return None


def _settings(group: dict) -> str:
    keys = [key for key in ("lr", "momentum", "weight_decay", "betas") if key in group]
    return ", ".join(f"{key}={group[key]!r}" for key in keys)


def loss_differs(plain: dict, port: dict, a: dict, b: dict) -> tuple[str, str, str, str]:
    """Same weights and models, another loss: the batch, inputs, forward pass, loss."""
    entries_a, entries_b = a["entries"], b["entries"]
    data_a, data_b = [e["data"] for e in entries_a], [e["data"] for e in entries_b]
    if data_a != data_b:
        return _batch_differs(plain, port, a, b)
    if [e["extras"] for e in entries_a] != [e["extras"] for e in entries_b]:
        return (
            "same weights, same batch, other extra inputs to the model (the arguments after the "
            "batch)",
            "a state carried across batches: the hidden state of an RNN or LSTM passed in from "
            "the previous "
            "batch on one side, started afresh (or not detached the same way) on the other",
            "print the sum of the hidden state passed to the model at each step on both sides",
            f"{GUIDE}, \"A hidden state carried across batches\"",
        )
    for x, y in zip(entries_a, entries_b):
        trace_a, trace_b = plain["traces"][x["trace"]]["calls"], port["traces"][y["trace"]]["calls"]
        if trace_a != trace_b:
            return (
                "same weights and batch, another loss: the forward pass runs other layers",
                _trace_difference(trace_a, trace_b),
                "print(model) on both sides, and model.training right before the forward pass",
                f"{PARITY}, trap 4 (train and eval modes), and {VERDICTS} (the forward pass)",
            )
    if a["rng"] != b["rng"] and any(e["dropout_train"] for e in entries_a):
        made = f"plain {a['iterators_drawing']}, port {b['iterators_drawing']}"
        more = (
            f"; the DataLoader iterators that drew from it so far differ ({made}): each iter() of "
            "a "
            "DataLoader without a generator of its own draws from the global generator: "
            "DataLoader(..., generator=torch.Generator())"
            if a["iterators_drawing"] != b["iterators_drawing"]
            else ""
        )
        return (
            "same weights and batch, another loss: the random draws differ",
            "dropout drew other masks: the global generator was in another state before the "
            "forward pass, "
            "because one side drew random numbers the other did not (a random augmentation, a "
            "torch.rand, "
            f"an iter()) or in another order{more}",
            "print torch.get_rng_state().sum() right before the forward pass on both sides",
            f"{PARITY}, traps 1 and 2 (where random numbers come from)",
        )
    if [e["output"] for e in entries_a] != [e["output"] for e in entries_b]:
        return (
            "same weights, batch, layers and random state, another output of the model",
            "the forward pass computes differently: a functional call (F.dropout, F.relu, "
            "torch.flatten) that "
            "differs, or operations in another order",
            "compare the model's output for the first batch on both sides",
            f"{VERDICTS} (the forward pass)",
        )
    return _loss_function(a, b)


def _batch_differs(plain: dict, port: dict, a: dict, b: dict) -> tuple[str, str, str, str]:
    sizes_a, sizes_b = [e["size"] for e in a["entries"]], [e["size"] for e in b["entries"]]
    if sizes_a != sizes_b:
        return (
            "same weights, another batch: the batch sizes differ",
            f"the batch size: plain {sizes_a}, port {sizes_b} (the DataLoader's batch_size, "
            "drop_last, or "
            "the slicing of a loop without one)",
            "print the batch's shape in each step on both sides",
            f"{VERDICTS} (the batch)",
        )
    if _same_samples(a, b):
        return (
            "same weights, another batch: the same samples in another order",
            "a collate_fn that sorts them, or a sampler that reorders them; the loss then adds up "
            "the samples' losses in another order, so it can differ in its last bits",
            "print the first batch on both sides",
            f"{VERDICTS} (the batch)",
        )
    made_a = sum(step["iterators"] for step in plain["steps"][: a["step"] + 1])
    made_b = sum(step["iterators"] for step in port["steps"][: b["step"] + 1])
    if made_a != made_b:
        return (
            "same weights, another batch: the data order parted",
            f"another iter(): DataLoader iterators created up to this step, plain {made_a}, port "
            f"{made_b}; each iter() draws a seed from the global generator, and a generator a "
            "dataset "
            "keeps for itself moves on too (a validation pass one side runs and the other skips, "
            "or "
            "Lightning's sanity check: num_sanity_val_steps=2)",
            "validate on both sides at the same points; try Trainer(num_sanity_val_steps=0)",
            f"{PARITY}, traps 2 and 3 (every iter() draws; the sanity check)",
        )
    return (
        "same weights, another batch: the data order parted",
        "the shuffling: the same number of DataLoader iterators, but another seed or sampler (a "
        "generator "
        "of their own, set_epoch, a DistributedSampler), another collate_fn or transform, or a "
        "loop that "
        "shuffles by hand with another draw",
        "print the first batch's indices or sum on both sides",
        f"{PARITY}, traps 2 and 6 (every iter() draws; sampler epochs), and {GUIDE}, \"A loop with "
        "no DataLoader\"",
    )


def _trace_difference(trace_a: list[str], trace_b: list[str]) -> str:
    mode = ", eval mode"
    if [call.replace(mode, "") for call in trace_a] == [call.replace(mode, "") for call in trace_b]:
        for x, y in zip(trace_a, trace_b):
            if x != y and x.split("(")[0].startswith(("Dropout", "AlphaDropout", "BatchNorm")):
                break
        side, other = ("plain side", "port") if mode in x else ("port", "plain side")
        return (
            f"train/eval mode: the {side} ran the model in eval mode, the {other} in training mode "
            f"({x.replace(mode, '')} among the layers that differ): model.train() missing or "
            "model.eval() left on before the training step"
        )
    for position, (x, y) in enumerate(zip(trace_a, trace_b)):
        if x != y:
            if x.split("(")[0] == y.split("(")[0]:
                return (
                    f"a layer's settings or mode: call {position + 1} inside the model is {x} on "
                    "the plain "
                    f"side, {y} on the port (a dropout probability, a layer's size or flag)"
                )
            return (
                f"the layers run in another order: call {position + 1} inside the model is {x} on "
                "the plain "
                f"side, {y} on the port"
            )
    longer = "plain side" if len(trace_a) > len(trace_b) else "port"
    calls = f"{len(trace_a)} and {len(trace_b)} module calls"
    return f"the {longer} calls more layers inside the model ({calls})"


def _loss_function(a: dict, b: dict) -> tuple[str, str, str, str]:
    """Same model output, another loss: the loss function's settings, reduction..."""
    what = "same weights, batch and model output, another loss: the loss is computed another way"
    calls_a, calls_b = a["losses"], b["losses"]
    ratio = a["loss"] / b["loss"] if b["loss"] else 0.0
    sizes = {e["size"] for e in a["entries"]}
    for x, y in zip(calls_a, calls_b):
        if x["function"] != y["function"]:
            return (
                what,
                f"another loss function: plain {x['function']}, port {y['function']}",
                "compare the loss lines on both sides",
                f"{VERDICTS} (the loss function)",
            )
        for key in sorted(set(x["settings"]) | set(y["settings"])):
            if x["settings"].get(key) != y["settings"].get(key):
                extra = ""
                if key == "reduction" and _whole(ratio) and round(max(ratio, 1 / ratio)) in sizes:
                    factor = round(max(ratio, 1 / ratio))
                    extra = f" (the losses differ by a factor of {factor}, the batch size)"
                return (
                    what,
                    f"the loss function's settings: {x['function']}'s {key} is "
                    f"{x['settings'].get(key)!r} on the plain side, {y['settings'].get(key)!r} on "
                    "the "
                    f"port{extra}",
                    f"print the loss function's {key} on both sides",
                    f"{VERDICTS} (the loss function)",
                )
    steps_a, steps_b = len(a["updates"]), len(b["updates"])
    if _whole(ratio) and steps_a != steps_b:
        side, n = ("port", round(ratio)) if ratio > 1 else ("plain side", round(1 / ratio))
        return (
            "same weights and batch, a loss divided by a whole number",
            f"accumulation: the {side}'s backward got the loss divided by {n}, and the optimizer "
            "stepped "
            f"{steps_a} times after this backward on the plain side, {steps_b} on the port, as "
            f"Trainer(accumulate_grad_batches={n}) divides each batch's loss and steps once every "
            f"{n} batches",
            "count optimizer.step() calls per batch on both sides",
            "docs/features.md (gradient accumulation)",
        )
    if _whole(ratio) and round(max(ratio, 1 / ratio)) in sizes:
        return (
            what,
            f"the reduction: the losses differ by a factor of {round(max(ratio, 1 / ratio))}, the "
            "batch "
            "size: a sum on one side and a mean on the other",
            "print the loss function's reduction on both sides",
            f"{VERDICTS} (the loss function)",
        )
    values_a = [x["value"] for x in calls_a]
    if calls_a and values_a == [y["value"] for y in calls_b]:
        return (
            what,
            "the loss function gave the same value on both sides; what was passed to backward "
            f"differs (plain {a['loss']!r}, port {b['loss']!r}): a loss scaled, added to or "
            "averaged "
            "after the loss function",
            "print the value passed to backward on both sides",
            f"{VERDICTS} (the loss function)",
        )
    return (
        what,
        "the loss function or its inputs: another target, weight, label smoothing, or a loss "
        "written by "
        "hand",
        "print the loss's inputs and the loss function on both sides",
        f"{VERDICTS} (the loss function)",
    )


def _whole(ratio: float) -> bool:
    if not ratio:
        return False
    value = max(ratio, 1 / ratio)
    return value >= 1.5 and abs(value - round(value)) < 1e-5 * value


def where(step: dict) -> str:
    """Epoch and batch as the plain side's loader counts them, where it can tell."""
    if step.get("where"):
        epoch, batch = step["where"]
        return f" (epoch {epoch}, batch {batch}, as the plain side's loader counts them)"
    return ""


# -- validation


def passes(evals: list[dict]) -> list[list[dict]]:
    """Evaluation forwards grouped into passes: a new one after a step or a new iterator."""
    grouped: list[list[dict]] = []
    for record in evals:
        if grouped and (grouped[-1][-1]["after"], grouped[-1][-1]["loader_pass"]) == (
            record["after"],
            record["loader_pass"],
        ):
            grouped[-1].append(record)
        else:
            grouped.append([record])
    return grouped


def compare_validation(plain: list[list[dict]], port: list[list[dict]]) -> str | None:
    """None when every pass agrees; else one sentence saying where and how they differ."""
    for number, (a, b) in enumerate(zip(plain, port), start=1):
        head = f"validation differs at pass {number}"
        if a[0]["after"] != b[0]["after"]:
            return (
                f"{head}: the plain side evaluated after {a[0]['after']} training steps, the port "
                "after "
                f"{b[0]['after']} (validate at the same points: Trainer(check_val_every_n_epoch, "
                "val_check_interval))"
            )
        sizes_a, sizes_b = [r["size"] for r in a], [r["size"] for r in b]
        if sizes_a != sizes_b:
            both = f"the plain side evaluated {_batches(sizes_a)}, the port {_batches(sizes_b)}"
            return f"{head}: {both}"
        for batch, (x, y) in enumerate(zip(a, b)):
            if x["data"] != y["data"]:
                return f"{head}, batch {batch}: another batch (other data, order or transform)"
            if (x["training"], x["dropout_train"]) != (y["training"], y["dropout_train"]):
                return (
                    f"{head}, batch {batch}: the plain side evaluated in {_mode(x)}, the port in "
                    f"{_mode(y)} "
                    "(model.eval() before validating)"
                )
            if x["weights"] != y["weights"]:
                return f"{head}, batch {batch}: the model evaluated other weights"
            if x["output"] != y["output"]:
                return f"{head}, batch {batch}: the same weights and batch gave another output"
    if len(plain) != len(port):
        return (
            f"validation differs: the plain side ran {len(plain)} validation passes, the port "
            f"{len(port)} "
            "(Lightning validates after every epoch and tests in trainer.test; the sanity check "
            "is not "
            "counted)"
        )
    return None


def _batches(sizes: list) -> str:
    if len(set(sizes)) == 1:
        return f"{len(sizes)} batch{'es' if len(sizes) > 1 else ''} of {sizes[0]}"
    return f"{len(sizes)} batches of {', '.join(str(size) for size in sizes)}"


def _mode(record: dict) -> str:
    if record["training"] or record["dropout_train"]:
        return "training mode"
    return "eval mode"


def compare_metrics(plain: list[str], port: list[str]) -> tuple[bool, str]:
    for number, (a, b) in enumerate(zip(plain, port), start=1):
        if a != b:
            return False, f"metric: differs at match {number}: plain {a}, port {b}"
    if len(plain) != len(port):
        return False, f"metric: the plain side printed {len(plain)} matches, the port {len(port)}"
    if not plain:
        return False, "metric: neither side printed anything that matches --metric"
    return True, f"metric: identical: {len(plain)} values"


# -- TensorBoard


def compare_tensorboard(plain_dir: str, port_dir: str) -> tuple[bool, str]:
    """Every scalar tag, step and value both sides logged; (identical, one line)."""
    plain, port = _scalars(plain_dir, "plain"), _scalars(port_dir, "port")
    if set(plain) != set(port):
        only_plain, only_port = sorted(set(plain) - set(port)), sorted(set(port) - set(plain))
        return (
            False,
            f"tensorboard: the tags differ: only plain has {only_plain}, only the port has "
            f"{only_port}",
        )
    for tag in sorted(plain):
        for (step_a, value_a), (step_b, value_b) in zip(plain[tag], port[tag]):
            if (step_a, value_a) != (step_b, value_b):
                return False, (
                    f"tensorboard: first difference in {tag}: plain step {step_a} = {value_a!r}, "
                    f"port step {step_b} = {value_b!r}"
                )
        if len(plain[tag]) != len(port[tag]):
            return (
                False,
                f"tensorboard: {tag} has {len(plain[tag])} points on the plain side, "
                f"{len(port[tag])} on the port",
            )
    points = sum(len(values) for values in plain.values())
    return True, f"tensorboard: identical: {len(plain)} tags, {points} points"


def _scalars(folder: str, side: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(folder).rglob("events.out.tfevents.*")) if Path(folder).is_dir() else []
    if not files:
        raise BadInput(
            f"--tensorboard: no TensorBoard event files under {folder} (the {side} side's log "
            "folder)"
        )
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(
                (event.step, event.value) for event in events.Scalars(tag)
            )
    return scalars


# -- the check


def _agreement(plain: dict, port: dict, failed: list) -> str:
    """How far the two records agree, for a side that failed."""
    shared = min(len(plain["steps"]), len(port["steps"]))
    index = first_difference(plain, port)
    if index is not None:
        return f"the two sides agreed for {index} steps and parted at step {index} (above)"
    if not shared:
        return "no training step to compare"
    if len(failed) == 1:
        other = "port" if failed[0].name == "plain" else "plain side"
        return f"its {shared} steps agree with the {other}'s first {shared}, bit for bit"
    return f"the {shared} steps both took agree, bit for bit"


def report_difference(plain: dict, port: dict, index: int) -> None:
    a, b = plain["steps"][index], port["steps"][index]
    what, cause, check, docs = diagnose(plain, port, index)
    print(f"first difference at step {index}{where(a)}:")
    print(f"  loss: plain {a['loss']!r}, port {b['loss']!r}")
    same = "the same" if a["weights"] == b["weights"] else "different"
    print(f"  weights that computed it: {same}")
    print(f"diagnosis: {what}")
    print(f"  likely cause: {cause}")
    print(f"  to confirm: {check}")
    print(f"  read: {docs}")


def check(args) -> int:
    metric = None
    if args.metric is not None:
        try:
            metric = re.compile(args.metric)
        except re.error as error:
            raise BadInput(f"--metric is not a regular expression: {error}") from None
    with tempfile.TemporaryDirectory() as folder:
        sides = [
            Side("plain", args.plain, metric, Path(folder)),
            Side("port", args.port, metric, Path(folder)),
        ]
        for side, saved in zip(sides, (args.plain_from, args.port_from)):
            if saved is not None:
                side.load(Path(saved))
                print(f"the {side.name} side as saved in {saved}: {side.command}", flush=True)
            warning = python_warning(side)
            if warning:
                print(warning, file=sys.stderr, flush=True)
        try:
            run_both([side for side in sides if not side.saved], args.timeout)
        except Stopped as stop:
            steps = [len(side.steps()["steps"]) for side in sides]
            name = "Ctrl-C" if stop.signum == signal.SIGINT else "SIGTERM"
            print(
                f"stopped by {name}: both sides were stopped (plain after {steps[0]} steps, port "
                "after "
                f"{steps[1]}); nothing was compared",
                file=sys.stderr,
            )
            return 128 + stop.signum
        plain, port = (side.steps() for side in sides)
        if args.save_sides is not None:
            try:
                Path(args.save_sides).mkdir(exist_ok=True)
                for side in sides:
                    side.save(Path(args.save_sides) / f"{side.name}.json")
            except OSError as error:
                raise BadInput(f"--save-sides {args.save_sides}: {error.strerror}; give a folder "
                               "you can write into") from None
    failed = [side for side in sides if side.timed_out or side.status != 0]
    for side in failed:
        for line in side.tail:
            print(f"  {side.name} | {line}", file=sys.stderr)
    if failed:
        index = first_difference(plain, port)
        if index is not None:
            report_difference(plain, port, index)
        what = []
        for side in failed:
            took = len((plain if side.name == "plain" else port)["steps"])
            if side.timed_out:
                what.append(
                    f"the {side.name} side did not finish within --timeout {args.timeout:g} "
                    f"seconds and was stopped after {took} training steps"
                )
            else:
                what.append(
                    f"the {side.name} command failed with status {side.status} after {took} "
                    "training steps"
                )
        shown = " (its last lines are above)" if any(side.tail for side in failed) else ""
        raise BadInput(f"{'; '.join(what)}{shown}; {_agreement(plain, port, failed)}")
    for side, record in zip(sides, (plain, port)):
        if not record["steps"]:
            raise BadInput(
                f"the {side.name} command ran but never called backward; is it a training script "
                "that uses torch?"
            )
    index = first_difference(plain, port)
    n_plain, n_port = len(plain["steps"]), len(port["steps"])
    if index is None and n_plain != n_port:
        shorter, steps = ("plain side", n_plain) if n_plain < n_port else ("port", n_port)
        raise BadInput(
            f"the runs have different lengths: the {shorter} stopped after {steps} steps "
            f"(plain {n_plain}, port {n_port}), all {steps} identical until then; give both the "
            "same "
            "epochs, limits and data (or early stopping: the same patience and monitored value)"
        )
    if index is None and plain["final"] != port["final"]:
        last = n_plain - 1
        name = _first_weight(
            _signature(plain, plain["steps"][last]),
            {"weights": plain["final"] or []},
            {"weights": port["final"] or []},
        )
        print(f"first difference after the last step ({last}): the weights it left")
        what, cause, check_, docs = update_differs(
            plain["steps"][last], port["steps"][last], last, name
        )
        print(f"diagnosis: {what}\n  likely cause: {cause}\n  to confirm: {check_}\n  read: {docs}")
        return 1
    if index is not None:
        report_difference(plain, port, index)
        return 1
    validation_a, validation_b = passes(plain["evals"]), passes(port["evals"])
    validation = compare_validation(validation_a, validation_b)
    identical = validation is None
    if identical:
        counted = (
            f"{len(validation_a)} validation pass{'es' if len(validation_a) != 1 else ''}"
            if validation_a
            else "no validation pass (neither side ran a forward pass with gradients off)"
        )
        print(f"identical: {n_plain} training steps and {counted}, bit for bit")
    else:
        print(f"training identical ({n_plain} steps, bit for bit); {validation}")
    if metric is not None:
        same, line = compare_metrics(sides[0].metrics, sides[1].metrics)
        print(line)
        identical &= same
    if args.tensorboard:
        same, line = compare_tensorboard(*args.tensorboard)
        print(line)
        identical &= same
    return 0 if identical else 1


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BadInput(f"--timeout {text}: give a number of seconds above 0")
    return value


def _writable_folder(folder: Path) -> None:
    """--save-sides: a folder there is, or one that can be made, to write into."""
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"--save-sides {folder} is a file; give a folder")
    where = folder if folder.exists() else folder.absolute().parent
    if not where.is_dir() or not os.access(where, os.W_OK | os.X_OK):
        raise BadInput(f"--save-sides {folder}: cannot write into {where}; give a folder you can "
                       "write into")


def main(argv: list[str] | None = None) -> int:
    """The command line (`check-port`, `python -m tools.check_port`): the exit status."""
    parser = OneLineParser(prog="check-port", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--plain", metavar="COMMAND", help="the plain script's command, in quotes"
    )
    parser.add_argument(
        "--port",
        metavar="COMMAND",
        help="the port's command (Lightning Trainer or Fabric), in quotes",
    )
    parser.add_argument(
        "--save-sides",
        metavar="DIR",
        help="keep what each side did in DIR/plain.json and DIR/port.json, to check against "
        "later without running that side again",
    )
    parser.add_argument(
        "--plain-from", metavar="FILE", help="instead of --plain: the plain side as --save-sides "
        "saved it (its command is not run again)"
    )
    parser.add_argument(
        "--port-from", metavar="FILE", help="instead of --port: the port as --save-sides saved it"
    )
    parser.add_argument(
        "--metric",
        metavar="REGEX",
        help="also compare every match of REGEX on each side's stdout, in order (its first group "
        "if it has one), e.g. 'val_loss[=: ]+([0-9.e-]+)'",
    )
    parser.add_argument(
        "--timeout", type=str, metavar="SECONDS", help="stop a side that runs longer than this"
    )
    parser.add_argument(
        "--tensorboard",
        nargs=2,
        metavar=("PLAIN_DIR", "PORT_DIR"),
        help="also compare the scalars each side logged to TensorBoard under these folders",
    )
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        args.timeout = _seconds(args.timeout) if args.timeout is not None else None
        for name in ("plain", "port"):
            given = [getattr(args, name), getattr(args, f"{name}_from")]
            if given.count(None) != 1:
                raise BadInput(f"give either --{name} COMMAND or --{name}-from FILE (one of them)")
            saved = getattr(args, f"{name}_from")
            if saved is not None and not Path(saved).is_file():
                raise BadInput(f"--{name}-from {saved}: no such file; save one with "
                               "--save-sides DIR")
        if args.save_sides is not None:
            _writable_folder(Path(args.save_sides))
        return check(args)
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
