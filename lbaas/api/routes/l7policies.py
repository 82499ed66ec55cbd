"""/v2/lbaas/l7policies"""

from __future__ import annotations

from fastapi import APIRouter

from lbaas.api import schemas as s
from lbaas.api.resources import L7POLICY
from lbaas.api.routes.common import add_reads, add_writes
from lbaas.services import l7policies

router = APIRouter()
KIND = L7POLICY
add_reads(router, KIND)
add_writes(router, KIND, s.L7PolicyCreate, s.L7PolicyUpdate, l7policies.create, l7policies.update)
