"""Check your own migration: run a plain training script and its port, and find where they part.

    python -m tools.check_port --plain "python train.py --epochs 2" --port "python train_lightning.py --epochs 2"
    python -m tools.check_port --plain "..." --port "..." --tensorboard runs/plain runs/lightning

Each command runs as you would run it, one after the other, each in a fresh process, with
nothing changed in your files: a recorder (tools/port_recorder/sitecustomize.py) is put in
front of `PYTHONPATH`, and from the moment torch is imported it notes every backward pass
(plain `loss.backward()`, `torch.autograd.backward`, the Trainer's automatic and manual
optimisation, `fabric.backward`) and every optimizer step. Then the two records are compared
step by step. It prints "identical: N steps, bit for bit", or the first step that differs,
both losses, and a diagnosis: were the weights already different before that step (the
initialisation, or an earlier update), or equal with a different loss (the batch, the random
draws, train/eval mode)? Each diagnosis names the likely cause, the check that confirms it,
and the section of docs/ that explains the fix. With `--tensorboard`, the scalars both sides
logged are compared too, tag by tag. Exit status: 0 identical, 1 different, 2 bad input.
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from shared import process_setup, run_end
from shared.flags import OneLineParser
from shared.run_end import BadInput

RECORDER = Path(__file__).resolve().parent / "port_recorder"
PARITY = "docs/parity.md"


def record(side: str, command: str) -> list[dict]:
    """Run `command` with the recorder; return its steps: each backward with the optimizer steps after it."""
    words = shlex.split(command)
    if not words:
        raise BadInput(f"--{side} is empty; give the command that runs your {side} training script")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "record.jsonl"
        env = dict(os.environ, PORT_CHECK_RECORD=str(path),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(RECORDER), os.environ.get("PYTHONPATH")])))
        print(f"running the {side} side: {command}", flush=True)
        try:
            done = subprocess.run(words, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except OSError as error:
            raise BadInput(f"the {side} command does not start ({error.strerror}: {words[0]}); check --{side}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
            raise BadInput(f"the {side} command failed with status {done.returncode}: {last}")
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    steps: list[dict] = []
    for line in lines:
        if line["kind"] == "backward":
            steps.append(dict(line, updates=[]))
        elif steps:
            steps[-1]["updates"].append(line)
    if not steps:
        raise BadInput(f"the {side} command ran but never called backward; is it a training script that uses torch?")
    return steps


def first_difference(plain: list[dict], port: list[dict]) -> int | None:
    """The index of the first step whose loss, weights or updates differ; None when all shared steps agree."""
    for index, (a, b) in enumerate(zip(plain, port)):
        if (a["loss"], a["weights"]) != (b["loss"], b["weights"]):
            return index
        if a["updates"] != b["updates"] and index + 1 == min(len(plain), len(port)):
            return index  # the last update differs, and no later step shows it in the weights
    return None


def diagnose(plain: list[dict], port: list[dict], index: int) -> tuple[str, str, str, str]:
    """(what, likely cause, the check that confirms it, where docs/ explains it) for the first difference."""
    a, b = plain[index], port[index]
    if a["weights"] != b["weights"] and index == 0:
        return ("the weights differ before the first step: the models start from different weights",
                "initialisation: the seed is set at another point, or something drew from the global generator "
                "before the model was built (another model, a dataset, a DataLoader iter())",
                "print the sum of each model's parameters right after building it, on both sides",
                f"{PARITY}, trap 1 (seeding, then the model)")
    if a["weights"] != b["weights"] or a["loss"] == b["loss"]:
        before = index - 1 if a["weights"] != b["weights"] else index
        return _update(plain[before]["updates"], port[before]["updates"], before)
    ratio = a["loss"] / b["loss"] if b["loss"] else 0.0
    for ratio, side in ((ratio, "port"), (1 / ratio if ratio else 0.0, "plain side")):
        if ratio >= 1.5 and abs(ratio - round(ratio)) < 1e-6 * ratio:
            return ("same weights, a loss divided by a whole number",
                    f"accumulation: the {side}'s backward got the loss divided by {round(ratio)}, as "
                    f"Trainer(accumulate_grad_batches={round(ratio)}) divides each batch's loss before it steps the "
                    "optimizer once every that many batches",
                    "count optimizer.step() calls per batch on both sides",
                    "docs/features.md (gradient accumulation)")
    if a["inputs"] != b["inputs"]:
        made_plain = sum(step["iterators"] for step in plain[: index + 1])
        made_port = sum(step["iterators"] for step in port[: index + 1])
        if made_plain != made_port:
            return ("same weights, another batch: the data order parted",
                    f"another iter(): DataLoader iterators created up to this step, plain {made_plain}, port "
                    f"{made_port}; each iter() draws a seed from the global generator, and a generator a dataset "
                    "keeps for itself moves on too (a validation pass one side runs and the other skips, or "
                    "Lightning's sanity check: num_sanity_val_steps=2)",
                    "validate on both sides at the same points; try Trainer(num_sanity_val_steps=0)",
                    f"{PARITY}, traps 2 and 3 (every iter() draws; the sanity check)")
        return ("same weights, another batch: the data order parted",
                "the shuffling: the same number of DataLoader iterators, but another seed or sampler (a generator "
                "of their own, set_epoch, a DistributedSampler)",
                "print the first batch's indices or sum on both sides",
                f"{PARITY}, traps 2 and 6 (every iter() draws; sampler epochs)")
    if (a["dropout_train"], a["dropout_eval"]) != (b["dropout_train"], b["dropout_eval"]):
        return ("same weights and batch, another loss: the forward pass ran in another mode",
                f"train/eval mode: dropout ran in training mode {a['dropout_train']} times on the plain side and "
                f"{b['dropout_train']} times on the port, in eval mode {a['dropout_eval']} and {b['dropout_eval']}",
                "print model.training right before the forward pass on both sides",
                f"{PARITY}, trap 4 (train and eval modes)")
    if a["rng"] != b["rng"]:
        return ("same weights and batch, another loss: the random draws differ",
                "dropout drew other masks: the global generator was in another state, because one side drew "
                "random numbers the other did not (a random augmentation, a torch.rand, an extra iter()) or in "
                "another order",
                "print torch.get_rng_state().sum() right before the forward pass on both sides",
                f"{PARITY}, traps 1 and 2 (where random numbers come from)")
    return ("same weights, batch and random state, another loss: the forward pass computes differently",
            "precision (autocast, bf16), another loss function or reduction, or another model",
            "compare the logits of the first batch on both sides",
            "docs/features.md (mixed precision)")


def _update(plain: list[dict], port: list[dict], step: int) -> tuple[str, str, str, str]:
    """Why the optimizer updates after `step` differ."""
    what = f"the weights were equal at step {step} and differ after its update"
    if len(plain) != len(port):
        return (what, f"accumulation: after step {step} the plain side stepped the optimizer {len(plain)} times, "
                      f"the port {len(port)} (Trainer(accumulate_grad_batches=N) steps once every N batches)",
                "count optimizer.step() calls per batch on both sides", "docs/features.md (gradient accumulation)")
    for a, b in zip(plain, port):
        if a["lr"] != b["lr"]:
            return (what, f"the learning rate: plain {a['lr']}, port {b['lr']}: the scheduler steps at another point "
                          "(per batch or per epoch, before or after validation; Lightning's interval and frequency)",
                    "print optimizer.param_groups[0]['lr'] at each step on both sides",
                    f"{PARITY}, trap 5 (the step), and docs/features.md (LR scheduler)")
        if a["grads"] != b["grads"]:
            return (what, "the gradients the optimizer used differ although the loss was the same: gradient clipping "
                          "(another threshold or algorithm, or other parameters: Lightning clips the optimizer's "
                          "parameters), the scaling of accumulated losses, or a GradScaler",
                    "print the gradients' total norm right before optimizer.step() on both sides",
                    "docs/features.md (gradient clipping, accumulation, mixed precision)")
    return (what, "the optimizer itself: other settings (momentum, weight decay, betas, eps) or another state",
            "print optimizer.state_dict()['param_groups'] on both sides", f"{PARITY}, trap 5 (the step)")


def where(step: dict) -> str:
    """Epoch and batch as the plain side's loader counts them, where it can tell."""
    if step.get("where"):
        return f" (epoch {step['where'][0]}, batch {step['where'][1]}, as the plain side's loader counts them)"
    return ""


def compare_tensorboard(plain_dir: str, port_dir: str) -> tuple[bool, str]:
    """Every scalar tag, step and value both sides logged; (identical, one line)."""
    plain, port = _scalars(plain_dir, "plain"), _scalars(port_dir, "port")
    if set(plain) != set(port):
        only_plain, only_port = sorted(set(plain) - set(port)), sorted(set(port) - set(plain))
        return False, f"tensorboard: the tags differ: only plain has {only_plain}, only the port has {only_port}"
    for tag in sorted(plain):
        for (step_a, value_a), (step_b, value_b) in zip(plain[tag], port[tag]):
            if (step_a, value_a) != (step_b, value_b):
                return False, (f"tensorboard: first difference in {tag}: plain step {step_a} = {value_a!r}, "
                               f"port step {step_b} = {value_b!r}")
        if len(plain[tag]) != len(port[tag]):
            return False, f"tensorboard: {tag} has {len(plain[tag])} points on the plain side, {len(port[tag])} on the port"
    points = sum(len(values) for values in plain.values())
    return True, f"tensorboard: identical: {len(plain)} tags, {points} points"


def _scalars(folder: str, side: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(folder).rglob("events.out.tfevents.*")) if Path(folder).is_dir() else []
    if not files:
        raise BadInput(f"--tensorboard: no TensorBoard event files under {folder} (the {side} side's log folder)")
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((event.step, event.value) for event in events.Scalars(tag))
    return scalars


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", required=True, metavar="COMMAND", help="the plain script's command, in quotes")
    parser.add_argument("--port", required=True, metavar="COMMAND",
                        help="the port's command (Lightning Trainer or Fabric), in quotes")
    parser.add_argument("--tensorboard", nargs=2, metavar=("PLAIN_DIR", "PORT_DIR"),
                        help="also compare the scalars each side logged to TensorBoard under these folders")
    args = parser.parse_args(argv)
    plain, port = record("plain", args.plain), record("port", args.port)
    index = first_difference(plain, port)
    identical = index is None
    if index is None and len(plain) != len(port):
        shorter, steps = ("plain side", len(plain)) if len(plain) < len(port) else ("port", len(port))
        raise BadInput(f"the runs have different lengths: the {shorter} stopped after {steps} steps "
                       f"(plain {len(plain)}, port {len(port)}), all {steps} identical until then; give both the same "
                       "epochs, limits and data")
    if identical:
        print(f"identical: {len(plain)} steps, bit for bit")
    else:
        what, cause, check, docs = diagnose(plain, port, index)
        print(f"first difference at step {index}{where(plain[index])}:")
        print(f"  loss: plain {plain[index]['loss']!r}, port {port[index]['loss']!r}")
        same = "the same" if plain[index]["weights"] == port[index]["weights"] else "different"
        print(f"  weights that computed it: {same}")
        print(f"diagnosis: {what}")
        print(f"  likely cause: {cause}")
        print(f"  to confirm: {check}")
        print(f"  read: {docs}")
    if args.tensorboard:
        same_scalars, line = compare_tensorboard(*args.tensorboard)
        print(line)
        identical &= same_scalars
    return 0 if identical else 1


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        status = main(sys.argv[1:])
    sys.exit(status)
