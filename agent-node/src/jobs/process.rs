//! The operating-system side of a job's process: who it is (`/proc/<pid>/stat` start time, so a
//! reused pid is never mistaken for the job), when it ends (a pidfd, for a process this node did
//! not spawn: one it found again after a restart), and signals to its process group.

use std::{collections::HashMap, io};

use rustix::process::{Pid, PidfdFlags, Signal};

/// The start time of process `pid` (clock ticks after boot), if it exists.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|s| s.start)
}

/// Whether `pid` is still the process that started at `start` (and not a zombie).
pub(crate) fn is_same_process(pid: u32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    parse_stat(&stat).is_some_and(|s| s.start == start && s.state != 'Z')
}

struct Stat {
    state: char,
    ppid: u32,
    start: u64,
}

/// Fields of `/proc/<pid>/stat` after the command name (which may hold spaces and parentheses).
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 4 is the ppid, field 22 the start time.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Resolves when process `pid` has ended (it need not be this process's child).
pub(crate) async fn wait_exit(pid: u32) -> io::Result<()> {
    let pid = Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    let fd = match rustix::process::pidfd_open(pid, PidfdFlags::NONBLOCK) {
        Ok(fd) => fd,
        // Already gone.
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    // `register` is the non-deprecated way but `unsafe`, which this crate forbids; the
    // unsoundness behind the deprecation (tokio#8587) is registering a descriptor one does not
    // own, and this one is an `OwnedFd` moved in.
    #[allow(deprecated)]
    let fd = tokio::io::unix::AsyncFd::new(fd)?;
    // A pidfd becomes readable when its process exits.
    let _ready = fd.readable().await?;
    Ok(())
}

/// Sends `signal` to process group `pgid`; a group that is gone is not an error.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let Some(pid) = Pid::from_raw(pgid as i32) else {
        return Ok(());
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Sends `signal` to process `pid` if it is still the one that started at `start`.
pub(crate) fn signal_if_same(pid: u32, start: u64, signal: Signal) {
    if is_same_process(pid, start)
        && let Some(p) = Pid::from_raw(pid as i32)
    {
        let _ = rustix::process::kill_process(p, signal);
    }
}

/// Every descendant of `root` (pid, start time), found through `/proc`: tool commands Codex
/// started in a session of their own are outside its process group.
pub(crate) fn descendants(root: u32) -> Vec<(u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(s) = parse_stat(&stat) {
            children.entry(s.ppid).or_default().push((pid, s.start));
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &(child, start) in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if out.len() < 4096 && !out.iter().any(|(c, _)| *c == child) {
                out.push((child, start));
                stack.push(child);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let s = parse_stat(stat).unwrap();
        assert_eq!((s.state, s.ppid, s.start), ('S', 1, 98765));
    }

    #[test]
    fn this_process_is_itself() {
        let me = std::process::id();
        let start = start_time(me).unwrap();
        assert!(is_same_process(me, start));
        assert!(!is_same_process(me, start + 1));
        assert!(start_time(u32::MAX - 1).is_none());
    }

    #[tokio::test]
    async fn a_pidfd_sees_a_process_end_and_groups_take_signals() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let start = start_time(pid).unwrap();
        assert!(
            descendants(std::process::id())
                .iter()
                .any(|(p, _)| *p == pid)
        );
        let waiter = tokio::spawn(wait_exit(pid));
        signal_group(pid, Signal::TERM).unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!is_same_process(pid, start));
        // Gone groups and processes are fine.
        signal_group(pid, Signal::KILL).unwrap();
        wait_exit(pid).await.unwrap();
    }
}
