//! The agent-node library (under construction).
