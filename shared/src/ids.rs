//! Names for the ids the fleet passes around, so a node name, a window's session id and a Codex
//! thread id can no longer be swapped for one another where a function takes two of them.
//!
//! Each is a string underneath (they come from the wire, the store and button data), reads as
//! `&str` where one is expected, prints as itself and compares with plain strings, so code that
//! only looks at an id needs no change; what changes is that a `String` does not silently
//! become one, and one kind does not become another.

use std::{borrow::Borrow, fmt, ops::Deref};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id `s`.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned (for the wire).
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        /// Debug output is the quoted text, as for a `String` (logs read the same).
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id! {
    /// A node's name (`local` for the embedded one, else `[a-z0-9-]{1,32}`).
    NodeName
}

id! {
    /// The node's id for one window running Codex (stable for the window's life).
    SessionId
}

id! {
    /// A Codex conversation's id (the rollout's thread id).
    ThreadId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_compare_as_their_text() {
        let node = NodeName::new("vps1");
        assert_eq!(node, "vps1");
        assert_eq!("vps1", node);
        assert_eq!(node.len(), 4);
        assert_eq!(format!("{node}"), "vps1");
        let mut set = std::collections::HashSet::new();
        set.insert(SessionId::from("s1"));
        assert!(set.contains("s1"));
        assert_eq!(serde_json::to_string(&node).unwrap(), "\"vps1\"");
        let back: NodeName = serde_json::from_str("\"vps1\"").unwrap();
        assert_eq!(back, node);
    }
}
