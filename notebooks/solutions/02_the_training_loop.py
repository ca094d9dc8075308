# Lesson 2's exercises, worked (notebooks/02_the_training_loop.ipynb). Each part below is the
# source of one exercise cell, so it uses the lesson's names (L, F, torch, FeedForward,
# LitFeedForward); the tests run the lesson with these in the exercise cells and check that each
# check says "correct".

# Exercise 1: port a loop to Lightning
class LitSmoothed(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = FeedForward(500)  # built in __init__, after the seed, as the loop builds it

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = F.cross_entropy(self.model(images), labels, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)


# Exercise 2: a metric that self.log cannot average for you
class LitRecall(LitFeedForward):
    def on_validation_epoch_start(self):
        self.found, self.total = 0, 0  # a new count for every validation (and the sanity check)

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)  # val_loss and val_accuracy, as before
        images, labels = batch
        predicted = self.model(images).argmax(dim=1)
        self.found += ((predicted == 3) & (labels == 3)).sum().item()
        self.total += (labels == 3).sum().item()

    def on_validation_epoch_end(self):
        # one division over the epoch's counts, in float32 as the check divides
        self.log("val_recall_3", torch.tensor(self.found) / self.total)
