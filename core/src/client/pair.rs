//! A download session and a scripted in-memory server, stepped on a fake clock (quinn-proto's
//! `Pair`): redirects, retries with backoff, resume, restarts and timeouts, all without a
//! socket or a real clock.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::session::{
    Action, Config, ConnectFailure, Download, Error, Event, Resume, Retry, Saved, MAX_REDIRECTS,
};
use super::{ExchangeError, FramingError, Plan, Url};
use crate::status::StatusCode;
use crate::time::{Duration, Instant};

/// What the server does with one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Act {
    /// Honest keep-alive service with `Range` + `If-Range`.
    Serve,
    /// The connection is refused.
    Refuse,
    /// The connect never completes.
    ConnectHang,
    /// The head and the first `n` body bytes, then FIN.
    Truncate(usize),
    /// The head and the first `n` body bytes, then a reset.
    Reset(usize),
    /// The head and the first `n` body bytes, then silence.
    Stall(usize),
    /// Silence from the start.
    Mute,
    /// `302` to this location, kept alive.
    Redirect(&'static str),
    /// This status, with `Retry-After` when given, then close.
    Status(u16, Option<&'static str>),
    /// A 200 whose body is dripped: `n` bytes per timeout window.
    Drip(usize),
    /// The request is read and the connection closed (an idle keep-alive closed by the server
    /// just as it is reused), by FIN or by reset.
    CloseIdle { reset: bool },
}

struct Conn {
    act: Act,
    version: usize,
    out: Vec<u8>,
    /// After `out`: FIN (`Some(false)`), reset (`Some(true)`), or silence (`None`).
    end: Option<bool>,
    /// Bytes to release per timeout window (for `Drip`), from `held`.
    held: Vec<u8>,
}

/// The scripted server: connection `i` gets `script[i]` (the last repeating).
struct Server {
    versions: Vec<(&'static str, Vec<u8>)>,
    script: Vec<(Act, usize)>,
    accepted: usize,
    requests: Vec<String>,
}

impl Server {
    fn accept(&mut self) -> Option<Conn> {
        let (act, version) = self
            .script
            .get(self.accepted)
            .or(self.script.last())
            .cloned()
            .expect("a script");
        self.accepted += 1;
        Some(Conn {
            act,
            version,
            out: Vec::new(),
            end: None,
            held: Vec::new(),
        })
    }

    /// Answers one request on `conn`.
    fn answer(&mut self, conn: &mut Conn, request: &str) {
        self.requests.push(request.to_string());
        let (etag, body) = self.versions[conn.version].clone();
        let header = |name: &str| {
            request
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim).map(String::from))
        };
        let range = header("Range: bytes=")
            .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok())
            .filter(|_| header("If-Range:").is_none_or(|v| v == etag));
        let full = |len: usize| {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {etag}\r\n\r\n").into_bytes()
        };
        let cut = |n: usize, out: &mut Vec<u8>| {
            out.extend(full(body.len()));
            out.extend_from_slice(&body[..n.min(body.len())]);
        };
        let unchanged = header("If-None-Match:").is_some_and(|v| v == etag);
        match conn.act.clone() {
            Act::Serve if unchanged => conn
                .out
                .extend(format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n\r\n").bytes()),
            Act::Serve => match range {
                Some(from) if from >= body.len() => conn.out.extend(
                    format!(
                        "HTTP/1.1 416 No\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\n\r\n",
                        body.len()
                    )
                    .bytes(),
                ),
                Some(from) => {
                    conn.out.extend(
                        format!(
                            "HTTP/1.1 206 P\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\nETag: {etag}\r\n\r\n",
                            body.len() - 1,
                            body.len(),
                            body.len() - from
                        )
                        .bytes(),
                    );
                    conn.out.extend_from_slice(&body[from..]);
                }
                None => {
                    conn.out.extend(full(body.len()));
                    conn.out.extend_from_slice(&body);
                }
            },
            Act::Truncate(n) => {
                cut(n, &mut conn.out);
                conn.end = Some(false);
            }
            Act::Reset(n) => {
                cut(n, &mut conn.out);
                conn.end = Some(true);
            }
            Act::Stall(n) => cut(n, &mut conn.out),
            Act::Mute | Act::Refuse | Act::ConnectHang => {}
            Act::CloseIdle { reset } => conn.end = Some(reset),
            Act::Redirect(to) => conn.out.extend(
                format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
                    .bytes(),
            ),
            Act::Status(code, retry_after) => {
                let extra = retry_after.map_or(String::new(), |v| format!("Retry-After: {v}\r\n"));
                conn.out.extend(
                    format!("HTTP/1.1 {code} Bad\r\n{extra}Content-Length: 3\r\nConnection: close\r\n\r\nbad")
                        .bytes(),
                );
                conn.end = Some(false);
            }
            Act::Drip(_) => {
                conn.out.extend(full(body.len()));
                conn.held = body;
            }
        }
    }
}

/// What a run saw.
#[derive(Debug)]
struct Run {
    result: Result<Saved, Error>,
    /// The part file as the driver wrote it.
    part: Vec<u8>,
    retries: Vec<Retry>,
    /// When each connection was asked for, in ms.
    connects: Vec<u64>,
    /// When the run ended, in ms.
    end: u64,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(retries: u32) -> Config<'static> {
    Config {
        timeout: TIMEOUT,
        retries,
        head_capacity: 1024,
        accept: None,
    }
}

/// The pair: steps `session` against `server` on a fake clock, reading `step` bytes at a time
/// into a part that starts as `part`.
fn run(server: &mut Server, session: &mut Download<'_>, part: Vec<u8>, step: usize) -> Run {
    run_on(server, None, session, part, step)
}

/// [`run`], on a connection `inherited` from an earlier download when it is `Some`.
fn run_on(
    server: &mut Server,
    inherited: Option<Act>,
    session: &mut Download<'_>,
    mut part: Vec<u8>,
    step: usize,
) -> Run {
    let mut now = Instant::from_millis(0);
    let mut conn = inherited.map(|act| Conn {
        act,
        version: 0,
        out: Vec::new(),
        end: None,
        held: Vec::new(),
    });
    let mut inbox: Vec<u8> = Vec::new();
    let (mut retries, mut connects) = (Vec::new(), Vec::new());
    for _ in 0..100_000 {
        match session.poll(now) {
            Action::Connect => {
                connects.push(now.as_millis());
                let c = server.accept().expect("accepts");
                match c.act {
                    Act::Refuse => session.handle_connect_failed(now, ConnectFailure::Refused),
                    Act::ConnectHang => {
                        now = session.poll_timeout().expect("a connect deadline");
                        session.handle_timeout(now);
                    }
                    _ => {
                        conn = Some(c);
                        session.handle_connected(now);
                    }
                }
            }
            Action::Send(request) => {
                let mut buf = [0u8; 1024];
                let n = request.encode(&mut buf).expect("encodes");
                let text = String::from_utf8(buf[..n].to_vec()).expect("ascii");
                inbox.clear();
                let c = conn.as_mut().expect("connected before sending");
                server.answer(c, &text);
            }
            Action::Receive => {
                let c = conn.as_mut().expect("a connection");
                if c.out.is_empty() && !c.held.is_empty() {
                    if let Act::Drip(n) = c.act {
                        // One window passes, and it brings n bytes.
                        now = session.poll_timeout().expect("a window");
                        let n = n.min(c.held.len());
                        c.out.extend(c.held.drain(..n));
                    }
                }
                if c.out.is_empty() {
                    match c.end {
                        Some(true) => session.handle_broken(now),
                        Some(false) => session.handle_eof(now),
                        None => {
                            now = session.poll_timeout().expect("a deadline");
                            session.handle_timeout(now);
                        }
                    }
                    continue;
                }
                let n = step.min(c.out.len());
                inbox.extend(c.out.drain(..n));
                let mut used = 0;
                loop {
                    let (n, event) = session.handle_input(now, &inbox[used..]);
                    used += n;
                    match event {
                        Event::NeedMore | Event::Ended => break,
                        Event::Start(s) => match s.plan {
                            Plan::Write { .. } => part.clear(),
                            Plan::Append { offset, .. } => {
                                assert_eq!(offset, part.len() as u64, "append where the part ends");
                            }
                            Plan::Complete => {}
                            Plan::Restart => panic!("a restart is the session's business"),
                        },
                        Event::Body(data) => part.extend_from_slice(data),
                    }
                }
                inbox.drain(..used);
            }
            Action::Retry(r) => retries.push(r),
            Action::Wait(t) => {
                assert!(t > now, "a wait moves time forward");
                conn = None;
                now = t;
            }
            Action::Done(result) => {
                return Run {
                    result,
                    part,
                    retries,
                    connects,
                    end: now.as_millis(),
                };
            }
        }
    }
    panic!("the session never ended");
}

fn file(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn server(versions: Vec<(&'static str, Vec<u8>)>, script: Vec<(Act, usize)>) -> Server {
    Server {
        versions,
        script,
        accepted: 0,
        requests: Vec::new(),
    }
}

const URL: Url<'static> = Url {
    host: "h",
    port: 8080,
    target: "/f",
};

fn session(retries: u32, resume: Option<Resume<'_>>) -> Download<'static> {
    Download::new(
        URL,
        "h:8080",
        config(retries),
        resume,
        false,
        Instant::from_millis(0),
    )
    .expect("fits")
}

#[test]
fn honest_download_in_any_read_size() {
    let body = file(5000, 1);
    for step in [1, 7, 100, 4096] {
        let mut srv = server(vec![("\"v\"", body.clone())], vec![(Act::Serve, 0)]);
        let r = run(&mut srv, &mut session(0, None), Vec::new(), step);
        assert_eq!(r.result, Ok(Saved { len: 5000 }));
        assert_eq!(r.part, body);
        assert!(r.retries.is_empty());
    }
}

#[test]
fn redirects_are_followed_on_one_connection_up_to_five() {
    let body = file(300, 2);
    let mut srv = server(
        vec![("\"v\"", body.clone())],
        vec![(Act::Redirect("/a"), 0), (Act::Serve, 0)],
    );
    // The first connection redirects and stays open, so the redirect is followed on it:
    // the script's second entry never runs, and the same connection redirects again...
    let mut s = session(0, None);
    let r = run(&mut srv, &mut s, Vec::new(), 64);
    assert_eq!(r.result, Err(Error::TooManyRedirects));
    assert_eq!(srv.requests.len() as u32, MAX_REDIRECTS + 1);
    assert_eq!(
        r.connects.len(),
        1,
        "redirects reuse the kept-alive connection"
    );
    assert!(srv.requests[1].starts_with("GET /a HTTP/1.1\r\n"));

    // A redirect answered on a connection that closes: the next target on a new one.
    let mut srv = server(
        vec![("\"v\"", body.clone())],
        vec![(Act::Status(301, None), 0), (Act::Serve, 0)],
    );
    let r = run(&mut srv, &mut session(0, None), Vec::new(), 64);
    assert_eq!(
        r.result,
        Err(Error::Status(StatusCode::MOVED_PERMANENTLY)),
        "no Location: an error status"
    );
}

#[test]
fn refused_connection_fails_at_once_without_retries() {
    let mut srv = server(vec![("\"v\"", file(10, 3))], vec![(Act::Refuse, 0)]);
    let r = run(&mut srv, &mut session(3, None), Vec::new(), 64);
    assert_eq!(r.result, Err(Error::Connect(ConnectFailure::Refused)));
    assert_eq!(r.connects, [0]);
    assert!(r.retries.is_empty());
    assert_eq!(r.end, 0, "no time spent waiting");
}

#[test]
fn connect_timeout_is_retried_with_backoff() {
    let body = file(2000, 4);
    let mut srv = server(
        vec![("\"v\"", body.clone())],
        vec![(Act::ConnectHang, 0), (Act::Serve, 0)],
    );
    let r = run(&mut srv, &mut session(2, None), Vec::new(), 512);
    assert_eq!(r.result, Ok(Saved { len: 2000 }));
    assert_eq!(r.part, body);
    // Connect at 0, times out at 10 s, first backoff 500 ms.
    assert_eq!(r.connects, [0, 10_500]);
    assert_eq!(r.retries[0].cause, Error::Connect(ConnectFailure::TimedOut));
}

#[test]
fn reset_and_truncation_are_retried_and_resumed_with_if_range() {
    let body = file(10_000, 5);
    let mut srv = server(
        vec![("\"v1\"", body.clone())],
        vec![
            (Act::Reset(3000), 0),
            (Act::Truncate(6000), 0),
            (Act::Serve, 0),
        ],
    );
    let r = run(&mut srv, &mut session(3, None), Vec::new(), 1000);
    assert_eq!(r.result, Ok(Saved { len: 10_000 }));
    assert_eq!(r.part, body);
    assert_eq!(r.retries.len(), 2);
    assert_eq!(r.retries[0].cause, Error::Broken);
    assert_eq!(
        r.retries[1].cause,
        Error::Exchange(ExchangeError::Framing(FramingError::Truncated {
            received: 6000
        }))
    );
    // The backoff doubles: 500 ms, then 1 s.
    assert_eq!(r.connects, [0, 500, 1500]);
    assert!(!srv.requests[0].contains("Range"));
    // The truncating server ignores ranges and sends the whole file: the part restarts at 0,
    // so the third try asks from 6,000.
    assert!(srv.requests[1].contains("\r\nRange: bytes=3000-\r\nIf-Range: \"v1\"\r\n"));
    assert!(srv.requests[2].contains("\r\nRange: bytes=6000-\r\nIf-Range: \"v1\"\r\n"));
}

#[test]
fn changed_validator_restarts_from_zero() {
    let old = file(8000, 6);
    let new = file(9000, 7);
    let mut srv = server(
        vec![("\"old\"", old), ("\"new\"", new.clone())],
        vec![(Act::Truncate(4000), 0), (Act::Serve, 1)],
    );
    let r = run(&mut srv, &mut session(1, None), Vec::new(), 777);
    assert_eq!(r.result, Ok(Saved { len: 9000 }));
    assert_eq!(
        r.part, new,
        "If-Range failed: a 200 rewrote the part from 0"
    );
    assert!(srv.requests[1].contains("If-Range: \"old\""));
}

#[test]
fn resume_from_a_part_and_a_complete_part() {
    let body = file(5000, 8);
    let mut srv = server(vec![("\"v\"", body.clone())], vec![(Act::Serve, 0)]);
    let resume = Resume {
        offset: 1234,
        validator: "\"v\"",
    };
    let r = run(
        &mut srv,
        &mut session(0, Some(resume)),
        body[..1234].to_vec(),
        300,
    );
    assert_eq!(r.result, Ok(Saved { len: 5000 }));
    assert_eq!(r.part, body);
    assert!(srv.requests[0].contains("\r\nRange: bytes=1234-\r\nIf-Range: \"v\"\r\n"));

    let whole = Resume {
        offset: 5000,
        validator: "\"v\"",
    };
    let r = run(&mut srv, &mut session(0, Some(whole)), body.clone(), 300);
    assert_eq!(
        r.result,
        Ok(Saved { len: 5000 }),
        "416 for the part's length"
    );
    assert_eq!(r.part, body);

    // A part of a bigger, older file: 416 with another size, then the whole file again.
    let stale = Resume {
        offset: 7000,
        validator: "\"v\"",
    };
    let r = run(&mut srv, &mut session(0, Some(stale)), file(7000, 9), 300);
    assert_eq!(r.result, Ok(Saved { len: 5000 }));
    assert_eq!(r.part, body);
    assert!(!srv.requests.last().expect("a request").contains("Range"));
}

#[test]
fn a_silent_head_and_a_stalled_body_time_out() {
    let body = file(50_000, 10);
    let mut srv = server(vec![("\"v\"", body.clone())], vec![(Act::Mute, 0)]);
    let r = run(&mut srv, &mut session(0, None), Vec::new(), 512);
    assert_eq!(r.result, Err(Error::Timeout));
    assert_eq!(r.end, 10_000, "the head deadline");

    let mut srv = server(
        vec![("\"v\"", body.clone())],
        vec![(Act::Stall(20_000), 0), (Act::Serve, 0)],
    );
    let r = run(&mut srv, &mut session(1, None), Vec::new(), 4096);
    assert_eq!(r.result, Ok(Saved { len: 50_000 }));
    assert_eq!(r.retries[0].cause, Error::Timeout);
    assert!(srv.requests[1].contains("Range: bytes=20000-"));
}

#[test]
fn a_dripping_body_times_out_but_a_slow_steady_one_does_not() {
    let body = file(20_000, 11);
    // 100 bytes per window: below the 1 KiB minimum.
    let mut srv = server(vec![("\"v\"", body.clone())], vec![(Act::Drip(100), 0)]);
    let r = run(&mut srv, &mut session(0, None), Vec::new(), 4096);
    assert_eq!(r.result, Err(Error::Timeout));
    // 2 KiB per window: slow but alive.
    let mut srv = server(vec![("\"v\"", body.clone())], vec![(Act::Drip(2048), 0)]);
    let r = run(&mut srv, &mut session(0, None), Vec::new(), 4096);
    assert_eq!(r.result, Ok(Saved { len: 20_000 }));
    assert_eq!(r.part, body);
}

#[test]
fn statuses_503_and_5xx_with_retry_after_are_retried_4xx_never() {
    let body = file(100, 12);
    let mut srv = server(
        vec![("\"v\"", body.clone())],
        vec![(Act::Status(503, None), 0), (Act::Serve, 0)],
    );
    let r = run(&mut srv, &mut session(1, None), Vec::new(), 64);
    assert_eq!(r.result, Ok(Saved { len: 100 }));
    assert_eq!(
        r.retries[0].cause,
        Error::Status(StatusCode::SERVICE_UNAVAILABLE)
    );

    let mut srv = server(
        vec![("\"v\"", body.clone())],
        vec![(Act::Status(500, Some("7")), 0), (Act::Serve, 0)],
    );
    let r = run(&mut srv, &mut session(1, None), Vec::new(), 64);
    assert_eq!(r.result, Ok(Saved { len: 100 }));
    assert_eq!(r.connects, [0, 7000], "Retry-After outweighs the backoff");

    for (code, after) in [
        (500, None),
        (404, None),
        (429, Some("1")),
        (503, Some("3600")),
    ] {
        let mut srv = server(
            vec![("\"v\"", body.clone())],
            vec![(Act::Status(code, after), 0), (Act::Serve, 0)],
        );
        let r = run(&mut srv, &mut session(3, None), Vec::new(), 64);
        let status = StatusCode::from_u16(code).unwrap();
        assert_eq!(r.result, Err(Error::Status(status)), "{code} {after:?}");
        assert!(r.retries.is_empty(), "{code} {after:?}");
    }
}

#[test]
fn retries_run_out() {
    let mut srv = server(
        vec![("\"v\"", file(9000, 13))],
        vec![(Act::Truncate(100), 0)],
    );
    let r = run(&mut srv, &mut session(2, None), Vec::new(), 512);
    assert!(
        matches!(r.result, Err(Error::Exchange(_))),
        "{:?}",
        r.result
    );
    assert_eq!(r.retries.len(), 2);
    assert_eq!(
        r.retries
            .iter()
            .map(|r| (r.attempt, r.of))
            .collect::<Vec<_>>(),
        vec![(1, 2), (2, 2)]
    );
    assert_eq!(r.part.len(), 100, "what arrived is kept for --continue");
}

#[test]
fn a_stale_kept_alive_connection_is_replaced_at_once_and_not_counted() {
    let body = file(3000, 14);
    for reset in [false, true] {
        let mut srv = server(vec![("\"v\"", body.clone())], vec![(Act::Serve, 0)]);
        let mut s = Download::new(
            URL,
            "h:8080",
            config(0),
            None,
            true,
            Instant::from_millis(0),
        )
        .expect("fits");
        let r = run_on(
            &mut srv,
            Some(Act::CloseIdle { reset }),
            &mut s,
            Vec::new(),
            512,
        );
        assert_eq!(r.result, Ok(Saved { len: 3000 }), "reset: {reset}");
        assert_eq!(r.part, body);
        assert_eq!(r.connects, [0], "one new connection, at once");
        assert!(r.retries.is_empty(), "not a retry");
        assert!(s.keep_alive());
    }
    // On a new connection the same failure is a real one.
    let mut srv = server(
        vec![("\"v\"", body.clone())],
        vec![(Act::CloseIdle { reset: false }, 0)],
    );
    let r = run(&mut srv, &mut session(0, None), Vec::new(), 512);
    assert_eq!(
        r.result,
        Err(Error::Exchange(ExchangeError::Closed {
            response_started: false
        }))
    );
}

#[test]
fn a_listing_must_be_a_200_of_the_type_asked_for() {
    let mut srv = server(vec![("\"v\"", file(10, 15))], vec![(Act::Serve, 0)]);
    let listing = Config {
        accept: Some("text/plain"),
        ..config(0)
    };
    let mut s =
        Download::new(URL, "h:8080", listing, None, false, Instant::from_millis(0)).expect("fits");
    let r = run(&mut srv, &mut s, Vec::new(), 64);
    assert_eq!(r.result, Err(Error::NotAccepted), "no Content-Type");
    assert!(srv.requests[0].contains("\r\nAccept: text/plain\r\n"));
}

#[test]
fn a_chunked_partial_that_ends_off_its_content_range_is_refused() {
    let resume = Resume {
        offset: 4,
        validator: "\"v\"",
    };
    let now = Instant::from_millis(0);
    let mut s = Download::new(URL, "h:8080", config(0), Some(resume), true, now).expect("fits");
    assert!(matches!(s.poll(now), Action::Send(r) if r.range_from == Some(4)));
    // Bytes 4-9 of 10 announced, 3 sent.
    let wire = b"HTTP/1.1 206 P\r\nContent-Range: bytes 4-9/10\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let mut used = 0;
    loop {
        let (n, event) = s.handle_input(now, &wire[used..]);
        used += n;
        if matches!(event, Event::Ended | Event::NeedMore) {
            break;
        }
    }
    assert_eq!(
        s.poll(now),
        Action::Done(Err(Error::Length {
            saved: 7,
            announced: 10
        }))
    );
}

#[test]
fn a_conditional_request_keeps_an_unchanged_copy_and_fetches_a_changed_one() {
    let body = file(3000, 16);
    let mut srv = server(vec![("\"v\"", body.clone())], vec![(Act::Serve, 0)]);
    let mut s = session(0, None);
    s.set_conditional(Some("\"v\""), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    let r = run(&mut srv, &mut s, b"old".to_vec(), 64);
    assert_eq!(r.result, Ok(Saved { len: 0 }));
    assert!(s.not_modified(), "304 means the copy is current");
    assert_eq!(r.part, b"old", "nothing written");
    assert!(srv.requests[0].contains("\r\nIf-None-Match: \"v\"\r\n"));
    assert!(srv.requests[0].contains("\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));

    let mut s = session(0, None);
    s.set_conditional(Some("\"old\""), None);
    let r = run(&mut srv, &mut s, Vec::new(), 64);
    assert_eq!(r.result, Ok(Saved { len: 3000 }));
    assert!(!s.not_modified());
    assert_eq!(r.part, body);

    // A 304 nobody asked for is never a success (this one also has bytes after its head).
    let mut srv = server(vec![("\"v\"", body)], vec![(Act::Status(304, None), 0)]);
    let mut s = session(0, None);
    let r = run(&mut srv, &mut s, Vec::new(), 64);
    assert!(r.result.is_err(), "{:?}", r.result);
    assert!(!s.not_modified());
}

#[test]
fn a_file_name_that_is_a_folder_is_an_error_not_a_saved_page() {
    let mut srv = server(
        vec![("\"v\"", file(10, 17))],
        vec![(Act::Redirect("/f/"), 0)],
    );
    let r = run(&mut srv, &mut session(0, None), Vec::new(), 64);
    assert_eq!(r.result, Err(Error::Folder));
    assert!(r.part.is_empty());
    // Another redirect is followed as before (this server redirects forever).
    let mut srv = server(
        vec![("\"v\"", file(10, 17))],
        vec![(Act::Redirect("/f/x"), 0)],
    );
    let r = run(&mut srv, &mut session(0, None), Vec::new(), 64);
    assert_eq!(r.result, Err(Error::TooManyRedirects));
}

#[test]
fn a_timeout_says_what_it_waited_for() {
    let mut srv = server(vec![("\"v\"", file(5000, 18))], vec![(Act::Mute, 0)]);
    let mut s = session(0, None);
    assert_eq!(
        run(&mut srv, &mut s, Vec::new(), 64).result,
        Err(Error::Timeout)
    );
    assert_eq!(s.waiting(), Some(super::session::Waiting::Head));
    let mut srv = server(vec![("\"v\"", file(5000, 18))], vec![(Act::Stall(10), 0)]);
    let mut s = session(0, None);
    assert_eq!(
        run(&mut srv, &mut s, Vec::new(), 64).result,
        Err(Error::Timeout)
    );
    assert_eq!(s.waiting(), Some(super::session::Waiting::Body));
}
