//! A pipeline of download sessions and a scripted in-memory server that answers pipelined
//! requests in order, stepped on a fake clock (like [`super::pair`]): the order of answers,
//! a server closing after some responses, a redirect, a malformed answer and a 503 in the
//! middle of the line, and a slow reader.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::pipeline::{Action, Event, Pipeline};
use super::session::{Config, Download, Error, Retry, Saved};
use super::{ExchangeError, Plan, Url};
use crate::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// How the server treats the requests.
#[derive(Default)]
struct Script {
    /// Each connection answers this many requests, then closes: saying so with
    /// `Connection: close` (`true`) or just closing (`false`).
    close_after: Option<(usize, bool)>,
    /// A `302` from the first target to the second.
    redirect: Option<(&'static str, &'static str)>,
    /// This target gets a malformed response head (once).
    malformed: Option<&'static str>,
    /// This target gets one `503` with `Retry-After: 0` (and the connection stays open).
    unavailable: Option<&'static str>,
}

/// One connection's state on the server side.
struct Conn {
    out: Vec<u8>,
    answered: usize,
    /// The server closes once `out` is drained; later requests are not answered.
    closing: bool,
}

struct Server {
    files: Vec<(&'static str, Vec<u8>)>,
    script: Script,
    /// Every request, with the connection it arrived on.
    requests: Vec<(usize, String)>,
    connections: usize,
}

impl Server {
    fn answer(&mut self, conn: &mut Conn, request: &str) {
        self.requests.push((self.connections, request.to_string()));
        if conn.closing {
            return;
        }
        let target = request
            .strip_prefix("GET ")
            .and_then(|r| r.split(' ').next())
            .expect("a GET");
        let mut head = String::new();
        conn.answered += 1;
        let close = self.script.close_after.filter(|&(n, _)| conn.answered >= n);
        if let Some((_, announce)) = close {
            conn.closing = true;
            if announce {
                head.push_str("Connection: close\r\n");
            }
        }
        if self.script.malformed.take_if(|t| *t == target).is_some() {
            conn.out
                .extend(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n");
            return;
        }
        if self.script.unavailable.take_if(|t| *t == target).is_some() {
            conn.out.extend(
                format!(
                    "HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 4\r\n{head}\r\nbusy"
                )
                .bytes(),
            );
            return;
        }
        if let Some((_, to)) = self.script.redirect.filter(|(from, _)| *from == target) {
            conn.out.extend(
                format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n{head}\r\n")
                    .bytes(),
            );
            return;
        }
        let body = &self
            .files
            .iter()
            .find(|(t, _)| *t == target)
            .expect("a file")
            .1;
        conn.out.extend(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{target}\"\r\n{head}\r\n",
                body.len()
            )
            .bytes(),
        );
        conn.out.extend_from_slice(body);
    }
}

/// What a run saw.
struct Run {
    /// Each target's result and saved bytes, in the order they ended.
    done: Vec<(&'static str, Result<Saved, Error>, Vec<u8>)>,
    retries: Vec<Retry>,
    connects: usize,
    /// The most requests on the connection at once.
    max_in_flight: usize,
    end: Instant,
}

fn config() -> Config<'static> {
    Config {
        timeout: TIMEOUT,
        retries: 2,
        head_capacity: 1024,
        accept: None,
    }
}

/// Steps a pipeline of `N` slots, `depth` deep, over `server` until every target ended;
/// `step` bytes arrive per receive and each takes `tick` of the fake clock.
fn run<const N: usize>(
    server: &mut Server,
    targets: &[&'static str],
    depth: usize,
    step: usize,
    tick: Duration,
) -> Run {
    let mut pipeline: Pipeline<'static, N> = Pipeline::new(depth);
    let mut now = Instant::from_millis(0);
    let mut next = 0;
    let mut owner: Vec<Option<&'static str>> = vec![None; N];
    let mut parts: Vec<Vec<u8>> = vec![Vec::new(); N];
    let mut conn: Option<Conn> = None;
    let mut inbox: Vec<u8> = Vec::new();
    let mut run = Run {
        done: Vec::new(),
        retries: Vec::new(),
        connects: 0,
        max_in_flight: 0,
        end: now,
    };
    for _ in 0..100_000 {
        while pipeline.has_room() && next < targets.len() {
            let url = Url {
                host: "h",
                port: 80,
                target: targets[next],
            };
            let download = Download::new(url, "h", config(), None, false, now).expect("fits");
            let slot = pipeline.push(download).expect("room");
            owner[slot] = Some(targets[next]);
            parts[slot].clear();
            next += 1;
        }
        match pipeline.poll(now, true) {
            Action::Connect => {
                let deadline = pipeline.poll_timeout().expect("a connect deadline");
                assert_eq!(
                    deadline,
                    now + TIMEOUT,
                    "the connecting session's own deadline"
                );
                run.connects += 1;
                server.connections += 1;
                conn = Some(Conn {
                    out: Vec::new(),
                    answered: 0,
                    closing: false,
                });
                inbox.clear();
                pipeline.handle_connected(now);
            }
            Action::Send { request, .. } => {
                let mut buf = [0u8; 1024];
                let n = request.encode(&mut buf).expect("encodes");
                let text = String::from_utf8(buf[..n].to_vec()).expect("ascii");
                server.answer(conn.as_mut().expect("connected"), &text);
                run.max_in_flight = run.max_in_flight.max(pipeline.in_flight());
            }
            Action::Receive => {
                let c = conn.as_mut().expect("a connection");
                if c.out.is_empty() && inbox.is_empty() {
                    if c.closing {
                        pipeline.handle_eof(now);
                    } else {
                        now = pipeline.poll_timeout().expect("a deadline");
                        pipeline.handle_timeout(now);
                    }
                    continue;
                }
                let n = step.min(c.out.len());
                inbox.extend(c.out.drain(..n));
                now = now + tick;
                let mut used = 0;
                loop {
                    let (n, event) = pipeline.handle_input(now, &inbox[used..]);
                    used += n;
                    match event {
                        Event::NeedMore => break,
                        Event::Start { slot, start } => match start.plan {
                            Plan::Write { .. } => parts[slot].clear(),
                            Plan::Complete => {}
                            other => panic!("no resume here: {other:?}"),
                        },
                        Event::Body { slot, data } => parts[slot].extend_from_slice(data),
                    }
                }
                inbox.drain(..used);
                if n == 0 && used == 0 {
                    // Bytes buffered that nothing wants now: let time pass.
                    now = pipeline.poll_timeout().unwrap_or(now + tick);
                    pipeline.handle_timeout(now);
                }
            }
            Action::Retry { retry, .. } => run.retries.push(retry),
            Action::Wait(t) => {
                conn = None;
                inbox.clear();
                now = t;
            }
            Action::Done { slot, result } => {
                let target = owner[slot].take().expect("an owner");
                run.done
                    .push((target, result, core::mem::take(&mut parts[slot])));
                pipeline.remove(slot, now).expect("a session");
            }
            Action::Idle => {
                run.end = now;
                return run;
            }
        }
    }
    panic!("the pipeline never ended");
}

/// Distinct contents per file, of different lengths.
fn files(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    const NAMES: [&str; 8] = ["/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h"];
    NAMES[..n]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let len = 700 + 613 * i;
            (*name, (0..len).map(|j| (j * (i + 3)) as u8).collect())
        })
        .collect()
}

fn server(files: Vec<(&'static str, Vec<u8>)>, script: Script) -> Server {
    Server {
        files,
        script,
        requests: Vec::new(),
        connections: 0,
    }
}

/// Every file saved whole, as its own target's bytes.
fn assert_all_saved(run: &Run, files: &[(&'static str, Vec<u8>)]) {
    assert_eq!(run.done.len(), files.len());
    for (target, result, part) in &run.done {
        let body = &files.iter().find(|(t, _)| t == target).expect("asked").1;
        assert_eq!(
            *result,
            Ok(Saved {
                len: body.len() as u64
            }),
            "{target}"
        );
        assert_eq!(part, body, "{target} got its own bytes");
    }
}

fn targets(files: &[(&'static str, Vec<u8>)]) -> Vec<&'static str> {
    files.iter().map(|(t, _)| *t).collect()
}

#[test]
fn pipelined_answers_go_to_their_requests_in_any_read_size() {
    let f = files(8);
    for step in [1, 7, 100, 1000, 100_000] {
        let mut srv = server(f.clone(), Script::default());
        let r = run::<4>(&mut srv, &targets(&f), 4, step, Duration::from_millis(1));
        assert_all_saved(&r, &f);
        assert_eq!(r.connects, 1, "one connection");
        assert_eq!(r.max_in_flight, 4, "four requests in flight at once");
        assert_eq!(srv.requests.len(), 8, "each asked once");
        // Answered in the order asked.
        let order: Vec<_> = r.done.iter().map(|d| d.0).collect();
        assert_eq!(order, targets(&f));
    }
}

#[test]
fn depth_one_is_one_request_at_a_time_on_a_kept_alive_connection() {
    let f = files(3);
    let mut srv = server(f.clone(), Script::default());
    let r = run::<4>(&mut srv, &targets(&f), 1, 64, Duration::from_millis(1));
    assert_all_saved(&r, &f);
    assert_eq!((r.connects, r.max_in_flight), (1, 1));
}

#[test]
fn a_server_closing_after_some_answers_gets_the_rest_again_on_new_connections() {
    let f = files(7);
    for announce in [true, false] {
        let mut srv = server(
            f.clone(),
            Script {
                close_after: Some((2, announce)),
                ..Script::default()
            },
        );
        let r = run::<4>(&mut srv, &targets(&f), 4, 333, Duration::from_millis(1));
        assert_all_saved(&r, &f);
        assert_eq!(
            r.connects, 4,
            "two answers per connection (announce: {announce})"
        );
        assert!(r.retries.is_empty(), "unanswered requests are no retries");
        assert!(
            srv.requests.len() > 7,
            "unanswered requests were sent again"
        );
        // No file was answered twice: each target's 200 went to one request.
        let order: Vec<_> = r.done.iter().map(|d| d.0).collect();
        assert_eq!(order, targets(&f));
    }
}

#[test]
fn a_redirect_mid_line_is_followed_behind_the_others() {
    let mut f = files(5);
    f.push(("/moved", vec![b'm'; 999]));
    let mut srv = server(
        f.clone(),
        Script {
            redirect: Some(("/b", "/moved")),
            ..Script::default()
        },
    );
    let asked = targets(&f[..5]);
    let r = run::<4>(&mut srv, &asked, 4, 500, Duration::from_millis(1));
    assert_eq!(r.connects, 1, "the redirect stays on the connection");
    let b = r.done.iter().find(|d| d.0 == "/b").expect("/b ended");
    assert_eq!(b.1, Ok(Saved { len: 999 }));
    assert_eq!(b.2, vec![b'm'; 999], "/b saved the redirect's target");
    assert_eq!(r.done.len(), 5);
    for (target, result, part) in r.done.iter().filter(|d| d.0 != "/b") {
        let body = &f.iter().find(|(t, _)| t == target).expect("asked").1;
        assert_eq!(
            (result, part),
            (
                &Ok(Saved {
                    len: body.len() as u64
                }),
                body
            )
        );
    }
    // The redirected request went out after the ones already on the connection.
    let gets: Vec<_> = srv
        .requests
        .iter()
        .map(|(_, r)| r.split(' ').nth(1).unwrap_or_default().to_string())
        .collect();
    let moved = gets.iter().position(|g| g == "/moved").expect("asked");
    assert!(moved > gets.iter().position(|g| g == "/d").expect("asked"));
}

#[test]
fn a_malformed_answer_mid_line_fails_its_request_and_the_rest_are_asked_again() {
    let f = files(6);
    let mut srv = server(
        f.clone(),
        Script {
            malformed: Some("/c"),
            ..Script::default()
        },
    );
    let r = run::<4>(&mut srv, &targets(&f), 4, 200, Duration::from_millis(1));
    assert_eq!(r.done.len(), 6);
    for (target, result, part) in &r.done {
        if *target == "/c" {
            assert!(
                matches!(result, Err(Error::Exchange(ExchangeError::Head(_)))),
                "{result:?}"
            );
            assert!(part.is_empty());
        } else {
            let body = &f.iter().find(|(t, _)| t == target).expect("asked").1;
            assert_eq!(
                (result, part),
                (
                    &Ok(Saved {
                        len: body.len() as u64
                    }),
                    body
                )
            );
        }
    }
    assert_eq!(
        r.connects, 2,
        "the connection is dropped after the bad answer"
    );
    assert!(r.retries.is_empty(), "a malformed answer is not retried");
    // /d was on the first connection behind /c and was asked again on the second.
    let d: Vec<_> = srv
        .requests
        .iter()
        .filter(|(_, r)| r.starts_with("GET /d "))
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(d, [1, 2]);
}

#[test]
fn a_503_mid_line_backs_off_that_file_only() {
    let f = files(5);
    let mut srv = server(
        f.clone(),
        Script {
            unavailable: Some("/b"),
            ..Script::default()
        },
    );
    let r = run::<4>(&mut srv, &targets(&f), 4, 400, Duration::from_millis(1));
    assert_all_saved(&r, &f);
    assert_eq!(r.retries.len(), 1);
    assert_eq!(r.retries[0].cause, Error::Status(503));
    assert_eq!(
        r.connects, 3,
        "the retry starts on a new connection, the rest too"
    );
    assert_eq!(
        r.done.last().map(|d| d.0),
        Some("/b"),
        "/b waited out its backoff"
    );
}

#[test]
fn a_slow_reader_does_not_time_out_the_requests_waiting_in_line() {
    // Each read brings 1500 bytes and takes a third of the timeout: every response keeps its
    // progress windows, but the whole line takes many timeouts to read. A request's limits
    // start when the response before it ends, not when it was sent.
    let f = files(8);
    let tick = Duration::from_millis(TIMEOUT.as_millis() / 3);
    for step in [1031, 1500, 2047] {
        let mut srv = server(f.clone(), Script::default());
        let r = run::<8>(&mut srv, &targets(&f), 8, step, tick);
        assert_all_saved(&r, &f);
        assert_eq!((r.connects, r.max_in_flight), (1, 8));
        assert!(r.retries.is_empty());
        assert!(
            r.end.as_millis() > 3 * TIMEOUT.as_millis(),
            "{}",
            r.end.as_millis()
        );
    }
}
