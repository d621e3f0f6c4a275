//! satchel-client: downloads files from a satchel server (or any HTTP/1.1 server) and never
//! leaves a broken file behind.
//!
//! ```text
//! satchel-client HOST PORT NAME... [-d DEST_DIR]
//! satchel-client HOST PORT NAME DEST_DIR          (the seed's order)
//! satchel-client URL... [-d DEST_DIR]             (URL = http://HOST[:PORT]/PATH)
//! satchel-client HOST PORT --list PATH            (or --list URL)
//! satchel-client HOST PORT -r FOLDER... [-d DEST_DIR] [--delete]
//! ```
//!
//! The protocol logic (request, response parsing, framing, redirects, retries, resume
//! decisions, timeouts, safe names) is in `satchel_core::client` and its download session; this
//! binary supplies sockets, files, the command line and the progress bar.

mod fail;
mod mirror;
mod net;
mod progress;
mod session;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use satchel_core::client::target::{encode_typed, local_name, Typed, MAX_TARGET};
use satchel_core::client::Url;
use satchel_core::time::Duration;

use fail::{Fail, EXIT_CODES_HELP, EXIT_OK};
use mirror::MirrorOptions;
use session::{FileJob, Options, Save, Session};

/// Download files over HTTP/1.1, atomically: the final file holds the whole content or is
/// untouched.
#[derive(Debug, Parser)]
#[command(name = "satchel-client", version, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// `HOST PORT NAME...`, or `URL...` (http://HOST[:PORT]/PATH). Spaces and non-ASCII
    /// characters are percent-encoded; a `%XX` escape is kept as written. The seed's
    /// `HOST PORT NAME DEST_DIR` (exactly four, without -d) and `URL... DEST_DIR` always take
    /// DEST_DIR as a folder, created if missing
    #[arg(value_name = "ARGS")]
    args: Vec<String>,

    /// Folder to save into (default: the current folder), created at the first byte
    #[arg(short = 'd', long = "dest", value_name = "DEST_DIR")]
    dest: Option<PathBuf>,

    /// Save the (single) download as FILE
    #[arg(short = 'o', long = "output", value_name = "FILE", conflicts_with_all = ["dest", "list", "recursive"])]
    output: Option<PathBuf>,

    /// Replace an existing file
    #[arg(long)]
    force: bool,

    /// Resume a .part file left by an earlier run (Range + If-Range; a rerun does so anyway,
    /// and says so); on a file that exists, check it against the server: unchanged is
    /// success ("already complete")
    #[arg(short = 'c', long = "continue")]
    resume: bool,

    /// Retries after what can pass (a timeout, a broken or cut-short transfer, a 503 or a 5xx
    /// with Retry-After; never a refused connection or a 4xx), resuming where the last try
    /// stopped
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: u32,

    /// Seconds allowed for connecting and for the whole response head; while the body lasts,
    /// every such window must bring at least 1 KiB
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,

    /// No progress bar, no notices, no mirror summary
    #[arg(short, long)]
    quiet: bool,

    /// Print the entries of the folder PATH (from the server's text listing)
    #[arg(long, value_name = "PATH", conflicts_with = "recursive")]
    list: Option<String>,

    /// Mirror the folders named into DEST_DIR; a folder mirrored before is updated: only
    /// what changed is fetched (If-None-Match / If-Modified-Since, from its .satchel-mirror
    /// record), saved files get the server's Last-Modified time
    #[arg(short, long)]
    recursive: bool,

    /// With -r: remove files in DEST_DIR's mirrored folders that the server no longer lists
    #[arg(long, requires = "recursive")]
    delete: bool,

    /// Do not flush files to disk before renaming them (as wget and curl): a crash of the
    /// machine (not of the client) may then leave a final name with missing bytes
    #[arg(long)]
    no_sync: bool,

    /// With -r: connections used at once for the files
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,

    /// With -r or several names: requests sent ahead on a connection while earlier answers arrive (HTTP/1.1
    /// pipelining; 1 sends one at a time). Requests a server leaves unanswered when it closes
    /// are sent again on a new connection
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    pipeline: u16,
}

/// One thing to fetch.
#[derive(Debug)]
struct Job {
    host: String,
    port: u16,
    target: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(fail) => {
            eprintln!("satchel-client: {fail}");
            ExitCode::from(fail.code)
        }
    }
}

fn is_url(s: &str) -> bool {
    s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
        || s.contains("://")
}

/// Splits the positional arguments into jobs and the destination folder.
fn plan_jobs(cli: &Cli) -> Result<(Vec<Job>, PathBuf), Fail> {
    let mut args: Vec<&str> = cli.args.iter().map(String::as_str).collect();
    let looks_like_dir =
        |s: &str| s.ends_with('/') || Path::new(s).is_dir() || s == "." || s == "..";
    let mut dest = cli.dest.clone();

    let url_form = args.first().is_some_and(|a| is_url(a));
    let names_from = if url_form { 0 } else { 2 };
    // The seed's trailing DEST_DIR, only without -d: after URLs, any argument that is not a
    // URL; in the seed's own form `HOST PORT NAME DIR`, always; with more names, only when it
    // is clearly a folder.
    if dest.is_none() && cli.output.is_none() && args.len() > names_from + 1 {
        let seed = !url_form && args.len() == 4;
        if let Some(last) = args
            .last()
            .copied()
            .filter(|l| !is_url(l) && (url_form || seed || looks_like_dir(l)))
        {
            dest = Some(PathBuf::from(last));
            args.pop();
        }
    }
    let dest = dest.unwrap_or_else(|| PathBuf::from("."));

    let mut jobs = Vec::new();
    if url_form {
        for a in &args {
            jobs.push(url_job(a)?);
        }
    } else {
        let [host, port, names @ ..] = args.as_slice() else {
            return Err(Fail::usage("expected HOST PORT NAME... or URL..."));
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| Fail::usage(format!("{port}: not a port number")))?;
        if names.is_empty() && cli.list.is_none() {
            return Err(Fail::usage("no NAME to download"));
        }
        for name in names {
            if is_url(name) {
                return Err(Fail::usage(format!(
                    "{name}: mix of URL and HOST PORT forms"
                )));
            }
            let target = typed_target(name, Typed::Name)?;
            jobs.push(Job {
                host: (*host).to_owned(),
                port,
                target: target.to_owned(),
            });
        }
        if jobs.is_empty() {
            // --list with HOST PORT only: remember the server.
            jobs.push(Job {
                host: (*host).to_owned(),
                port,
                target: String::new(),
            });
        }
    }
    Ok((jobs, dest))
}

/// What the user typed, percent-encoded as browsers and wget do (see [`encode_typed`]).
fn typed_target(typed: &str, kind: Typed) -> Result<String, Fail> {
    let mut buf = [0u8; MAX_TARGET];
    encode_typed(typed, kind, &mut buf)
        .map(str::to_owned)
        .map_err(|e| Fail::usage(format!("{typed}: {e}")))
}

/// A job from a URL, its path and query percent-encoded.
fn url_job(text: &str) -> Result<Job, Fail> {
    let url = Url::parse(text).map_err(|e| Fail::usage(format!("{text}: {e}")))?;
    Ok(Job {
        host: url.host.to_owned(),
        port: url.port,
        target: typed_target(url.target, Typed::Url)?,
    })
}

fn run(cli: &Cli) -> Result<u8, Fail> {
    let opts = Options {
        force: cli.force,
        resume: cli.resume,
        retries: cli.retries,
        timeout: Duration::from_secs(cli.timeout.max(1)),
        // Several files at once on several connections: a summary instead of a bar.
        progress: !cli.quiet && !cli.recursive,
        verbose: !cli.quiet,
        sync: !cli.no_sync,
    };
    let mirror_opts = MirrorOptions {
        delete: cli.delete,
        connections: usize::from(cli.connections),
        pipeline: usize::from(cli.pipeline),
    };

    if let Some(path) = &cli.list {
        return list(cli, path, opts);
    }

    if cli.args.is_empty() {
        return Err(Fail::usage(
            "expected HOST PORT NAME... or URL... (see --help)",
        ));
    }
    let (jobs, dest_dir) = plan_jobs(cli)?;
    if cli.output.is_some() && jobs.len() != 1 {
        return Err(Fail::usage("-o FILE takes exactly one download"));
    }
    // Every name is checked before anything is fetched, so a bad one cannot leave half a batch.
    let mut dests = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let dest = match (&cli.output, cli.recursive) {
            (Some(file), _) => file.clone(),
            (None, recursive) => {
                let mut buf = [0u8; MAX_TARGET];
                // A folder to mirror is named by its last segment, trailing slash or not.
                let folder = if recursive {
                    job.target.trim_end_matches('/')
                } else {
                    job.target.as_str()
                };
                match local_name(folder, &mut buf) {
                    Ok(name) => dest_dir.join(name),
                    // Mirroring the server's root folder saves straight into DEST_DIR.
                    Err(_) if recursive && folder.is_empty() => dest_dir.clone(),
                    Err(e) => return Err(Fail::usage(format!("{}: {e}", job.target))),
                }
            }
        };
        dests.push(dest);
    }

    // DEST_DIR is created when the first byte of a file arrives, never for a failure.
    let make_dir = cli.output.is_none().then_some(dest_dir.as_path());
    let mut session: Option<Session> = None;
    let mut first_failure: Option<Fail> = None;
    let mut skipped = false;
    let mut i = 0;
    while let (Some(job), Some(dest)) = (jobs.get(i), dests.get(i)) {
        let s = match &mut session {
            Some(s) if s.is_for(&job.host, job.port) => s,
            _ => session.insert(Session::new(&job.host, job.port, opts.clone())),
        };
        if cli.recursive {
            let summary = mirror::mirror(s, &job.target, dest, &opts, mirror_opts);
            match summary.first {
                Some(fail) => {
                    first_failure.get_or_insert(fail);
                }
                None if summary.skipped > 0 => skipped = true,
                None => {}
            }
            i += 1;
            continue;
        }
        // The names that follow on the same server (each saved under its own name) go on one
        // connection, pipelined.
        let mut names = std::collections::HashSet::new();
        let run = jobs[i..]
            .iter()
            .zip(&dests[i..])
            .take_while(|(j, d)| s.is_for(&j.host, j.port) && names.insert(d.as_path()))
            .count();
        let failures = if run > 1 && cli.pipeline > 1 {
            download_several(
                s,
                &jobs[i..i + run],
                &dests[i..i + run],
                make_dir,
                cli,
                &opts,
            )
        } else {
            let label = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let save = Save {
                make_dir,
                ..Save::default()
            };
            s.download(&job.target, dest, &label, save)
                .err()
                .into_iter()
                .collect()
        };
        for fail in failures {
            eprintln!("satchel-client: {fail}");
            first_failure.get_or_insert(fail);
        }
        i += run.max(1);
    }
    Ok(match first_failure {
        Some(f) => f.code,
        None if skipped => fail::EXIT_SKIPPED,
        None => EXIT_OK,
    })
}

/// Several names on one server, pipelined on one connection (no progress bars: several files
/// arrive at once); returns the failures in the order the downloads ended.
fn download_several(
    s: &mut Session,
    jobs: &[Job],
    dests: &[PathBuf],
    make_dir: Option<&Path>,
    cli: &Cli,
    opts: &Options,
) -> Vec<Fail> {
    let quiet = Options {
        progress: false,
        ..opts.clone()
    };
    let mut next = jobs.iter().zip(dests).enumerate();
    let mut failures = Vec::new();
    let next_file = || {
        let (i, (job, dest)) = next.next()?;
        let label = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = FileJob::prepare(&quiet, dest, &label, make_dir, None);
        Some((i, job.target.as_str(), file))
    };
    let done = |_: usize, result: Result<_, Fail>, _: Option<&mut _>| {
        if let Err(fail) = result {
            failures.push(fail);
        }
    };
    if let Err(fail) = s.download_pipelined(usize::from(cli.pipeline), next_file, done, None) {
        failures.push(fail);
    }
    failures
}

/// `--list PATH`: PATH is a URL, or a path on the server named by HOST PORT (or by a URL among
/// the positionals).
fn list(cli: &Cli, path: &str, opts: Options) -> Result<u8, Fail> {
    let (host, port, target) = if is_url(path) {
        let job = url_job(path)?;
        (job.host, job.port, job.target)
    } else {
        let (jobs, _) = plan_jobs(cli)?;
        let job = jobs
            .first()
            .ok_or_else(|| Fail::usage("--list PATH needs HOST PORT or a URL"))?;
        (job.host.clone(), job.port, typed_target(path, Typed::Name)?)
    };
    Session::new(&host, port, opts).list(&target)?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("satchel-client").chain(args.iter().copied()))
            .expect("parses")
    }

    fn targets(jobs: &[Job]) -> Vec<(&str, u16, &str)> {
        jobs.iter()
            .map(|j| (j.host.as_str(), j.port, j.target.as_str()))
            .collect()
    }

    #[test]
    fn host_port_names() {
        let args = ["h", "8080", "a b", "dir/c", "e%41é"];
        let (jobs, dest) = plan_jobs(&cli(&args)).expect("plans");
        assert_eq!(
            targets(&jobs),
            [
                ("h", 8080, "/a%20b"),
                ("h", 8080, "/dir/c"),
                ("h", 8080, "/e%41%C3%A9")
            ]
        );
        assert_eq!(dest, Path::new("."));
    }

    #[test]
    fn seed_order_takes_a_folder_last() {
        let (jobs, dest) = plan_jobs(&cli(&["h", "8080", "a", "out/"])).expect("plans");
        assert_eq!(targets(&jobs), [("h", 8080, "/a")]);
        assert_eq!(dest, Path::new("out/"));
        let (_, dest) = plan_jobs(&cli(&["http://h/x", "/"])).expect("plans");
        assert_eq!(dest, Path::new("/"));
        // The seed's own form: the fourth is a folder even if it does not exist yet.
        let (jobs, dest) = plan_jobs(&cli(&["h", "8080", "a", "not-yet"])).expect("plans");
        assert_eq!(targets(&jobs), [("h", 8080, "/a")]);
        assert_eq!(dest, Path::new("not-yet"));
        let (jobs, dest) = plan_jobs(&cli(&["http://h/a b", "out"])).expect("plans");
        assert_eq!(targets(&jobs), [("h", 80, "/a%20b")]);
        assert_eq!(dest, Path::new("out"));
        // With -d, the last positional is a name like the others.
        let (jobs, dest) = plan_jobs(&cli(&["h", "1", "a", "b/", "-d", "d"])).expect("plans");
        assert_eq!(jobs.len(), 2);
        assert_eq!(dest, Path::new("d"));
    }

    #[test]
    fn urls() {
        let (jobs, _) = plan_jobs(&cli(&["http://h:81/x/y?q", "HTTP://[::1]/z"])).expect("plans");
        assert_eq!(targets(&jobs), [("h", 81, "/x/y?q"), ("[::1]", 80, "/z")]);
    }

    #[test]
    fn bad_forms_are_usage_errors() {
        for args in [
            &["h"][..],
            &["h", "0", "x"],
            &["h", "port", "x"],
            &["h", "80"],
            &["http://h/x", "h2", "80"],
            &["h", "80", "http://h/x"],
            &["ftp://h/x"],
        ] {
            let err = plan_jobs(&cli(args)).err().map(|f| f.code);
            assert_eq!(err, Some(fail::EXIT_USAGE), "{args:?}");
        }
    }
}
