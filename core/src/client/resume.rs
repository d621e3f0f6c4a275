//! What a response means for the file being saved: start over, append, done, or refuse.
//!
//! The rules of RFC 9110 §14 and §13.1.5 as a download applies them, in one pure function
//! so the host, a board and the tests decide identically:
//!
//! | asked | answer | decision |
//! |---|---|---|
//! | whole file | 200 | [`Plan::Write`] from 0 |
//! | `Range: bytes=N-` | 206 `bytes N-L/T` | [`Plan::Append`] at `N` (first byte must be `N`) |
//! | `Range: bytes=N-` | 200 (`If-Range` failed: file changed, or no range support) | [`Plan::Write`] from 0 |
//! | `Range: bytes=N-` | 416 `bytes */N` | [`Plan::Complete`]: the part already holds the whole file |
//! | `Range: bytes=N-` | 416 `bytes */T`, `T != N` | [`Plan::Restart`]: ask again for the whole file |

use core::fmt;

use super::head::{ContentRange, Framing, Response};

/// What to do with the body of a 200, 206 or 416 response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Discard what was saved and write the body from offset 0.
    Write {
        /// The whole file's size, when the framing says it.
        total: Option<u64>,
    },
    /// Keep the first `offset` bytes and append the body after them.
    Append {
        /// Where the body starts (the length already saved).
        offset: u64,
        /// The whole file's size, when the server says it.
        total: Option<u64>,
    },
    /// The saved bytes are already the whole file: finish without a body.
    Complete,
    /// The saved bytes are not a prefix of the file any more: request the whole file again.
    Restart,
}

/// Why a partial response cannot be used.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    /// A 206 that does not start at the offset asked for (or lacks `Content-Range`).
    WrongRange {
        /// The offset asked for.
        asked: u64,
        /// Where the server's range starts (`None` when it sent none).
        got: Option<u64>,
    },
    /// A 206 whose `Content-Length` disagrees with its `Content-Range`.
    LengthMismatch,
    /// A 206 or 416 to a request that asked for no range.
    Unasked,
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongRange {
                asked,
                got: Some(got),
            } => {
                write!(
                    f,
                    "asked for bytes from {asked}, the server sent bytes from {got}"
                )
            }
            Self::WrongRange { asked, got: None } => {
                write!(
                    f,
                    "asked for bytes from {asked}, the server sent no Content-Range"
                )
            }
            Self::LengthMismatch => f.write_str("Content-Length disagrees with Content-Range"),
            Self::Unasked => f.write_str("partial response to a request for the whole file"),
        }
    }
}

impl core::error::Error for ResumeError {}

/// Decides what a 200, 206 or 416 response to a request for bytes from `asked_from` means.
///
/// `asked_from` is `None` when the whole file was requested. Other status codes are the
/// caller's business (redirects, errors); for them this returns `Ok(Plan::Write{..})` only if
/// they are 2xx.
///
/// # Errors
/// A [`ResumeError`] when a partial answer does not fit the question: a 206 starting elsewhere,
/// without `Content-Range`, with a `Content-Length` different from the range's size, or a
/// 206/416 nobody asked for.
pub fn plan(asked_from: Option<u64>, response: &Response<'_>) -> Result<Plan, ResumeError> {
    let length = match response.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    match (response.head.status.as_u16(), asked_from) {
        (206 | 416, None) => Err(ResumeError::Unasked),
        (206, Some(asked)) => match response.head.content_range {
            Some(ContentRange::Bytes {
                first,
                last,
                complete,
            }) => {
                if first != asked {
                    return Err(ResumeError::WrongRange {
                        asked,
                        got: Some(first),
                    });
                }
                if length.is_some_and(|n| Some(n) != (last - first).checked_add(1)) {
                    return Err(ResumeError::LengthMismatch);
                }
                // We asked for everything from `asked` on; a known size must end there.
                let total = complete.or(Some(last.saturating_add(1)));
                if complete.is_some_and(|c| c != last.saturating_add(1)) {
                    return Err(ResumeError::LengthMismatch);
                }
                Ok(Plan::Append {
                    offset: asked,
                    total,
                })
            }
            _ => Err(ResumeError::WrongRange { asked, got: None }),
        },
        (416, Some(asked)) => match response.head.content_range {
            Some(ContentRange::Unsatisfied { complete }) if complete == asked => Ok(Plan::Complete),
            _ => Ok(Plan::Restart),
        },
        _ => Ok(Plan::Write { total: length }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::head::parse_response;
    use crate::Status;

    fn decide(asked: Option<u64>, head: &[u8]) -> Result<Plan, ResumeError> {
        match parse_response(head, false) {
            Ok(Status::Complete((r, _))) => plan(asked, &r),
            other => panic!("bad fixture: {other:?}"),
        }
    }

    #[test]
    fn the_table() {
        assert_eq!(
            decide(None, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
            Ok(Plan::Write { total: Some(10) })
        );
        assert_eq!(
            decide(
                Some(4),
                b"HTTP/1.1 206 P\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 6\r\n\r\n"
            ),
            Ok(Plan::Append {
                offset: 4,
                total: Some(10)
            })
        );
        assert_eq!(
            decide(Some(4), b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Ok(Plan::Write { total: Some(12) }),
            "If-Range failed: the file changed, start over"
        );
        assert_eq!(
            decide(
                Some(10),
                b"HTTP/1.1 416 R\r\nContent-Range: bytes */10\r\nContent-Length: 0\r\n\r\n"
            ),
            Ok(Plan::Complete)
        );
        assert_eq!(
            decide(
                Some(12),
                b"HTTP/1.1 416 R\r\nContent-Range: bytes */10\r\nContent-Length: 0\r\n\r\n"
            ),
            Ok(Plan::Restart)
        );
    }

    #[test]
    fn lying_partials() {
        assert_eq!(
            decide(
                Some(4),
                b"HTTP/1.1 206 P\r\nContent-Range: bytes 0-9/10\r\nContent-Length: 10\r\n\r\n"
            ),
            Err(ResumeError::WrongRange {
                asked: 4,
                got: Some(0)
            })
        );
        assert_eq!(
            decide(Some(4), b"HTTP/1.1 206 P\r\nContent-Length: 6\r\n\r\n"),
            Err(ResumeError::WrongRange {
                asked: 4,
                got: None
            })
        );
        assert_eq!(
            decide(
                Some(4),
                b"HTTP/1.1 206 P\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 5\r\n\r\n"
            ),
            Err(ResumeError::LengthMismatch)
        );
        assert_eq!(
            decide(
                Some(4),
                b"HTTP/1.1 206 P\r\nContent-Range: bytes 4-5/10\r\nContent-Length: 2\r\n\r\n"
            ),
            Err(ResumeError::LengthMismatch),
            "we asked for the rest of the file, not a slice of it"
        );
        assert_eq!(
            decide(
                None,
                b"HTTP/1.1 206 P\r\nContent-Range: bytes 0-9/10\r\nContent-Length: 10\r\n\r\n"
            ),
            Err(ResumeError::Unasked)
        );
    }
}
