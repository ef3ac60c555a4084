"""What a forecast shard fitted, handed over to its target's `publish` step in ml.forecast_handoff.

A result is stored as JSON text (not pickle: what the warehouse holds is data, never code to run) and
taken over only for a series whose origin and input hash are still the ones it was fitted for.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date

import numpy as np
import pandas as pd
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import execute_values

from sales_pipeline.forecasting.models import Fold, ForecastResult

Key = tuple[str, str, str]  # target, scope, scope_id


def hand_over(cursor: Cursor, target: str, results: list[ForecastResult]) -> None:
    """Store a shard's results, replacing what an earlier run handed over for the same series."""
    rows = [(target, r.scope, r.scope_id, r.origin, r.input_hash, encoded(r)) for r in results]
    execute_values(
        cursor,
        """
        INSERT INTO ml.forecast_handoff (target, scope, scope_id, origin, input_hash, result) VALUES %s
        ON CONFLICT (target, scope, scope_id) DO UPDATE SET
            origin = EXCLUDED.origin, input_hash = EXCLUDED.input_hash, result = EXCLUDED.result, handed_at = now()
        """,
        rows,
        page_size=500,
    )


def handed_over(cursor: Cursor, target: str, wanted: dict[Key, tuple[date, str]]) -> dict[Key, ForecastResult]:
    """The results handed over for exactly the origin and input hash each wanted series has now."""
    cursor.execute(
        "SELECT scope, scope_id, origin, input_hash, result FROM ml.forecast_handoff WHERE target = %s", (target,)
    )
    return {
        (target, scope, scope_id): decoded(text)
        for scope, scope_id, origin, input_hash, text in cursor.fetchall()
        if wanted.get((target, scope, scope_id)) == (origin, input_hash)
    }


def forget(cursor: Cursor, target: str) -> None:
    """Empty the target's hand-off: its forecasts are published (or were fitted again)."""
    cursor.execute("DELETE FROM ml.forecast_handoff WHERE target = %s", (target,))


def encoded(result: ForecastResult) -> str:
    """The result as JSON text; floats exactly (NaN kept), dates as ISO text."""
    plain = {field.name: getattr(result, field.name) for field in fields(result)}
    plain["forecast"] = None if result.forecast is None else result.forecast.to_dict("list")
    plain["folds"] = [
        [fold.origin, fold.model, fold.input_hash, fold.yhat.tolist(), fold.reused] for fold in result.folds
    ]
    return json.dumps(plain, default=_plain)


def decoded(text: str) -> ForecastResult:
    """The result `encoded` stored, with its dates, arrays and table as they were."""
    plain = json.loads(text)
    plain["origin"] = date.fromisoformat(plain["origin"])
    if plain["forecast"] is not None:
        forecast = pd.DataFrame(plain["forecast"])
        forecast["day"] = forecast["day"].map(date.fromisoformat)
        plain["forecast"] = forecast
    plain["folds"] = [
        Fold(date.fromisoformat(origin), model, input_hash, np.asarray(yhat, dtype=float), reused)
        for origin, model, input_hash, yhat, reused in plain["folds"]
    ]
    plain["accuracy"] = [
        {**row, **{name: date.fromisoformat(row[name]) for name in ("first_origin", "last_origin") if row.get(name)}}
        for row in plain["accuracy"]
    ]
    return ForecastResult(**plain)


def _plain(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a forecast result holds a {type(value).__name__}, which the hand-off cannot store")
