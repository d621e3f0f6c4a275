//! Headless Chromium for the tests of what a person sees: find it, run it with a fresh profile
//! and a bounded wait, dump a page's DOM.
//!
//! Chromium missing: [`chromium`] says so and the test skips, unless `SATCHEL_REQUIRE_PEERS=1`
//! (CI), where it fails.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take (a loaded machine starts it slowly).
const BROWSER_WAIT: Duration = Duration::from_secs(90);

/// The Chromium binary on `PATH`, or `None` (said on stderr) when it is not installed.
///
/// # Panics
/// When it is missing and `SATCHEL_REQUIRE_PEERS=1`.
pub fn chromium() -> Option<PathBuf> {
    crate::required_tool(&["chromium", "chromium-browser"], "chromium")
}

/// Runs headless Chromium with `args` and a fresh profile; its stdout. Killed by its PID (and
/// its process group, which it leads) when it overruns [`BROWSER_WAIT`].
pub fn run_chromium(chromium: &Path, args: &[&OsStr]) -> Vec<u8> {
    use std::os::unix::process::CommandExt;
    let profile = tempfile::tempdir().unwrap();
    let mut user_data = std::ffi::OsString::from("--user-data-dir=");
    user_data.push(profile.path());
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(&user_data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn chromium");
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            // The group's id is the child's PID (process_group(0)).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::read(out.path()).unwrap()
}

/// The DOM of `url` after Chromium loaded it (`--dump-dom`).
pub fn dump_dom(chromium: &Path, url: &str) -> String {
    let dom = run_chromium(chromium, &["--dump-dom".as_ref(), url.as_ref()]);
    String::from_utf8(dom).expect("the DOM is UTF-8")
}
