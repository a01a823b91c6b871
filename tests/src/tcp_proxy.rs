//! A proxy that a test can cut and restore, to simulate a network partition between the center
//! and a node (connections are dropped, new ones refused, while cut). It speaks what the node
//! speaks: TCP on loopback to a TCP node, a Unix socket (in a private temporary directory) to a
//! node that serves on one.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    sync::watch,
};

use crate::node_proc::NodeAddr;

/// Either kind of stream, so one loop serves both.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A running proxy.
pub struct TcpProxy {
    /// Where clients connect (the same kind of address as the target).
    pub addr: NodeAddr,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    /// Holds the Unix socket of a Unix proxy.
    _dir: Option<tempfile::TempDir>,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match self {
            Self::Tcp(l) => Box::new(l.accept().await?.0),
            Self::Unix(l) => Box::new(l.accept().await?.0),
        })
    }
}

async fn connect(target: &NodeAddr) -> std::io::Result<Box<dyn Io>> {
    Ok(match target {
        NodeAddr::Tcp(addr) => Box::new(TcpStream::connect(addr).await?),
        NodeAddr::Unix(path) => Box::new(UnixStream::connect(path).await?),
    })
}

impl TcpProxy {
    /// Forwards `127.0.0.1:<any port>` (or a fresh Unix socket, for a Unix target) to `target`.
    pub async fn start(target: &NodeAddr) -> anyhow::Result<Self> {
        let (listener, addr, dir) = match target {
            NodeAddr::Tcp(_) => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = NodeAddr::Tcp(listener.local_addr()?);
                (Listener::Tcp(listener), addr, None)
            }
            NodeAddr::Unix(_) => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("proxy.sock");
                let listener = UnixListener::bind(&path)?;
                (Listener::Unix(listener), NodeAddr::Unix(path), Some(dir))
            }
        };
        let target = target.clone();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (flag, gen_tx) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok(mut inbound) = listener.accept().await else {
                    break;
                };
                if flag.load(Ordering::SeqCst) {
                    drop(inbound); // partitioned: refuse
                    continue;
                }
                let mut dropped = gen_tx.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = dropped.changed() => {} // cut: both sockets are dropped
                    }
                });
            }
        });
        Ok(Self {
            addr,
            cut,
            generation,
            _dir: dir,
        })
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
