"""The fake BatchCompute's clusters: create, resize, delete, their VMs converging on
:meth:`~Clusters.tick`, and what the account may use (quotas, instance types, images)."""

from __future__ import annotations

import random
from typing import Any

from .batchcompute_state import (
    NAME_RE,
    VM,
    BatchComputeBase,
    BCError,
    Cluster,
    alnum,
    conflict,
    not_found,
    now,
    require,
    vm_json,
)

# What the account may use in the fake region (GET /quotas, /available, /images).
INSTANCE_TYPES = [("bcs.a2.large", 4, 8.0), ("bcs.a2.xlarge", 8, 16.0), ("ecs.sn1ne.large", 2, 4.0)]
DISK_TYPES = ["cloud_efficiency", "cloud_ssd"]
QUOTAS = {
    "AvailableClusterInstanceType": [t[0] for t in INSTANCE_TYPES],
    "AvailableSpotInstanceType": ["bcs.a2.large"],
    "AvailableClusterResourceType": ["OnDemand", "Spot"],
    "AvailableClusterInstanceSystemDiskType": DISK_TYPES,
    "AvailableClusterInstanceDataDiskType": DISK_TYPES,
}
AVAILABLE = {
    "AvailableClusterInstanceType": [
        {
            "InstanceType": n,
            "CpuCore": c,
            "MemorySize": m,
            "Network": {"Classic": False, "Vpc": True},
        }
        for n, c, m in INSTANCE_TYPES
    ],
    "AvailableSpotInstanceType": [
        {"InstanceType": "bcs.a2.large", "CpuCore": 4, "MemorySize": 8.0, "Network": {"Vpc": True}}
    ],
    "AvailablePrepaidInstanceType": [],
    "AvailableResourceType": ["OnDemand", "Spot"],
    "AvailableSystemDiskType": DISK_TYPES,
    "AvailableDataDiskType": DISK_TYPES,
}
IMAGES = [
    {
        "Id": "img-ubuntu",
        "Name": "Ubuntu 16.04",
        "Type": "System",
        "Description": "",
        "EcsImageId": "m-ubuntu1604",
        "OwnerId": 0,
        "Platform": "Linux",
        "CreationTime": "2016-11-01T15:25:02.837728Z",
    },
    {
        "Id": "img-blender",
        "Name": "Blender 3.4",
        "Type": "Self",
        "Description": "",
        "EcsImageId": "m-blender34",
        "OwnerId": 123456,
        "Platform": "Linux",
        "CreationTime": "2026-11-01T15:25:02.837728Z",
    },
]


class Clusters(BatchComputeBase):
    # --- test drivers ------------------------------------------------------------------

    def tick(self) -> None:
        """One step of cluster convergence: VMs Pending -> Starting -> Running, surplus VMs
        deleted, Deleting clusters gone."""
        with self._lock:
            for cluster in list(self.clusters.values()):
                if cluster.state == "Deleting":
                    del self.clusters[cluster.id]
                    continue
                for group, vms in cluster.vms.items():
                    desired = cluster.desired[group]
                    for vm in vms:
                        if vm.state == "Starting":
                            vm.state, vm.ip = "Running", f"10.0.0.{random.randint(2, 250)}"
                        elif vm.state == "Pending":
                            vm.state = "Starting"
                    alive = [vm for vm in vms if vm.state != "Deleting"]
                    vms[:] = [vm for vm in vms if vm.state != "Deleting"]
                    for vm in alive[desired:]:
                        vm.state = "Deleting"
                    while len([vm for vm in vms if vm.state != "Deleting"]) < desired:
                        vms.append(VM(f"i-{alnum(20)}", now()))

    def running_vms(self, cluster_id: str) -> int:
        with self._lock:
            cluster = self.clusters[cluster_id]
            return sum(vm.state == "Running" for vms in cluster.vms.values() for vm in vms)

    # --- requests ----------------------------------------------------------------------

    def _get_cluster(self, cluster_id: str) -> Cluster:
        if cluster_id not in self.clusters:
            raise not_found()
        return self.clusters[cluster_id]

    def _create_cluster(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        if (existing := self._idempotent("cluster", params, body)) is not None:
            return 201, {"Id": existing}
        require(body, "Name", "ImageId", "Groups")
        if not NAME_RE.match(str(body["Name"])):
            raise BCError(
                400, "InvalidName", "Name must be [A-Za-z0-9_-], not starting with a digit."
            )
        groups = body["Groups"]
        if not isinstance(groups, dict) or not groups:
            raise BCError(400, "MissingGroups", "Groups is mandatory for this action.")
        desired: dict[str, int] = {}
        for name, group in groups.items():
            count = group.get("DesiredVMCount")
            if not isinstance(count, int) or count < self.min_desired_vm_count:
                raise BCError(400, f"InvalidGroups.{name}", "DesiredVMCount is not valid.")
            if not (group.get("InstanceType") or body.get("InstanceType")):
                raise BCError(400, f"InvalidGroups.{name}", "InstanceType is mandatory.")
            desired[name] = count
        cluster = Cluster(f"cls-{alnum(20)}", body, now(), desired, {name: [] for name in desired})
        for name, count in desired.items():
            cluster.vms[name] = [VM(f"i-{alnum(20)}", now()) for _ in range(count)]
            cluster.log(name, "Creating instance group successfully")
        self.clusters[cluster.id] = cluster
        self._remember("cluster", params, body, cluster.id)
        return 201, {"Id": cluster.id}

    def _modify_cluster(self, cluster_id: str, body: Any) -> tuple[int, Any]:
        cluster = self._get_cluster(cluster_id)
        if cluster.state != "Active":
            raise conflict(cluster.state)
        for name, change in (body or {}).get("Groups", {}).items():
            if name not in cluster.desired:
                raise BCError(400, f"InvalidGroups.{name}", f"Group {name} does not exist.")
            if "DesiredVMCount" in change:
                count = change["DesiredVMCount"]
                if not isinstance(count, int) or count < self.min_desired_vm_count:
                    raise BCError(
                        400,
                        "InvalidDesiredVMCount",
                        "Specified parameter DesiredVMCount is not valid. "
                        "It should be in range [1, 65536].",
                    )
                cluster.desired[name] = count
                cluster.log(name, f"Changing desired VM count to {count} successfully")
        return 200, None

    def _delete_cluster(self, cluster_id: str) -> tuple[int, Any]:
        cluster = self._get_cluster(cluster_id)
        if cluster.state == "Deleting":
            raise conflict(cluster.state)
        cluster.state = "Deleting"
        for vms in cluster.vms.values():
            for vm in vms:
                vm.state = "Deleting"
        cluster.log("cluster", "Deleting cluster")
        return 204, None

    def _list_vms(self, segments: list[str], params: dict[str, str]) -> tuple[int, Any]:
        cluster = self._get_cluster(segments[1])
        if segments[3] not in cluster.vms:
            raise not_found()
        return self._list(cluster.vms[segments[3]], params, vm_json, "Id")
