//! Failures of node requests, each with a wire code and a short message fit for the user.

use proto::v1;

/// A request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeError {
    /// The request itself is wrong.
    #[error("{0}")]
    InvalidArgument(String),
    /// A session, thread or directory does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A path lies outside the configured roots.
    #[error("{0}")]
    OutsideRoots(String),
    /// The window exited or Codex is not running in it.
    #[error("{0}")]
    WindowDead(String),
    /// Codex shows a prompt that must be answered first.
    #[error("{0}")]
    Blocked(String),
    /// The thing exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The screen changed: the question a key was meant for is no longer shown.
    #[error("{0}")]
    Stale(String),
    /// The node cannot do this (now, or in this build).
    #[error("{0}")]
    Unavailable(String),
    /// Something this node depends on failed.
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// The wire code.
    pub(crate) fn code(&self) -> v1::ErrorCode {
        match self {
            Self::InvalidArgument(_) => v1::ErrorCode::InvalidArgument,
            Self::NotFound(_) => v1::ErrorCode::NotFound,
            Self::OutsideRoots(_) => v1::ErrorCode::OutsideRoots,
            Self::WindowDead(_) => v1::ErrorCode::WindowDead,
            Self::Blocked(_) => v1::ErrorCode::Blocked,
            Self::AlreadyExists(_) => v1::ErrorCode::AlreadyExists,
            Self::Stale(_) => v1::ErrorCode::Stale,
            Self::Unavailable(_) => v1::ErrorCode::Unavailable,
            Self::Internal(_) => v1::ErrorCode::Internal,
        }
    }

    /// The wire form.
    pub(crate) fn to_failure(&self) -> v1::Failure {
        v1::Failure {
            code: self.code() as i32,
            message: self.to_string(),
        }
    }
}

impl From<crate::browse::Error> for NodeError {
    fn from(err: crate::browse::Error) -> Self {
        use crate::browse::Error as E;
        match err {
            E::OutsideRoots(_) => Self::OutsideRoots(err.to_string()),
            E::Missing(_) => Self::NotFound(err.to_string()),
            E::NotAbsolute(_) | E::NotADirectory(_) => Self::InvalidArgument(err.to_string()),
            E::Unreadable { .. } => Self::Internal(err.to_string()),
        }
    }
}

impl From<crate::tmux::Error> for NodeError {
    fn from(err: crate::tmux::Error) -> Self {
        match err {
            crate::tmux::Error::Gone => Self::WindowDead("the window is gone".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}
