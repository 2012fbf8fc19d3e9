//! A child process under test: started from a [`ProcessBuilder`], waited
//! for until it answers, killed when dropped, its output kept in files.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a process may take to answer its ready check, and to exit
/// after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(60);

/// How much of the end of each log a failing test prints.
const LOG_TAIL: u64 = 16 * 1024;

/// How to start a process; see [`Process`].
#[derive(Debug)]
pub struct ProcessBuilder {
    name: String,
    spec: Spec,
    dir: TempDir,
}

/// Everything needed to start the process again.
#[derive(Clone, Debug)]
struct Spec {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    ready: Option<(u16, String)>,
    ready_tls: Option<crate::http::Tls>,
    max_open_files: Option<u32>,
}

impl ProcessBuilder {
    /// Runs `program`, named `name` in messages and in the name of its
    /// directory (created now, in the system's temporary directory).
    pub fn new(name: &str, program: impl Into<PathBuf>) -> ProcessBuilder {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .expect("a temporary directory for the process' files");
        ProcessBuilder {
            name: name.to_string(),
            spec: Spec {
                program: program.into(),
                args: Vec::new(),
                env: vec![("RUST_BACKTRACE".into(), "1".into())],
                cwd: None,
                ready: None,
                ready_tls: None,
                max_open_files: None,
            },
            dir,
        }
    }

    /// The process' own directory: `stdout.log` and `stderr.log`, and
    /// whatever its owner puts there (a configuration file, a data
    /// directory). Deleted with the [`Process`] unless a test failed.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> ProcessBuilder {
        self.spec.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> ProcessBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.spec.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (the rest is inherited).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> ProcessBuilder {
        self.spec.env.push((key.into(), value.into()));
        self
    }

    /// Runs the process in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> ProcessBuilder {
        self.spec.cwd = Some(dir.into());
        self
    }

    /// Waits, on start, until `GET http://127.0.0.1:<port><path>` answers
    /// 200.
    pub fn ready(mut self, port: u16, path: &str) -> ProcessBuilder {
        self.spec.ready = Some((port, path.to_string()));
        self
    }

    /// Makes the ready check (see [`ProcessBuilder::ready`]) over TLS.
    pub fn ready_tls(mut self, tls: crate::http::Tls) -> ProcessBuilder {
        self.spec.ready_tls = Some(tls);
        self
    }

    /// Runs the process with at most `n` open file descriptors (through
    /// `sh -c 'ulimit -n <n> && exec ...'`; the process keeps the pid).
    pub fn max_open_files(mut self, n: u32) -> ProcessBuilder {
        self.spec.max_open_files = Some(n);
        self
    }

    /// Starts the process and waits until it is ready (if [`ready`] was
    /// given). Panics, with the end of its output, if it exits first or is
    /// not ready within a minute.
    ///
    /// [`ready`]: ProcessBuilder::ready
    pub fn start(self) -> Process {
        let p = Process {
            name: self.name,
            stdout: self.dir.path().join("stdout.log"),
            stderr: self.dir.path().join("stderr.log"),
            spec: self.spec,
            child: Mutex::new(None),
            dir: Some(self.dir),
        };
        p.spawn();
        p
    }
}

/// A running child process, killed (SIGKILL) when dropped.
///
/// Its stdout and stderr are appended to `stdout.log` and `stderr.log` in
/// its [`dir`](Process::dir). When it is dropped while the thread panics
/// (a failing test), the end of both logs is printed and the directory
/// is kept; otherwise it is deleted.
///
/// Every method takes `&self`, so that threads of a test can share it.
#[derive(Debug)]
pub struct Process {
    name: String,
    spec: Spec,
    child: Mutex<Option<Child>>,
    dir: Option<TempDir>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Process {
    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&self) {
        let spec = &self.spec;
        let mut cmd = match spec.max_open_files {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&spec.program);
                c
            }
            None => Command::new(&spec.program),
        };
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(append(&self.stdout))
            .stderr(append(&self.stderr));
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", spec.program.display()));
        *self.lock() = Some(child);
        if let Some((port, path)) = &spec.ready {
            self.wait_ready(*port, path);
        }
    }

    fn wait_ready(&self, port: u16, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = match &self.spec.ready_tls {
                Some(tls) => crate::http::request_tls(port, tls, "GET", path, &[], b""),
                None => crate::http::request(port, "GET", path, &[], b""),
            };
            if answer.is_ok_and(|r| r.status == 200) {
                return;
            }
            if let Some(status) = self.try_wait() {
                panic!(
                    "{} exited before it was ready ({status}){}",
                    self.name,
                    self.log_tails()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} on port {port} was not ready after {PATIENCE:?}{}",
                    self.name,
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process' pid. Panics if it was killed or stopped.
    pub fn pid(&self) -> u32 {
        self.lock()
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
            .id()
    }

    /// Its exit status if it has exited, `None` while it runs. Panics if it
    /// was killed or stopped through this guard.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        self.lock()
            .as_mut()
            .unwrap_or_else(|| panic!("{} was already stopped", self.name))
            .try_wait()
            .expect("waiting for a child process")
    }

    /// Sends `signal` (a name for `kill -s`: `TERM`, `INT`, `KILL`) and
    /// returns at once.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -s {signal} {pid}: {status}");
    }

    /// Waits up to `timeout` for the process to exit; its status, or
    /// `None` if it still runs.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9` and wait for it; nothing if it is not running.
    pub fn kill9(&self) {
        if let Some(mut c) = self.lock().take() {
            c.kill().expect("killing a child process");
            c.wait().expect("waiting for a child process");
        }
    }

    /// SIGTERM, then waits for the exit (a minute at most, else panics);
    /// the exit status. A process that already exited only gives its
    /// status.
    pub fn terminate(&self) -> ExitStatus {
        if self.try_wait().is_none() {
            self.signal("TERM");
        }
        let status = self.wait_timeout(PATIENCE).unwrap_or_else(|| {
            panic!(
                "{} did not stop within {PATIENCE:?} of SIGTERM{}",
                self.name,
                self.log_tails()
            )
        });
        self.lock().take();
        status
    }

    /// Starts the process again, with the same arguments, after
    /// [`kill9`](Process::kill9) or [`terminate`](Process::terminate); its
    /// output is appended to the same logs.
    pub fn restart(&self) {
        assert!(
            self.lock().is_none(),
            "{} is still running; stop it before restarting it",
            self.name
        );
        let mut log = append(&self.stderr);
        let _ = writeln!(log, "--- restarted by the test ---");
        self.spawn();
    }

    /// The process' directory (see [`ProcessBuilder::dir`]).
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the directory lives as long as the guard")
            .path()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The end of both logs, for a panic message.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for (what, path) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let tail = tail(path, LOG_TAIL);
            if !tail.trim().is_empty() {
                out.push_str(&format!(
                    "\n--- {} {what} ({}) ---\n{tail}",
                    self.name,
                    path.display()
                ));
            }
        }
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.lock().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let tails = self.log_tails();
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "{} kept its files in {} (dropped during a panic){tails}",
                    self.name,
                    kept.display()
                );
            }
        }
    }
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The last `max` bytes of a file, as text.
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(max);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        format!("[{start} bytes before]\n{text}")
    } else {
        text
    }
}

/// Runs `cmd` to its end and returns its output; panics, with its
/// standard error, if it cannot start or fails. `what` names it in the
/// message.
pub(crate) fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_to_the_logs_and_the_exit_status_is_kept() {
        let p = ProcessBuilder::new("sh", "sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .start();
        let status = p.wait_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(p.stdout(), "out\n");
        assert_eq!(p.stderr(), "err\n");
        let dir = p.dir().to_path_buf();
        drop(p);
        assert!(!dir.exists(), "deleted when the test passes");
    }

    #[test]
    fn terminate_and_restart_append_to_the_same_logs() {
        let p = ProcessBuilder::new("sh", "sh")
            .args(["-c", "echo started; exec sleep 60"])
            .start();
        wait_out(&p, 1);
        assert!(p.try_wait().is_none());
        let status = p.terminate();
        assert!(!status.success(), "killed by SIGTERM: {status}");
        p.restart();
        wait_out(&p, 2);
        p.kill9();
        assert!(p.stderr().contains("restarted"));
    }

    #[test]
    fn a_file_descriptor_limit_keeps_the_pid() {
        let p = ProcessBuilder::new("sh", "sh")
            .args(["-c", "ulimit -n; echo $$; exec sleep 60"])
            .max_open_files(64)
            .start();
        wait_out(&p, 2);
        let out = p.stdout();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "64");
        assert_eq!(lines[1], p.pid().to_string());
    }

    #[test]
    fn a_failing_test_keeps_the_files() {
        let kept = std::thread::spawn(|| {
            let p = ProcessBuilder::new("sh", "sh")
                .args(["-c", "echo bye"])
                .start();
            p.wait_timeout(Duration::from_secs(10)).unwrap();
            let dir = p.dir().to_path_buf();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _p = p;
                panic!("the test fails");
            }));
            assert!(r.is_err());
            dir
        })
        .join()
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(kept.join("stdout.log")).unwrap(),
            "bye\n"
        );
        std::fs::remove_dir_all(kept).unwrap();
    }

    fn wait_out(p: &Process, lines: usize) {
        crate::wait_for(Duration::from_secs(10), "output", || {
            p.stdout().lines().count() >= lines
        });
    }
}
