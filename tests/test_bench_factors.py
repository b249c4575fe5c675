"""The passkey/TOTP bench still measures real sign-ins (nothing here is timed)."""

from __future__ import annotations

from bench.factors import factor_costs
from bench.factors import factors_table


def test_factor_costs_run_real_ceremonies() -> None:
    costs = factor_costs(seconds=0.01)
    assert [c.name.split(":")[0].split(" ")[0] for c in costs] == ["passkey", "passkey",
                                                                    "TOTP", "TOTP"]
    assert all(c.cpu_ms > 0 for c in costs)
    assert "ES256" in factors_table(costs)
