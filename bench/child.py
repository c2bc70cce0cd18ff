"""What the suites share: each measures in a child process of its own, on a scratch database."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(module: str, what: str, extra_env: dict[str, str] | None = None) -> list[tuple[str, float, str]]:
    """Run ``python -m <module>`` on a scratch SQLite database (or the PostgreSQL one ``DATABASE_URL`` names) and
    return the figures its last line of output gives; ``what`` names the suite in the error if it fails. The child
    finds a scratch folder, removed afterwards, in ``BENCH_SCRATCH``."""
    with tempfile.TemporaryDirectory(prefix=f"{module.rsplit('.', 1)[-1].replace('_', '-')}-") as scratch:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "jitportal.settings.test", "BENCH_SCRATCH": scratch,
               **(extra_env or {})}
        if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
            env["DATABASE_URL"] = f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"
        result = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env,  # noqa: S603 - our interpreter
                                capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{what} benchmark failed:\n{result.stdout}\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return [(label, float(value), goal) for label, value, goal in figures]


def policy_admin(subscription: str, tenant: str):
    """A policy admin of ``subscription``, signed in as the portal records Entra sign-ins."""
    from accounts import services as account_services
    from accounts.models import RoleMapping

    RoleMapping.objects.get_or_create(source_kind="app_role", source_value="JIT.PolicyAdmin", tenant_id="",
                                      role="policy_admin", scope=f"/subscriptions/{subscription}")
    return account_services.user_sign_in_record(claims={
        "tid": tenant, "oid": "8a0e7c31-0000-4000-8000-000000000002", "preferred_username": "bob@contoso.example",
        "name": "Bob Security Admin", "roles": ["JIT.PolicyAdmin"], "groups": []})
