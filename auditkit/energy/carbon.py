"""Carbon per 1,000 inspections by the SCI formula (Software Carbon Intensity, ISO/IEC 21031).

SCI = (E x I + M) per R, with the functional unit R = 1,000 inspections (images replayed):
E the energy in kWh per 1,000 inspections, I the grid's carbon intensity in gCO2e/kWh, M the
embodied emissions in gCO2e per 1,000 inspections (the hardware's manufacture, amortised; 0
unless given).

Grid intensity: ``--grid-intensity G`` as given; or ``--country CODE`` from the table below
(every value with its source and year); or the world average, 475 gCO2e/kWh (IEA, 2019),
labelled as the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from auditkit.energy.interface import EnergyInputError

WORLD_AVERAGE_G_PER_KWH = 475.0
WORLD_AVERAGE_SOURCE = (
    "world average 475 gCO2e/kWh (IEA, 2019); default, no --grid-intensity or --country given"
)

#: One source for every row: the year-2020 rows of the data file CodeCarbon ships,
#: codecarbon/data/private_infra/2020/eu-carbon-intensity-electricity.csv (carbon intensity of
#: electricity generation, gCO2/kWh, EU-27 member states and the United Kingdom, compiled by
#: Our World in Data from European Environment Agency / Ember data).
COUNTRY_SOURCE = (
    "carbon intensity of electricity generation, {year}, {code}: Our World in Data (EEA/Ember "
    "data) as shipped in CodeCarbon's eu-carbon-intensity-electricity.csv"
)
COUNTRY_YEAR = 2020
COUNTRY_G_PER_KWH: dict[str, float] = {
    "AUT": 83, "BEL": 192, "BGR": 352, "HRV": 164, "CYP": 653, "CZE": 386, "DNK": 116,
    "EST": 669, "FIN": 67, "FRA": 55, "DEU": 301, "GRC": 522, "HUN": 218, "IRL": 293,
    "ITA": 212, "LVA": 92, "LTU": 146, "LUX": 69, "MLT": 356, "NLD": 318, "POL": 724,
    "PRT": 201, "ROU": 208, "SVK": 90, "SVN": 219, "ESP": 190, "SWE": 13, "GBR": 209,
}  # fmt: skip
#: ISO 3166 alpha-2 codes (and the EU's EL, UK) of the same countries
ALPHA2 = {
    "AT": "AUT", "BE": "BEL", "BG": "BGR", "HR": "HRV", "CY": "CYP", "CZ": "CZE", "DK": "DNK",
    "EE": "EST", "FI": "FIN", "FR": "FRA", "DE": "DEU", "GR": "GRC", "EL": "GRC", "HU": "HUN",
    "IE": "IRL", "IT": "ITA", "LV": "LVA", "LT": "LTU", "LU": "LUX", "MT": "MLT", "NL": "NLD",
    "PL": "POL", "PT": "PRT", "RO": "ROU", "SK": "SVK", "SI": "SVN", "ES": "ESP", "SE": "SWE",
    "GB": "GBR", "UK": "GBR",
}  # fmt: skip


@dataclass(frozen=True)
class GridIntensity:
    g_per_kwh: float
    source: str


def grid_intensity(value: float | None = None, country: str | None = None) -> GridIntensity:
    """The intensity to use: the given value, the country's, or the world average."""
    if value is not None and country is not None:
        raise EnergyInputError("give --grid-intensity or --country, not both")
    if value is not None:
        if not (math.isfinite(value) and value >= 0):
            raise EnergyInputError(f"--grid-intensity must be >= 0 gCO2e/kWh, got {value}")
        return GridIntensity(float(value), "--grid-intensity (given by the user)")
    if country is not None:
        code = country.strip().upper()
        code = ALPHA2.get(code, code)
        if code not in COUNTRY_G_PER_KWH:
            raise EnergyInputError(
                f"no grid intensity for country {country!r} in the bundled table "
                f"({', '.join(sorted(COUNTRY_G_PER_KWH))}); give --grid-intensity G"
            )
        return GridIntensity(
            float(COUNTRY_G_PER_KWH[code]), COUNTRY_SOURCE.format(year=COUNTRY_YEAR, code=code)
        )
    return GridIntensity(WORLD_AVERAGE_G_PER_KWH, WORLD_AVERAGE_SOURCE)


def sci_g_per_1000(wh_per_1000: float, g_per_kwh: float, embodied_g_per_1000: float) -> float:
    """SCI in gCO2e per 1,000 inspections: (E x I + M) with E in kWh per 1,000."""
    return wh_per_1000 / 1000.0 * g_per_kwh + embodied_g_per_1000
