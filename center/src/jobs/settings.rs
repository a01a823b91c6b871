//! A chat's Codex settings for its jobs (`/model`, `/permissions`, `/approvals`, `/search`,
//! `/experimental`, `/personality`, each with `reset`): checked when set, so a wrong value is a
//! clear answer at once and never a failed job later; kept per chat in SQLite and passed to
//! Codex as its own flags and `-c` overrides by the node.

use super::JobSettings;
use crate::store::{Store, StoreError};

/// One setting command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    Model,
    Permissions,
    Approvals,
    Search,
    Experimental,
    Personality,
}

/// The sandbox of jobs when the chat set none: `codex exec` alone runs read-only, and a job
/// asked to change something in its folder must be able to.
pub(crate) const DEFAULT_SANDBOX: &str = "workspace-write";

const EFFORTS: &[&str] = &["minimal", "low", "medium", "high", "xhigh"];
const SANDBOXES: &[&str] = &["read-only", "workspace-write", "danger-full-access"];
const APPROVALS: &[&str] = &["untrusted", "on-failure", "on-request", "never"];
const SEARCH: &[&str] = &["live", "cached", "disabled"];

/// The personalities and the instructions they give the model.
const PERSONALITIES: &[(&str, &str)] = &[
    (
        "friendly",
        "Be warm and encouraging in your answers, and explain your reasoning in plain words.",
    ),
    (
        "pragmatic",
        "Be concise and direct: lead with the result, skip pleasantries.",
    ),
];

impl Setting {
    /// The chat setting's key.
    fn key(self) -> &'static str {
        match self {
            Self::Model => "job.model",
            Self::Permissions => "job.sandbox",
            Self::Approvals => "job.approvals",
            Self::Search => "job.search",
            Self::Experimental => "job.features",
            Self::Personality => "job.personality",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Self::Model => {
                "Usage: /model [<name>] [minimal|low|medium|high|xhigh] | reset (e.g. /model gpt-5.1 high)"
            }
            Self::Permissions => {
                "Usage: /permissions read-only | workspace-write | danger-full-access | reset"
            }
            Self::Approvals => {
                "Usage: /approvals untrusted | on-failure | on-request | never | reset"
            }
            Self::Search => "Usage: /search live | cached | disabled | reset",
            Self::Experimental => {
                "Usage: /experimental list | on <feature> | off <feature> | reset"
            }
            Self::Personality => {
                "Usage: /personality friendly | pragmatic | none | custom <text> | reset"
            }
        }
    }
}

/// A model or feature name as Codex spells them.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c))
        && !s.starts_with('-')
}

/// Reads the chat's settings (defaults where none is set).
pub(crate) fn effective(store: &Store, chat: i64) -> Result<JobSettings, StoreError> {
    let get = |s: Setting| store.chat_setting(chat, s.key());
    let mut out = JobSettings::default();
    if let Some(model) = get(Setting::Model)? {
        let (name, effort) = model.split_once('\t').unwrap_or((&model, ""));
        out.model = name.to_owned();
        out.reasoning_effort = effort.to_owned();
    }
    out.sandbox = get(Setting::Permissions)?.unwrap_or_else(|| DEFAULT_SANDBOX.to_owned());
    out.approvals = get(Setting::Approvals)?.unwrap_or_default();
    out.web_search = get(Setting::Search)?.unwrap_or_default();
    if let Some(features) = get(Setting::Experimental)? {
        for f in features.split(',').filter(|f| !f.is_empty()) {
            match f.split_at(1) {
                ("+", name) => out.enable_features.push(name.to_owned()),
                ("-", name) => out.disable_features.push(name.to_owned()),
                _ => {}
            }
        }
    }
    if let Some(p) = get(Setting::Personality)? {
        out.instructions = PERSONALITIES
            .iter()
            .find(|(name, _)| *name == p)
            .map(|(_, text)| (*text).to_owned())
            .unwrap_or_else(|| p.strip_prefix("custom:").unwrap_or("").to_owned());
    }
    Ok(out)
}

/// One line per setting that is not Codex's default, for `/status` and `/debug_config`.
pub(crate) fn summary(s: &JobSettings) -> String {
    let mut parts = Vec::new();
    if !s.model.is_empty() || !s.reasoning_effort.is_empty() {
        parts.push(format!(
            "model {}{}",
            if s.model.is_empty() {
                "(default)"
            } else {
                &s.model
            },
            if s.reasoning_effort.is_empty() {
                String::new()
            } else {
                format!(" {}", s.reasoning_effort)
            }
        ));
    }
    let sandbox = if s.sandbox == DEFAULT_SANDBOX {
        String::new()
    } else {
        s.sandbox.clone()
    };
    for (name, value) in [
        ("permissions", &sandbox),
        ("approvals", &s.approvals),
        ("search", &s.web_search),
    ] {
        if !value.is_empty() {
            parts.push(format!("{name} {value}"));
        }
    }
    for f in &s.enable_features {
        parts.push(format!("+{f}"));
    }
    for f in &s.disable_features {
        parts.push(format!("-{f}"));
    }
    if !s.instructions.is_empty() {
        parts.push("personality set".to_owned());
    }
    if parts.is_empty() {
        format!("Codex's defaults (sandbox {DEFAULT_SANDBOX})")
    } else if sandbox.is_empty() {
        format!("{} (sandbox {DEFAULT_SANDBOX})", parts.join(", "))
    } else {
        parts.join(", ")
    }
}

/// Runs a setting command in `chat`; the answer.
pub(crate) fn command(store: &Store, chat: i64, setting: Setting, args: &str) -> String {
    match apply(store, chat, setting, args.trim()) {
        Ok(text) => text,
        Err(Refused::Usage) => setting.usage().to_owned(),
        Err(Refused::Why(why)) => why,
        Err(Refused::Store(err)) => {
            tracing::error!(error = %err, "a job setting could not be read or saved");
            crate::store::STATE_UNREADABLE.to_owned()
        }
    }
}

enum Refused {
    Usage,
    Why(String),
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn apply(store: &Store, chat: i64, setting: Setting, args: &str) -> Result<String, Refused> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let key = setting.key();
    let set = |value: &str| store.set_chat_setting(chat, key, Some(value));
    if words.as_slice() == ["reset"] {
        store.set_chat_setting(chat, key, None)?;
        return Ok("Reset: jobs in this chat use the default again.".to_owned());
    }
    if words.is_empty() || (setting == Setting::Experimental && words == ["list"]) {
        let now = effective(store, chat)?;
        return Ok(format!(
            "Job settings in this chat: {}.\n{}",
            summary(&now),
            setting.usage()
        ));
    }
    let one_of = |value: &str, allowed: &[&str]| -> Result<(), Refused> {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(Refused::Why(format!(
                "Unknown value {value:?}: use one of {}.",
                allowed.join(", ")
            )))
        }
    };
    match setting {
        Setting::Model => {
            let (name, effort) = match words.as_slice() {
                [one] if EFFORTS.contains(one) => ("", *one),
                [name] => (*name, ""),
                [name, effort] => {
                    one_of(effort, EFFORTS)?;
                    (*name, *effort)
                }
                _ => return Err(Refused::Usage),
            };
            if !name.is_empty() && !is_name(name) {
                return Err(Refused::Why(format!("{name:?} is not a model name.")));
            }
            set(&format!("{name}\t{effort}"))?;
            Ok(format!(
                "Jobs in this chat now use {}{}.",
                if name.is_empty() {
                    "Codex's default model"
                } else {
                    name
                },
                if effort.is_empty() {
                    String::new()
                } else {
                    format!(" with {effort} reasoning")
                }
            ))
        }
        Setting::Permissions | Setting::Approvals | Setting::Search => {
            let [value] = words.as_slice() else {
                return Err(Refused::Usage);
            };
            let allowed = match setting {
                Setting::Permissions => SANDBOXES,
                Setting::Approvals => APPROVALS,
                _ => SEARCH,
            };
            one_of(value, allowed)?;
            set(value)?;
            let extra = if *value == "danger-full-access" {
                " Every job then waits for approval."
            } else {
                ""
            };
            Ok(format!("Jobs in this chat now use {value}.{extra}"))
        }
        Setting::Experimental => {
            let (on, name) = match words.as_slice() {
                ["on", name] => (true, *name),
                ["off", name] => (false, *name),
                _ => return Err(Refused::Usage),
            };
            if !is_name(name) || name.contains(',') {
                return Err(Refused::Why(format!("{name:?} is not a feature name.")));
            }
            let current = store.chat_setting(chat, key)?.unwrap_or_default();
            let mut list: Vec<String> = current
                .split(',')
                .filter(|f| !f.is_empty() && &f[1..] != name)
                .map(str::to_owned)
                .collect();
            list.push(format!("{}{name}", if on { '+' } else { '-' }));
            set(&list.join(","))?;
            Ok(format!(
                "Jobs in this chat now run with the feature {name} {}.",
                if on { "on" } else { "off" }
            ))
        }
        Setting::Personality => {
            let value = match words.as_slice() {
                ["none"] => {
                    store.set_chat_setting(chat, key, None)?;
                    return Ok("Jobs in this chat get no personality instructions.".to_owned());
                }
                [name] if PERSONALITIES.iter().any(|(p, _)| p == name) => (*name).to_owned(),
                ["custom", ..] => {
                    let text = args["custom".len()..].trim();
                    if text.is_empty() || text.chars().count() > 1000 {
                        return Err(Refused::Why(
                            "A custom personality is 1 to 1000 characters of text.".to_owned(),
                        ));
                    }
                    format!("custom:{text}")
                }
                _ => return Err(Refused::Usage),
            };
            set(&value)?;
            Ok("Personality set for jobs in this chat.".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn settings_are_checked_kept_and_reset() {
        let (_d, s) = store();
        assert_eq!(
            summary(&effective(&s, 1).unwrap()),
            "Codex's defaults (sandbox workspace-write)"
        );
        assert!(command(&s, 1, Setting::Model, "gpt-5.1 high").contains("gpt-5.1 with high"));
        assert!(command(&s, 1, Setting::Model, "gpt-5.1 ultra").starts_with("Unknown value"));
        assert!(command(&s, 1, Setting::Model, "--oops").contains("not a model name"));
        assert!(command(&s, 1, Setting::Permissions, "read-only").contains("read-only"));
        assert!(command(&s, 1, Setting::Permissions, "root").starts_with("Unknown value"));
        assert!(command(&s, 1, Setting::Approvals, "never").contains("never"));
        assert!(command(&s, 1, Setting::Search, "live").contains("live"));
        command(&s, 1, Setting::Experimental, "on fast_mode");
        command(&s, 1, Setting::Experimental, "off apps");
        command(&s, 1, Setting::Experimental, "off fast_mode");
        command(&s, 1, Setting::Personality, "pragmatic");
        let e = effective(&s, 1).unwrap();
        assert_eq!(
            (e.model.as_str(), e.reasoning_effort.as_str()),
            ("gpt-5.1", "high")
        );
        assert_eq!(e.sandbox, "read-only");
        assert_eq!(e.approvals, "never");
        assert_eq!(e.web_search, "live");
        assert_eq!(e.enable_features, Vec::<String>::new());
        assert_eq!(e.disable_features, ["apps", "fast_mode"]);
        assert!(e.instructions.contains("concise"));
        let line = summary(&e);
        assert!(
            line.contains("model gpt-5.1 high") && line.contains("-apps"),
            "{line}"
        );
        // Other chats are untouched; reset goes back to the default.
        let other = effective(&s, 2).unwrap();
        assert_eq!(other.sandbox, DEFAULT_SANDBOX);
        assert_eq!(
            summary(&other),
            "Codex's defaults (sandbox workspace-write)"
        );
        command(&s, 1, Setting::Model, "reset");
        assert_eq!(effective(&s, 1).unwrap().model, "");
        command(&s, 1, Setting::Personality, "custom talk like a pirate");
        assert_eq!(effective(&s, 1).unwrap().instructions, "talk like a pirate");
        assert!(command(&s, 1, Setting::Search, "").contains("Usage: /search"));
    }
}
