"""Microsoft.Compute virtual machines (2026-04-01) and the classic VMs of Microsoft.ClassicCompute."""
from __future__ import annotations

from emulator.arm.context import ArmContext, paged
from emulator.arm.router import router
from emulator.errors import ArmError
from emulator.topology import VM

CLASSIC_VM = "microsoft.classiccompute/virtualmachines"


@router.route("GET", "/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines")
def list_all_vms(ctx: ArmContext, sub: str):
    ctx.require_subscription(sub)
    return paged(ctx.state.resources.list(VM, sub), ctx.state.page_size)


@router.route("GET", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines")
def list_group_vms(ctx: ArmContext, sub: str, rg: str):
    ctx.require_resource_group(sub, rg)
    return paged(ctx.state.resources.list(VM, sub, rg), ctx.state.page_size)


@router.route("GET", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}")
def get_vm(ctx: ArmContext, sub: str, rg: str, name: str):
    ctx.require_resource_group(sub, rg)
    vm = ctx.state.resources.get(f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
                                 f"virtualMachines/{name}")
    if vm is None:
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{rg}' was not "
                       f"found.")
    return vm


@router.route("GET", "/subscriptions/{sub}/providers/Microsoft.ClassicCompute/virtualMachines")
def list_classic_vms(ctx: ArmContext, sub: str):
    ctx.require_subscription(sub)
    return paged(ctx.state.resources.list(CLASSIC_VM, sub), ctx.state.page_size)


@router.route("GET", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ClassicCompute/virtualMachines")
def list_group_classic_vms(ctx: ArmContext, sub: str, rg: str):
    ctx.require_resource_group(sub, rg)
    return paged(ctx.state.resources.list(CLASSIC_VM, sub, rg), ctx.state.page_size)
