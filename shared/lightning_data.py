"""A LightningDataModule over the same tensors and loader settings the plain twins use.

Only the Lightning twins import this module. The plain twins build the same DataLoaders
inline; this class builds them in `train_dataloader()`/`val_dataloader()`/`test_dataloader()`,
where the Trainer (and `Tuner.scale_batch_size`, which changes `self.batch_size`) asks for
them. `--predict N` passes its own loader of the first N test samples to `trainer.predict`.
"""

import lightning as L
from torch.utils.data import DataLoader, TensorDataset


class TensorDataModule(L.LightningDataModule):
    def __init__(
        self,
        train_set: TensorDataset,
        val_set: TensorDataset,
        test_set: TensorDataset | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.train_set, self.val_set, self.test_set = train_set, val_set, test_set
        self.batch_size = batch_size  # the attribute Tuner.scale_batch_size searches over
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size, num_workers=self.num_workers)
