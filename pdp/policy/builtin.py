"""Policies the product ships with. Each has a fixed definition; the policy files only choose
its state (`builtins:` in docs/policy-format.md), and it is staged until a governor activates it.

* **New Column Added**: a NULL mask on every column tagged `New` (object sync tags the columns
  it finds added to a known table), on every data source, for everyone except the data
  source's owners (Data Owner on the table or above). Validating the column's request removes
  the tag, and with it the mask.
"""

from __future__ import annotations

from pdp.core.model import MaskKind, fold
from pdp.policy.model import MaskingPolicy, PolicyStatus, Targets

NEW_COLUMN_ADDED = "New Column Added"
NEW_COLUMN_TAG = "New"  # the tag object sync puts on added columns (pdp.objects.tags.NEW_TAG)

BUILTIN_MASKS = (NEW_COLUMN_ADDED,)


def new_column_added(status: PolicyStatus = PolicyStatus.STAGED) -> MaskingPolicy:
    return MaskingPolicy(
        name=NEW_COLUMN_ADDED,
        kind=MaskKind.NULL,
        on=Targets(everything=True),
        column_tags=frozenset({fold(NEW_COLUMN_TAG)}),
        status=status,
        except_owners=True,
    )


def builtin_masks(states: dict[str, PolicyStatus]) -> tuple[MaskingPolicy, ...]:
    """The built-in masking policies in the states the files give (folded name -> state);
    those the files do not mention are staged."""
    return (new_column_added(states.get(fold(NEW_COLUMN_ADDED), PolicyStatus.STAGED)),)


def is_builtin(name: str) -> bool:
    return fold(name) in {fold(n) for n in BUILTIN_MASKS}
