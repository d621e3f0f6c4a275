//! The core's download session ([`Download`]), the one satchel-client runs, driven by the
//! core's embedded-nal driver over the smoltcp adapter (`NalStack`) as a board would run it,
//! against the smoltcp server on the same in-memory loopback interface.

use std::convert::Infallible;

use satchel_core::client::nal::{self, Buffers, Sink, Waiter};
use satchel_core::client::session::{
    Config, ConnectFailure, Download, Error, Resume, Saved, Start,
};
use satchel_core::client::{Plan, Url};
use satchel_core::smoltcp::core_instant;
use satchel_core::source::StaticSource;
use satchel_core::time::{Duration, Instant};
use satchel_tests::smol::{self, baked_site, host_clock, loopback_addr, BAKED, BIG, PORT};

/// The adapter polls the interface (and the server behind it) on every call, so waiting is
/// trying again; a board would sleep until its next interrupt here.
struct Spin;

impl Waiter for Spin {
    fn now(&mut self) -> Instant {
        core_instant(host_clock())
    }
    fn wait(&mut self, _deadline: Instant) {
        std::thread::yield_now();
    }
}

/// A part file in memory, and the validator stored beside it.
#[derive(Default)]
struct Part {
    bytes: Vec<u8>,
    validator: Option<String>,
    plans: Vec<Plan>,
}

impl Sink for Part {
    type Error = Infallible;
    fn start(&mut self, s: &Start<'_>) -> Result<(), Infallible> {
        self.plans.push(s.plan);
        match s.plan {
            Plan::Write { .. } => {
                self.bytes.clear();
                self.validator = s.validator.map(str::to_owned);
            }
            Plan::Append { offset, .. } => assert_eq!(offset, self.bytes.len() as u64),
            Plan::Complete | Plan::Restart => {}
        }
        Ok(())
    }
    fn body(&mut self, data: &[u8]) -> Result<(), Infallible> {
        self.bytes.extend_from_slice(data);
        Ok(())
    }
}

type Stack = smol::LoopStack<StaticSource>;
type Socket = <Stack as embedded_nal::TcpClientStack>::TcpSocket;

const HOST: &str = "127.0.0.1:8080";

/// Runs one download of `target` into `part`, reusing `socket` when it is open.
fn fetch(
    stack: &mut Stack,
    socket: &mut Option<Socket>,
    port: u16,
    target: &str,
    part: &mut Part,
    retries: u32,
) -> Result<Saved, Error> {
    let mut waiter = Spin;
    let url = Url {
        host: "127.0.0.1",
        port,
        target,
    };
    let (mut tx, mut rx) = ([0u8; 1024], [0u8; 4096]);
    let config = Config {
        timeout: Duration::from_secs(10),
        retries,
        head_capacity: rx.len(),
        accept: None,
    };
    let validator = part.validator.clone();
    let resume = validator.as_deref().map(|validator| Resume {
        offset: part.bytes.len() as u64,
        validator,
    });
    let now = waiter.now();
    let mut session =
        Download::new(url, HOST, config, resume, socket.is_some(), now).expect("target fits");
    let mut remote = loopback_addr();
    remote.set_port(port);
    let result = nal::download(
        stack,
        &mut waiter,
        socket,
        nal::connector(remote),
        &mut session,
        Buffers {
            tx: &mut tx,
            rx: &mut rx,
        },
        part,
    );
    result.map_err(|e| match e {
        nal::DownloadError::Session(e) => e,
        other => panic!("{other:?}"),
    })
}

#[test]
fn downloads_every_file_on_one_kept_alive_connection() {
    let mut stack = smol::loopback_world(baked_site());
    let mut socket = None;
    for file in BAKED {
        let mut part = Part::default();
        let target = format!("/{}", file.path);
        let saved = fetch(&mut stack, &mut socket, PORT, &target, &mut part, 0);
        assert_eq!(
            saved,
            Ok(Saved {
                len: file.data.len() as u64
            }),
            "{}",
            file.path
        );
        assert_eq!(part.bytes, file.data, "{}", file.path);
        assert!(socket.is_some(), "kept alive after {}", file.path);
    }
}

#[test]
fn resumes_with_if_range_and_restarts_on_another_version() {
    let mut stack = smol::loopback_world(baked_site());
    let mut socket = None;
    let mut whole = Part::default();
    fetch(&mut stack, &mut socket, PORT, "/big.bin", &mut whole, 0).expect("first download");
    let etag = whole.validator.clone().expect("a strong ETag");

    // A part cut at 7,000 bytes, saved under the right validator: only the rest is fetched.
    let mut part = Part {
        bytes: BIG[..7_000].to_vec(),
        validator: Some(etag),
        plans: Vec::new(),
    };
    let saved = fetch(&mut stack, &mut socket, PORT, "/big.bin", &mut part, 0);
    assert_eq!(
        saved,
        Ok(Saved {
            len: BIG.len() as u64
        })
    );
    assert_eq!(part.bytes, BIG);
    assert_eq!(
        part.plans,
        [Plan::Append {
            offset: 7_000,
            total: Some(BIG.len() as u64)
        }]
    );

    // A part of another version: If-Range fails, the whole file comes and replaces it.
    let mut stale = Part {
        bytes: b"bytes of another version".to_vec(),
        validator: Some("\"not-this-one\"".into()),
        plans: Vec::new(),
    };
    let saved = fetch(&mut stack, &mut socket, PORT, "/big.bin", &mut stale, 0);
    assert_eq!(
        saved,
        Ok(Saved {
            len: BIG.len() as u64
        })
    );
    assert_eq!(stale.bytes, BIG);
    assert!(matches!(stale.plans[..], [Plan::Write { .. }]));
}

#[test]
fn a_refused_port_fails_at_once_on_the_board_too() {
    let mut stack = smol::loopback_world(baked_site());
    let mut socket = None;
    let mut part = Part::default();
    let saved = fetch(&mut stack, &mut socket, PORT + 1, "/big.bin", &mut part, 3);
    assert_eq!(saved, Err(Error::Connect(ConnectFailure::Refused)));
    assert!(part.plans.is_empty());
    assert!(socket.is_none());
}
