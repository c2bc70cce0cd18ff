"""``jit_roles`` writes one Azure custom role per portal Azure role, with exactly the seed's actions."""
import json
import re

import pytest
from django.core.management import CommandError, call_command

from accounts.role_definitions import build_role_definitions
from tests.accounts.test_roles import SEED_CONFIGURE, SEED_READ, SEED_REQUEST

PROD = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000001"
DEV = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000002"
EXPECTED = {"reader": SEED_READ, "requester": SEED_REQUEST, "policy_admin": SEED_CONFIGURE | SEED_READ}


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("jit_roles", *args, stdout=out)
    return out.getvalue()


def test_the_generated_roles_hold_exactly_the_seeds_actions():
    definitions = json.loads(run("--scope", PROD, "--scope", DEV.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")))
    assert len(definitions) == 3
    by_name = {d["properties"]["roleName"]: d for d in definitions}
    assert set(by_name) == {"JIT Reader (jitportal)", "JIT Requester (jitportal)", "JIT Policy Admin (jitportal)"}
    for role, actions in EXPECTED.items():
        (definition,) = [d for d in definitions if d["properties"]["roleName"].lower().startswith(
            "jit " + role.replace("_", " "))]
        properties = definition["properties"]
        assert set(properties["permissions"][0]["actions"]) == actions
        assert len(properties["permissions"][0]["actions"]) == len(actions)
        assert properties["permissions"][0]["notActions"] == []
        assert properties["type"] == "CustomRole"
        assert properties["assignableScopes"] == [PROD, DEV]
        assert not any(a.startswith("JitPortal/") for a in properties["permissions"][0]["actions"])
        # Azure shows the description to its admins: it names Defender for Cloud's permission table, not our docs.
        assert "Defender for Cloud's '" in properties["description"] and "seed" not in properties["description"]


def test_names_are_stable_guids_of_the_role_name_and_its_assignable_scopes():
    first = build_role_definitions([PROD, DEV])
    again = build_role_definitions([DEV.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), PROD])
    other_subscription = build_role_definitions([DEV])
    for role in first:
        assert first[role]["name"] == again[role]["name"]  # re-applying lands on the same definition
        assert len(first[role]["name"]) == 36
        assert other_subscription[role]["name"] != first[role]["name"]
    assert len({d["name"] for d in first.values()}) == 3
    assert build_role_definitions([PROD, DEV], suffix="other")["reader"]["name"] != first["reader"]["name"]


def test_it_writes_one_file_per_role(tmp_path):
    run("--scope", f"{PROD}/resourceGroups/rg-web-prod", "--role", "requester", "--output", str(tmp_path))
    (path,) = tmp_path.iterdir()
    assert path.name == "jit-requester.json"
    definition = json.loads(path.read_text())
    assert definition["properties"]["assignableScopes"] == [f"{PROD}/resourceGroups/rg-web-prod"]
    assert set(definition["properties"]["permissions"][0]["actions"]) == SEED_REQUEST


def test_an_output_it_cannot_write_to_is_explained(tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("")
    with pytest.raises(CommandError, match=f"--output: cannot write to {re.escape(str(taken))}: File exists"):
        run("--scope", PROD, "--output", str(taken))
    with pytest.raises(CommandError, match=r"--output: cannot write to .*: Not a directory"):
        run("--scope", PROD, "--output", str(taken / "roles"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "/subscriptions/nope"],
         r"is not a scope: give /subscriptions/\{id\} or /subscriptions/\{id\}/resourceGroups/\{name\}\.$"),
        (["--scope", f"{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Compute/virtualMachines/vm-web-01"],
         "not at a VM"),
        (["--scope", PROD, "--suffix", "x" * 41], "at most 40 letters"),
        (["--scope", PROD, "--suffix", "team<script>"], "at most 40 letters"),
        (["--scope", PROD, "--apply"], "--subscription"),
        (["--scope", PROD, "--apply", "--subscription", "c0a1b2c3-0000-4000-8000-00000000dead"], "not registered"),
    ],
)
@pytest.mark.django_db
def test_it_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_portal_only_roles_have_no_azure_definition():
    with pytest.raises(ValueError, match="Not an Azure role"):
        build_role_definitions([PROD], ["auditor"])


@pytest.mark.django_db
def test_apply_creates_then_updates_the_definitions_through_the_gateway(fresh_emulator):
    from policies.gateway import gateway_for_subscription
    from tests.policies.factories import register

    subscription = register(fresh_emulator, PROD.rsplit("/", 1)[1])
    out = run("--scope", PROD, "--scope", DEV, "--apply", "--subscription", subscription.subscription_id)
    assert out.count("Applied JIT ") == 3
    out = run("--scope", DEV, "--scope", PROD, "--role", "requester", "--apply",
              "--subscription", subscription.subscription_id)
    assert "Applied JIT Requester (jitportal)" in out

    expected = build_role_definitions([PROD, DEV])
    with gateway_for_subscription(subscription) as gateway:
        stored = gateway.get_role_definition(PROD, expected["requester"]["name"])
        assert stored.role_name == "JIT Requester (jitportal)"
        assert set(stored.actions) == SEED_REQUEST
        assert sorted(s.lower() for s in stored.assignable_scopes) == [PROD, DEV]  # listed in the second run's order
        admin = gateway.get_role_definition(PROD, expected["policy_admin"]["name"])
        assert set(admin.actions) == SEED_CONFIGURE | SEED_READ
        assert stored.role_type == "CustomRole"


@pytest.mark.django_db
def test_an_admin_of_another_subscription_cannot_take_the_roles_scopes_away(fresh_emulator):
    from policies.gateway import gateway_for_subscription
    from tests.policies.factories import register

    prod, dev = (register(fresh_emulator, scope.rsplit("/", 1)[1]) for scope in (PROD, DEV))
    run("--scope", PROD, "--role", "requester", "--apply", "--subscription", prod.subscription_id)
    with pytest.raises(CommandError, match=r"Azure refused JIT Requester \(jitportal\): RoleDefinitionWithSameName"
                                           r".*choose another --suffix"):
        run("--scope", DEV, "--role", "requester", "--apply", "--subscription", dev.subscription_id)
    with gateway_for_subscription(prod) as gateway:
        stored = gateway.get_role_definition(PROD, build_role_definitions([PROD])["requester"]["name"])
    assert [s.lower() for s in stored.assignable_scopes] == [PROD]
    out = run("--scope", DEV, "--role", "requester", "--suffix", "dev", "--apply", "--subscription",
              dev.subscription_id)
    assert "Applied JIT Requester (dev)" in out


@pytest.mark.django_db
def test_apply_with_a_credential_the_portal_lacks_is_explained(fresh_emulator):
    from policies.models import Subscription
    from tests.policies.factories import register

    subscription = register(fresh_emulator, PROD.rsplit("/", 1)[1])
    Subscription.objects.filter(pk=subscription.pk).update(credential_ref="retired")
    with pytest.raises(CommandError, match=r"Cannot apply the roles in .*No credential 'retired' is configured"):
        run("--scope", PROD, "--apply", "--subscription", subscription.subscription_id)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["nulls", "garbled"])
def test_apply_meeting_an_answer_it_cannot_read_ends_with_a_clear_error(fresh_emulator, kind):
    """Azure's answer to the PUT cannot be read (a null where a permission belongs, or not JSON): the command ends
    with a ``CommandError`` (exit code 1) saying so and what to do, not a traceback; run again, it applies."""
    from tests.policies.factories import register

    subscription = register(fresh_emulator, PROD.rsplit("/", 1)[1])
    fresh_emulator.add_fault("/roleDefinitions/", kind, method="PUT", count=1)
    with pytest.raises(CommandError) as caught:
        run("--scope", PROD, "--role", "requester", "--apply", "--subscription", subscription.subscription_id)
    assert caught.value.returncode == 1
    assert re.match(r"Azure's answer for JIT Requester \(jitportal\) could not be read \(UnreadableAnswer: "
                    r".*\): it may have been applied; run the command again", str(caught.value))
    assert "Applied JIT Requester (jitportal)" in run("--scope", PROD, "--role", "requester", "--apply",
                                                      "--subscription", subscription.subscription_id)
