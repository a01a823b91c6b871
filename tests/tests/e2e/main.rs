//! End-to-end tests (one binary; modules per area).
