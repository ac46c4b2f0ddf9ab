//! Users and groups, looked up through NSS (`nix`: `getgrnam_r`, `getpwuid_r`), so groups from
//! sssd, LDAP or systemd-userdb count as `/etc/group` ones do.
//!
//! These calls block (NSS may ask a network service), so async code runs them on the blocking
//! pool: the API socket decides once per connection ([`crate::api::Peer`]), the view writer when
//! the TLS files change. A failed lookup is logged and decides "no": never access by accident.

use nix::unistd::{Gid, Group, Uid, User};

fn group(name: &str) -> Option<Group> {
    match Group::from_name(name) {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(group = name, error = %e, "cannot look up the group");
            None
        }
    }
}

/// The id of group `name`, if it exists.
pub fn gid_of(name: &str) -> Option<u32> {
    group(name).map(|g| g.gid.as_raw())
}

/// Whether a process with these credentials may use what group `name` guards: root, a process
/// whose group is `name`, or a user listed as a member of `name`.
pub fn admits(name: &str, uid: u32, gid: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let Some(group) = group(name) else {
        return false;
    };
    if group.gid == Gid::from_raw(gid) {
        return true;
    }
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => group.mem.contains(&user.name),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(uid, error = %e, "cannot look up the user");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_its_groups_processes_and_its_members_are_admitted() {
        assert!(admits("no-such-group-here", 0, 0));
        assert!(!admits("no-such-group-here", 4242, 4242));
        assert_eq!(gid_of("no-such-group-here"), None);
        // Group 0 is `root` everywhere; a process whose group it is gets in.
        assert_eq!(gid_of("root"), Some(0));
        assert!(admits("root", 4242, 0));
        assert!(!admits("root", 4242, 4242));
    }
}
