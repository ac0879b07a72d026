"""One PPO minibatch update (forward passes, losses, backward pass, clipping, AdamW) replayed as
a CUDA graph.

At the anchor's size a GPU finishes a minibatch update in less time than Python takes to launch
its few thousand kernels one by one, so the GPU mostly waits (`docs/speed.md`). Nothing in the
update waits for the GPU (`models.backward_step_on_device` skips a non-finite step on the
device), so the whole update can be recorded once as a CUDA graph and replayed for every
minibatch of the same shapes: the minibatch's rows are copied into fixed input buffers, the graph
runs, and its outputs (the losses and statistics) are copied out.

Recording needs warm-up runs first. They run the very update with its loss multiplied by NaN, so
that the fused AdamW skips them: weights, moments and step count stay as they were. Without a GPU
(the tests) the same buffers and the same function run eagerly.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch


class StepGraph:
    """``fn(inputs, scale) -> dict of tensors`` over fixed input buffers shaped like ``example``,
    recorded as a CUDA graph at its first call where ``graph`` (else run eagerly). ``scale`` is a
    0-dim tensor the loss is multiplied by: 1, or NaN in the warm-up runs."""

    def __init__(self, fn: Callable[[dict, torch.Tensor], dict], example: dict, optimizer, graph: bool):
        self.fn, self.optimizer, self.use_graph = fn, optimizer, graph
        self.inputs = {k: torch.empty_like(v) for k, v in example.items()}
        self.scale = torch.ones((), device=next(iter(example.values())).device)
        self.graph, self.outputs = None, None

    def __call__(self, source: dict, rows: torch.Tensor) -> dict:
        """The update on ``source``'s ``rows`` (a tensor of row indices on the device)."""
        for key, buf in self.inputs.items():
            torch.index_select(source[key], 0, rows, out=buf)
        if self.use_graph and self.graph is None:
            self._record()
        if self.graph is None:
            return self.fn(self.inputs, self.scale)
        self.graph.replay()
        return {k: v.clone() for k, v in self.outputs.items()}

    def _record(self) -> None:
        """Two skipped warm-up runs on a side stream (CUDA graphs need one), then the recording.
        A fused AdamW's step records as it is; its ``capturable`` flag only lets ``step()`` be
        recorded, so it is set for the recording alone. Where recording fails, the update runs eagerly."""
        self.scale.fill_(float("nan"))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.fn(self.inputs, self.scale)
        torch.cuda.current_stream().wait_stream(side)
        self.scale.fill_(1.0)
        groups = self.optimizer.param_groups
        flags = [group.get("capturable", False) for group in groups]
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            for group in groups:
                group["capturable"] = True
            with torch.cuda.graph(graph):
                self.outputs = self.fn(self.inputs, self.scale)
            self.graph = graph
        except RuntimeError as e:              # e.g. an operation that cannot be recorded
            self.use_graph, self.outputs = False, None
            self.optimizer.zero_grad(set_to_none=True)
            warnings.warn(f"PPO's minibatch update could not be recorded as a CUDA graph ({e}); it runs eagerly "
                          "(PPOConfig(cuda_graphs=False) says so without trying)", stacklevel=3)
        finally:
            for group, flag in zip(groups, flags):
                group["capturable"] = flag
