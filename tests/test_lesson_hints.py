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
    return lesson_namespace("05_the_middle_way", ["def evaluate_on_fabric", "def check_exercise",
                                                  "def check_clipping"],
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
                                                     "def check_clipped_by_value",
                                                     "def check_bf16_true"],
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


# ---- lesson 4, exercise 2: bfloat16 all the way, precision="bf16-true" --------------------

BF16 = solution("04_lightnings_extras", 2)
CONVERT = "features, labels = features.to(torch.bfloat16), labels.to(torch.bfloat16)"
BF16_MISTAKES = {  # mistake: ([(text of the solution, replaced by), ...], words the hint must hold)
    "bf16-mixed, the lesson's autocast": (
        [(".to(torch.bfloat16)  # the weights", "  # the weights"),
         (f"            {CONVERT}\n", ""),
         ("            loss = F.binary_cross_entropy_with_logits(model(features), labels)  # no",
          "            with torch.autocast('cpu', dtype=torch.bfloat16):\n"
          "                loss = F.binary_cross_entropy_with_logits(model(features), labels)  #"),
         (f"        {CONVERT}\n", ""),
         ("labels)  # a bfloat16 loss", "labels)"),
         ("        loss = F.binary_cross_entropy_with_logits(model(features), labels)\n",
          "        with torch.autocast('cpu', dtype=torch.bfloat16):\n"
          "            loss = F.binary_cross_entropy_with_logits(model(features), labels)\n")],
        "you ran under torch.autocast, which is bf16-mixed"),
    "the labels left float32": ([(CONVERT, "features = features.to(torch.bfloat16)")],
                                "the labels stayed float32"),
    "validation's batches left float32": ([("val_losses.append(validate_bf16_true(",
                                            "val_losses.append(validate(")],
                                          "validation's features reached the model as float32"),
    "the model left float32": ([(".to(torch.bfloat16)  # the weights", "  # the weights")],
                               "the model's weights are still float32"),
}


@pytest.mark.slow  # two short trainings in bfloat16: a few seconds
def test_lesson4_bf16_true_solution_is_correct(lesson4):
    """The worked bf16-true loop gets "correct" on the tiny data."""
    said = lesson4["check_bf16_true"](answer(lesson4, BF16, "train_bf16_true"))
    assert said.startswith("correct: "), said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(BF16_MISTAKES))
def test_lesson4_bf16_true_mistake_gets_a_hint_naming_it(lesson4, mistake):
    """Each mistake gets a "not yet" whose hint names it."""
    changes, words = BF16_MISTAKES[mistake]
    source = BF16
    for old, new in changes:
        assert old in source, old
        source = source.replace(old, new)
    said = lesson4["check_bf16_true"](answer(lesson4, source, "train_bf16_true"))
    assert said.startswith("not yet: ") and words in said and "\n" not in said, said


# ---- lesson 7, exercise 1: clip the whole model, configure_gradient_clipping ---------------

CLIPS_ALL = solution("07_migrating_your_own_loop", 1)
CLIP_CALL = "torch.nn.utils.clip_grad_norm_(self.model.parameters(), gradient_clip_val)"
CLIPS_ALL_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint must hold)
    "Lightning's own clip_gradients": (
        (CLIP_CALL, "self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)"),
        "you called self.clip_gradients, which clips the optimizer's parameters"),
    "the head's parameters clipped": ((CLIP_CALL, CLIP_CALL.replace("model.parameters()",
                                                                    "model.head.parameters()")),
                                      "your clip measured the norm over 4 tensors, the head's"),
    "each value clipped": ((CLIP_CALL, CLIP_CALL.replace("norm", "value")),
                           "you clipped each value, clip_grad_value_"),
    "a threshold of its own": ((CLIP_CALL, CLIP_CALL.replace("gradient_clip_val)", "0.5)")),
                               "you clipped at another threshold"),
    "the hook overridden, nothing clipped": ((CLIP_CALL, "pass"), "no clipping ran"),
}


@pytest.fixture(scope="module")
def lesson7():
    return lesson_namespace("07_migrating_your_own_loop", [
        "def make_data", "class LitRegressor(L.LightningModule)", "class LitRegressorValidated",
        "def check_clips_all", "def shifted", "class Logged"])


@pytest.mark.slow  # two short trainings: a few seconds
def test_lesson7_clips_all_solution_is_correct(lesson7):
    """The worked override of configure_gradient_clipping gets "correct", bit for bit."""
    said = lesson7["check_clips_all"](answer(lesson7, CLIPS_ALL, "LitRegressorClipsAll"))
    assert said.startswith("correct: "), said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(CLIPS_ALL_MISTAKES))
def test_lesson7_clips_all_mistake_gets_a_hint_naming_it(lesson7, mistake):
    """Each mistake gets a "not yet" whose hint names it; a class without the hook, too."""
    (old, new), words = CLIPS_ALL_MISTAKES[mistake]
    assert old in CLIPS_ALL
    said = lesson7["check_clips_all"](answer(lesson7, CLIPS_ALL.replace(old, new),
                                             "LitRegressorClipsAll"))
    assert said.startswith("not yet: ") and words in said, said


def test_lesson7_clips_all_without_the_hook_is_named(lesson7):
    """A module that only inherits (the empty answer) is told to override the hook."""
    said = lesson7["check_clips_all"](lesson7["LitRegressor"])
    assert said.startswith("not yet: ") and "does not override configure_gradient_clipping" in said


# ---- lesson 7, exercise 2: two validation splits, dataloader_idx --------------------------

SPLITS = solution("07_migrating_your_own_loop", 2)
PER_BATCH_SPLITS = '''class LitRegressorTwoSplits(LitRegressor):
    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        name = ["val_mse", "shifted_mse"][dataloader_idx]
        self.log(name, F.mse_loss(self.model(x), y))
'''
SPLITS_MISTAKES = {  # mistake: ([(text of the solution, replaced by), ...], words the hint holds)
    "validation_step without dataloader_idx": (
        [("batch_idx, dataloader_idx=0):", "batch_idx):"), ("[dataloader_idx]", "[0]")],
        "def validation_step(self, batch, batch_idx, dataloader_idx=0)"),
    "one total for both loaders": ([("[dataloader_idx]", "[0]"), ("[1] / self.count[1]",
                                                                  "[0] / self.count[0]")],
                                   "one total served both loaders"),
    "the loaders swapped": ([("[dataloader_idx]", "[1 - dataloader_idx]")],
                            "the two are swapped"),
    "totals not reset between validations": (
        [("    def on_validation_epoch_start(self):", "    def __init__(self):\n"
          "        super().__init__()")],
        "the totals ran on from one epoch into the next"),
    "logged per batch in validation_step": ([(SPLITS, PER_BATCH_SPLITS)],
                                            "self.log in validation_step names a metric per "
                                            "loader"),
}


@pytest.mark.slow  # two short trainings: a few seconds
def test_lesson7_two_splits_solution_is_correct(lesson7):
    """The worked module with one total per loader gets "correct", bit for bit."""
    said = lesson7["check_two_splits"](answer(lesson7, SPLITS, "LitRegressorTwoSplits"))
    assert said.startswith("correct: "), said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(SPLITS_MISTAKES))
def test_lesson7_two_splits_mistake_gets_a_hint_naming_it(lesson7, mistake):
    """Each mistake gets a "not yet" whose hint names it."""
    changes, words = SPLITS_MISTAKES[mistake]
    source = SPLITS
    for old, new in changes:
        assert old in source, old
        source = source.replace(old, new)
    said = lesson7["check_two_splits"](answer(lesson7, source, "LitRegressorTwoSplits"))
    assert said.startswith("not yet: ") and words in said, said


# ---- lesson 3, exercise 1: a scheduler stepped after every batch ----------------------------

SCHEDULER = solution("03_a_real_training_job", 1)
SCHEDULER_RETURN = ('    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, '
                    '"interval": "step"}}')
SCHEDULER_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint must hold)
    "the interval left at epoch": (('"interval": "step"', '"interval": "epoch"'),
                                   'it changed only once an epoch, the default "interval"'),
    "the optimizer alone returned": ((SCHEDULER_RETURN, "    return optimizer"),
                                     "the learning rate never changed: no scheduler stepped"),
    "SGD without momentum": ((", momentum=0.9)", ")"), "the optimizer: SGD(lr=0.05, momentum=0.9)"),
    "nothing returned": ((SCHEDULER_RETURN, "    optimizer.scheduler = scheduler"),
                         "configure_optimizers returned None"),
}


@pytest.fixture(scope="module")
def lesson3():
    return lesson_namespace("03_a_real_training_job", ["class ConvNet", "class LitBase",
                                                       "def check_scheduler",
                                                       "def check_datamodule"],
                            train_set=fake_mnist(896), val_set=fake_mnist(256, seed=1))


@pytest.mark.slow  # two short trainings of the conv net: a few seconds
def test_lesson3_scheduler_solution_is_correct(lesson3):
    """The worked per-batch scheduler gets "correct" on the tiny data."""
    said = lesson3["check_scheduler"](answer(lesson3, SCHEDULER, "configure_optimizers"))
    assert said.startswith("correct: "), said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(SCHEDULER_MISTAKES))
def test_lesson3_scheduler_mistake_gets_a_hint_naming_it(lesson3, mistake):
    """Each mistake gets a "not yet" whose hint names it."""
    (old, new), words = SCHEDULER_MISTAKES[mistake]
    assert old in SCHEDULER
    said = lesson3["check_scheduler"](answer(lesson3, SCHEDULER.replace(old, new),
                                             "configure_optimizers"))
    assert said.startswith("not yet: ") and words in said, said


# ---- lesson 3, exercise 2: a DataModule that holds out its own validation images ------------

HELD_OUT = solution("03_a_real_training_job", 2)
HELD_OUT_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint must hold)
    "random_split without its generator": ((", generator=torch.Generator().manual_seed(0)", ""),
                                           "without that generator the split draws from the "
                                           "global one"),
    "the training batches not shuffled": (("batch_size=64, shuffle=True)", "batch_size=64)"),
                                          "train_dataloader does not shuffle"),
    "the validation batches shuffled": (("DataLoader(self.val_part, batch_size=64)",
                                         "DataLoader(self.val_part, batch_size=64, shuffle=True)"),
                                        "val_dataloader shuffles"),
    "validated on val_set, nothing held out": (("DataLoader(self.val_part,",
                                                "DataLoader(first(val_set, 256),"),
                                               "the val images are not the loop's"),
}


@pytest.mark.slow  # two short trainings of the conv net: a few seconds
def test_lesson3_datamodule_solution_is_correct(lesson3):
    """The worked SmallMNIST gets "correct" on the tiny data."""
    said = lesson3["check_datamodule"](answer(lesson3, HELD_OUT, "SmallMNIST"))
    assert said.startswith("correct: "), said


@pytest.mark.parametrize("mistake", list(HELD_OUT_MISTAKES))
def test_lesson3_datamodule_mistake_gets_a_hint_naming_it(lesson3, mistake):
    """Each mistake gets a "not yet" whose hint names it, from the loaders alone (no training)."""
    (old, new), words = HELD_OUT_MISTAKES[mistake]
    assert old in HELD_OUT
    said = lesson3["check_datamodule"](answer(lesson3, HELD_OUT.replace(old, new), "SmallMNIST"))
    assert said.startswith("not yet: ") and words in said, said


# ---- lesson 5, exercise 2: clip each value with fabric.clip_gradients ----------------------

CLIP_VALUES = solution("05_the_middle_way", 2)
FABRIC_CLIP = "            fabric.clip_gradients(model, optimizer, clip_val=0.01)\n"
CLIP_VALUES_MISTAKES = {  # mistake: ((text of the solution, replaced by), words the hint holds)
    "the norm clipped": (("clip_val=0.01", "max_norm=0.01"), "you clipped the total norm"),
    "clipped before backward": (("            fabric.backward(loss)\n            # after backward, "
                                 "before the step; clip_val clips each value, max_norm the "
                                 f"norm\n{FABRIC_CLIP}",
                                 f"{FABRIC_CLIP}            fabric.backward(loss)\n"),
                                "you clipped before fabric.backward"),
    "clipped after the step": ((f"{FABRIC_CLIP}            optimizer.step()\n",
                                f"            optimizer.step()\n{FABRIC_CLIP}"),
                               "you clipped after optimizer.step()"),
    "clipped by hand, not by Fabric": ((FABRIC_CLIP, "            torch.nn.utils.clip_grad_value_("
                                                     "model.parameters(), 0.01)\n"),
                                       "fabric.clip_gradients was never used"),
    "another threshold": (("clip_val=0.01", "clip_val=0.1"), "you clipped at another threshold"),
}


@pytest.mark.slow  # two short trainings: a few seconds
def test_lesson5_clip_values_solution_is_correct(lesson5):
    """The worked fabric.clip_gradients(..., clip_val=0.01) gets "correct" on the tiny data."""
    said = lesson5["check_clipping"](answer(lesson5, CLIP_VALUES, "train_clipped"))
    assert said.startswith("correct: "), said


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(CLIP_VALUES_MISTAKES))
def test_lesson5_clip_values_mistake_gets_a_hint_naming_it(lesson5, mistake):
    """Each mistake gets a "not yet" whose hint names it; none speaks of a step before batch 0."""
    (old, new), words = CLIP_VALUES_MISTAKES[mistake]
    assert old in CLIP_VALUES
    said = lesson5["check_clipping"](answer(lesson5, CLIP_VALUES.replace(old, new),
                                            "train_clipped"))
    assert said.startswith("not yet: ") and words in said, said
    assert "the step before" not in said, said


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
