"""Watch the training loss for NaN/inf without making the host wait for the device.

Reading a CUDA tensor's value (`.item()`, `float(t)`, `bool(t)`, `if t:`) blocks Python
until every queued kernel has run: the GPU then idles while Python prepares the next step.
This watch keeps its bookkeeping on the device and brings it to the host with an
asynchronous copy into pinned memory, which Python reads only once a CUDA event says the
copy has landed. A NaN is therefore noticed a few steps late on CUDA (the step it appeared
at is still reported exactly), and never costs a synchronization; on the CPU the copy lands
at once and the step is reported straight away. The only blocking read is `finish()`, once
per epoch.

    watch = LossWatch(device)
    watch.start_epoch()
    for step, batch in enumerate(loader):
        loss = ...
        watch.observe(step, loss)      # device ops only
        if watch.poll(step):           # host-side check of the latest landed copy
            raise Diverged(watch.message(epoch))
    if watch.finish():                 # one blocking read per epoch
        raise Diverged(watch.message(epoch))
"""

from __future__ import annotations

import torch


class LossWatch:
    """First non-finite loss of an epoch and the latest loss, with no per-step host sync."""

    def __init__(self, device: torch.device, *, poll_every: int | None = None):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        # CUDA: a copy every few steps is plenty (each is a tiny kernel plus a memcpy); the CPU
        # reads are free, so look at every step there.
        self.poll_every = max(1, poll_every if poll_every is not None else (10 if cuda else 1))
        # [first bad step (1-based, 0: none), the bad loss, the latest loss]
        self._host = torch.zeros(3, dtype=torch.float32, pin_memory=cuda)
        self._event = torch.cuda.Event() if cuda else None
        self.start_epoch()

    def start_epoch(self) -> None:
        """Forget the previous epoch (call before its first step)."""
        zero = torch.zeros((), dtype=torch.float32, device=self.device)
        self._first, self._value, self._last = zero, zero, zero
        self._pending = False
        self.first_bad_step: int | None = None
        self.bad_value: float | None = None
        self.last_loss: float | None = None   # the latest loss the host has seen (for progress bars)

    def observe(self, step: int, loss: torch.Tensor) -> None:
        """Record step `step`'s loss (0-based) with device operations only."""
        loss = loss.detach().float().reshape(())
        new = ~torch.isfinite(loss) & (self._first == 0)
        # A python number in torch.where travels as a kernel argument, not as a host-to-device copy.
        self._first = torch.where(new, float(step + 1), self._first)
        self._value = torch.where(new, loss, self._value)
        self._last = loss

    def _snapshot(self) -> torch.Tensor:
        return torch.stack([self._first, self._value, self._last])

    def _read(self) -> bool:
        first, value, last = self._host.tolist()  # a host tensor: no device involved
        self.last_loss = last
        if first > 0:
            self.first_bad_step, self.bad_value = int(first), value
        return self.first_bad_step is not None

    def poll(self, step: int) -> bool:
        """True once a non-finite loss has reached the host. Never waits for the device."""
        if not self._pending and step % self.poll_every == 0:
            self._host.copy_(self._snapshot(), non_blocking=True)
            if self._event is not None:
                self._event.record(torch.cuda.current_stream(self.device))
            self._pending = True
        if self._pending and (self._event is None or self._event.query()):
            self._pending = False
            self._read()
        return self.first_bad_step is not None

    def finish(self) -> bool:
        """One blocking read at the end of the epoch; True if any step's loss was not finite."""
        self._host.copy_(self._snapshot())  # ordered after any copy still in flight
        self._pending = False
        return self._read()

    def message(self, epoch: int) -> str:
        """What the run's summary says about the divergence."""
        return f"the training loss became {self.bad_value} in epoch {epoch}, step {self.first_bad_step}"
