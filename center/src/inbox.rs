//! The durable inbox: why an accepted Telegram message can never vanish.
//!
//! Polling moves Telegram's offset past an update as soon as the next `getUpdates` is sent, so
//! from then on the center alone remembers it. Each update from an allowed user is therefore
//! written to SQLite (its JSON, with its `update_id`) before anything else happens, and stays
//! *unfinished* until the work it started is done: its text typed into Codex (or held, which is
//! durable too), its attachments or voice taken to Codex, its bind menu resolved. A process that
//! dies meanwhile replays the unfinished updates at start, in order.
//!
//! The work carries an [`UpdateLease`]: clones of it travel with the input through queues,
//! attachment bursts, transcription and menus, and the update is finished when the last clone is
//! dropped. Dropping is the normal end of every path, including failures the user was told about
//! and panics (an update whose handling panicked is not retried forever); only a process that
//! dies leaves it unfinished.

use std::sync::Arc;

use teloxide::types::Update;

use crate::store::{Store, StoreError};

/// Keeps one accepted update unfinished while any clone of it lives (see the module doc).
#[derive(Clone)]
pub(crate) struct UpdateLease(Arc<Entry>);

struct Entry {
    update_id: i64,
    store: Arc<Store>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Err(err) = self.store.finish_update(self.update_id) {
            tracing::error!(update.id = self.update_id, error = %err, "cannot mark an update handled; it will be handled again after a restart");
        }
    }
}

impl std::fmt::Debug for UpdateLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpdateLease({})", self.0.update_id)
    }
}

/// Writes `update` to the inbox; the lease that finishes it, or `None` for a duplicate (an
/// update accepted before, seen again after a restart).
pub(crate) fn accept(store: &Arc<Store>, update: &Update) -> Result<Option<UpdateLease>, Error> {
    let id = i64::from(update.id.0);
    let body = serde_json::to_string(update).map_err(Error::Encode)?;
    if !store.accept_update(id, &body)? {
        return Ok(None);
    }
    Ok(Some(lease(store, id)))
}

/// The updates a stopped process left unfinished, oldest first, each with its lease. One that
/// cannot be read back (a newer format from a downgrade) is finished with an error in the log.
pub(crate) fn unfinished(store: &Arc<Store>) -> Result<Vec<(Update, UpdateLease)>, Error> {
    let mut out = Vec::new();
    for (id, body) in store.unfinished_updates()? {
        match serde_json::from_str::<Update>(&body) {
            Ok(update) => out.push((update, lease(store, id))),
            Err(err) => {
                tracing::error!(update.id = id, error = %err, "an unfinished update cannot be read back; dropped");
                store.finish_update(id)?;
            }
        }
    }
    Ok(out)
}

fn lease(store: &Arc<Store>, update_id: i64) -> UpdateLease {
    UpdateLease(Arc::new(Entry {
        update_id,
        store: store.clone(),
    }))
}

/// The inbox could not take an update.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The update could not be written as JSON.
    #[error("cannot encode the update: {0}")]
    Encode(serde_json::Error),
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: u32, text: &str) -> Update {
        serde_json::from_value(serde_json::json!({
            "update_id": id,
            "message": {
                "message_id": 7, "date": 1_700_000_000, "message_thread_id": 3,
                "is_topic_message": true,
                "chat": {"id": -1001, "type": "supergroup", "title": "Fleet", "is_forum": true},
                "from": {"id": 42, "is_bot": false, "first_name": "Alice"},
                "text": text
            }
        }))
        .unwrap()
    }

    #[test]
    fn an_update_stays_unfinished_until_its_last_lease_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Arc::new(Store::open(&path).unwrap());
        let lease = accept(&store, &update(5, "hello")).unwrap().unwrap();
        assert!(accept(&store, &update(5, "hello")).unwrap().is_none());
        let copy = lease.clone();
        drop(lease);
        // A "crash": the store is reopened while a clone still lives (forgotten, like a killed
        // process that never ran its destructors).
        std::mem::forget(copy);
        let reopened = Arc::new(Store::open(&path).unwrap());
        let replay = unfinished(&reopened).unwrap();
        assert_eq!(replay.len(), 1);
        let (again, lease) = replay.into_iter().next().unwrap();
        assert_eq!(again, update(5, "hello"));
        drop(lease);
        assert!(unfinished(&reopened).unwrap().is_empty());
        // Finished updates are still known: a redelivery is a duplicate.
        assert!(accept(&reopened, &update(5, "hello")).unwrap().is_none());
    }

    #[test]
    fn unreadable_entries_are_dropped_not_replayed_forever() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
        store.accept_update(9, "{not json").unwrap();
        assert!(unfinished(&store).unwrap().is_empty());
        assert!(store.unfinished_updates().unwrap().is_empty());
    }
}
