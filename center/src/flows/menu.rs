//! The folder browser's and resume picker's open menus: what each shows, for which topic,
//! and the input waiting for the bind. Kept apart from the flows that open and answer them so
//! the center's state can hold them without depending on those flows.

use std::{collections::HashMap, sync::Mutex};

use proto::v1;

use crate::{pending::PendingInput, store::Surface};

#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// Machines to choose from: (name, online).
    Nodes {
        nodes: Vec<(String, bool)>,
    },
    Roots {
        roots: Vec<v1::Root>,
    },
    Dir {
        listing: v1::DirListing,
        page: usize,
    },
    /// Sessions to resume in a folder, and windows already open there that no topic holds.
    Resume {
        cwd: String,
        sessions: Vec<v1::ResumableSession>,
        windows: Vec<v1::SessionInfo>,
        /// Sessions left out because their topic was closed or deleted.
        hidden: usize,
        /// The folder lies in a git repository: offer a new worktree.
        git: bool,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Menu {
    pub(super) surface: Surface,
    pub(super) node: String,
    pub(super) message_id: Option<i32>,
    pub(super) kind: Kind,
    pub(super) pending: Option<PendingInput>,
    /// Show dot-folders, and sessions whose topic was closed or deleted.
    pub(super) show_hidden: bool,
}

/// Open menus by token.
#[derive(Debug, Default)]
pub(crate) struct Menus {
    pub(super) open: Mutex<HashMap<String, Menu>>,
}
