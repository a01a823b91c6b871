//! The fleet's job queue, decided without IO: which job waits for approval, which may start now
//! (a per-node and a fleet-wide limit; first come first served within a chat, and chats take
//! turns so one chat's twenty jobs never starve another's one), what cancelling, approving,
//! rejecting or an approval running out of time does, and when a slot frees up.
//!
//! The runtime (`crate::jobs`) keeps the jobs in SQLite, loads the unfinished ones into a
//! [`Queue`] at start, feeds it what happens, and carries out the [`Effect`]s it returns.

use std::collections::{BTreeMap, HashMap, HashSet};

/// A job's number, as users see it (`/job 12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobId(pub(crate) i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum JobState {
    /// A risky job waits for an allowed user to approve it.
    AwaitingApproval,
    /// Waits for a free slot (or for its machine to come back).
    Queued,
    /// Asked to start, or running on its node.
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Refused by an allowed user while it waited for approval.
    Rejected,
    /// Nobody approved it in time.
    Expired,
    /// Its process ended while its node was away; what it wrote is reported.
    Lost,
}

impl JobState {
    /// Every state, for tests and parsing.
    pub(crate) const ALL: [JobState; 9] = [
        Self::AwaitingApproval,
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Rejected,
        Self::Expired,
        Self::Lost,
    ];

    /// Whether the job is over.
    pub(crate) fn is_final(self) -> bool {
        !matches!(self, Self::AwaitingApproval | Self::Queued | Self::Running)
    }

    /// The name stored in SQLite and shown to users.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting approval",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Lost => "lost",
        }
    }

    /// The state called `name`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// A sign for lists.
    pub(crate) fn icon(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "⚠️",
            Self::Queued => "🕒",
            Self::Running => "▶️",
            Self::Succeeded => "✅",
            Self::Failed => "❌",
            Self::Cancelled => "⏹",
            Self::Rejected => "🚫",
            Self::Expired => "⌛",
            Self::Lost => "❓",
        }
    }
}

/// How many jobs may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// On one node.
    pub(crate) per_node: usize,
    /// In the whole fleet.
    pub(crate) fleet: usize,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Ask the job's node to start it (idempotent on the node: a job it knows is not started
    /// twice). Report failure with [`Queue::start_failed`].
    Start(JobId),
    /// Ask the job's node to stop it; its end arrives as the node's `JobFinished`.
    Stop(JobId),
    /// The job is now in this state: persist it and redraw its status message.
    Became(JobId, JobState),
}

/// Why a request about a job changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("there is no unfinished job {0}")]
    Unknown(JobId),
    #[error("job {0} is not waiting for approval")]
    NotAwaitingApproval(JobId),
    #[error("job {0} is being stopped already")]
    Stopping(JobId),
}

#[derive(Debug, Clone)]
struct Entry {
    chat: i64,
    node: String,
    state: JobState,
    /// When an approval runs out (Unix ms), while it waits for one.
    deadline_ms: Option<i64>,
    /// A stop was asked for while it runs.
    stopping: bool,
}

/// The unfinished jobs of the fleet. Finished jobs leave it.
#[derive(Debug)]
pub(crate) struct Queue {
    limits: Limits,
    /// By id: ids grow with submission, so this is also submission order.
    jobs: BTreeMap<JobId, Entry>,
    offline: HashSet<String>,
    /// When each chat last had a job started (a counter): the chat that waited longest goes
    /// first.
    last_start: HashMap<i64, u64>,
    starts: u64,
}

impl Queue {
    /// An empty queue.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                per_node: limits.per_node.max(1),
                fleet: limits.fleet.max(1),
            },
            jobs: BTreeMap::new(),
            offline: HashSet::new(),
            last_start: HashMap::new(),
            starts: 0,
        }
    }

    /// Takes back an unfinished job saved by an earlier process. A running one is asked to
    /// start again (the node answers with the job it already runs; a job that ended while the
    /// center was away reports its end on the link).
    pub(crate) fn restore(
        &mut self,
        id: JobId,
        chat: i64,
        node: &str,
        state: JobState,
        deadline_ms: Option<i64>,
    ) -> Vec<Effect> {
        if state.is_final() {
            return Vec::new();
        }
        self.jobs.insert(
            id,
            Entry {
                chat,
                node: node.to_owned(),
                state,
                deadline_ms,
                stopping: false,
            },
        );
        if state == JobState::Running {
            vec![Effect::Start(id)]
        } else {
            Vec::new()
        }
    }

    /// A new job. `approval_until`: it needs approval, which runs out then (Unix ms).
    pub(crate) fn submit(
        &mut self,
        id: JobId,
        chat: i64,
        node: &str,
        approval_until: Option<i64>,
    ) -> Vec<Effect> {
        let state = if approval_until.is_some() {
            JobState::AwaitingApproval
        } else {
            JobState::Queued
        };
        self.jobs.insert(
            id,
            Entry {
                chat,
                node: node.to_owned(),
                state,
                deadline_ms: approval_until,
                stopping: false,
            },
        );
        let mut effects = vec![Effect::Became(id, state)];
        effects.extend(self.schedule());
        effects
    }

    /// An allowed user approved a job that waits for approval: it joins the queue.
    pub(crate) fn approve(&mut self, id: JobId) -> Result<Vec<Effect>, Refusal> {
        let entry = self.jobs.get_mut(&id).ok_or(Refusal::Unknown(id))?;
        if entry.state != JobState::AwaitingApproval {
            return Err(Refusal::NotAwaitingApproval(id));
        }
        entry.state = JobState::Queued;
        entry.deadline_ms = None;
        let mut effects = vec![Effect::Became(id, JobState::Queued)];
        effects.extend(self.schedule());
        Ok(effects)
    }

    /// An allowed user refused a job that waits for approval: it never runs.
    pub(crate) fn reject(&mut self, id: JobId) -> Result<Vec<Effect>, Refusal> {
        let entry = self.jobs.get(&id).ok_or(Refusal::Unknown(id))?;
        if entry.state != JobState::AwaitingApproval {
            return Err(Refusal::NotAwaitingApproval(id));
        }
        self.jobs.remove(&id);
        Ok(vec![Effect::Became(id, JobState::Rejected)])
    }

    /// Cancels a job: one that has not started ends now; a running one is stopped by its node
    /// (its end comes back through [`Queue::finished`]).
    pub(crate) fn cancel(&mut self, id: JobId) -> Result<Vec<Effect>, Refusal> {
        let entry = self.jobs.get_mut(&id).ok_or(Refusal::Unknown(id))?;
        match entry.state {
            JobState::Running if entry.stopping => Err(Refusal::Stopping(id)),
            JobState::Running => {
                entry.stopping = true;
                Ok(vec![Effect::Stop(id)])
            }
            _ => {
                self.jobs.remove(&id);
                Ok(vec![Effect::Became(id, JobState::Cancelled)])
            }
        }
    }

    /// The node reported the job's end (`state` is final). Its slot goes to the next job.
    pub(crate) fn finished(&mut self, id: JobId, state: JobState) -> Vec<Effect> {
        debug_assert!(state.is_final());
        if self.jobs.remove(&id).is_none() {
            return Vec::new(); // a replayed end of a job that is over already
        }
        let mut effects = vec![Effect::Became(id, state)];
        effects.extend(self.schedule());
        effects
    }

    /// The node refused to start the job for good (a bad folder, an old node): it failed.
    pub(crate) fn start_failed(&mut self, id: JobId) -> Vec<Effect> {
        self.finished(id, JobState::Failed)
    }

    /// Approvals that ran out by `now_ms` expire.
    pub(crate) fn expire(&mut self, now_ms: i64) -> Vec<Effect> {
        let due: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, e)| {
                e.state == JobState::AwaitingApproval && e.deadline_ms.is_some_and(|d| d <= now_ms)
            })
            .map(|(id, _)| *id)
            .collect();
        due.into_iter()
            .map(|id| {
                self.jobs.remove(&id);
                Effect::Became(id, JobState::Expired)
            })
            .collect()
    }

    /// The next time an approval runs out, if any waits.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.jobs
            .values()
            .filter(|e| e.state == JobState::AwaitingApproval)
            .filter_map(|e| e.deadline_ms)
            .min()
    }

    /// A node came or went: its queued jobs wait while it is away.
    pub(crate) fn node_online(&mut self, node: &str, online: bool) -> Vec<Effect> {
        if online {
            self.offline.remove(node);
            self.schedule()
        } else {
            self.offline.insert(node.to_owned());
            Vec::new()
        }
    }

    /// The job's state, if it is unfinished.
    #[cfg(test)]
    pub(crate) fn state(&self, id: JobId) -> Option<JobState> {
        self.jobs.get(&id).map(|e| e.state)
    }

    /// Queued jobs ahead of `id` on its node (0 when it is next or not queued).
    pub(crate) fn ahead_of(&self, id: JobId) -> usize {
        let Some(me) = self.jobs.get(&id) else {
            return 0;
        };
        self.jobs
            .range(..id)
            .filter(|(_, e)| e.state == JobState::Queued && e.node == me.node)
            .count()
    }

    /// Starts what may start now: while the fleet has room, the chat that waited longest for
    /// a start gets its oldest startable job started.
    fn schedule(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        loop {
            let running = self
                .jobs
                .values()
                .filter(|e| e.state == JobState::Running)
                .count();
            if running >= self.limits.fleet {
                break;
            }
            let mut per_node: HashMap<&str, usize> = HashMap::new();
            for e in self.jobs.values().filter(|e| e.state == JobState::Running) {
                *per_node.entry(&e.node).or_default() += 1;
            }
            // Each chat's oldest job that could start now.
            let mut candidates: BTreeMap<i64, JobId> = BTreeMap::new();
            for (id, e) in &self.jobs {
                let startable = e.state == JobState::Queued
                    && !self.offline.contains(&e.node)
                    && per_node.get(e.node.as_str()).copied().unwrap_or(0) < self.limits.per_node;
                if startable {
                    candidates.entry(e.chat).or_insert(*id);
                }
            }
            let Some((chat, id)) = candidates
                .into_iter()
                .min_by_key(|(chat, id)| (self.last_start.get(chat).copied(), *id))
            else {
                break;
            };
            self.starts += 1;
            self.last_start.insert(chat, self.starts);
            if let Some(e) = self.jobs.get_mut(&id) {
                e.state = JobState::Running;
            }
            effects.push(Effect::Became(id, JobState::Running));
            effects.push(Effect::Start(id));
        }
        effects
    }
}

/// Why a prompt or its settings need an allowed user's approval before the job runs, if they do.
/// `patterns` are case-insensitive regular expressions (see `crate::jobs::config`).
pub(crate) fn needs_approval(
    prompt: &str,
    sandbox: &str,
    patterns: &[regex::Regex],
) -> Option<String> {
    if sandbox == "danger-full-access" {
        return Some("it asks for danger-full-access (no sandbox)".to_owned());
    }
    patterns
        .iter()
        .find_map(|p| p.find(prompt))
        .map(|m| format!("the prompt mentions “{}”", m.as_str().trim()))
}

/// The default risky-prompt patterns: recursive deletes, force pushes, dropping data, sudo,
/// secrets leaving the machine, production deploys, pipe-to-shell.
pub(crate) const DEFAULT_RISKY: &[&str] = &[
    r"(?i)\brm\s+-[a-z]*r[a-z]*f|\brm\s+-[a-z]*f[a-z]*r|\brm\s+--recursive",
    r"(?i)\bgit\s+push\b[^\n]*(--force|\s-f\b)",
    r"(?i)\bdrop\s+(table|database|schema)\b|\btruncate\s+table\b",
    r"(?i)\bsudo\b",
    r"(?i)(\b(api[_ -]?keys?|secrets?|credentials?|passwords?|tokens?|ssh keys?|id_rsa)\b|\.env\b)[^\n]*\b(send|upload|post|curl|exfiltrat\w*|email|paste)\b",
    r"(?i)\b(send|upload|post|exfiltrat\w*|email|paste)\b[^\n]*(\b(api[_ -]?keys?|secrets?|credentials?|passwords?|ssh keys?|id_rsa)\b|\.env\b)",
    r"(?i)\b(deploy|release|push)\w*\b[^\n]*\bprod(uction)?\b",
    r"(?i)\b(curl|wget)\b[^\n|]*\|\s*(ba|z|fi)?sh\b",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(per_node: usize, fleet: usize) -> Limits {
        Limits { per_node, fleet }
    }

    fn starts(effects: &[Effect]) -> Vec<i64> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Start(id) => Some(id.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_node_with_limit_one_runs_its_jobs_one_after_the_other() {
        let mut q = Queue::new(limits(1, 10));
        assert_eq!(starts(&q.submit(JobId(1), 7, "a", None)), [1]);
        assert_eq!(starts(&q.submit(JobId(2), 7, "a", None)), Vec::<i64>::new());
        assert_eq!(q.state(JobId(2)), Some(JobState::Queued));
        assert_eq!(q.ahead_of(JobId(2)), 0);
        let next = q.finished(JobId(1), JobState::Succeeded);
        assert_eq!(
            next,
            [
                Effect::Became(JobId(1), JobState::Succeeded),
                Effect::Became(JobId(2), JobState::Running),
                Effect::Start(JobId(2)),
            ]
        );
    }

    #[test]
    fn chats_take_turns() {
        let mut q = Queue::new(limits(1, 1));
        q.submit(JobId(1), 1, "a", None); // runs
        q.submit(JobId(2), 1, "a", None);
        q.submit(JobId(3), 1, "a", None);
        q.submit(JobId(4), 2, "a", None);
        // Chat 2 has not had a start yet: its job goes before chat 1's second.
        assert_eq!(starts(&q.finished(JobId(1), JobState::Succeeded)), [4]);
        assert_eq!(starts(&q.finished(JobId(4), JobState::Succeeded)), [2]);
        assert_eq!(starts(&q.finished(JobId(2), JobState::Succeeded)), [3]);
    }

    #[test]
    fn approval_gates_start_and_runs_out() {
        let mut q = Queue::new(limits(2, 2));
        let e = q.submit(JobId(1), 1, "a", Some(1_000));
        assert_eq!(e, [Effect::Became(JobId(1), JobState::AwaitingApproval)]);
        assert_eq!(q.next_deadline(), Some(1_000));
        assert!(q.expire(999).is_empty());
        assert_eq!(
            q.expire(1_000),
            [Effect::Became(JobId(1), JobState::Expired)]
        );
        assert_eq!(q.approve(JobId(1)), Err(Refusal::Unknown(JobId(1))));

        q.submit(JobId(2), 1, "a", Some(5_000));
        assert_eq!(starts(&q.approve(JobId(2)).unwrap()), [2]);
        assert_eq!(
            q.reject(JobId(2)),
            Err(Refusal::NotAwaitingApproval(JobId(2)))
        );

        q.submit(JobId(3), 1, "a", Some(5_000));
        assert_eq!(
            q.reject(JobId(3)).unwrap(),
            [Effect::Became(JobId(3), JobState::Rejected)]
        );
        assert_eq!(q.state(JobId(3)), None);
    }

    #[test]
    fn cancelling_a_running_job_asks_its_node_once() {
        let mut q = Queue::new(limits(1, 1));
        q.submit(JobId(1), 1, "a", None);
        q.submit(JobId(2), 1, "a", None);
        assert_eq!(q.cancel(JobId(1)).unwrap(), [Effect::Stop(JobId(1))]);
        assert_eq!(q.cancel(JobId(1)), Err(Refusal::Stopping(JobId(1))));
        // A queued job just ends.
        assert_eq!(
            q.cancel(JobId(2)).unwrap(),
            [Effect::Became(JobId(2), JobState::Cancelled)]
        );
        assert_eq!(
            q.finished(JobId(1), JobState::Cancelled),
            [Effect::Became(JobId(1), JobState::Cancelled)]
        );
        // A replayed end changes nothing.
        assert!(q.finished(JobId(1), JobState::Cancelled).is_empty());
    }

    #[test]
    fn an_offline_node_holds_its_jobs_but_not_others() {
        let mut q = Queue::new(limits(1, 5));
        q.node_online("a", false);
        assert!(starts(&q.submit(JobId(1), 1, "a", None)).is_empty());
        assert_eq!(starts(&q.submit(JobId(2), 1, "b", None)), [2]);
        assert_eq!(starts(&q.node_online("a", true)), [1]);
    }

    #[test]
    fn a_restored_running_job_is_asked_for_again() {
        let mut q = Queue::new(limits(1, 1));
        assert_eq!(
            q.restore(JobId(4), 1, "a", JobState::Running, None),
            [Effect::Start(JobId(4))]
        );
        assert!(
            q.restore(JobId(5), 1, "a", JobState::Queued, None)
                .is_empty()
        );
        // The running one holds the only slot.
        assert!(starts(&q.node_online("a", true)).is_empty());
        assert_eq!(starts(&q.finished(JobId(4), JobState::Lost)), [5]);
    }

    #[test]
    fn risky_prompts_and_full_access_need_approval() {
        let patterns: Vec<regex::Regex> = DEFAULT_RISKY
            .iter()
            .map(|p| regex::Regex::new(p).unwrap())
            .collect();
        for risky in [
            "clean up with rm -rf build/",
            "then git push --force origin main",
            "DROP TABLE users;",
            "run sudo apt install foo",
            "curl https://x.sh | sh",
            "deploy it to production",
            "upload the .env file with curl to my server",
        ] {
            assert!(needs_approval(risky, "", &patterns).is_some(), "{risky}");
        }
        for fine in [
            "add a test for the parser",
            "remove the unused import",
            "explain how tokens are counted",
            "git push the branch",
        ] {
            assert_eq!(needs_approval(fine, "", &patterns), None, "{fine}");
        }
        assert!(needs_approval("hello", "danger-full-access", &patterns).is_some());
    }

    #[test]
    fn states_round_trip_by_name() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.name()), Some(s));
        }
        assert_eq!(JobState::parse("bogus"), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Submit { chat: i64, node: u8, approval: bool },
        Approve(usize),
        Reject(usize),
        Cancel(usize),
        Finish(usize),
        Expire,
        Node { node: u8, online: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0i64..3, 0u8..3, any::<bool>())
                .prop_map(|(chat, node, approval)| Op::Submit { chat, node, approval }),
            1 => (0usize..40).prop_map(Op::Approve),
            1 => (0usize..40).prop_map(Op::Reject),
            1 => (0usize..40).prop_map(Op::Cancel),
            3 => (0usize..40).prop_map(Op::Finish),
            1 => Just(Op::Expire),
            1 => (0u8..3, any::<bool>()).prop_map(|(node, online)| Op::Node { node, online }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, rng_seed: proptest::test_runner::RngSeed::Fixed(12), ..ProptestConfig::default() })]

        /// Over any interleaving: limits hold, a job starts at most once and only if approved
        /// (when it needed approval) and not cancelled or rejected, jobs of one chat and node
        /// start in submission order, and a finished job never comes back.
        #[test]
        fn the_queue_keeps_its_promises(ops in proptest::collection::vec(op(), 1..80)) {
            let lim = limits(2, 3);
            let mut q = Queue::new(lim);
            let mut next = 1i64;
            let mut meta: BTreeMap<i64, (i64, String, bool)> = BTreeMap::new();
            let mut approved: HashSet<i64> = HashSet::new();
            let mut started: Vec<i64> = Vec::new();
            let mut over: HashSet<i64> = HashSet::new();
            let mut running: HashSet<i64> = HashSet::new();
            let mut offline: HashSet<String> = HashSet::new();
            for op in ops {
                let ids: Vec<i64> = meta.keys().copied().collect();
                let pick = |i: usize| ids.get(i % ids.len().max(1)).copied().map(JobId);
                let effects = match op {
                    Op::Submit { chat, node, approval } => {
                        let id = JobId(next);
                        next += 1;
                        let node = format!("n{node}");
                        meta.insert(id.0, (chat, node.clone(), approval));
                        q.submit(id, chat, &node, approval.then_some(100))
                    }
                    Op::Approve(i) => match pick(i) {
                        Some(id) => {
                            let r = q.approve(id).unwrap_or_default();
                            if !r.is_empty() { approved.insert(id.0); }
                            r
                        }
                        None => Vec::new(),
                    },
                    Op::Reject(i) => pick(i).map(|id| q.reject(id).unwrap_or_default()).unwrap_or_default(),
                    Op::Cancel(i) => pick(i).map(|id| q.cancel(id).unwrap_or_default()).unwrap_or_default(),
                    Op::Finish(i) => match pick(i) {
                        Some(id) if running.contains(&id.0) => q.finished(id, JobState::Succeeded),
                        _ => Vec::new(),
                    },
                    Op::Expire => q.expire(100),
                    Op::Node { node, online } => {
                        let node = format!("n{node}");
                        if online { offline.remove(&node); } else { offline.insert(node.clone()); }
                        q.node_online(&node, online)
                    }
                };
                for e in effects {
                    match e {
                        Effect::Start(id) => {
                            prop_assert!(!started.contains(&id.0), "job {} started twice", id.0);
                            prop_assert!(!over.contains(&id.0));
                            let (_, node, needs) = &meta[&id.0];
                            prop_assert!(!needs || approved.contains(&id.0), "unapproved start");
                            prop_assert!(!offline.contains(node), "started on an offline node");
                            started.push(id.0);
                            running.insert(id.0);
                        }
                        Effect::Became(id, s) if s.is_final() => {
                            prop_assert!(over.insert(id.0), "job {} ended twice", id.0);
                            running.remove(&id.0);
                            if matches!(s, JobState::Rejected | JobState::Expired) {
                                prop_assert!(!started.contains(&id.0));
                            }
                        }
                        _ => {}
                    }
                }
                let mut per_node: HashMap<&str, usize> = HashMap::new();
                for id in &running {
                    *per_node.entry(meta[id].1.as_str()).or_default() += 1;
                }
                prop_assert!(running.len() <= lim.fleet);
                prop_assert!(per_node.values().all(|n| *n <= lim.per_node));
            }
            // First come, first served within a chat and node (approval aside).
            let mut by_key: HashMap<(i64, String), Vec<i64>> = HashMap::new();
            for id in &started {
                let (chat, node, needs) = &meta[id];
                if !needs {
                    by_key.entry((*chat, node.clone())).or_default().push(*id);
                }
            }
            for order in by_key.values() {
                prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "out of order: {order:?}");
            }
        }
    }
}
