//! `fleet-sim bench handshakes`: what one TLS handshake costs the broker front, full (the
//! device's certificate verified against the CA and its revocation list) against resumed
//! (TLS 1.3 tickets), driven in memory with the front's own `broker::server_tls` settings and
//! the agent's client settings, so that only the handshake's CPU is measured. The reconnect
//! storm is bounded by this rate (BENCHMARKS.md, "Connections, memory and reconnect storm").

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::DeviceId;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};

#[derive(Debug, Clone, clap::Args)]
pub struct HandshakeOptions {
    /// Handshakes of each kind.
    #[arg(long, default_value_t = 2_000)]
    pub handshakes: usize,
}

/// Moves every pending TLS record from one side to the other until neither has more to say;
/// returns the time spent in the server's processing.
fn drive(client: &mut ClientConnection, server: &mut ServerConnection) -> anyhow::Result<Duration> {
    let mut in_server = Duration::ZERO;
    let mut buf = Vec::with_capacity(16 * 1024);
    for _ in 0..32 {
        let mut moved = false;
        while client.wants_write() {
            buf.clear();
            client.write_tls(&mut buf)?;
            let started = Instant::now();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                server.read_tls(&mut rd)?;
                server.process_new_packets().context("server")?;
            }
            in_server += started.elapsed();
            moved = true;
        }
        while server.wants_write() {
            buf.clear();
            let started = Instant::now();
            server.write_tls(&mut buf)?;
            in_server += started.elapsed();
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                client.read_tls(&mut rd)?;
                client.process_new_packets().context("client")?;
            }
            moved = true;
        }
        if !moved && !client.is_handshaking() && !server.is_handshaking() {
            return Ok(in_server);
        }
    }
    anyhow::bail!("the handshake did not finish")
}

pub fn handshakes(o: HandshakeOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    certs::init(dir.path(), false)?;
    let id = DeviceId::parse("cab-bench-1").context("device id")?;
    certs::issue_device(dir.path(), &id, false)?;
    let server_full = broker::server_tls(dir.path())?;
    // The same settings issuing stateless tickets (rustls' ring ticketer: ChaCha20-Poly1305
    // keys rotated every 6 hours).
    let mut resuming = (*server_full).clone();
    resuming.ticketer = rustls::crypto::ring::Ticketer::new()?;
    let server_resuming = Arc::new(resuming);
    let client = device_agent::client_tls(dir.path(), &id)?;
    let name = ServerName::try_from("localhost")?;

    let mut results = Vec::new();
    for (label, server, reuse) in [
        ("full (certificate verified)", server_full.clone(), false),
        ("resumed (TLS 1.3 ticket)", server_resuming.clone(), true),
    ] {
        let mut resumed = 0usize;
        let mut server_time = Duration::ZERO;
        let started = Instant::now();
        // A client that keeps its tickets, as the agent keeps one config across reconnects;
        // for full handshakes one that keeps none (a clone would share the store).
        let mut config = (*client).clone();
        if !reuse {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let config = Arc::new(config);
        for _ in 0..o.handshakes {
            let config = config.clone();
            let mut c = ClientConnection::new(config, name.clone())?;
            let mut s = ServerConnection::new(server.clone())?;
            server_time += drive(&mut c, &mut s)?;
            if matches!(c.handshake_kind(), Some(rustls::HandshakeKind::Resumed)) {
                resumed += 1;
            }
            // The identity a resumed session carries is still the certificate's.
            let der = s
                .peer_certificates()
                .and_then(|c| c.first())
                .context("no client certificate after the handshake")?;
            anyhow::ensure!(
                certs::device_id_from_der(der.as_ref())? == id,
                "wrong identity"
            );
        }
        let wall = started.elapsed().as_secs_f64();
        let per = server_time.as_secs_f64() / o.handshakes as f64;
        results.push((label, per, resumed, wall));
    }
    println!(
        "| handshake | server CPU per handshake | server handshakes/s (one core) | resumed | both sides, wall |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (label, per, resumed, wall) in &results {
        println!(
            "| {label} | {:.0} µs | {:.0} | {resumed} of {} | {wall:.2} s |",
            per * 1e6,
            1.0 / per,
            o.handshakes
        );
    }
    if let [(_, full, ..), (_, res, ..)] = results.as_slice() {
        println!("\nresumed ÷ full server CPU: {:.2}", res / full);
    }
    Ok(())
}
