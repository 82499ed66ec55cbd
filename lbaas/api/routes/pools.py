"""/v2/lbaas/pools"""

from __future__ import annotations

from fastapi import APIRouter

from lbaas.api import schemas as s
from lbaas.api.resources import POOL
from lbaas.api.routes.common import add_reads, add_writes
from lbaas.services import pools

router = APIRouter()
KIND = POOL
add_reads(router, KIND)
add_writes(router, KIND, s.PoolCreate, s.PoolUpdate, pools.create, pools.update)
