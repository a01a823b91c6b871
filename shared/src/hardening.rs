//! What keeps the daemons' secrets (the bot token in the environment, keys in memory) from
//! other processes of the same user, such as a Codex window on the same machine: the process is
//! made non-dumpable, so its `/proc/<pid>/environ`, `mem` and `maps` belong to root and no
//! process of the same user can ptrace it. Children (tmux, Codex) are dumpable again after
//! `exec`, as usual.

/// Makes this process non-dumpable (Linux `PR_SET_DUMPABLE 0`); logs if the kernel refuses.
pub fn no_dumps() {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    if let Err(err) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!(error = %err, "cannot make the process non-dumpable; other processes of this user may read its memory");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_is_no_longer_dumpable() {
        use rustix::process::{DumpableBehavior, dumpable_behavior};
        super::no_dumps();
        assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
    }
}
