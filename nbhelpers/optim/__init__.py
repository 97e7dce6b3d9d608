"""Optimizers: the policy table, build_optimizer(), and the seven that torch does not ship.

Importing this package registers all 16 optimizers in nbhelpers.registry.OPTIMIZERS.
"""

from nbhelpers.optim.build import (OptimizerChoice, build_optimizer, make_optimizer,
                                   optimizer_state_bytes, param_groups, parse_lr_overrides)
from nbhelpers.optim.table import (TABLE, OptimizerSpec, all_names, default_sam_base, get_spec,
                                   resolve_optimizer_class)

__all__ = ["TABLE", "OptimizerChoice", "OptimizerSpec", "all_names", "build_optimizer",
           "default_sam_base", "get_spec", "make_optimizer", "optimizer_state_bytes",
           "param_groups", "parse_lr_overrides", "resolve_optimizer_class"]
