"""The recorder `python -m tools.check_port` slips into each run it checks.

Python imports a module named `sitecustomize` at start-up from the first folder of
`sys.path` that has one; `tools/check_port.py` puts this folder first on `PYTHONPATH` and
names a file in `PORT_CHECK_RECORD`. Nothing in the user's script changes. When the script
imports torch, the recorder hooks in, and from then on writes one JSON line to that file:

- at every backward pass (`loss.backward()`, `torch.autograd.backward`, and so Lightning's
  automatic and manual optimisation and `fabric.backward`, which call them): the loss, a
  fingerprint of the weights that produced it (found through the loss's autograd graph), of
  the global random generator, and of the last training forward's inputs; how many DataLoader
  iterators were created and how many dropout layers ran in training and in eval mode since
  the previous backward; and which pass over its loader, and which batch of it, came last;
- after every optimizer step: each parameter group's learning rate and a fingerprint of the
  gradients the step used (after any clipping or unscaling).

Under DDP only the process of rank 0 writes. Without `PORT_CHECK_RECORD` it does nothing.
"""

import hashlib
import importlib.abc
import importlib.util
import json
import os
import sys

RECORD = os.environ.get("PORT_CHECK_RECORD")


def _digest(tensors) -> str:
    """One fingerprint of many tensors, whatever their order: the sorted digests of each one's bytes."""
    import torch

    digests = sorted(hashlib.md5(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()).hexdigest()
                     for t in tensors)
    return hashlib.md5("".join(digests).encode()).hexdigest()[:16]


def _batch_tensors(value) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _batch_tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _batch_tensors(item)]
    return []


class _Recorder:
    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)
        self.backwards = 0
        self.inside_backward = False
        self.depth = 0  # how deep in nested module calls we are
        self.passes: dict[int, int] = {}  # DataLoader id -> iterators made from it
        self.last_fetch = None  # (pass, batch) of the last batch a DataLoader handed out
        self.reset()

    def reset(self) -> None:
        self.iterators = 0
        self.dropout_train = self.dropout_eval = 0
        self.inputs = None
        self.where = None

    def write(self, record: dict) -> None:
        if os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0":
            self.file.write(json.dumps(record) + "\n")

    def backward(self, tensor) -> None:
        import torch

        if self.inside_backward or not isinstance(tensor, torch.Tensor) or tensor.grad_fn is None:
            return
        loss = tensor.detach()
        self.write({
            "kind": "backward", "step": self.backwards,
            "loss": loss.item() if loss.numel() == 1 else float(loss.double().sum()),
            "weights": _digest(_leaves(tensor)), "rng": hashlib.md5(torch.get_rng_state().numpy()).hexdigest()[:16],
            "inputs": self.inputs, "where": self.where, "iterators": self.iterators,
            "dropout_train": self.dropout_train, "dropout_eval": self.dropout_eval,
        })
        self.backwards += 1
        self.reset()

    def optimizer_step(self, optimizer, args, kwargs) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.write({"kind": "step", "lr": [float(group["lr"]) for group in optimizer.param_groups],
                    "grads": _digest(grads)})

    def forward_pre(self, module, args) -> None:
        import torch

        if torch.is_grad_enabled():  # a training forward; validation runs under no_grad
            if isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p > 0:
                if module.training:
                    self.dropout_train += 1
                else:
                    self.dropout_eval += 1
            if self.depth == 0:
                self.inputs = _digest(_batch_tensors(args))
                self.where = self.last_fetch
        self.depth += 1

    def forward_post(self, module, args, output) -> None:
        self.depth = max(0, self.depth - 1)


def _leaves(tensor) -> list:
    """The tensors that `tensor` was computed from and that will receive gradients: the weights."""
    leaves, seen, stack = [], set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if hasattr(node, "variable"):
            leaves.append(node.variable)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves


def _install(recorder: _Recorder) -> None:
    """Hook the recorder into torch, which has just been imported."""
    import functools

    import torch
    from torch.utils.data import dataloader

    tensor_backward, autograd_backward = torch.Tensor.backward, torch.autograd.backward

    @functools.wraps(tensor_backward)
    def backward(self, *args, **kwargs):
        recorder.backward(self)
        recorder.inside_backward, was = True, recorder.inside_backward
        try:
            return tensor_backward(self, *args, **kwargs)
        finally:
            recorder.inside_backward = was

    @functools.wraps(autograd_backward)
    def autograd(tensors, *args, **kwargs):
        recorder.backward(tensors if isinstance(tensors, torch.Tensor) else next(iter(tensors), None))
        recorder.inside_backward, was = True, recorder.inside_backward
        try:
            return autograd_backward(tensors, *args, **kwargs)
        finally:
            recorder.inside_backward = was

    torch.Tensor.backward, torch.autograd.backward = backward, autograd
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(recorder.optimizer_step)
    torch.nn.modules.module.register_module_forward_pre_hook(recorder.forward_pre)
    torch.nn.modules.module.register_module_forward_hook(recorder.forward_post, always_call=True)

    iterator_init, iterator_next = dataloader._BaseDataLoaderIter.__init__, dataloader._BaseDataLoaderIter.__next__

    def init(self, loader, *args, **kwargs):
        iterator_init(self, loader, *args, **kwargs)
        recorder.iterators += 1
        recorder.passes[id(loader)] = recorder.passes.get(id(loader), 0) + 1
        self._port_check_where = [recorder.passes[id(loader)] - 1, -1]  # pass, batch (from 0)

    def next_batch(self):
        batch = iterator_next(self)
        where = getattr(self, "_port_check_where", None)
        if where is not None:
            where[1] += 1
            recorder.last_fetch = list(where)
        return batch

    dataloader._BaseDataLoaderIter.__init__, dataloader._BaseDataLoaderIter.__next__ = init, next_batch


class _WhenTorchLoads(importlib.abc.MetaPathFinder):
    """Waits for `import torch`, lets it finish, then installs the recorder."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def find_spec(self, name, path, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _install(self.recorder)

        spec.loader.exec_module = exec_module
        return spec


if RECORD:
    sys.meta_path.insert(0, _WhenTorchLoads(_Recorder(RECORD)))
