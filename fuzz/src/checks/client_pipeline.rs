//! `client_pipeline`: download sessions pipelined over one connection ([`Pipeline`]) against a
//! server that answers pipelined requests in order, on a fake clock.
//!
//! Input ([`Reader`] encoding): how many files (1-4, each of a chosen length, distinct bytes),
//! the pipeline's depth (1-4), the receive buffer's size and the sizes of the reads, then
//! either a *scripted* server: after how many answers each connection closes (never, or 1-5)
//! and whether it says `Connection: close`, and for each answer in turn what it is (the file
//! with `Content-Length`, the file chunked, a `302` to another name for the same file, a
//! `404`); or *raw* bytes that every connection sends, then closes.
//!
//! Properties:
//! - no panic, and the pipeline ends every download (bounded steps);
//! - scripted: every download ends with its own file's bytes, byte for byte (never another
//!   file's answer), or with the `404` the server gave that name; a server closing after some
//!   answers costs no retry;
//! - raw: whatever the bytes, a download that ends well saved exactly the length it reports.

use satchel_core::client::pipeline::{Action, Event, Pipeline};
use satchel_core::client::session::{Config, Download, Error, Saved};
use satchel_core::client::{Plan, Url};
use satchel_core::time::{Duration, Instant};

use super::Reader;

const NAMES: [&str; 4] = ["/a", "/b", "/c", "/d"];
const MOVED: [&str; 4] = ["/ma", "/mb", "/mc", "/md"];

/// What the server does.
enum Script {
    /// Answers each request by the next act; closes each connection after `close_after`
    /// answers (0: never), announcing it when `announce`.
    Scripted {
        close_after: usize,
        announce: bool,
        acts: Vec<u8>,
        next_act: usize,
        /// Names answered `404`.
        missing: Vec<usize>,
    },
    /// Every connection sends these bytes, then closes.
    Raw(Vec<u8>),
}

struct Conn {
    out: Vec<u8>,
    answered: usize,
    closing: bool,
}

fn file(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u8).wrapping_mul(13).wrapping_add(i as u8 * 64 + 1))
        .collect()
}

impl Script {
    fn answer(&mut self, conn: &mut Conn, request: &str, files: &[Vec<u8>]) {
        let Self::Scripted {
            close_after,
            announce,
            acts,
            next_act,
            missing,
        } = self
        else {
            return;
        };
        if conn.closing {
            return;
        }
        let target = request.split(' ').nth(1).unwrap_or_default();
        let index = NAMES
            .iter()
            .chain(&MOVED)
            .position(|n| *n == target)
            .map(|p| p % 4)
            .expect("a name the client was given");
        conn.answered += 1;
        let mut extra = String::new();
        if *close_after > 0 && conn.answered >= *close_after {
            conn.closing = true;
            if *announce {
                extra.push_str("Connection: close\r\n");
            }
        }
        let act = acts.get(*next_act).copied().unwrap_or(0) % 4;
        *next_act += 1;
        let body = &files[index];
        let out = &mut conn.out;
        match act {
            2 if NAMES.contains(&target) => out.extend(
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n{extra}\r\n",
                    MOVED[index]
                )
                .bytes(),
            ),
            3 => {
                missing.push(index);
                out.extend(
                    format!("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n{extra}\r\nno").bytes(),
                );
            }
            1 => {
                out.extend(
                    format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{extra}\r\n").bytes(),
                );
                for chunk in body.chunks(97) {
                    out.extend(format!("{:x}\r\n", chunk.len()).bytes());
                    out.extend_from_slice(chunk);
                    out.extend(b"\r\n");
                }
                out.extend(b"0\r\n\r\n");
            }
            _ => {
                out.extend(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}\r\n",
                        body.len()
                    )
                    .bytes(),
                );
                out.extend_from_slice(body);
            }
        }
    }
}

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let count = 1 + r.below(4);
    let files: Vec<Vec<u8>> = (0..4)
        .map(|i| file(i, usize::from(r.u16() % 1500)))
        .collect();
    let depth = 1 + r.below(4);
    let capacity = 128 + usize::from(r.u16() % 1024);
    let reads: Vec<usize> = (0..4).map(|_| 1 + usize::from(r.u8())).collect();
    let mut script = if r.bool() {
        Script::Scripted {
            close_after: r.below(6),
            announce: r.bool(),
            acts: r.bytes().to_vec(),
            next_act: 0,
            missing: Vec::new(),
        }
    } else {
        Script::Raw(r.rest().to_vec())
    };
    let config = Config {
        timeout: Duration::from_secs(10),
        retries: 2,
        head_capacity: capacity,
        accept: None,
    };

    let mut pipeline: Pipeline<'static, 4> = Pipeline::new(depth);
    let mut now = Instant::from_millis(0);
    let mut next = 0;
    let mut owner = [None; 4];
    let mut parts: Vec<Vec<u8>> = vec![Vec::new(); 4];
    let mut ended: Vec<(usize, Result<Saved, Error>, Vec<u8>)> = Vec::new();
    let mut retries = 0;
    let mut conn: Option<Conn> = None;
    let mut inbox: Vec<u8> = Vec::new();
    let mut read = 0;
    for _ in 0..200_000 {
        while pipeline.has_room() && next < count {
            let url = Url {
                host: "h",
                port: 80,
                target: NAMES[next],
            };
            let download = Download::new(url, "h", config, None, false, now).expect("fits");
            let slot = pipeline.push(download).expect("room");
            owner[slot] = Some(next);
            parts[slot].clear();
            next += 1;
        }
        match pipeline.poll(now, true) {
            Action::Connect => {
                let mut c = Conn {
                    out: Vec::new(),
                    answered: 0,
                    closing: false,
                };
                if let Script::Raw(raw) = &script {
                    c.out.extend_from_slice(raw);
                    c.closing = true;
                }
                conn = Some(c);
                inbox.clear();
                pipeline.handle_connected(now);
            }
            Action::Send { request, .. } => {
                // A redirect's target may be as long as the client keeps (3 KiB).
                let mut buf = vec![0u8; 8192];
                let n = request.encode(&mut buf).expect("encodes");
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                script.answer(conn.as_mut().expect("connected"), &text, &files);
            }
            Action::Receive => {
                let c = conn.as_mut().expect("a connection while receiving");
                if c.out.is_empty() {
                    if c.closing {
                        pipeline.handle_eof(now);
                    } else {
                        now = pipeline.poll_timeout().expect("a deadline");
                        pipeline.handle_timeout(now);
                    }
                    continue;
                }
                let n = reads[read % reads.len()].min(c.out.len());
                read += 1;
                inbox.extend(c.out.drain(..n));
                let mut used = 0;
                loop {
                    let (n, event) = pipeline.handle_input(now, &inbox[used..]);
                    assert!(used + n <= inbox.len(), "consumed more than fed");
                    used += n;
                    match event {
                        Event::NeedMore => break,
                        Event::Start { slot, start } => match start.plan {
                            Plan::Write { .. } => parts[slot].clear(),
                            Plan::Append { offset, .. } => {
                                assert_eq!(offset, parts[slot].len() as u64, "append at the end");
                            }
                            Plan::Complete | Plan::Restart => {}
                        },
                        Event::Body { slot, data } => parts[slot].extend_from_slice(data),
                    }
                }
                inbox.drain(..used);
            }
            Action::Retry { .. } => retries += 1,
            Action::Wait(t) => {
                assert!(t >= now, "time goes forward");
                conn = None;
                inbox.clear();
                now = t;
            }
            Action::Done { slot, result } => {
                let index = owner[slot].take().expect("a download in the slot");
                ended.push((index, result, std::mem::take(&mut parts[slot])));
                pipeline.remove(slot, now).expect("a session");
            }
            Action::Idle => {
                assert_eq!(ended.len(), count, "every download ended once");
                return verify(&script, &files, &ended, retries);
            }
        }
    }
    panic!("the pipeline did not end its downloads");
}

fn verify(
    script: &Script,
    files: &[Vec<u8>],
    ended: &[(usize, Result<Saved, Error>, Vec<u8>)],
    retries: usize,
) {
    for (index, result, part) in ended {
        match (script, result) {
            (Script::Raw(_), Ok(saved)) => {
                assert_eq!(saved.len, part.len() as u64, "saved what it reports");
            }
            (Script::Raw(_), Err(_)) => {}
            (Script::Scripted { .. }, Ok(saved)) => {
                assert_eq!(part, &files[*index], "{} got its own file", NAMES[*index]);
                assert_eq!(saved.len, part.len() as u64);
            }
            (Script::Scripted { missing, .. }, Err(e)) => {
                assert!(
                    *e == Error::Status(404) && missing.contains(index),
                    "{} failed with {e:?} from an honest server",
                    NAMES[*index]
                );
            }
        }
    }
    if let Script::Scripted { .. } = script {
        assert_eq!(
            retries, 0,
            "a server closing between answers costs no retry"
        );
    }
}
