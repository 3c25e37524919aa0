//! A cuttable network path for one simulated cabinet: a TCP relay between the agent and the
//! broker that the simulator can cut (live connections reset, new ones refused) and restore,
//! as when a cabinet's mobile link drops. TLS passes through untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) struct Link {
    /// Where the agent connects.
    pub addr: SocketAddr,
    down: watch::Sender<bool>,
    /// Connections refused or cut while down.
    cut_connections: Arc<AtomicU64>,
}

impl Link {
    /// Connections refused or cut while down, so far.
    pub(crate) fn cut_connections(&self) -> u64 {
        self.cut_connections.load(Ordering::Relaxed)
    }

    /// Listens on a free loopback port and relays to `upstream` while up.
    pub(crate) async fn start(
        upstream: SocketAddr,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> std::io::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (down, rx) = watch::channel(false);
        let cut_connections = Arc::new(AtomicU64::new(0));
        let cuts = cut_connections.clone();
        let t = tracker.clone();
        tracker.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((inbound, _)) = accepted else {
                    continue;
                };
                if *rx.borrow() {
                    cuts.fetch_add(1, Ordering::Relaxed);
                    drop(inbound);
                    continue;
                }
                let (mut rx, cuts, cancel) = (rx.clone(), cuts.clone(), cancel.clone());
                t.spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = outbound.set_nodelay(true);
                    let mut inbound = inbound;
                    let _ = inbound.set_nodelay(true);
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|down| *down) => {
                            cuts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        Ok(Link {
            addr,
            down,
            cut_connections,
        })
    }

    /// Cuts the link (`true`) or restores it (`false`).
    pub(crate) fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    pub(crate) fn is_down(&self) -> bool {
        *self.down.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn relays_until_cut_and_refuses_while_down() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let link = Link::start(upstream, cancel.clone(), &tracker)
            .await
            .expect("link");
        let mut c = TcpStream::connect(link.addr).await.expect("connect");
        c.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"ping");

        link.set_down(true);
        let mut rest = Vec::new();
        // Reset or closed: either way the read ends instead of waiting for bytes.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), c.read_to_end(&mut rest))
            .await
            .expect("the cut closes the connection");
        let mut refused = TcpStream::connect(link.addr).await.expect("tcp accept");
        let read = tokio::time::timeout(std::time::Duration::from_secs(2), refused.read(&mut buf))
            .await
            .expect("closed at once");
        assert!(matches!(read, Ok(0) | Err(_)), "no relay while down");
        assert_eq!(link.cut_connections(), 2);

        link.set_down(false);
        let mut c = TcpStream::connect(link.addr).await.expect("connect");
        c.write_all(b"pong").await.expect("write");
        c.read_exact(&mut buf).await.expect("echo after restore");
        assert_eq!(&buf, b"pong");
        cancel.cancel();
    }
}
