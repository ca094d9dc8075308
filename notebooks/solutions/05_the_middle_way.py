# Lesson 5's exercises, worked (notebooks/05_the_middle_way.ipynb). Each part below is the
# source of one exercise cell, so it uses the lesson's names (L, F, DataLoader, load_mnist,
# first, FeedForward, DATA_DIR, evaluate_on_fabric); the tests run the lesson with these in
# the exercise cells and check that each check says "correct".

# Exercise 1: accumulate gradients, the Fabric way
def train_accumulating(epochs=2, accumulate=3):
    fabric = L.Fabric(accelerator="cpu", devices=1)
    fabric.seed_everything(42, verbose=False)
    train_set, val_set, _, _ = load_mnist(DATA_DIR)
    train_loader = DataLoader(first(train_set, 2000), batch_size=64, shuffle=True)
    val_loader = DataLoader(first(val_set, 500), batch_size=64)
    train_loader, val_loader = fabric.setup_dataloaders(train_loader, val_loader)
    model = FeedForward(500)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, optimizer = fabric.setup(model, optimizer)
    losses, val_losses = [], []
    for epoch in range(epochs):
        model.train()
        for batch_idx, (images, labels) in enumerate(train_loader):
            if batch_idx % accumulate == 0:  # a window starts
                optimizer.zero_grad()
            window_ends = (batch_idx + 1) % accumulate == 0 or batch_idx + 1 == len(train_loader)
            # DDP: sync at the end only
            with fabric.no_backward_sync(model, enabled=not window_ends):
                loss = F.cross_entropy(model(images), labels)
                fabric.backward(loss / accumulate)  # the window's gradients add up to their mean
            if window_ends:
                optimizer.step()
            losses.append(loss.item())  # before dividing, as the Trainer logs it
        val_losses.append(evaluate_on_fabric(model, val_loader, fabric))
    return losses, val_losses


# Exercise 2: clip each value, the Fabric way
def train_clipped(epochs=2):
    fabric = L.Fabric(accelerator="cpu", devices=1)
    fabric.seed_everything(42, verbose=False)
    train_set, val_set, _, _ = load_mnist(DATA_DIR)
    train_loader = DataLoader(first(train_set, 2000), batch_size=64, shuffle=True)
    val_loader = DataLoader(first(val_set, 500), batch_size=64)
    train_loader, val_loader = fabric.setup_dataloaders(train_loader, val_loader)
    model = FeedForward(500)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, optimizer = fabric.setup(model, optimizer)
    losses, val_losses = [], []
    for epoch in range(epochs):
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            fabric.backward(loss)
            # after backward, before the step; clip_val clips each value, max_norm the norm
            fabric.clip_gradients(model, optimizer, clip_val=0.01)
            optimizer.step()
            losses.append(loss.item())
        val_losses.append(evaluate_on_fabric(model, val_loader, fabric))
    return losses, val_losses
