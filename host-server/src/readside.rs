//! The read side of a client socket as a worker knows it: one state instead of four flags.

/// What one `read` gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// This many bytes.
    Bytes(usize),
    /// The peer closed its side (`read` returned 0).
    Eof,
    /// Nothing now (`EAGAIN`).
    Blocked,
    /// An error (a reset).
    Failed,
}

/// The read side of a client socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadSide {
    /// Open. `ready`: the socket may hold bytes. Readiness is edge-triggered, so it is set by
    /// an event and cleared only by a read that shows the socket drained (a short read, or
    /// `EAGAIN`).
    Open { ready: bool },
    /// The peer closed its side; `told`: the connection was told (`handle_eof`).
    PeerClosed { told: bool },
    /// Reading failed (a reset): nothing more can be sent either.
    Failed,
}

impl ReadSide {
    /// A new connection's read side; `ready` when its first bytes are likely there already
    /// (deferred accept).
    pub(crate) fn new(ready: bool) -> Self {
        Self::Open { ready }
    }

    /// A readiness event arrived (or a read is worth trying anyway).
    pub(crate) fn on_event(&mut self) {
        if let Self::Open { ready } = self {
            *ready = true;
        }
    }

    /// Whether a `read` may give something now.
    pub(crate) fn may_read(self) -> bool {
        self == Self::Open { ready: true }
    }

    /// Records what a `read` into a buffer of `capacity` bytes gave.
    pub(crate) fn after_read(&mut self, got: Received, capacity: usize) {
        *self = match (*self, got) {
            (Self::Failed, _) | (_, Received::Failed) => Self::Failed,
            (Self::PeerClosed { told }, _) => Self::PeerClosed { told },
            (Self::Open { .. }, Received::Eof) => Self::PeerClosed { told: false },
            (Self::Open { .. }, Received::Blocked) => Self::Open { ready: false },
            // A full read may have left more; a short one drained the socket.
            (Self::Open { .. }, Received::Bytes(n)) => Self::Open {
                ready: n >= capacity,
            },
        };
    }

    /// Whether the connection must now be told that the peer closed; true once.
    pub(crate) fn take_eof_notice(&mut self) -> bool {
        match self {
            Self::PeerClosed { told } if !*told => {
                *told = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the peer is gone or closed its side (nothing more will be read).
    pub(crate) fn peer_done(self) -> bool {
        !matches!(self, Self::Open { .. })
    }

    /// Whether the socket failed.
    pub(crate) fn failed(self) -> bool {
        self == Self::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_cleared_only_by_a_drained_socket() {
        let mut r = ReadSide::new(false);
        assert!(!r.may_read());
        r.on_event();
        assert!(r.may_read());
        r.after_read(Received::Bytes(16), 16);
        assert!(r.may_read(), "a full read may have left more");
        r.after_read(Received::Bytes(3), 16);
        assert!(!r.may_read(), "a short read drained it");
        r.on_event();
        r.after_read(Received::Blocked, 16);
        assert_eq!(r, ReadSide::Open { ready: false });
        assert!(!r.peer_done() && !r.failed());
    }

    #[test]
    fn eof_is_noticed_once_and_ends_reading() {
        let mut r = ReadSide::new(true);
        assert!(!r.take_eof_notice());
        r.after_read(Received::Eof, 16);
        assert!(r.peer_done() && !r.may_read() && !r.failed());
        r.on_event();
        assert!(
            !r.may_read(),
            "no reading after EOF, whatever the events say"
        );
        assert!(r.take_eof_notice());
        assert!(!r.take_eof_notice());
        // Later reads do not reopen it.
        r.after_read(Received::Bytes(5), 16);
        assert_eq!(r, ReadSide::PeerClosed { told: true });
    }

    #[test]
    fn a_failure_is_final() {
        for before in [
            ReadSide::Open { ready: true },
            ReadSide::PeerClosed { told: false },
        ] {
            let mut r = before;
            r.after_read(Received::Failed, 16);
            assert!(r.failed() && r.peer_done() && !r.may_read());
            assert!(!r.take_eof_notice(), "a failed socket needs no EOF notice");
            r.after_read(Received::Bytes(1), 16);
            r.on_event();
            assert_eq!(r, ReadSide::Failed);
        }
    }
}
