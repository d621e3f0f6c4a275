//! Exit codes and the failure type that carries one.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every download succeeded |
//! | 2 | usage: bad arguments, a NAME or URL that cannot be saved safely |
//! | 3 | not found: the server answered 404 or 410 |
//! | 4 | other HTTP error: any other non-success status, too many or off-server redirects, a NAME that is a folder |
//! | 5 | network or timeout: cannot connect, reset, cut short, no progress within `--timeout` (after `--retries`, which never retry a refused connection) |
//! | 6 | local I/O: cannot write, disk full, file exists without `--force` |
//! | 7 | integrity: malformed or lying response (bad head, bad framing, length or digest mismatch, 206 with the wrong range) |
//! | 8 | some entries skipped: `-r` saved everything else, but skipped names it cannot save safely |

use std::fmt;

/// Every download succeeded.
pub(crate) const EXIT_OK: u8 = 0;
/// Bad arguments, or a NAME/URL that cannot be saved safely.
pub(crate) const EXIT_USAGE: u8 = 2;
/// The server answered 404 or 410.
pub(crate) const EXIT_NOT_FOUND: u8 = 3;
/// Any other HTTP error status, or a redirect we do not follow.
pub(crate) const EXIT_HTTP: u8 = 4;
/// Cannot connect, connection reset or cut short, or a timeout (after the retries).
pub(crate) const EXIT_NETWORK: u8 = 5;
/// A local file system error, or an existing file without `--force`.
pub(crate) const EXIT_LOCAL_IO: u8 = 6;
/// A malformed or lying response: bad head or framing, length mismatch, wrong range.
pub(crate) const EXIT_INTEGRITY: u8 = 7;

/// `-r` skipped listing entries whose names cannot be saved safely; nothing else failed.
pub(crate) const EXIT_SKIPPED: u8 = 8;

/// The exit-code table for `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  2  usage error (bad arguments, a name that cannot be saved safely)
  3  not found (404, 410)
  4  other HTTP error (other 4xx/5xx, too many or off-server redirects, a NAME that is a folder)
  5  network error or timeout (after --retries; a refused connection is not retried)
  6  local I/O error (cannot write, disk full, file exists without --force)
  7  integrity error (malformed or lying response, length or digest mismatch, wrong range)
  8  some entries skipped (-r: names that cannot be saved safely; everything else saved)";

/// A failed operation: the exit code it maps to and what happened.
#[derive(Debug)]
pub(crate) struct Fail {
    /// One of the `EXIT_*` codes.
    pub(crate) code: u8,
    /// What went wrong, for the user.
    pub(crate) message: String,
}

impl Fail {
    /// A failure with `code`.
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A usage failure.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(EXIT_USAGE, message)
    }

    /// A local I/O failure about `what`.
    pub(crate) fn local(what: impl fmt::Display, e: &std::io::Error) -> Self {
        Self::new(EXIT_LOCAL_IO, format!("{what}: {e}"))
    }

    /// An integrity failure.
    pub(crate) fn integrity(message: impl Into<String>) -> Self {
        Self::new(EXIT_INTEGRITY, message)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}
