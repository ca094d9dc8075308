"""The hook order that docs/hook-order.md and lesson 2 draw: recorded from the installed
Lightning, and the picture made from it."""

from tools import hook_order

BATCH = ["on_train_batch_start", "optimizer_step", "training_step", "on_before_zero_grad",
         "optimizer_zero_grad", "on_before_backward", "backward", "on_after_backward",
         "on_before_optimizer_step", "optimizer_step returns", "on_train_batch_end"]
VALIDATION = ["on_validation_start", "on_validation_epoch_start", "on_validation_batch_start",
              "validation_step", "on_validation_batch_end", "on_validation_epoch_end",
              "on_validation_end"]


def test_a_small_fit_calls_the_hooks_in_the_order_the_doc_describes():
    """Setup, the sanity check, two batches each inside optimizer_step, validation, then the
    epoch end and the checkpoint: the whole recorded sequence, exactly."""
    names = [name for _, name in hook_order.record_fit()]
    assert names == (["setup", "configure_optimizers", "on_fit_start", "on_sanity_check_start",
                      *VALIDATION, "on_sanity_check_end", "on_train_start",
                      "on_train_epoch_start", *BATCH, *BATCH, *VALIDATION,
                      "on_train_epoch_end", "on_save_checkpoint", "on_train_end", "on_fit_end",
                      "teardown"])


def test_the_recorder_has_a_method_for_every_hook_of_the_installed_callback():
    """HookRecorder's hooks are made from lightning.Callback's own: none is missed, and the two
    left out would make it stateful."""
    import lightning as L

    hooks = hook_order.callback_hooks()
    assert {"on_fit_start", "on_before_optimizer_step", "on_save_checkpoint"} <= set(hooks)
    for name in hooks:
        assert getattr(hook_order.HookRecorder, name) is not getattr(L.Callback, name)
    assert not {"state_dict", "load_state_dict"} & set(hooks)


def test_the_picture_has_one_row_per_call(tmp_path):
    """draw() writes a PNG with one text row per recorded call, plus its title."""
    calls = [("callback", "setup"), ("module", "configure_optimizers"),
             ("callback", "on_train_batch_start"), ("module", "optimizer_step"),
             ("module", "training_step"), ("module", "optimizer_step returns")]
    figure = hook_order.draw(calls, tmp_path / "hooks.png")
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert [t for t in texts if t.rstrip("()") in {name for _, name in calls}] == [
        "setup", "configure_optimizers()", "on_train_batch_start", "optimizer_step()",
        "training_step()", "optimizer_step returns"]
    assert (tmp_path / "hooks.png").read_bytes()[:4] == b"\x89PNG"
