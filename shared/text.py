"""Step 4's data: a text, its characters as token ids, and the batches a GPT trains on.

The corpus is Ambrose Bierce's *The Devil's Dictionary* (1911, public domain), shipped in
`data/devils_dictionary.txt` (its source and licence: `data/devils_dictionary.md`), so the
step runs offline on a fresh clone; `--corpus FILE` trains on any UTF-8 text instead. The
tokenizer is the simplest there is: each distinct character is one token, numbered in sorted
order ("the vocabulary"), so a checkpoint is tied to the characters of its corpus.

Training batches are random windows, as nanoGPT's `get_batch` draws them, but from a
generator of their own, inside `RandomWindows`, an iterable that is not a DataLoader:
- a `Dataset` with a `Sampler` would draw its indices from the global generator at every
  `iter()`, and a resumed run would have to replay them; an `IterableDataset` inside a
  DataLoader hides its position behind the loader's iterator;
- `RandomWindows` owns its generator and counts the batches it gave, and says both in
  `state_dict()`. Lightning saves any train iterable that has `state_dict`/`load_state_dict`
  in its checkpoints and restores it on resume (its fit loop's "combined_loader" state), and
  `fabric.save`/`fabric.load` do the same for any object that has them; the plain twin calls
  them by hand. So a run resumed from step 40 draws step 41's windows, bit for bit.
- it has a length, the run's steps, so Lightning reads it as a sized epoch and fetches no
  batch ahead (a prefetched batch would be drawn before the checkpoint that should not see it).
Validation reads the held-out last tenth in consecutive windows, the same every time.
"""

from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import TensorDataset

from shared.run_end import BadInput

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "data" / "devils_dictionary.txt"
VALIDATION_FRACTION = 10  # the last 1/10 of the text validates


class Corpus(NamedTuple):
    vocabulary: str  # every distinct character, sorted: token i is vocabulary[i]
    train: torch.Tensor  # (N,) int64 token ids, the first 9/10
    val: torch.Tensor  # (M,) the last 1/10


def load_corpus(path: str | Path | None, data_dir: str | Path | None, context: int) -> Corpus:
    """Read `--corpus` (by default devils_dictionary.txt in `--data-dir`, else in the
    repository's data/) and split it; refuse (one line) a file too short for one window."""
    path = Path(path or Path(data_dir or DEFAULT_CORPUS.parent) / DEFAULT_CORPUS.name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"--corpus {path}: no such file; pass a UTF-8 text file") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error.strerror
        raise BadInput(f"--corpus {path}: {reason}; pass a UTF-8 text file") from None
    vocabulary = "".join(sorted(set(text)))
    ids = encode(text, vocabulary)
    split = len(ids) - len(ids) // VALIDATION_FRACTION
    train, val = ids[:split], ids[split:]
    if len(val) < context + 1:  # a window is context + 1 characters: inputs and next ones
        raise BadInput(f"--corpus {path}: {len(text):,} characters, so its last tenth "
                       f"({len(val):,}) is shorter than one window of --context {context} + 1; "
                       f"pass a text of at least {(context + 1) * VALIDATION_FRACTION:,} "
                       "characters or a smaller --context")
    return Corpus(vocabulary, train, val)


def encode(text: str, vocabulary: str) -> torch.Tensor:
    """(len(text),) token ids; refused in one line if `text` holds a character the corpus lacks."""
    index = {character: i for i, character in enumerate(vocabulary)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise BadInput(f"--prompt: {''.join(unknown)!r} never occurs in the corpus, so the model "
                       "has no token for it; use the corpus's characters")
    return torch.tensor([index[character] for character in text], dtype=torch.long)


def decode(ids: list[int], vocabulary: str) -> str:
    return "".join(vocabulary[i] for i in ids)


class RandomWindows:
    """`steps` batches of `batch_size` random windows of `context + 1` tokens, as (x, y).

    x is (B, T) = (batch_size, context); y is x shifted by one: the next character at each
    position. Each process of a DDP run draws its own windows (`rank` joins the seed).
    """

    def __init__(self, tokens: torch.Tensor, context: int, batch_size: int, steps: int,
                 seed: int, rank: int = 0) -> None:
        self.windows = tokens.unfold(0, context + 1, 1)  # (N - context, context + 1), a view
        self.batch_size, self.steps = batch_size, steps
        self.seed = seed * 2**16 + rank
        self.generator = torch.Generator().manual_seed(self.seed)
        self.batches_drawn = 0

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        while self.batches_drawn < self.steps:
            batch = self.windows[self._starts()]  # (B, T + 1)
            self.batches_drawn += 1
            yield batch[:, :-1], batch[:, 1:]

    def _starts(self) -> torch.Tensor:
        return torch.randint(len(self.windows), (self.batch_size,), generator=self.generator)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "generator": self.generator.get_state(),
                "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict) -> None:
        """Go on after the saved number of batches, with this process's own windows.

        Under DDP only rank 0 saves, so a checkpoint holds rank 0's generator. Every other
        process (and any process resumed on another number of processes or machines) seeds
        its own generator and draws the batches it would have drawn, so that each process goes
        on as an uninterrupted run of this size would, never with rank 0's windows.
        """
        if state.get("seed") == self.seed:  # the process that saved it: its generator, as saved
            self.generator.set_state(state["generator"])
        else:
            self.generator.manual_seed(self.seed)
            for _ in range(state["batches_drawn"]):
                self._starts()
        self.batches_drawn = state["batches_drawn"]


def validation_windows(tokens: torch.Tensor, context: int) -> TensorDataset:
    """The held-out text cut into consecutive windows: (x, y) pairs of (context,) each."""
    windows = tokens.unfold(0, context + 1, context)  # non-overlapping inputs
    return TensorDataset(windows[:, :-1], windows[:, 1:])
