"""/v2/lbaas/healthmonitors"""

from __future__ import annotations

from fastapi import APIRouter

from lbaas.api import schemas as s
from lbaas.api.resources import HEALTHMONITOR
from lbaas.api.routes.common import add_reads, add_writes
from lbaas.services import healthmonitors

router = APIRouter()
KIND = HEALTHMONITOR
add_reads(router, KIND)
add_writes(router, KIND, s.HealthMonitorCreate, s.HealthMonitorUpdate, healthmonitors.create,
           healthmonitors.update)
