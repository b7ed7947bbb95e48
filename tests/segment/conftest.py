"""One torch thread: the machine is a shared 2-core CPU, where more threads only oversubscribe it."""

import torch

torch.set_num_threads(1)
