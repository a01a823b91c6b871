//! The center's side of the fleet: nodes joining, dialled, renewed, revoked and leaving, and
//! their topics told when a node goes away or comes back.

use shared::sync::LockExt;
use std::sync::Arc;

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::{App, CALL_TIMEOUT, Fleet, FleetError, OFFLINE_GRACE},
    nodes::NodeConn,
};

impl App {
    /// A join code for a node that will dial in.
    pub fn invite_node(&self, name: &str) -> Result<String, FleetError> {
        let pki = self.pki().ok_or(FleetError::NotRunning)?;
        Ok(pki.invite(&self.store, name)?)
    }

    /// Sets up fleet support and starts dialling the known remote nodes.
    pub fn start_fleet(self: &Arc<Self>, fleet: Fleet) {
        // The PKI is in place before any connector starts: a connector that ran first found
        // "fleet support is not running" and gave up on its node until the next restart.
        let _ = self.fleet.set(fleet);
        let Some(fleet) = self.fleet.get() else {
            return;
        };
        for node in self.store.nodes().unwrap_or_default() {
            // Nodes without an endpoint dial in themselves.
            if !node.revoked && !node.endpoint.is_empty() {
                self.dial(fleet, node.name, node.endpoint, &node.cert_serial);
            }
        }
    }

    fn dial(self: &Arc<Self>, fleet: &Fleet, name: String, endpoint: String, cert_serial: &str) {
        // Nodes enrolled by this center speak mutual TLS; others are reached only on their Unix
        // socket (the connector refuses a TCP endpoint without TLS).
        let security = if cert_serial.is_empty() {
            crate::nodes::connector::Security::LocalSocket
        } else {
            match fleet.pki.client_tls(&name) {
                Ok(tls) => crate::nodes::connector::Security::Mtls(tls),
                Err(err) => {
                    tracing::error!(node = %name, error = %err, "cannot set up TLS for the node");
                    return;
                }
            }
        };
        crate::nodes::connector::spawn(
            self.clone(),
            name,
            endpoint,
            security,
            fleet.inbound.clone(),
            fleet.token.clone(),
        );
    }

    /// Enrolls a node from its join code and starts dialling it.
    /// A code that failed is spent all the same: a secret shown in a chat once is not tried
    /// again (the node prints a new one with `agent-node init`).
    pub async fn add_remote_node(
        self: &Arc<Self>,
        name: &str,
        endpoint: &str,
        code: &str,
    ) -> Result<(), FleetError> {
        let fleet = self.fleet.get().ok_or(FleetError::NotRunning)?;
        let enrolled = fleet.pki.enroll(&self.store, name, endpoint, code).await;
        let serial = match enrolled {
            Ok(serial) => serial,
            Err(err) => {
                if let Ok(c) = shared::pki::JoinCode::decode(code) {
                    let _ = self.store.use_join_code(&c.secret_hash());
                }
                return Err(err.into());
            }
        };
        self.dial(fleet, name.to_owned(), endpoint.to_owned(), &serial);
        Ok(())
    }

    /// While `conn` is up, renews node `name`'s certificate whenever 2/3 of its lifetime have
    /// passed (checked at connect and twice a day).
    pub fn keep_certificate_fresh(self: &Arc<Self>, name: String, conn: Arc<NodeConn>) {
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                app.renew_if_due(&name, &conn).await;
                tokio::select! {
                    () = conn.closed() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(12 * 3600)) => {}
                }
            }
        });
    }

    async fn renew_if_due(&self, name: &str, conn: &NodeConn) {
        let Some(pki) = self.pki() else { return };
        let status = conn
            .call(
                Op::CertificateStatus(v1::CertificateStatus {}),
                CALL_TIMEOUT,
            )
            .await;
        let Ok(R::CertStatus(s)) = status else {
            return; // plaintext or older node: nothing to renew
        };
        if !s.renewal_due || s.csr_pem.is_empty() {
            return;
        }
        let cert = match pki.sign_renewal(name, &s.csr_pem) {
            Ok(cert) => cert,
            Err(err) => {
                tracing::warn!(node = %name, error = %err, "cannot renew the node's certificate");
                return;
            }
        };
        let op = Op::InstallCertificate(v1::InstallCertificate {
            cert_pem: cert.clone(),
            ca_pem: pki.ca_pem().to_owned(),
        });
        match conn.call(op, CALL_TIMEOUT).await {
            Ok(_) => {
                let serial = shared::pki::inspect(cert.as_bytes())
                    .map(|i| i.serial_hex)
                    .unwrap_or_default();
                let endpoint = self
                    .store
                    .node(name)
                    .ok()
                    .flatten()
                    .map(|n| n.endpoint)
                    .unwrap_or_default();
                let _ = self.store.put_node(name, &endpoint, &serial);
                tracing::info!(node = %name, "renewed the node's certificate");
            }
            Err(err) => {
                tracing::warn!(node = %name, error = %err, "installing a renewed certificate failed")
            }
        }
    }

    /// Revokes a node at once: its link is closed and it is never dialled again.
    pub fn revoke_node(&self, name: &str) -> bool {
        let revoked = self.store.revoke_node(name).unwrap_or(false);
        if let Some(conn) = self.nodes.locked().remove(name) {
            conn.close();
        }
        if revoked {
            tracing::info!(node = %name, "node revoked");
        }
        revoked
    }

    /// Registers a node connection.
    pub fn add_node(&self, conn: Arc<NodeConn>) {
        let name = conn.name().to_owned();
        self.seen.locked().insert(name.clone());
        self.nodes.locked().insert(name.clone(), conn);
        if let Some(jobs) = self.jobs() {
            jobs.node_online(&name, true);
        }
    }

    /// Forgets a node's connection if it is still `conn` (a newer one may have replaced it).
    pub fn remove_node(&self, name: &str, conn: &Arc<NodeConn>) {
        let mut nodes = self.nodes.locked();
        if nodes.get(name).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            nodes.remove(name);
        }
    }

    /// Tells the topics bound to `name` that it went away or came back. A drop is announced only
    /// if the node is still away after [`OFFLINE_GRACE`] (brief blips stay quiet, and a fleet-wide
    /// blip does not spend the chat budget on notices); "back online" only follows a warning.
    pub async fn node_changed(self: &Arc<Self>, name: &str, online: bool, was_online: bool) {
        if let Some(jobs) = self.jobs() {
            jobs.node_online(name, online);
        }
        if online {
            crate::node_back::returned(self, name, was_online);
            let warned = self.warned.locked().remove(name);
            if warned {
                self.tell_node_topics(
                    name,
                    &format!("✅ {name} is back online; anything Codex did meanwhile follows."),
                );
            }
            return;
        }
        let app = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(OFFLINE_GRACE).await;
            if app.node(&name).is_some_and(|c| c.online()) {
                return;
            }
            if app
                .store
                .node(&name)
                .ok()
                .flatten()
                .is_some_and(|n| n.revoked)
            {
                return;
            }
            if app.warned.locked().insert(name.clone()) {
                app.tell_node_topics(
                    &name,
                    &format!("⚠️ Lost the connection to {name}. Messages to this topic are refused until it is back."),
                );
            }
        });
    }

    fn tell_node_topics(&self, name: &str, text: &str) {
        for b in self
            .store
            .bindings()
            .unwrap_or_default()
            .into_iter()
            .filter(|b| b.node == name)
        {
            self.notice(b.surface, text, None);
        }
    }

    /// Registers `conn` unless its node or certificate is revoked; false if it was not
    /// attached (the link is closed). Checks before registering and once more after, so a revocation
    /// that races with this (it writes the store, then drops the registered link) closes the link
    /// either way.
    pub(crate) fn attach_unless_revoked(&self, conn: &Arc<NodeConn>, serial: Option<&str>) -> bool {
        let name = conn.name().to_owned();
        if !crate::nodes::link_revoked(&self.store, &name, serial) {
            self.add_node(conn.clone());
            if !crate::nodes::link_revoked(&self.store, &name, serial) {
                return true;
            }
            self.remove_node(&name, conn);
        }
        tracing::warn!(node = %name, "refused to attach a link: the node or its certificate is revoked");
        conn.close();
        false
    }
}
