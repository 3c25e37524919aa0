//! A serial line (an RS-485 adapter, or a pseudo-terminal in tests) as a tokio byte stream,
//! set raw at the bus's speed and framing — what Modbus RTU runs over.
//!
//! Our own ~100 lines on `rustix` termios rather than `tokio-serial` (ADR 0014): that crate
//! brings `serialport` (MPL-2.0) and two versions of `nix` into a binary meant for small
//! cabinet PCs, to do the same few calls. Everything here is safe code.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustix::fs::{Mode, OFlags};
use rustix::termios::{ControlModes, InputModes, OptionalActions, QueueSelector, SpecialCodeIndex};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Parity bit of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

/// Speed and framing of a serial line: `9600 8N1` by default, what most lock boards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialLine {
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

impl Default for SerialLine {
    fn default() -> Self {
        SerialLine {
            baud: 9_600,
            parity: Parity::None,
            data_bits: 8,
            stop_bits: 1,
        }
    }
}

impl SerialLine {
    /// How long one character takes on the wire (start, data, parity and stop bits).
    pub fn char_time(&self) -> std::time::Duration {
        let bits = 1
            + u64::from(self.data_bits)
            + u64::from(self.parity != Parity::None)
            + u64::from(self.stop_bits);
        std::time::Duration::from_micros(bits * 1_000_000 / u64::from(self.baud.max(1)))
    }
}

/// An open serial line; reads and writes never block the runtime.
#[derive(Debug)]
pub(crate) struct SerialPort {
    fd: AsyncFd<OwnedFd>,
}

impl SerialPort {
    /// Opens `path` exclusively (a second agent on the same bus fails here rather than
    /// garbling frames), raw, at `line`'s settings, and drops whatever was waiting in it.
    pub(crate) fn open(path: &Path, line: &SerialLine) -> io::Result<SerialPort> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| busy(path, e))?;
        // TIOCEXCL (below) keeps others out but not root; the lock also stops a second agent,
        // or the doctor beside a running agent, when both run as root.
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| busy(path, e))?;
        let mut t = rustix::termios::tcgetattr(&fd).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a serial port ({e})", path.display()),
            )
        })?;
        rustix::termios::ioctl_tiocexcl(&fd)?;
        t.make_raw();
        t.input_modes -= InputModes::IXON | InputModes::IXOFF | InputModes::IXANY;
        t.control_modes -= ControlModes::CSIZE
            | ControlModes::PARENB
            | ControlModes::PARODD
            | ControlModes::CSTOPB
            | ControlModes::CRTSCTS;
        t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
        t.control_modes |= if line.data_bits == 7 {
            ControlModes::CS7
        } else {
            ControlModes::CS8
        };
        match line.parity {
            Parity::None => {}
            Parity::Even => t.control_modes |= ControlModes::PARENB,
            Parity::Odd => t.control_modes |= ControlModes::PARENB | ControlModes::PARODD,
        }
        if line.stop_bits == 2 {
            t.control_modes |= ControlModes::CSTOPB;
        }
        // VMIN 1: with VMIN 0 a tty read with nothing waiting returns 0 (end of file to
        // tokio) instead of EWOULDBLOCK, even on a non-blocking descriptor.
        t.special_codes[SpecialCodeIndex::VMIN] = 1;
        t.special_codes[SpecialCodeIndex::VTIME] = 0;
        t.set_speed(line.baud).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} baud on {}: {e}", line.baud, path.display()),
            )
        })?;
        rustix::termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
        rustix::termios::tcflush(&fd, QueueSelector::IOFlush)?;
        // SAFETY: `register` asks that the descriptor stay open and the same for the
        // `AsyncFd`'s whole life. An `OwnedFd` moved into it is closed only when the `AsyncFd`
        // drops it, and its `as_raw_fd` always returns that one descriptor. Needed because
        // tokio's safe constructor is deprecated and there is no other way to wait on a tty
        // without a blocking thread per read.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(SerialPort { fd })
    }
}

fn busy(path: &Path, e: rustix::io::Errno) -> io::Error {
    if e == rustix::io::Errno::BUSY || e == rustix::io::Errno::WOULDBLOCK {
        io::Error::new(
            io::ErrorKind::ResourceBusy,
            format!(
                "{} is held by another process (a running agent owns its bus; stop it to test the boards)",
                path.display()
            ),
        )
    } else {
        io::Error::from(e)
    }
}

impl AsyncRead for SerialPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref(), &mut *unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for SerialPort {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the kernel's queue; the line sends them at its own pace.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A pseudo-terminal pair for tests: the agent's side (the path) opens like a serial port;
/// the other side is the "bus" a test board answers on, as a non-blocking stream.
#[cfg(test)]
pub(crate) fn pty_pair() -> io::Result<(SerialPort, std::path::PathBuf)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let path = std::path::PathBuf::from(name.to_string_lossy().into_owned());
    let mut t = rustix::termios::tcgetattr(&master)?;
    t.make_raw();
    rustix::termios::tcsetattr(&master, OptionalActions::Now, &t)?;
    let flags = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
    // SAFETY: as in `open`: the `OwnedFd` moves into the `AsyncFd` and lives as long as it.
    #[allow(unsafe_code)]
    let fd = unsafe { AsyncFd::register(master) }.map_err(io::Error::from)?;
    Ok((SerialPort { fd }, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_cross_a_pty_both_ways() {
        let (mut bus, path) = pty_pair().expect("pty");
        let mut port = SerialPort::open(&path, &SerialLine::default()).expect("open");
        port.write_all(b"\x01\x02\x03").await.expect("write");
        let mut got = [0u8; 3];
        bus.read_exact(&mut got).await.expect("bus reads");
        assert_eq!(got, [1, 2, 3], "raw: no byte translated");
        bus.write_all(b"\x0d\x0a\x11").await.expect("bus writes");
        let mut back = [0u8; 3];
        port.read_exact(&mut back).await.expect("port reads");
        assert_eq!(back, [0x0d, 0x0a, 0x11], "no CR/LF mapping, no XON/XOFF");
        let err = SerialPort::open(&path, &SerialLine::default()).expect_err("exclusive");
        assert!(err.to_string().contains("held by another process"), "{err}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_tty_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("ttyNOPE");
        std::fs::write(&path, b"").expect("file");
        let err = SerialPort::open(&path, &SerialLine::default()).expect_err("not a tty");
        assert!(err.to_string().contains("is not a serial port"), "{err}");
        let err = SerialPort::open(&dir.path().join("missing"), &SerialLine::default())
            .expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn character_time() {
        let line = SerialLine::default();
        assert_eq!(line.char_time().as_micros(), 1_041, "10 bits at 9600 baud");
        let even = SerialLine {
            parity: Parity::Even,
            baud: 19_200,
            ..line
        };
        assert_eq!(even.char_time().as_micros(), 572);
    }
}
