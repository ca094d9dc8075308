# Lesson 4's exercises, worked (notebooks/04_lightnings_extras.ipynb). Each part below is the
# source of one exercise cell, so it uses the lesson's names (L, F, torch, SumMLP,
# sum_loaders, validate); the tests run the lesson with these in the exercise cells and check
# that each check cell says "correct".

# Exercise 1: clip each value, once a window
def train_clipped_by_value(epochs=3):
    L.seed_everything(42, workers=True, verbose=False)
    train_loader, val_loader = sum_loaders()
    model = SumMLP(32, 256)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses, val_losses = [], []
    for epoch in range(epochs):
        model.train()
        for batch_idx, (features, labels) in enumerate(train_loader):
            if batch_idx % 2 == 0:  # a window starts
                optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(features), labels)
            (loss / 2).backward()  # the window's gradients add up to their mean
            if (batch_idx + 1) % 2 == 0 or batch_idx + 1 == len(train_loader):  # it ends
                # once a window, on its summed gradients, just before its step
                torch.nn.utils.clip_grad_value_(model.parameters(), 0.01)
                optimizer.step()
            losses.append(loss.item())
        val_losses.append(validate(model, val_loader))
    return losses, val_losses


# Exercise 2: bfloat16 all the way, precision="bf16-true"
@torch.no_grad()
def validate_bf16_true(model, val_loader):
    model.eval()
    loss_sum, seen = torch.tensor(0.0), 0
    for features, labels in val_loader:
        # validation's batches are converted too: features and labels are both floating-point
        features, labels = features.to(torch.bfloat16), labels.to(torch.bfloat16)
        loss = F.binary_cross_entropy_with_logits(model(features), labels)  # a bfloat16 loss
        loss_sum = loss_sum + loss * len(labels)
        seen += len(labels)
    return (loss_sum / seen).item()


def train_bf16_true(epochs=1):
    L.seed_everything(42, workers=True, verbose=False)
    train_loader, val_loader = sum_loaders()
    model = SumMLP(32, 256).to(torch.bfloat16)  # the weights themselves in bfloat16
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # its state follows: bfloat16
    losses, val_losses = [], []
    for epoch in range(epochs):
        model.train()
        for features, labels in train_loader:
            features, labels = features.to(torch.bfloat16), labels.to(torch.bfloat16)
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(features), labels)  # no autocast
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        val_losses.append(validate_bf16_true(model, val_loader))
    return losses, val_losses
