//! Which container, if any, this agent runs in, so that a cycle never recreates the agent
//! under its own feet.
//!
//! Docker bind-mounts `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` into every container
//! from `/var/lib/docker/containers/<id>/`, also with `--network host`; Podman from
//! `.../overlay-containers/<id>/userdata/`. `/proc/self/mountinfo` shows those sources, which
//! works whatever the cgroup version or namespace. The cgroup path (`/docker/<id>`,
//! `docker-<id>.scope`, `libpod-<id>.scope`) is the fallback for engines that mount those files
//! otherwise. A candidate id is trusted only once the engine knows a container by it.

use super::{Engine, EngineError};

/// The files the engine mounts into a container from the container's own directory.
const ENGINE_MOUNTED: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

impl Engine {
    /// The full id of the container this process runs in, when the engine manages one by that
    /// id; `None` outside a container, or when the engine is another machine's.
    pub async fn own_container(&self) -> Result<Option<String>, EngineError> {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let candidate = container_id_from_mountinfo(&read("/proc/self/mountinfo"))
            .or_else(|| container_id_from_cgroup(&read("/proc/self/cgroup")));
        let Some(id) = candidate else {
            return Ok(None);
        };
        Ok(self.inspect_container(&id).await?.and_then(|c| c.id))
    }
}

/// The container id in the sources of the files the engine mounts into a container, from the
/// text of `/proc/<pid>/mountinfo`.
pub fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        // Fields: id, parent, major:minor, root (source within its filesystem), mount point...
        let mut fields = line.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if !ENGINE_MOUNTED.contains(&mount_point) {
            return None;
        }
        let parts: Vec<&str> = root.split('/').collect();
        parts.windows(2).find_map(|pair| {
            matches!(pair[0], "containers" | "overlay-containers")
                .then_some(pair[1])
                .filter(|id| is_container_id(id))
                .map(str::to_string)
        })
    })
}

/// The container id in the cgroup paths of `/proc/<pid>/cgroup` (cgroup v1, or v2 without a
/// private cgroup namespace).
pub fn container_id_from_cgroup(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.split('/').find_map(|part| {
            let bare = part.strip_suffix(".scope").unwrap_or(part);
            let bare = ["docker-", "libpod-"]
                .iter()
                .find_map(|prefix| bare.strip_prefix(prefix))
                .unwrap_or(bare);
            is_container_id(bare).then(|| bare.to_string())
        })
    })
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "24abf4865964a7ca4b277ccee8b04ca3e0704bdc90e462c9a99dc8d559f594bc";

    #[test]
    fn docker_mounts_hostname_from_the_container_directory_also_with_host_network() {
        // As seen in `docker run --network host` on Debian 12's docker.io 20.10.
        let mountinfo = format!(
            "84 60 0:52 / / rw,relatime master:38 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X\n\
             100 84 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n\
             101 84 254:0 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw\n\
             102 84 254:0 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&mountinfo).as_deref(), Some(ID));
    }

    #[test]
    fn docker_data_root_on_its_own_filesystem() {
        let mountinfo =
            format!("102 84 8:17 /containers/{ID}/hosts /etc/hosts rw - xfs /dev/sdb1 rw\n");
        assert_eq!(container_id_from_mountinfo(&mountinfo).as_deref(), Some(ID));
    }

    #[test]
    fn podman_mounts_from_overlay_containers_userdata() {
        let mountinfo = format!(
            "512 480 0:44 /containers/storage/overlay-containers/{ID}/userdata/hostname /etc/hostname rw,nosuid - tmpfs tmpfs rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&mountinfo).as_deref(), Some(ID));
    }

    #[test]
    fn a_host_process_is_in_no_container() {
        // The host sees podman's storage mounted, but not at a file the engine mounts.
        let mountinfo = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
             53 27 254:0 /var/lib/containers/storage/overlay /var/lib/containers/storage/overlay rw - ext4 /dev/vda rw\n";
        assert_eq!(container_id_from_mountinfo(mountinfo), None);
        assert_eq!(
            container_id_from_cgroup("0::/system.slice/tidewatch.service\n"),
            None
        );
    }

    #[test]
    fn a_bind_mounted_hostname_that_is_not_the_engines_is_not_an_id() {
        let mountinfo =
            "102 84 254:0 /srv/containers/web/hostname /etc/hostname rw - ext4 /dev/vda rw\n";
        assert_eq!(container_id_from_mountinfo(mountinfo), None);
    }

    #[test]
    fn cgroup_paths_of_docker_and_podman() {
        assert_eq!(
            container_id_from_cgroup(&format!("12:pids:/docker/{ID}\n0::/docker/{ID}\n"))
                .as_deref(),
            Some(ID)
        );
        assert_eq!(
            container_id_from_cgroup(&format!("0::/system.slice/docker-{ID}.scope\n")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            container_id_from_cgroup(&format!("0::/machine.slice/libpod-{ID}.scope/container\n"))
                .as_deref(),
            Some(ID)
        );
        // A private cgroup namespace shows only the root.
        assert_eq!(container_id_from_cgroup("0::/\n"), None);
    }
}
