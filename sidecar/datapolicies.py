"""Row filters and column masks from memory: the same per-user view as access decisions
(fetched once per user and revision), the pure core's data-policy functions, and encoded
answers cached beside the decisions (dropped with them on every revision).

With the PDP unreachable and nothing cached, answers fail closed: a row filter that matches no
row and NULL for every column (the access checks of the same query are denied as well)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any

from pdp.core.datapolicy import Mask, RowFilter, column_mask, row_filters
from pdp.core.model import Identity, MaskKind, View
from pdp.wire.datapolicy import (
    MaskedColumn,
    batch_masks_answer,
    column_mask_answer,
    mask_columns,
    row_filters_answer,
)
from sidecar.answers import Answers
from sidecar.pdp_client import PdpUnavailable

log = logging.getLogger(__name__)

NO_ROWS = RowFilter("false", "pdp-unavailable")


async def answer_row_filters(
    answers: Answers, identity: Identity, table: tuple[str, str, str], key: Hashable | None
) -> bytes:
    view = await user_view(answers, identity)
    answer = row_filters_answer(row_filters_on(view, identity, table))
    if view is not None and key is not None:
        answers.remember_answer(key, view, answer)
    return answer


async def answer_masks(
    answers: Answers, identity: Identity, document: Any, batch: bool, key: Hashable | None
) -> bytes:
    columns = mask_columns(document, batch)
    view = await user_view(answers, identity)
    masks = masks_on(view, identity, columns)
    answer = batch_masks_answer(masks) if batch else column_mask_answer(masks[0])
    if view is not None and key is not None:
        answers.remember_answer(key, view, answer)
    return answer


def row_filters_on(
    view: View | None, identity: Identity, table: tuple[str, str, str]
) -> Sequence[RowFilter]:
    """The row filters on `table` for the user of `view`; without a view, one matching no row."""
    return [NO_ROWS] if view is None else row_filters(view, identity, table)


def masks_on(
    view: View | None, identity: Identity, columns: Sequence[MaskedColumn]
) -> list[Mask | None]:
    """The mask of each column (None: unmasked) for the user of `view`; without a view, NULL."""
    if view is None:
        return [Mask("NULL", "pdp-unavailable", MaskKind.NULL, "PDP unavailable") for _ in columns]
    return [column_mask(view, identity, c.table, c.column, c.type) for c in columns]


async def user_view(answers: Answers, identity: Identity) -> View | None:
    """The user's view, or None (with a warning) when the PDP is unavailable and none is held:
    the data policies then fail closed."""
    try:
        return await answers.view(identity)
    except PdpUnavailable as exc:
        log.warning(
            "masking every column and filtering every row for %r: PDP unavailable and nothing "
            "cached (%s)",
            identity.user,
            exc,
        )
        return None
