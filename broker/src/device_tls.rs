//! A device's TLS connection on rustls' unbuffered API: received and unsent bytes are held
//! only while they wait, so an idle cabinet's session keeps no record buffer (ADR 0031).
//!
//! rustls' buffered API (what `tokio-rustls` drives) sizes every connection's receive buffer
//! to 4 KiB before each read and never below, a quarter of a connected cabinet's memory.
//! Here each worker thread reads into one scratch buffer; rustls decrypts from it; only a
//! record cut off by the read (rare: device messages are a few hundred bytes) is copied into
//! the connection, and freed once it is whole. The record layer, alerts, key updates and the
//! handshake stay rustls' own: this module only moves bytes between the socket and it.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time: a whole record of the largest size TLS allows
/// (16 KiB of data and its overhead) fits in one read.
const READ_SIZE: usize = 17 * 1024;
/// Data encrypted at a time, then written before the next piece: a large message (a release
/// chunk) never has all its ciphertext waiting beside its plaintext.
const WRITE_PIECE: usize = 64 * 1024;
/// Most bytes held for a message not yet whole. A record is at most ≈ 16.7 KB; handshake
/// messages joined across records (a certificate chain) are limited by rustls to 64 KiB.
const MAX_INCOMING: usize = 80 * 1024;
/// The first record of a connection, its ClientHello, is at most this long (TLS' limit for
/// a plaintext record, 2^14, and a margin for clients that exceed it slightly).
const MAX_HELLO_RECORD: usize = 16 * 1024 + 2048;
/// TLS content type of handshake records.
const HANDSHAKE: u8 = 22;

thread_local! {
    /// One receive buffer per worker thread, used only inside a synchronous step (never
    /// across an `.await`), so no connection holds one while it waits.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A client that has sent its first record (its ClientHello): reading it cost nothing, the
/// handshake after it does, so the front takes a handshake slot in between.
pub(crate) struct Hello {
    tcp: TcpStream,
    incoming: Vec<u8>,
}

/// A device's established TLS connection.
pub(crate) struct DeviceTls {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Received bytes of a record not yet whole; unallocated between records.
    incoming: Vec<u8>,
    /// Encrypted bytes the socket has not taken yet; unallocated between writes.
    outgoing: Vec<u8>,
    /// Decrypted bytes not yet handed to the session (those that came with the handshake).
    plain: BytesMut,
    /// The device sent close_notify.
    peer_closed: bool,
    /// The device's side of the socket ended.
    eof: bool,
    /// rustls refused the connection: it is not asked again (given the same bytes, it would
    /// fail again and assert, in debug builds, that it had sent no fatal alert yet).
    failed: bool,
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Reads what the socket has (up to [`READ_SIZE`] bytes) onto the end of `buf`. `None`:
/// nothing there after all (readiness was stale); `Some(0)`: end of stream.
fn read_some(tcp: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    // Exact: a connection completing a record keeps len + one read, not double its length.
    buf.reserve_exact(READ_SIZE);
    match tcp.try_read_buf(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads what the socket has through this thread's scratch buffer and appends it to `buf`
/// (which grows by what was read, not by a read's worth).
fn read_exact_size(tcp: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        let read = read_some(tcp, &mut scratch)?;
        buf.extend_from_slice(&scratch);
        Ok(read)
    })
}

/// The room an encryption asked for, when that was its complaint.
fn encrypt_needs(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// The length of the record at the start of `buf`, header included, once its header is in.
fn record_len(buf: &[u8]) -> Option<usize> {
    let header = buf.get(..5)?;
    Some(5 + usize::from(u16::from_be_bytes([header[3], header[4]])))
}

/// Appends `what` to `out`, growing `out` by what the encoder says it needs.
fn append<E>(
    out: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    out.resize(start + guess, 0);
    let written = match write(&mut out[start..]) {
        Err(e) => match needs(&e) {
            Some(required) => {
                out.resize(start + required, 0);
                write(&mut out[start..])
            }
            None => Err(e),
        },
        ok => ok,
    };
    out.truncate(start + *written.as_ref().unwrap_or(&0));
    written.map(drop)
}

impl Hello {
    /// Reads until the client's first record is whole. Anything but a TLS handshake record
    /// is refused at its first byte.
    pub(crate) async fn read(tcp: TcpStream) -> io::Result<Hello> {
        let mut incoming = Vec::new();
        loop {
            if let Some(&kind) = incoming.first()
                && kind != HANDSHAKE
            {
                return Err(invalid(format!(
                    "not a TLS ClientHello (first byte {kind:#04x}); the device port speaks MQTT over TLS only"
                )));
            }
            if let Some(len) = record_len(&incoming) {
                if len > MAX_HELLO_RECORD {
                    return Err(invalid(format!(
                        "first TLS record of {len} bytes; a ClientHello is at most {MAX_HELLO_RECORD}"
                    )));
                }
                if incoming.len() >= len {
                    return Ok(Hello { tcp, incoming });
                }
            }
            tcp.readable().await?;
            if read_exact_size(&tcp, &mut incoming)? == Some(0) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before its ClientHello was whole",
                ));
            }
        }
    }

    /// The rest of the handshake: the device's certificate verified by `config`'s verifier.
    /// Data the device sent right after its Finished (its CONNECT) is kept for the first read.
    pub(crate) async fn handshake(
        self,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<DeviceTls> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut tls = DeviceTls {
            tcp: self.tcp,
            conn,
            incoming: self.incoming,
            outgoing: Vec::new(),
            plain: BytesMut::new(),
            peer_closed: false,
            eof: false,
            failed: false,
        };
        tls.process_held(None, false)?;
        loop {
            tls.flush().await?;
            if !tls.conn.is_handshaking() {
                return Ok(tls);
            }
            if tls.peer_closed || tls.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the TLS handshake",
                ));
            }
            tls.tcp.readable().await?;
            tls.receive()?;
        }
    }
}

impl DeviceTls {
    /// The device's certificate chain, as verified in the handshake.
    pub(crate) fn peer_certificates(
        &self,
    ) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// Waits for data from the device and appends what was decrypted to `buf`: the number of
    /// bytes, 0 once the device closed. Cancel-safe: it waits for readiness, then steps
    /// synchronously, then for rustls' own replies to be written (`flush`, cancel-safe too);
    /// data decrypted before a cancelled wait is returned by the next call.
    pub(crate) async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            if !self.plain.is_empty() {
                let n = self.plain.len();
                if buf.is_empty() {
                    *buf = std::mem::take(&mut self.plain);
                } else {
                    buf.extend_from_slice(&self.plain);
                    self.plain = BytesMut::new();
                }
                return Ok(n);
            }
            if self.peer_closed {
                return Ok(0);
            }
            if self.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the device closed the connection without a TLS close_notify",
                ));
            }
            self.tcp.readable().await?;
            self.receive()?;
            // What rustls answered with (a key update's reply) goes out before the next read;
            // `flush` is cancel-safe, so a server message due meanwhile is not held up.
            self.flush().await?;
        }
    }

    /// Encrypts `data` and writes it all to the device, a piece at a time. Dropped before
    /// it finished, the connection stays whole (what was encrypted is still sent first) but
    /// the rest of `data` is not sent: the front then closes the session.
    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(WRITE_PIECE) {
            if !self.process_held(Some(piece), false)? {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "TLS connection not open for data",
                ));
            }
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends close_notify (or, after a failure, the alert saying why) and closes the
    /// socket's sending side.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        if !self.failed {
            self.process_held(None, true)?;
        }
        self.flush().await?;
        use tokio::io::AsyncWriteExt;
        self.tcp.shutdown().await
    }

    /// One read from the socket through rustls: decrypted data into `plain`, what rustls
    /// answers into `outgoing`, a record cut off by the read kept in `incoming`.
    fn receive(&mut self) -> io::Result<()> {
        if !self.incoming.is_empty() {
            // A record is being completed: read onto it in place (copying it per read would
            // cost a client trickling a large message quadratic time).
            let mut input = std::mem::take(&mut self.incoming);
            let step = self.read_and_process(&mut input);
            self.keep(input);
            return step;
        }
        SCRATCH.with(|scratch| {
            let mut input = scratch.borrow_mut();
            input.clear();
            let step = self.read_and_process(&mut input);
            if !input.is_empty() {
                self.incoming = input.to_vec();
            }
            step
        })
    }

    /// [`Self::process`] over the bytes held from earlier reads.
    fn process_held(&mut self, send: Option<&[u8]>, close: bool) -> io::Result<bool> {
        let mut input = std::mem::take(&mut self.incoming);
        let step = self.process(&mut input, send, close);
        self.keep(input);
        step
    }

    /// Keeps what is left of a record, or nothing: an empty buffer is given back.
    fn keep(&mut self, input: Vec<u8>) {
        self.incoming = if input.is_empty() { Vec::new() } else { input };
    }

    /// One read onto the end of `input`, then rustls over it; what it is done with is
    /// removed from the front of `input`.
    fn read_and_process(&mut self, input: &mut Vec<u8>) -> io::Result<()> {
        match read_some(&self.tcp, input)? {
            None => return Ok(()),
            Some(0) => {
                self.eof = true;
                if !input.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the device closed the connection in the middle of a TLS record",
                    ));
                }
                return Ok(());
            }
            Some(_) => {}
        }
        self.process(input, None, false)?;
        if input.len() > MAX_INCOMING {
            return Err(invalid(format!(
                "{} bytes received without a whole TLS message; at most {MAX_INCOMING}",
                input.len()
            )));
        }
        Ok(())
    }

    /// Runs rustls over `input` until it needs more bytes: application data into `plain`,
    /// handshake and alert records into `outgoing`, then `send` encrypted (or close_notify
    /// queued) once data may be sent. The bytes rustls is done with are removed from the
    /// front of `input`. `Ok(true)` when `send` was encrypted (or there was none).
    fn process(
        &mut self,
        input: &mut Vec<u8>,
        send: Option<&[u8]>,
        close: bool,
    ) -> io::Result<bool> {
        if self.failed {
            return Err(invalid("the TLS connection failed earlier"));
        }
        let mut send = send;
        let mut used = 0;
        let result = loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut input[used..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    used += discard;
                    break Err(tls_error(e));
                }
            };
            let step: io::Result<bool> = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    let mut step = Ok(false);
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plain.extend_from_slice(record.payload);
                            }
                            Err(e) => {
                                step = Err(tls_error(e));
                                break;
                            }
                        }
                    }
                    step
                }
                ConnectionState::EncodeTlsData(mut record) => append(
                    &mut self.outgoing,
                    1024,
                    |out| record.encode(out),
                    |e| match e {
                        EncodeError::InsufficientSize(s) => Some(s.required_size),
                        _ => None,
                    },
                )
                .map(|()| false)
                .map_err(|e| invalid(e.to_string())),
                // The bytes are ours to send from here: `flush` does.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    Ok(false)
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    Ok(false)
                }
                ConnectionState::WriteTraffic(mut open) => {
                    let mut step = Ok(true);
                    if let Some(data) = send.take() {
                        step = append(
                            &mut self.outgoing,
                            data.len() + 64 * (1 + data.len() / 16384),
                            |out| open.encrypt(data, out),
                            encrypt_needs,
                        )
                        .map(|()| true)
                        .map_err(|e| invalid(e.to_string()));
                    }
                    if close && step.is_ok() {
                        step = append(
                            &mut self.outgoing,
                            64,
                            |out| open.queue_close_notify(out),
                            encrypt_needs,
                        )
                        .map(|()| true)
                        .map_err(|e| invalid(e.to_string()));
                    }
                    used += discard;
                    break step;
                }
                // Needs more bytes (or is done): what was asked of it is left undone.
                ConnectionState::BlockedHandshake | ConnectionState::Closed => {
                    used += discard;
                    break Ok(send.is_none());
                }
                ConnectionState::ReadEarlyData(_) => Err(invalid(
                    "TLS early data, which the device port does not accept",
                )),
                _ => Err(invalid("a TLS connection state this front does not know")),
            };
            used += discard;
            if let Err(e) = step {
                break Err(e);
            }
        };
        input.drain(..used.min(input.len()));
        // When rustls queued an alert saying why (a revoked certificate, a bad record), the
        // device is told before the connection is dropped, if its socket takes it now. Asked
        // only when one is queued: rustls then hands it out before looking at `input` again
        // (which must be the same bytes as before: a half-joined handshake message refers
        // to them).
        self.failed |= result.is_err();
        if result.is_err() && self.conn.wants_write() {
            if let Ok(ConnectionState::EncodeTlsData(mut alert)) =
                self.conn.process_tls_records(input).state
            {
                let _ = append(&mut self.outgoing, 64, |out| alert.encode(out), |_| None);
            }
            let _ = self.try_flush();
        }
        result
    }

    /// Writes what the socket takes now, without waiting: `false` while some is left.
    fn try_flush(&mut self) -> io::Result<bool> {
        while !self.outgoing.is_empty() {
            match self.tcp.try_write(&self.outgoing) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.outgoing.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.outgoing = Vec::new();
        Ok(true)
    }

    /// Writes everything pending, waiting for the socket as needed. Cancel-safe: what was
    /// written is removed before each wait, so nothing is sent twice.
    async fn flush(&mut self) -> io::Result<()> {
        while !self.try_flush()? {
            self.tcp.writable().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    type Client = tokio_rustls::client::TlsStream<TcpStream>;

    struct Pki {
        _dir: tempfile::TempDir,
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    }

    fn pki() -> Pki {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        certs::init(dir.path(), false).expect("ca");
        let id = certs::parse_device_id("locker-1").expect("id");
        certs::issue_device(dir.path(), &id, false).expect("device");
        let server = crate::server_tls(dir.path()).expect("server tls");
        let client = client_tls(dir.path(), dir.path());
        Pki {
            _dir: dir,
            server,
            client,
        }
    }

    /// Device locker-1's client settings: trusting the CA in `trusting`, with the certificate
    /// in `holding`.
    fn client_tls(
        trusting: &std::path::Path,
        holding: &std::path::Path,
    ) -> Arc<rustls::ClientConfig> {
        let id = certs::parse_device_id("locker-1").expect("id");
        let roots = certs::load_roots(&trusting.join(certs::CA_CERT)).expect("roots");
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                certs::load_certs(&certs::device_cert_path(holding, &id)).expect("cert"),
                certs::load_key(&certs::device_key_path(holding, &id)).expect("key"),
            )
            .expect("client tls");
        Arc::new(client)
    }

    /// A device's connection through the real handshake over loopback TCP.
    async fn pair(pki: &Pki) -> (io::Result<DeviceTls>, io::Result<Client>) {
        connect(pki.server.clone(), pki.client.clone()).await
    }

    async fn connect(
        server_tls: Arc<rustls::ServerConfig>,
        client_tls: Arc<rustls::ClientConfig>,
    ) -> (io::Result<DeviceTls>, io::Result<Client>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connector = tokio_rustls::TlsConnector::from(client_tls);
        let client = async {
            let tcp = TcpStream::connect(addr).await?;
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            connector.connect(name, tcp).await
        };
        let server = async {
            let (tcp, _) = listener.accept().await?;
            Hello::read(tcp).await?.handshake(server_tls).await
        };
        tokio::join!(server, client)
    }

    fn holds_nothing(tls: &DeviceTls) -> bool {
        tls.incoming.capacity() == 0 && tls.outgoing.capacity() == 0 && tls.plain.capacity() == 0
    }

    #[tokio::test]
    async fn data_both_ways_and_an_idle_connection_holds_no_buffers() {
        let pki = pki();
        let (server, client) = pair(&pki).await;
        let (mut server, mut client) = (server.expect("server"), client.expect("client"));
        let der = server
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("peer cert");
        assert_eq!(
            certs::device_id_from_der(der.as_ref())
                .expect("id")
                .as_str(),
            "locker-1"
        );
        assert!(holds_nothing(&server), "after the handshake");

        // Larger than a record each way, so records are cut by reads and joined again.
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let writer = async {
            client.write_all(&big).await.expect("client write");
            client.flush().await.expect("client flush");
        };
        let reader = async {
            let mut got = BytesMut::new();
            while got.len() < big.len() {
                assert!(server.read_into(&mut got).await.expect("read") > 0);
            }
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(&got[..], &big[..]);
        assert!(holds_nothing(&server), "after reading");

        let answer = async {
            let mut back = vec![0u8; big.len()];
            client.read_exact(&mut back).await.expect("client read");
            back
        };
        let (sent, back) = tokio::join!(server.write_all(&big), answer);
        sent.expect("server write");
        assert_eq!(back, big);
        assert!(holds_nothing(&server), "after writing");
    }

    #[tokio::test]
    async fn a_key_update_and_a_clean_close_from_the_device() {
        let pki = pki();
        let (server, client) = pair(&pki).await;
        let (mut server, mut client) = (server.expect("server"), client.expect("client"));
        // New traffic keys from the device: rustls answers, both sides go on.
        client
            .get_mut()
            .1
            .refresh_traffic_keys()
            .expect("key update");
        client.write_all(b"after update").await.expect("write");
        let mut got = BytesMut::new();
        while got.len() < 12 {
            server.read_into(&mut got).await.expect("read");
        }
        assert_eq!(&got[..], b"after update");
        let answer = async {
            let mut back = [0u8; 5];
            client.read_exact(&mut back).await.expect("client read");
            back
        };
        let (sent, back) = tokio::join!(server.write_all(b"hello"), answer);
        sent.expect("server write");
        assert_eq!(&back, b"hello");

        client.shutdown().await.expect("close_notify");
        let mut rest = BytesMut::new();
        assert_eq!(server.read_into(&mut rest).await.expect("closed"), 0);
        server.shutdown().await.expect("server close");
    }

    #[tokio::test]
    async fn a_device_gone_in_the_middle_of_a_record_is_an_error() {
        let pki = pki();
        let (server, client) = pair(&pki).await;
        let (mut server, client) = (server.expect("server"), client.expect("client"));
        let (tcp, conn) = client.into_inner();
        let mut conn = conn;
        let mut record = Vec::new();
        std::io::Write::write_all(&mut conn.writer(), b"a message cut short").expect("plaintext");
        conn.write_tls(&mut record).expect("record");
        let mut tcp = tcp;
        tcp.write_all(&record[..record.len() - 3])
            .await
            .expect("part");
        // Closed for sending only: dropping the socket with the server's session tickets
        // unread would reset the connection instead.
        tcp.shutdown().await.expect("fin");
        let mut got = BytesMut::new();
        let err = server.read_into(&mut got).await.expect_err("cut record");
        assert!(err.to_string().contains("middle of a TLS record"), "{err}");
    }

    #[tokio::test]
    async fn a_device_gone_without_close_notify_is_an_error_not_a_goodbye() {
        let pki = pki();
        let (server, client) = pair(&pki).await;
        let (mut server, client) = (server.expect("server"), client.expect("client"));
        let (mut tcp, _) = client.into_inner();
        tcp.shutdown().await.expect("fin");
        let mut got = BytesMut::new();
        let err = server
            .read_into(&mut got)
            .await
            .expect_err("no close_notify");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    /// rustls, asked for its alert with no bytes while half a handshake message was joined,
    /// sliced past the end of them and panicked: the connection's task died with its counters.
    #[tokio::test]
    async fn a_handshake_message_cut_by_another_record_is_refused_without_a_panic() {
        let pki = pki();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        // A handshake record with the first 14 bytes of a 200-byte ClientHello, then a
        // ChangeCipherSpec record in the middle of it.
        let mut bytes = vec![
            0x16, 0x03, 0x01, 0x00, 0x0e, 0x01, 0x00, 0x00, 0xc8, 0x03, 0x03,
        ];
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
        raw.write_all(&bytes).await.expect("send");
        let (tcp, _) = listener.accept().await.expect("accept");
        let hello = Hello::read(tcp).await.expect("a whole first record");
        let err = hello
            .handshake(pki.server.clone())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("Interleaved"), "{err}");
    }

    #[tokio::test]
    async fn a_tampered_record_is_refused() {
        let pki = pki();
        let (server, client) = pair(&pki).await;
        let (mut server, client) = (server.expect("server"), client.expect("client"));
        let (mut tcp, mut conn) = client.into_inner();
        let mut record = Vec::new();
        std::io::Write::write_all(&mut conn.writer(), b"forged?").expect("plaintext");
        conn.write_tls(&mut record).expect("record");
        let last = record.len() - 1;
        record[last] ^= 1;
        tcp.write_all(&record).await.expect("send");
        let mut got = BytesMut::new();
        assert!(server.read_into(&mut got).await.is_err());
        assert!(got.is_empty(), "nothing of a forged record is handed on");
        // The front closes every session it ends: rustls, given the forged record again,
        // asserted (debug builds) that it had not sent a fatal alert yet, and the task died.
        server.shutdown().await.ok();
        assert!(
            server.write_all(b"more").await.is_err(),
            "a failed connection stays failed"
        );
    }

    #[tokio::test]
    async fn what_is_not_tls_is_refused_at_its_first_byte() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut plain = TcpStream::connect(addr).await.expect("connect");
        // An MQTT CONNECT sent without TLS.
        plain.write_all(&[0x10, 0x0c, 0, 4]).await.expect("send");
        let (tcp, _) = listener.accept().await.expect("accept");
        let err = Hello::read(tcp).await.err().expect("refused");
        assert!(err.to_string().contains("not a TLS ClientHello"), "{err}");
    }

    #[tokio::test]
    async fn a_device_the_ca_did_not_sign_fails_the_handshake() {
        let (ours, stranger) = (pki(), pki());
        // The stranger trusts our server's CA, so only its own certificate can fail.
        let stranger = client_tls(ours._dir.path(), stranger._dir.path());
        let (server, client) = connect(ours.server.clone(), stranger).await;
        // TLS 1.3: the client learns of the refusal on its first read.
        let client = match client {
            Ok(mut s) => s.read(&mut [0u8; 1]).await,
            Err(e) => Err(e),
        };
        let err = server.err().expect("server refuses");
        assert!(err.to_string().contains("certificate"), "{err}");
        // The device is told why by an alert (same issuer name, another key: a bad signature).
        let err = client.expect_err("client told");
        assert!(err.to_string().contains("received fatal alert"), "{err}");
    }
}
