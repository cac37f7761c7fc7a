"""Typed bounds shared by the routes' query and path parameters.

Every integer a client sends is bounded to what the storage can hold (SQLite and PostgreSQL
``BIGINT``): an unbounded ``int`` reaches the database driver as an ``OverflowError`` (a 500).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_INT64 = 2**63 - 1

TreeIndex = Annotated[int, Query(ge=0, le=MAX_INT64, description="a leaf index")]
TreeSize = Annotated[int, Query(ge=1, le=MAX_INT64, description="a tree size")]
