"""The VM sizes Azure ML managed online deployments run on, with their vCPUs and memory.

A v2 deployment names its `instance_type` (`Standard_DS3_v2`); locally that size becomes the
service's CPU and memory limits, and `mldeploy export azureml-v2` picks the smallest size that
holds a profile's recommendation. Which sizes exist for managed online endpoints comes from
Azure's SKU list; each size's vCPUs and memory come from the page of its VM series (`source`).
Azure keeps a share of each VM for its own agents; that share is not documented per size, so
the figures here are the whole VM's.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Dict, List, Optional

#: The sizes managed online endpoints accept (Azure ML docs, "Managed online endpoints SKU list").
SKU_LIST_SOURCE = "https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list"

_SERIES_PAGE = "https://learn.microsoft.com/azure/virtual-machines/"
DSV2 = _SERIES_PAGE + "dv2-dsv2-series"
DAV4 = _SERIES_PAGE + "dav4-dasv4-series"
FSV2 = _SERIES_PAGE + "fsv2-series"
FX = _SERIES_PAGE + "fx-series"
ESV3 = _SERIES_PAGE + "ev3-esv3-series"
NCV2 = _SERIES_PAGE + "ncv2-series"
NCV3 = _SERIES_PAGE + "ncv3-series"
NCT4 = _SERIES_PAGE + "nct4-v3-series"
NCA100 = _SERIES_PAGE + "nc-a100-v4-series"
NDA100 = _SERIES_PAGE + "nda100-v4-series"
NDAMSR = _SERIES_PAGE + "ndm-a100-v4-series"
NDV2 = _SERIES_PAGE + "ndv2-series"


@dataclass(frozen=True)
class VmSize:
    """One VM size: vCPUs, memory in GiB, GPUs, and the page the figures come from."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int
    source: str


def _sizes() -> Dict[str, VmSize]:
    rows = [
        # General purpose
        ("Standard_DS1_v2", 1, 3.5, 0, DSV2), ("Standard_DS2_v2", 2, 7, 0, DSV2), ("Standard_DS3_v2", 4, 14, 0, DSV2),
        ("Standard_DS4_v2", 8, 28, 0, DSV2), ("Standard_DS5_v2", 16, 56, 0, DSV2),
        *((f"Standard_D{n}a_v4", n, 4 * n, 0, DAV4) for n in (2, 4, 8, 16, 32, 48, 64, 96)),
        *((f"Standard_D{n}as_v4", n, 4 * n, 0, DAV4) for n in (2, 4, 8, 16, 32, 48, 64, 96)),
        # Compute optimized
        *((f"Standard_F{n}s_v2", n, 2 * n, 0, FSV2) for n in (2, 4, 8, 16, 32, 48, 64, 72)),
        *((f"Standard_FX{n}mds", n, 21 * n, 0, FX) for n in (4, 12, 24, 36, 48)),
        # Memory optimized
        ("Standard_E2s_v3", 2, 16, 0, ESV3), ("Standard_E4s_v3", 4, 32, 0, ESV3), ("Standard_E8s_v3", 8, 64, 0, ESV3),
        ("Standard_E16s_v3", 16, 128, 0, ESV3), ("Standard_E32s_v3", 32, 256, 0, ESV3),
        ("Standard_E48s_v3", 48, 384, 0, ESV3), ("Standard_E64s_v3", 64, 432, 0, ESV3),
        # GPU
        ("Standard_NC6s_v2", 6, 112, 1, NCV2), ("Standard_NC12s_v2", 12, 224, 2, NCV2), ("Standard_NC24s_v2", 24, 448, 4, NCV2),
        ("Standard_NC6s_v3", 6, 112, 1, NCV3), ("Standard_NC12s_v3", 12, 224, 2, NCV3), ("Standard_NC24s_v3", 24, 448, 4, NCV3),
        ("Standard_NC4as_T4_v3", 4, 28, 1, NCT4), ("Standard_NC8as_T4_v3", 8, 56, 1, NCT4),
        ("Standard_NC16as_T4_v3", 16, 110, 1, NCT4), ("Standard_NC64as_T4_v3", 64, 440, 4, NCT4),
        ("Standard_NC24ads_A100_v4", 24, 220, 1, NCA100), ("Standard_NC48ads_A100_v4", 48, 440, 2, NCA100),
        ("Standard_NC96ads_A100_v4", 96, 880, 4, NCA100),
        ("Standard_ND96asr_v4", 96, 900, 8, NDA100), ("Standard_ND96amsr_A100_v4", 96, 1900, 8, NDAMSR),
        ("Standard_ND40rs_v2", 40, 672, 8, NDV2),
    ]
    return {name: VmSize(name, cpus, float(mem), gpus, source) for name, cpus, mem, gpus, source in rows}


VM_SIZES: Dict[str, VmSize] = _sizes()
_BY_LOWER = {name.lower(): size for name, size in VM_SIZES.items()}


def lookup(name: str) -> Optional[VmSize]:
    """The size called `name` (Azure compares SKU names without regard to case), or None."""
    return _BY_LOWER.get(name.strip().lower())


def suggestion(name: str) -> str:
    """` (did you mean 'Standard_DS3_v2'?)` for a near miss, else an empty string."""
    close = difflib.get_close_matches(name.strip().lower(), list(_BY_LOWER), n=1, cutoff=0.75)
    return f" (did you mean {_BY_LOWER[close[0]].name!r}?)" if close else ""


def smallest_holding(cpu: float, memory_gb: float, *, gpus: int = 0) -> Optional[VmSize]:
    """The CPU size with the fewest vCPUs, then the least memory, that holds `cpu` cores and `memory_gb` GiB.

    Only sizes without GPUs are considered unless `gpus` asks for them; None when nothing is big enough.
    """
    fits: List[VmSize] = [
        s for s in VM_SIZES.values()
        if s.vcpus >= cpu and s.memory_gib >= memory_gb and (s.gpus >= gpus if gpus else s.gpus == 0)
    ]
    return min(fits, key=lambda s: (s.vcpus, s.memory_gib, s.name)) if fits else None
