# Lesson 9's exercises, worked (notebooks/09_a_small_gpt.ipynb). Each part below is the source of
# one exercise cell, so it uses the lesson's names (torch, F, partial, CORPUS, CONTEXT, BATCH,
# SEED, LR, WEIGHT_DECAY, RandomWindows, TinyGPT, parameter_groups, warmup_cosine, LitTinyGPT);
# the tests run the lesson with these in the exercise cells and check that each check says
# "correct".

# Exercise 1: accumulate gradients, by steps
def train_accumulating(max_steps=12, accumulate=2):
    torch.manual_seed(SEED)
    # max_steps counts optimizer steps: the run reads accumulate batches for each
    train_stream = RandomWindows(CORPUS.train, CONTEXT, BATCH, accumulate * max_steps, SEED)
    model = TinyGPT(len(CORPUS.vocabulary), CONTEXT)
    optimizer = torch.optim.AdamW(parameter_groups(model, WEIGHT_DECAY), lr=LR,
                                  betas=(0.9, 0.95))
    losses = []
    model.train()
    for batch_idx, (x, y) in enumerate(train_stream):
        step = batch_idx // accumulate  # the optimizer step this batch belongs to
        if batch_idx % accumulate == 0:  # a window starts
            optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        (loss / accumulate).backward()  # the window's gradients add up to their mean
        losses.append(loss.item())  # before dividing, as training_step computed it
        if (batch_idx + 1) % accumulate == 0:  # the window ends: set its rate, then step
            lr = LR * warmup_cosine(step, 3, max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
    return losses


# Exercise 2: a schedule of your own, as a LambdaLR
def warmup_linear(step, warmup_steps, max_steps):
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # as warmup_cosine: never 0
    return (max_steps - step) / (max_steps - warmup_steps)  # 1 at warmup_steps, then down


class LitWarmupLinear(LitTinyGPT):
    def configure_optimizers(self):
        args = self.args
        optimizer = torch.optim.AdamW(parameter_groups(self.model, args.weight_decay), lr=args.lr,
                                      betas=(0.9, 0.95))
        factor = partial(warmup_linear, warmup_steps=args.warmup_steps, max_steps=args.max_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)  # lr = args.lr * factor
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
