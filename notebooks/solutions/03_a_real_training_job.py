# Lesson 3's exercises, worked (notebooks/03_a_real_training_job.ipynb). Each part below is
# the source of one exercise cell, so it uses the lesson's names (L, torch, DataLoader, first,
# train_set, val_set); the tests run the lesson with these in the exercise cells and check
# that each check says "correct".

# Exercise 1: a scheduler that steps after every batch
def configure_optimizers(self):
    optimizer = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    # "interval": "step" steps it after every optimizer step; the default, "epoch", once an epoch
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


# Exercise 2: a DataModule that holds out its own validation images
class SmallMNIST(L.LightningDataModule):
    def setup(self, stage):
        # the split's own generator: the loop's split, and no draw from the global generator,
        # which would shuffle the training batches differently
        self.train_part, self.val_part = torch.utils.data.random_split(
            first(train_set, 896), [640, 256], generator=torch.Generator().manual_seed(0))

    def train_dataloader(self):
        return DataLoader(self.train_part, batch_size=64, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_part, batch_size=64)
