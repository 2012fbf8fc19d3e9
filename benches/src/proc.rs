//! Running a server as a child process and measuring the CPU time it
//! used, and a minimal keep-alive HTTP/1.1 client for load.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::port::free_port;

/// CPU seconds (user + system) used by children this process has waited
/// for.
pub fn children_cpu_seconds() -> f64 {
    // Read /proc/self/stat's cutime and cstime (getrusage would need
    // unsafe FFI, which the workspace forbids).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is index 0; cutime is field 16 of
    // the full line, which is index 13 here; cstime index 14.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = clock_ticks();
    (ticks(13) + ticks(14)) / hz
}

fn clock_ticks() -> f64 {
    // The kernel's USER_HZ is 100 on every Linux we run on.
    100.0
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Spawns `cmd` and waits until `GET http://127.0.0.1:{port}{ready}`
/// answers 200.
pub fn spawn_ready(cmd: &mut Command, port: u16, ready: &str) -> anyhow::Result<Child> {
    let mut child = cmd.stdout(Stdio::null()).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = HttpClient::connect(port)
            && let Ok((200, _)) = c.request("GET", ready, &[], b"")
        {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("server exited before becoming ready: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("server not ready after 60s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM and waits for exit.
pub fn terminate(child: &mut Child) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "server exited with {status}");
    Ok(())
}

/// A keep-alive HTTP/1.1 connection.
pub struct HttpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl HttpClient {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> std::io::Result<HttpClient> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        Ok(HttpClient {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Sends a request and reads the response: (status, body).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut len = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
                let mut part = vec![0; n + 2];
                self.reader.read_exact(&mut part)?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&part[..n]);
            }
        } else {
            out.resize(len, 0);
            self.reader.read_exact(&mut out)?;
        }
        Ok((status, out))
    }
}
