"""Energy and carbon per inspection (docs/energy.md).

Meters behind one interface (:mod:`~auditkit.energy.interface`): RAPL counters
(:mod:`~auditkit.energy.rapl`), NVIDIA NVML's energy counter (:mod:`~auditkit.energy.nvml`), an
external power log (:mod:`~auditkit.energy.powerlog`) and a labelled model
(:mod:`~auditkit.energy.model`); the idle-baseline and window protocol
(:mod:`~auditkit.energy.protocol`); carbon by SCI (:mod:`~auditkit.energy.carbon`).

Imports only the standard library and NumPy (plus ``auditkit.errors``): usable where the rest
of auditkit's dependencies are not installed.
"""

from auditkit.energy.interface import METHODS, EnergyInputError, EnergyOptions, Meter, Reading
from auditkit.energy.protocol import EnergyRun, energy_block, select_meter

__all__ = [
    "METHODS",
    "EnergyInputError",
    "EnergyOptions",
    "EnergyRun",
    "Meter",
    "Reading",
    "energy_block",
    "select_meter",
]
