"""The recorder `python -m tools.check_port` slips into each run it checks.

Python imports a module named `sitecustomize` at start-up from the first folder of
`sys.path` that has one; `tools/check_port.py` puts this folder first on `PYTHONPATH` and
names a file in `PORT_CHECK_RECORD`. Nothing in the user's script changes. When the script
imports torch, the recorder hooks in, and from then on writes JSON lines to that file:

- `backward`, at every backward pass (`loss.backward()`, `torch.autograd.backward`, and so
  Lightning's automatic and manual optimisation and `fabric.backward`, which call them): the
  loss and its dtype; the weights that computed it (the leaves of the loss's autograd graph,
  named after the modules that hold them), each with a fingerprint, and a fingerprint of their
  gradients once backward is done; and what happened since the previous backward: where the
  data entered each model whose parameters are trained (the outermost module call that has
  parameters, not a loss module), with a fingerprint of its first argument (the batch: in
  order, and of its samples in any order), of its other arguments (a hidden state, say), of
  its output, and the autocast state; the modules called inside it, in order, with their
  settings and mode; the global random generator's state before the first of those calls;
  every call of a loss function of `torch.nn.functional` (which the loss modules call too)
  with its settings and value; how many DataLoader iterators were made, and which pass over
  its loader and which batch of it came last;
- `step`, after every `torch.optim` step: the optimizer's class, each parameter group's
  settings, and a fingerprint of the gradients the step used (after any clipping or unscaling);
- `eval`, at every outermost forward with gradients off (validation, testing): the number of
  backward passes before it, the batch's size and fingerprint, the output's, and the mode;
  Lightning's sanity check is marked as such;
- `final`, when the process ends: the fingerprints of the last trained weights, so that an
  update after the last backward (by `torch.optim` or by hand) is compared too;
- `signature` and `trace`, once each: the names, shapes and dtypes of a set of weights, and a
  list of module calls, which the other records refer to by number.

Under DDP only the process of rank 0 writes. Without `PORT_CHECK_RECORD` it does nothing.
"""

import atexit
import gc
import hashlib
import importlib.abc
import importlib.util
import json
import os
import sys
import weakref

RECORD = os.environ.get("PORT_CHECK_RECORD")
LOSSES = (
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "poisson_nll_loss",
)


def _digest(tensors) -> str:
    """One fingerprint of a list of tensors, in order: their dtypes, shapes and bytes."""
    import torch

    md5 = hashlib.md5()
    for t in tensors:
        t = t.detach()
        md5.update(f"{t.dtype}{tuple(t.shape)}".encode())
        md5.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return md5.hexdigest()[:16]


def _samples(tensors) -> str:
    """One fingerprint of a batch's samples in any order: each tensor's rows (its first
    dimension) fingerprinted one by one and sorted, so that a batch whose samples were put in
    another order (a collate_fn that sorts them, say) has the same fingerprint."""
    tensors = [t.detach().cpu() for t in tensors]  # once, not once a row
    rows = [
        sorted(_digest([t[i]]) for i in range(t.shape[0])) if t.dim() > 0 else [_digest([t])]
        for t in tensors
    ]
    return hashlib.md5(repr([(str(t.dtype), tuple(t.shape)) for t in tensors] + rows).encode()
                       ).hexdigest()[:16]


def _tensors(value) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for key in sorted(value, key=str) for t in _tensors(value[key])]
    return []


def _size(value) -> int | None:
    tensors = _tensors(value)
    return int(tensors[0].shape[0]) if tensors and tensors[0].dim() > 0 else None


def _plain(value):
    """A setting as JSON: numbers, strings and tuples as they are, a tensor as its fingerprint."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else f"tensor {_digest([value])}"
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


class _Recorder:
    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)
        self.writes = (
            os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"
        )
        self.backwards = 0
        self.inside_backward = False
        self.outer = None  # the outermost module call with parameters under way: a dict
        self.stack: list[bool] = []  # for each module call under way: did it open `self.outer`?
        self.passes: dict[int, int] = {}  # DataLoader id -> iterators made from it
        self.iterators_made = 0
        self.iterators_drawing = 0  # of those, the ones that drew from the global generator
        self.last_fetch = None  # (pass, batch) of the last batch a DataLoader handed out
        self.signatures: dict[tuple, int] = {}
        self.traces: dict[tuple, int] = {}
        self.trainers: weakref.WeakSet = weakref.WeakSet()
        self.last_weights: list = []
        self.modules_called: list = []  # weak references to the outermost modules with parameters
        self.labels: dict[int, str] = {}  # id of such a module -> the name the script gives it
        self.seen: set = set()
        self.reset()

    def reset(self) -> None:
        self.iterators = 0
        self.entries: list[dict] = []
        self.losses: list[dict] = []
        self.rng = None
        self.where = None

    def write(self, record: dict) -> None:
        if self.writes:
            self.file.write(json.dumps(record) + "\n")

    def numbered(self, table: dict, key: tuple, kind: str, fields: dict) -> int:
        if key not in table:
            table[key] = len(table)
            self.write(dict(kind=kind, id=table[key], **fields))
        return table[key]

    # -- backward and the optimizer

    def before_backward(self, tensor):
        """This backward pass's record, written by `after_backward` once the gradients exist."""
        import torch

        if self.inside_backward or not isinstance(tensor, torch.Tensor) or tensor.grad_fn is None:
            return None
        weights = self.named_leaves(tensor)
        names = tuple(name for name, _ in weights)
        shapes = tuple(tuple(w.shape) for _, w in weights)
        dtypes = tuple(str(w.dtype).replace("torch.", "") for _, w in weights)
        signature = self.numbered(
            self.signatures,
            (names, shapes, dtypes),
            "signature",
            dict(names=names, shapes=shapes, dtypes=dtypes),
        )
        loss = tensor.detach()
        record = {
            "kind": "backward",
            "step": self.backwards,
            "loss": loss.item() if loss.numel() == 1 else float(loss.double().sum()),
            "loss_dtype": str(loss.dtype).replace("torch.", ""),
            "signature": signature,
            "weights": [_digest([w]) for _, w in weights],
            "rng": self.rng,
            "entries": self.settle(self.seen),
            "losses": self.losses,
            "where": self.where,
            "iterators": self.iterators,
            "iterators_made": self.iterators_made,
            "iterators_drawing": self.iterators_drawing,
        }
        self.last_weights = [w for _, w in weights]
        self.backwards += 1
        self.seen: set = set()
        self.reset()
        return record

    def after_backward(self, record) -> None:
        if record is not None:
            grads = [w.grad for w in self.last_weights if w.grad is not None]
            self.write(dict(record, grads=_digest(grads)))

    def named_leaves(self, tensor) -> list:
        """(name, tensor) of each weight `tensor` was computed from, in the order of its modules."""
        leaves, seen, stack = {}, set(), [tensor.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            self.seen = seen
            if hasattr(node, "variable"):
                leaves.setdefault(id(node.variable), node.variable)
            stack.extend(next_node for next_node, _ in node.next_functions)
        named = []
        for module in self.modules_called:
            module = module()
            if module is None:
                continue
            prefix = f"{self.labels.get(id(module))}." if self.labels.get(id(module)) else ""
            for name, parameter in module.named_parameters():
                if id(parameter) in leaves:
                    named.append((prefix + name, leaves.pop(id(parameter))))
        others = sorted(leaves.values(), key=lambda t: (tuple(t.shape), str(t.dtype)))
        return named + [(f"(a tensor of shape {tuple(t.shape)})", t) for t in others]

    def optimizer_step(self, optimizer, args, kwargs) -> None:
        groups = [
            {key: _plain(value) for key, value in group.items() if key != "params"}
            for group in optimizer.param_groups
        ]
        grads = [
            p.grad
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        self.write(
            {
                "kind": "step",
                "optimizer": type(optimizer).__name__,
                "groups": groups,
                "grads": _digest(grads),
            }
        )

    def final(self) -> None:
        self.settle(set())  # evaluations after the last backward
        if self.last_weights:
            self.write({"kind": "final", "weights": [_digest([w]) for w in self.last_weights]})
        self.file.close()

    # -- forward passes

    def forward_pre(self, module, args) -> None:
        import torch

        opened = False
        if self.outer is None and any(True for _ in module.parameters()):
            opened = True
            self.outer = {
                "module": module,
                "args": args,
                "trace": [],
                "dropout_train": 0,
                "grad": torch.is_grad_enabled(),
            }
            if self.outer["grad"] and self.rng is None:
                self.rng = hashlib.md5(torch.get_rng_state().numpy().tobytes()).hexdigest()[:16]
        elif self.outer is not None:
            mode = "" if module.training else ", eval mode"
            self.outer["trace"].append(f"{type(module).__name__}({module.extra_repr()}{mode})")
            if (
                isinstance(module, torch.nn.modules.dropout._DropoutNd)
                and module.training
                and module.p > 0
            ):
                self.outer["dropout_train"] += 1
        self.stack.append(opened)

    def forward_post(self, module, args, output) -> None:
        import torch

        if not self.stack or not self.stack.pop():
            return
        outer, self.outer = self.outer, None
        first, extras = (args[0], args[1:]) if args else (None, ())
        if not any(m() is module for m in self.modules_called):
            self.modules_called.append(weakref.ref(module))
            self.labels[id(module)] = self.label(module)
        if outer["grad"]:
            autocast = (
                str(torch.get_autocast_dtype("cpu")).replace("torch.", "")
                if torch.is_autocast_enabled("cpu")
                else None
            )
            trace = self.numbered(
                self.traces, tuple(outer["trace"]), "trace", dict(calls=outer["trace"])
            )
            self.entries.append(
                {
                    "module": type(module).__name__,
                    "data": _digest(_tensors(first)),
                    "samples": _samples(_tensors(first)),
                    "extras": _digest(_tensors(extras)),
                    "output": _digest(_tensors(output)),
                    "size": _size(first),
                    "training": module.training,
                    "trace": trace,
                    "dropout_train": outer["dropout_train"],
                    "autocast": autocast,
                }
            )
            self.where = self.last_fetch
            if not module.training:  # evaluation without no_grad, unless the loss uses it
                self.entries[-1]["_maybe_eval"] = (
                    self.evaluation(module, first, output, outer),
                    [t.grad_fn for t in _tensors(output)],
                )
        else:
            self.write(self.evaluation(module, first, output, outer))

    def evaluation(self, module, first, output, outer) -> dict:
        return {
            "kind": "eval",
            "after": self.backwards,
            "module": type(module).__name__,
            "data": _digest(_tensors(first)),
            "output": _digest(_tensors(output)),
            "size": _size(first),
            "training": module.training,
            "dropout_train": outer["dropout_train"],
            "sanity": self.sanity_checking(),
            "loader_pass": self.iterators_made,
            "weights": _digest(list(module.parameters())),
        }

    def settle(self, seen: set) -> list:
        """The entries since the last backward; those in eval mode that the loss did not use
        (`seen`: its graph's nodes) are written as evaluations instead."""
        kept = []
        for entry in self.entries:
            maybe = entry.pop("_maybe_eval", None)
            if maybe is not None and not any(id(fn) in seen for fn in maybe[1] if fn is not None):
                self.write(maybe[0])
            else:
                kept.append(entry)
        return kept

    def label(self, module) -> str:
        """A model's name: its variable in the script, or its attribute in the LightningModule."""
        main = sys.modules.get("__main__")
        for name, value in list(vars(main).items()) if main else []:
            if value is module:
                return name
        for trainer in list(self.trainers):
            try:
                system = trainer.lightning_module
            except Exception:  # no model attached yet
                continue
            for name, child in system.named_modules() if system is not None else []:
                if child is module and name:
                    return name
        return ""

    def sanity_checking(self) -> bool:
        return any(getattr(trainer, "sanity_checking", False) for trainer in list(self.trainers))

    def loss_called(self, name: str, bound, value) -> None:
        import torch

        data = bound.arguments.get("input")
        if (
            not torch.is_grad_enabled()
            or not isinstance(data, torch.Tensor)
            or not data.requires_grad
        ):
            return
        settings = {
            key: _plain(item)
            for key, item in bound.arguments.items()
            if key not in ("input", "target", "size_average", "reduce")
        }
        detached = value.detach() if isinstance(value, torch.Tensor) else None
        self.losses.append(
            {
                "function": name,
                "settings": settings,
                "input": _digest([data]),
                "target": _digest(_tensors(bound.arguments.get("target"))),
                "size": _size(data),
                "value": detached.item()
                if detached is not None and detached.numel() == 1
                else None,
            }
        )


def _install(recorder: _Recorder) -> None:
    """Hook the recorder into torch, which has just been imported."""
    import functools
    import inspect

    import torch
    import torch.nn.functional as F
    from torch.utils.data import dataloader

    tensor_backward, autograd_backward = torch.Tensor.backward, torch.autograd.backward

    def recorded(tensor, call):
        record = recorder.before_backward(tensor)
        recorder.inside_backward, was = True, recorder.inside_backward
        try:
            result = call()
        finally:
            recorder.inside_backward = was
        recorder.after_backward(record)
        return result

    @functools.wraps(tensor_backward)
    def backward(self, *args, **kwargs):
        return recorded(self, lambda: tensor_backward(self, *args, **kwargs))

    @functools.wraps(autograd_backward)
    def autograd(tensors, *args, **kwargs):
        first = tensors if isinstance(tensors, torch.Tensor) else next(iter(tensors), None)
        return recorded(first, lambda: autograd_backward(tensors, *args, **kwargs))

    torch.Tensor.backward, torch.autograd.backward = backward, autograd
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(recorder.optimizer_step)
    torch.nn.modules.module.register_module_forward_pre_hook(recorder.forward_pre)
    torch.nn.modules.module.register_module_forward_hook(recorder.forward_post, always_call=True)

    for name in LOSSES:
        original = getattr(F, name)
        signature = inspect.signature(original)

        def loss(*args, __original=original, __signature=signature, __name=name, **kwargs):
            value = __original(*args, **kwargs)
            try:
                bound = __signature.bind(*args, **kwargs)
                bound.apply_defaults()
            except TypeError:
                return value
            recorder.loss_called(__name, bound, value)
            return value

        setattr(F, name, functools.wraps(original)(loss))

    from torch.optim import lr_scheduler

    for cls in {lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau}:
        cls.step = _scheduler_step(recorder, cls.step)

    iterator_init, iterator_next = (
        dataloader._BaseDataLoaderIter.__init__,
        dataloader._BaseDataLoaderIter.__next__,
    )

    def init(self, loader, *args, **kwargs):
        iterator_init(self, loader, *args, **kwargs)
        recorder.iterators += 1
        recorder.iterators_made += 1
        if getattr(loader, "generator", None) is None and not recorder.sanity_checking():
            recorder.iterators_drawing += (
                1  # Lightning puts the generator back after its sanity check
            )
        recorder.passes[id(loader)] = recorder.passes.get(id(loader), 0) + 1
        self._port_check_where = [recorder.passes[id(loader)] - 1, -1]  # pass, batch (from 0)

    def next_batch(self):
        batch = iterator_next(self)
        where = getattr(self, "_port_check_where", None)
        if where is not None:
            where[1] += 1
            recorder.last_fetch = list(where)
        return batch

    dataloader._BaseDataLoaderIter.__init__, dataloader._BaseDataLoaderIter.__next__ = (
        init,
        next_batch,
    )
    # At exit, after the record's last write and the side's own later handlers (atexit runs the
    # last registered first), the garbage collector's last passes are told to leave alone what
    # is still alive: that spares about a second of a side that imported torch and Lightning.
    # Nothing recorded waits for those passes.
    atexit.register(gc.freeze)
    atexit.register(recorder.final)


SCHEDULER_STATE = {"best", "num_bad_epochs", "last_epoch", "cooldown_counter", "base_lrs"}


def _scheduler_step(recorder: _Recorder, step):
    """Record each scheduler step: its class and settings (what changes as it runs left out)."""
    import functools

    @functools.wraps(step)
    def recorded(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        try:
            state = self.state_dict()
        except Exception:  # a scheduler of the user's own making
            state = {}
        settings = {
            key: _plain(value)
            for key, value in state.items()
            if not key.startswith("_") and key not in SCHEDULER_STATE
        }
        recorder.write(
            {"kind": "scheduler", "scheduler": type(self).__name__, "settings": settings}
        )
        return result

    return recorded


def _watch_trainer(recorder: _Recorder, module) -> None:
    """Lightning's Trainer: keep each one, to tell its sanity check from validation."""
    trainer_init = module.Trainer.__init__

    def init(self, *args, **kwargs):
        trainer_init(self, *args, **kwargs)
        recorder.trainers.add(self)

    module.Trainer.__init__ = init


class _WhenImported(importlib.abc.MetaPathFinder):
    """Waits for `import torch` (and Lightning's Trainer), lets it finish, then hooks in."""

    def __init__(self, recorder: _Recorder) -> None:
        self.waiting = {"torch": lambda module: _install(recorder)}
        for name in ("lightning.pytorch.trainer.trainer", "pytorch_lightning.trainer.trainer"):
            self.waiting[name] = lambda module: _watch_trainer(recorder, module)

    def find_spec(self, name, path, target=None):
        if name not in self.waiting:
            return None
        then = self.waiting.pop(name)
        sys.meta_path.remove(self)  # so that the search below does not come back here
        try:
            spec = importlib.util.find_spec(name)
        finally:
            if self.waiting:
                sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            then(module)

        spec.loader.exec_module = exec_module
        return spec


if RECORD:
    sys.meta_path.insert(0, _WhenImported(_Recorder(RECORD)))
