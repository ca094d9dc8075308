# Lesson 7's exercises, worked (notebooks/07_migrating_your_own_loop.ipynb). Each part below is
# the source of one exercise cell, so it uses the lesson's names (torch, F, LitRegressor,
# make_data); the tests run the lesson with these in the exercise cells and check
# that each check says "correct".

# Exercise 1: clip the whole model, as the loop does
class LitRegressorClipsAll(LitRegressor):
    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None):
        # the Trainer's own clipping would take the optimizer's parameters, the head's only;
        # the loop measures the norm over every parameter of the model
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), gradient_clip_val)


# Exercise 2: two validation splits
class LitRegressorTwoSplits(LitRegressor):
    def on_validation_epoch_start(self):
        self.total_squared, self.count = [0.0, 0.0], [0, 0]  # one total per loader

    def validation_step(self, batch, batch_idx, dataloader_idx=0):  # 0: val, 1: shifted
        x, y = batch
        self.total_squared[dataloader_idx] += F.mse_loss(self.model(x), y,
                                                         reduction="sum").item()
        self.count[dataloader_idx] += len(y)

    def on_validation_epoch_end(self):
        self.log("val_mse", self.total_squared[0] / self.count[0])
        self.log("shifted_mse", self.total_squared[1] / self.count[1])
