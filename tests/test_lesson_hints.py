"""Each exercise's check, called on natural mistakes at tiny sizes: the hint names the mistake.

A learner who gets "not yet" must learn what they did wrong. For each exercise, at least three
mistakes a learner makes (a missing `return`, a metric over the wrong images, a loss recorded
after dividing, Fabric's helper left out, ...) are written out here as answers and given to
the lesson's own check, whose code is taken from the notebook's cells: the words of the hint
must name that mistake, and the worked solution must still get "correct". The data are random
tensors of MNIST's shape (a few hundred images), so each check trains or validates in well
under a second (the recall checks, in the quick tier) or a few (the checks that train twice,
in the full tier), without the dataset. Lesson 9's checks read the shipped text and train 12
steps of a tiny GPT; the mistakes they name before the Trainer runs are in the quick tier."""

import ast
import re

import nbformat
import pytest
import torch
from torch.utils.data import TensorDataset

from tests.conftest import REPO

DEFINITIONS = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


def lesson_namespace(lesson: str, cells: list[str], **names) -> dict:
    """The lesson's setup cell run (without its magics and its temporary folder), `names` put
    in, then the imports, functions and classes of each code cell that contains one of
    `cells`, in the notebook's order (not its other statements: no training, no check run)."""
    notebook = nbformat.read(REPO / "notebooks" / f"{lesson}.ipynb", as_version=4)
    setup = "\n".join(line for line in notebook.cells[1].source.splitlines()
                      if not line.startswith("%"))
    namespace = {}
    exec(setup.replace("tempfile.mkdtemp()", "None"), namespace)
    namespace.update(names)
    for cell in notebook.cells:
        if cell.cell_type == "code" and any(text in cell.source for text in cells):
            tree = ast.parse(cell.source)
            tree.body = [node for node in tree.body if isinstance(node, DEFINITIONS)]
            exec(compile(tree, cell.source[:40], "exec"), namespace)
    return namespace


def solution(lesson: str, number: int) -> str:
    text = (REPO / "notebooks" / "solutions" / f"{lesson}.py").read_text()
    return re.split(r"^# Exercise \d+.*\n", text, flags=re.M)[number].strip()


def answer(namespace: dict, source: str, name: str):
    """Run an answer's source in the lesson's namespace; the object it defines as `name`."""
    exec(source, namespace)
    return namespace[name]


def fake_mnist(images: int, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(images, 1, 28, 28, generator=generator),
                         torch.randint(0, 10, (images,), generator=generator))


# ---- lesson 2, exercise 1: port a loop to Lightning ------------------------------------------

PORT = solution("02_the_training_loop", 1)
PORT_MISTAKES = {  # mistake: (the solution changed so, words the hint must hold)
    "training_step without `return loss`": (("        return loss\n", "\n"),
                                            "training_step must `return loss`"),
    "the loss without label smoothing": ((", label_smoothing=0.1", ""),
                                         "the loss (label_smoothing=0.1)"),
    "SGD without momentum": ((", momentum=0.9)", ")"), "the optimizer (SGD, lr=0.1, momentum=0.9"),
    "nothing logged": (('        self.log("train_loss", loss)\n', ""), "no loss was logged"),
}


@pytest.fixture(scope="module")
def lesson2():
    return lesson_namespace("02_the_training_loop", ["class LitFeedForward", "def check_port",
                                                     "def check_recall"],
                            train_set=fake_mnist(128), val_set=fake_mnist(192, seed=1))


@pytest.mark.slow  # two short trainings: a few seconds
def test_lesson2_port_solution_is_correct(lesson2):
    """The worked port gets "correct" on the tiny data too."""
    assert lesson2["check_port"](answer(lesson2, PORT, "LitSmoothed")).startswith("correct: ")


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(PORT_MISTAKES))
def test_lesson2_port_mistake_gets_a_hint_naming_it(lesson2, mistake):
    """Each mistake in the port gets a "not yet" whose hint names it."""
    (old, new), words = PORT_MISTAKES[mistake]
    assert old in PORT
    said = lesson2["check_port"](answer(lesson2, PORT.replace(old, new, 1), "LitSmoothed"))
    assert said.startswith("not yet: ") and words in said, said


# ---- lesson 2, exercise 2: a metric that self.log cannot average --------------------------

RECALL = solution("02_the_training_loop", 2)
PER_BATCH = '''class LitRecall(LitFeedForward):
    def validation_step(self, batch, batch_idx):
        images, labels = batch
        predicted = self.model(images).argmax(dim=1)
        self.log("val_recall_3", ((predicted == 3) & (labels == 3)).sum() / (labels == 3).sum())
'''
RECALL_MISTAKES = {  # mistake: (answer, words the hint must hold)
    "the per-batch recall, averaged by self.log": (PER_BATCH, "each batch weighted by its 64"),
    "the accuracy over all digits": (PER_BATCH.replace(
        "((predicted == 3) & (labels == 3)).sum() / (labels == 3).sum()",
        "(predicted == labels).float().mean()"), "the accuracy over all digits"),
    "divided by the images called 3": (RECALL.replace(
        "self.total += (labels == 3).sum().item()", "self.total += (predicted == 3).sum().item()"),
        "that is precision"),
    "counts not reset between validations": (RECALL.replace(
        "    def on_validation_epoch_start(self):", "    def __init__(self, *args):\n"
        "        super().__init__(*args)").replace("  # a new count for every", "  # once, #"),
        "set them to zero in on_validation_epoch_start"),
}


def test_lesson2_recall_solution_is_correct(lesson2):
    """The worked LitRecall gets "correct", bit for bit, on the tiny data."""
    said = lesson2["check_recall"](answer(lesson2, RECALL, "LitRecall"),
                                   lesson2["LitFeedForward"](16, 1e-3), val_images=192)
    assert said.startswith("correct: "), said


@pytest.mark.parametrize("mistake", list(RECALL_MISTAKES))
def test_lesson2_recall_mistake_gets_a_hint_naming_it(lesson2, mistake):
    """Each mistake in the recall gets a "not yet" whose hint names it."""
    source, words = RECALL_MISTAKES[mistake]
    torch.manual_seed(0)
    said = lesson2["check_recall"](answer(lesson2, source, "LitRecall"),
                                   lesson2["LitFeedForward"](16, 1e-3), val_images=192)
    assert said.startswith("not yet: ") and words in said, said


def test_lesson2_recall_batch_without_a_3_is_named(lesson2):
    """When a batch holds no 3, the per-batch recall is nan, and the hint says why."""
    no_threes = fake_mnist(192, seed=1)
    labels = no_threes.tensors[1].clone()
    labels[:64][labels[:64] == 3] = 4  # the first batch holds no 3
    lesson2["val_set"] = TensorDataset(no_threes.tensors[0], labels)
    try:
        said = lesson2["check_recall"](answer(lesson2, PER_BATCH, "LitRecall"),
                                       lesson2["LitFeedForward"](16, 1e-3), val_images=192)
    finally:
        lesson2["val_set"] = fake_mnist(192, seed=1)
    assert said.startswith("not yet: ") and "a batch without a 3 divides 0 by 0" in said, said


# ---- lesson 5, exercise 1: accumulate gradients, the Fabric way --------------------------

ACCUMULATE = solution("05_the_middle_way", 1)
ACCUMULATE_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint must hold)
    "the loss recorded after dividing": (
        ("                loss = F.cross_entropy(model(images), labels)\n"
         "                fabric.backward(loss / accumulate)",
         "                loss = F.cross_entropy(model(images), labels) / accumulate\n"
         "                fabric.backward(loss)"), "you recorded the loss after dividing it"),
    "the loss not divided": (("fabric.backward(loss / accumulate)", "fabric.backward(loss)"),
                             "divide each loss by `accumulate` before fabric.backward"),
    "zero_grad at every batch": (("            if batch_idx % accumulate == 0:  # a window starts\n"
                                  "                optimizer.zero_grad()",
                                  "            optimizer.zero_grad()"),
                                 "zero the gradients only when a window starts"),
    "a step at every batch": (("            if window_ends:\n                optimizer.step()",
                               "            optimizer.step()"),
                              "step the optimizer only at a window's last batch"),
    "the short last window not stepped": ((" or batch_idx + 1 == len(train_loader)", ""),
                                          "the epoch's last window holds only"),
    "Fabric's no_backward_sync left out": (
        ("            with fabric.no_backward_sync(model, enabled=not window_ends):\n"
         "                loss = F.cross_entropy(model(images), labels)\n"
         "                fabric.backward(loss / accumulate)",
         "            loss = F.cross_entropy(model(images), labels)\n"
         "            fabric.backward(loss / accumulate)"),
        "fabric.no_backward_sync was never used"),
}


@pytest.fixture(scope="module")
def lesson5():
    train, val = fake_mnist(256), fake_mnist(64, seed=1)
    return lesson_namespace("05_the_middle_way", ["def evaluate_on_fabric", "def check_exercise"],
                            load_mnist=lambda folder: (train, val, None, None))


@pytest.mark.slow  # two short trainings: a few seconds
def test_lesson5_accumulation_solution_is_correct(lesson5):
    """The worked accumulation gets "correct" on the tiny data: 4 batches, windows of 3 and 1."""
    said = lesson5["check_exercise"](answer(lesson5, ACCUMULATE, "train_accumulating"))
    assert said.startswith("correct: "), said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(ACCUMULATE_MISTAKES))
def test_lesson5_accumulation_mistake_gets_a_hint_naming_it(lesson5, mistake):
    """Each mistake gets a "not yet" whose hint names it; none speaks of a step before batch 0."""
    (old, new), words = ACCUMULATE_MISTAKES[mistake]
    assert old in ACCUMULATE
    said = lesson5["check_exercise"](answer(lesson5, ACCUMULATE.replace(old, new),
                                            "train_accumulating"))
    assert said.startswith("not yet: ") and words in said, said
    assert not ("batch 0 " in said and "before" in said), said


# ---- lesson 4, exercise 1: clip each value, once a window ---------------------------------

CLIP = solution("04_lightnings_extras", 1)
CLIP_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint must hold)
    "the norm clipped, not each value": (("clip_grad_value_(model.parameters(), 0.01)",
                                          "clip_grad_norm_(model.parameters(), 0.01)"),
                                         "you clipped the total norm"),
    "clipped after every backward": (
        ("            (loss / 2).backward()  # the window's gradients add up to their mean\n",
         "            (loss / 2).backward()\n"
         "            torch.nn.utils.clip_grad_value_(model.parameters(), 0.01)\n"),
        "you clipped after every backward"),
    "clipped after the step": (
        ("                torch.nn.utils.clip_grad_value_(model.parameters(), 0.01)\n"
         "                optimizer.step()",
         "                optimizer.step()\n"
         "                torch.nn.utils.clip_grad_value_(model.parameters(), 0.01)"),
        "you clipped after optimizer.step()"),
    "the loss not divided": (("(loss / 2).backward()", "loss.backward()"),
                             "divide each loss by 2 before backward"),
}


@pytest.fixture(scope="module")
def lesson4():
    from shared.data import make_sum_dataset

    def smaller(num_samples, num_features, seed):  # 320 vectors: 4 batches of 64 an epoch
        return make_sum_dataset(320, num_features, seed)

    return lesson_namespace("04_lightnings_extras", ["def trainer_run", "def sum_loaders",
                                                     "def check_clipped_by_value"],
                            make_sum_dataset=smaller)


@pytest.mark.slow  # two short trainings: a few seconds
def test_lesson4_clipping_solution_is_correct(lesson4):
    """The worked clipping by value, once a window, gets "correct" on the tiny data."""
    said = lesson4["check_clipped_by_value"](answer(lesson4, CLIP, "train_clipped_by_value"))
    assert said.startswith("correct: "), said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(CLIP_MISTAKES))
def test_lesson4_clipping_mistake_gets_a_hint_naming_it(lesson4, mistake):
    """Each mistake gets a "not yet" whose hint names it, on one line."""
    (old, new), words = CLIP_MISTAKES[mistake]
    assert old in CLIP
    said = lesson4["check_clipped_by_value"](answer(lesson4, CLIP.replace(old, new),
                                                    "train_clipped_by_value"))
    assert said.startswith("not yet: ") and words in said and "\n" not in said, said


# ---- lesson 9, exercise 1: accumulate gradients in the loop by steps ----------------------

BY_STEPS = solution("09_a_small_gpt", 1)
BY_STEPS_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint must hold)
    "the loss not divided": (("(loss / accumulate).backward()", "loss.backward()"),
                             "divide each loss by `accumulate` before backward"),
    "the loss recorded after dividing": (
        ("        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())\n"
         "        (loss / accumulate).backward()",
         "        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten()) / accumulate\n"
         "        loss.backward()"), "you recorded the loss after dividing it"),
    "a step at every batch": (("if (batch_idx + 1) % accumulate == 0:", "if True:"),
                              "you stepped at every batch"),
    "zero_grad at every batch": (("        if batch_idx % accumulate == 0:  # a window starts\n"
                                  "            optimizer.zero_grad()",
                                  "        optimizer.zero_grad()"),
                                 "zero the gradients only when a window starts"),
    "a stream of max_steps batches": (("accumulate * max_steps, SEED)", "max_steps, SEED)"),
                                      "max_steps counts optimizer steps"),
    "one loss per window": (("        losses.append(loss.item())  # before dividing, as "
                             "training_step computed it\n"
                             "        if (batch_idx + 1) % accumulate == 0:  # the window ends: "
                             "set its rate, then step\n",
                             "        if (batch_idx + 1) % accumulate == 0:\n"
                             "            losses.append(loss.item())\n"),
                            "record one loss per batch"),
    "the rate from the batch's number": (("warmup_cosine(step, 3, max_steps)",
                                          "warmup_cosine(batch_idx, 3, max_steps)"),
                                         "you set each step's rate from the batch's number"),
}


@pytest.fixture(scope="module")
def lesson9():
    """Lesson 9's loop, its Trainer run and its checks, on the shipped text (the checks train 12
    optimizer steps of 8 windows of 32 characters: a second or so)."""
    return lesson_namespace("09_a_small_gpt", ["def train_by_steps", "class Remember",
                                               "def check_accumulating", "def check_schedule"])


@pytest.mark.slow  # the check then trains with a Trainer: a few seconds
@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_lesson9_accumulation_solution_is_correct(lesson9):
    """The worked accumulation by steps gets "correct": 24 batches, 12 optimizer steps."""
    said = lesson9["check_accumulating"](answer(lesson9, BY_STEPS, "train_accumulating"))
    assert said.startswith("correct: "), said


@pytest.mark.parametrize("mistake", list(BY_STEPS_MISTAKES))
def test_lesson9_accumulation_mistake_gets_a_hint_naming_it(lesson9, mistake):
    """Each mistake gets a "not yet" whose hint names it, found before the Trainer runs; none
    speaks of a step before the first."""
    (old, new), words = BY_STEPS_MISTAKES[mistake]
    assert old in BY_STEPS
    said = lesson9["check_accumulating"](answer(lesson9, BY_STEPS.replace(old, new),
                                                "train_accumulating"))
    assert said.startswith("not yet: ") and words in said and "step before" not in said, said


# ---- lesson 9, exercise 2: warmup then a straight line, as a LambdaLR ----------------------

SCHEDULE = solution("09_a_small_gpt", 2)
SCHEDULE_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint must hold)
    "a warmup from 0": (("return (step + 1) / warmup_steps", "return step / warmup_steps"),
                        "step 0's factor is 0"),
    "a line down to 0": (("(max_steps - step) / (max_steps - warmup_steps)",
                          "(max_steps - 1 - step) / (max_steps - 1 - warmup_steps)"),
                         "the last step's factor is 0.0"),
    "a line that starts below the peak": (("(max_steps - step) / (max_steps - warmup_steps)",
                                           "(max_steps - step - 1) / (max_steps - warmup_steps)"),
                                          "the line starts from the peak"),
}
SCHEDULE_TRAINER_MISTAKES = {  # the same, for mistakes only the Trainer's run shows
    "no interval": (('"lr_scheduler": {"scheduler": scheduler, "interval": "step"}',
                     '"lr_scheduler": scheduler'), "once per epoch"),
    "LambdaLR given LR * factor": (("LambdaLR(optimizer, factor)",
                                    "LambdaLR(optimizer, lambda step: args.lr * factor(step))"),
                                   "not LR * factor"),
    "one parameter group": (
        ("parameter_groups(self.model, args.weight_decay), lr=args.lr,",
         "self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay,"),
        "none on biases, norms and embeddings"),
}


def check_schedule_answer(lesson9, source: str) -> str:
    exec(source, lesson9)
    return lesson9["check_schedule"](lesson9["warmup_linear"], lesson9["LitWarmupLinear"])


@pytest.mark.slow  # trains by hand and with a Trainer: a few seconds
@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_lesson9_schedule_solution_is_correct(lesson9):
    """The worked warmup_linear and LitWarmupLinear get "correct": 12 losses and rates."""
    said = check_schedule_answer(lesson9, SCHEDULE)
    assert said.startswith("correct: "), said


@pytest.mark.parametrize("mistake", list(SCHEDULE_MISTAKES))
def test_lesson9_schedule_factor_mistake_gets_a_hint_naming_it(lesson9, mistake):
    """Each mistake in the factor gets a "not yet" naming it, before anything trains."""
    (old, new), words = SCHEDULE_MISTAKES[mistake]
    assert old in SCHEDULE
    said = check_schedule_answer(lesson9, SCHEDULE.replace(old, new))
    assert said.startswith("not yet: ") and words in said and "step before" not in said, said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(SCHEDULE_TRAINER_MISTAKES))
@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_lesson9_schedule_module_mistake_gets_a_hint_naming_it(lesson9, mistake):
    """Each mistake in configure_optimizers gets a "not yet" naming it, from the Trainer's run."""
    (old, new), words = SCHEDULE_TRAINER_MISTAKES[mistake]
    assert old in SCHEDULE
    said = check_schedule_answer(lesson9, SCHEDULE.replace(old, new))
    assert said.startswith("not yet: ") and words in said and "step before" not in said, said
