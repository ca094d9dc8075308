"""Lightning's DDP strategy, by hand: what `Trainer(strategy="ddp", devices=N)` sets up for step 2.

Distributed data parallel (DDP) runs one process per device, each with a whole copy of the
model and its own share of every epoch's data. After each `backward()`, the processes
average their gradients, so every copy takes the same optimizer step and the copies stay
identical. The plain twin is launched by PyTorch's own launcher, which starts the N
processes and tells each who it is (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):

    torchrun --standalone --nproc-per-node 2 -m plain_pytorch.cnn_classifier --devices 2

The Lightning twin starts its own processes (lightning/pytorch/strategies/launchers/
subprocess_script.py: it runs the same command again with LOCAL_RANK set). Here is what
either way takes, in the order the plain twin uses it:
- `join_process_group`: `torch.distributed.init_process_group`, gloo on CPU, nccl on CUDA,
  as Lightning's DDPStrategy picks; only rank 0 prints (torchvision's reference scripts do
  the same with `setup_for_distributed`).
- `mean_across_processes`: the epoch mean that `self.log(..., sync_dist=True)` computes.
- `leave_process_group`, at exit: wait for the others, then leave, as Lightning leaves at exit
  (after Ctrl-C or SIGTERM: leave at once).
The `DistributedSampler`s and the `DistributedDataParallel` wrapper are in the twin itself,
where they happen. Lightning puts the same sampler into every loader
(`Trainer(use_distributed_sampler=True)`, the default), seeded as `seed_everything` was.
"""

import argparse
import atexit
import builtins
import datetime
import os
import re
import sys

import torch
import torch.distributed as dist

from shared.ranks import peer_lost
from shared.run_end import BadInput, interrupted

JOIN_TIMEOUT = datetime.timedelta(minutes=10)  # how long a process waits for the others, then fails


def join_process_group(args: argparse.Namespace) -> None:
    """Join the group of the `--devices` x `--num-nodes` processes that torchrun started.

    Rank 0 alone then prints and draws the progress bar, as under Lightning; the twin's
    `claim_run_folders` and `RunRecord` leave logs, checkpoints and --metrics-out to it too.
    """
    world = args.devices * args.num_nodes
    if world == 1:
        return
    if "WORLD_SIZE" not in os.environ and "SLURM_NTASKS" in os.environ:  # started by SLURM's srun
        take_slurms_variables()
    # started without torchrun, or with another count
    if os.environ.get("WORLD_SIZE") != str(world):
        launcher = f"torchrun --standalone --nproc-per-node {args.devices}"  # or srun
        if args.num_nodes > 1:
            launcher = (f"torchrun --nnodes {args.num_nodes} --nproc-per-node {args.devices} "
                        "--rdzv-endpoint HOST:PORT")
        raise BadInput(f"--devices {args.devices}: the plain twin runs one process per device; "
                       f"launch it with {launcher} -m plain_pytorch.cnn_classifier "
                       f"--devices {args.devices} ...")
    cuda = args.accelerator != "cpu" and torch.cuda.is_available()
    if cuda:  # one GPU per process: the one matching its rank on this machine
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if int(os.environ.get("RANK", 0)) == 0:  # say what it waits for, and how long, before it waits
        address = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        print(f"joining {world} processes at {address} (each waits up to "
              f"{JOIN_TIMEOUT.seconds // 60} minutes for the others)", flush=True)
    # reads torchrun's RANK, MASTER_ADDR, ...
    dist.init_process_group("nccl" if cuda else "gloo", timeout=JOIN_TIMEOUT)
    atexit.register(leave_process_group)
    if dist.get_rank() > 0:  # one voice: the other processes' prints and bars go nowhere
        builtins.print = lambda *args, **kwargs: None
        args.no_progress = True


def take_slurms_variables() -> None:
    """Set what torchrun would have set from what srun set, as Lightning's SLURMEnvironment
    reads it: the rank and count of the tasks, and the first machine of the job as the one
    they meet at, on a port taken from the job's number (so that two jobs do not collide)."""
    first_node = re.sub(r"\[(\d+).*\]", r"\1", os.environ["SLURM_NODELIST"]).split(",")[0]
    os.environ.update(RANK=os.environ["SLURM_PROCID"], LOCAL_RANK=os.environ["SLURM_LOCALID"],
                      WORLD_SIZE=os.environ["SLURM_NTASKS"],
                      MASTER_ADDR=os.environ.get("MASTER_ADDR", first_node),
                      MASTER_PORT=os.environ.get("MASTER_PORT",
                                                 str(15000 + int(os.environ["SLURM_JOB_ID"][-4:]))))


def leave_process_group() -> None:
    """At exit, however the run ended: wait for the other processes, then leave the group.

    Lightning also leaves it at exit (lightning/fabric/utilities/distributed.py). Without the
    wait, a process that finished first and tore down its connections while rank 0 was still
    saving sometimes aborted in gloo's threads ("terminate called without an active exception").
    After another process died (shared/ranks.py: `lost_a_peer`), there is no one to wait for.
    After Ctrl-C or SIGTERM, which reach each process at another point of its step, another
    process can be held in a collective this one will never join (a gradient's all-reduce):
    waiting for it would last until the launcher kills both (srun and torchrun do, 30 seconds
    after the signal), so this one leaves at once, and that collective fails in the other.
    """
    if peer_lost() or interrupted():
        dist.destroy_process_group()
        return
    try:
        # gloo's barrier can time out and name a process that never came
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            dist.barrier()
    except RuntimeError as error:  # sys.stderr: `print` is switched off on the other ranks
        sys.stderr.write(f"error: leaving DDP's process group: {error}\n")
    dist.destroy_process_group()


def mean_across_processes(weighted_sum: torch.Tensor, count: int) -> float:
    """The epoch mean over every process's batches, as `self.log(..., sync_dist=True)` reduces it.

    Each process holds the sum of its batch means weighted by batch size, and the number of
    samples. Lightning all-reduces both with "mean": the gloo backend has no average, so it
    sums and divides by the number of processes (lightning/fabric/utilities/distributed.py:
    `_sync_ddp`), the count as an integer tensor, and then divides one by the other. The same
    operations in the same order give the same bits.
    """
    if not dist.is_initialized():
        return (weighted_sum / count).item()
    world = dist.get_world_size()
    total, samples = weighted_sum.clone(), torch.tensor(count, device=weighted_sum.device)
    for tensor in (total, samples):
        dist.all_reduce(tensor)  # sum over the processes
    total.div_(world)
    samples.copy_(samples / world)  # integer, as Lightning's count
    return (total / samples).item()
