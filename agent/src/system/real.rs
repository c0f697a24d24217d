use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use shipshape_core::facts::OsFamily;
use wait_timeout::ChildExt;

use super::{CommandError, CommandOutput, FileInfo, FileKind, System};

/// The machine this process runs on.
#[derive(Debug, Clone)]
pub struct RealSystem {
    timeout: Duration,
}

impl RealSystem {
    pub fn new(timeout: Duration) -> Self {
        RealSystem { timeout }
    }
}

impl Default for RealSystem {
    fn default() -> Self {
        RealSystem::new(super::DEFAULT_TIMEOUT)
    }
}

/// Reads a pipe to its end on its own thread; the bytes arrive on the channel.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    receiver
}

impl System for RealSystem {
    fn os(&self) -> OsFamily {
        OsFamily::current()
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, CommandError> {
        if !program.is_absolute() || !program.exists() {
            return Err(CommandError::NotFound(program.to_owned()));
        }
        let io_error = |source| CommandError::Io {
            program: program.to_owned(),
            source,
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "this is the one runner every probe goes through"
        )]
        let mut command = Command::new(program);
        let mut child = command
            .args(args)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error)?;
        let started = Instant::now();
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));
        let timed_out = || CommandError::TimedOut {
            program: program.to_owned(),
            after: self.timeout,
        };
        let Some(status) = child.wait_timeout(self.timeout).map_err(io_error)? else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(timed_out());
        };
        // A process the program started may hold its output open after it exits;
        // the output is waited for only until the same deadline.
        let text = |pipe: mpsc::Receiver<Vec<u8>>| {
            let left = self.timeout.saturating_sub(started.elapsed());
            pipe.recv_timeout(left)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .map_err(|_| timed_out())
        };
        Ok(CommandOutput {
            code: status.code(),
            stdout: text(stdout)?,
            stderr: text(stderr)?,
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn io::Read + '_>> {
        Ok(Box::new(std::fs::File::open(path)?))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut entries = std::fs::read_dir(path)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<FileInfo> {
        let metadata = std::fs::symlink_metadata(path)?;
        let file_type = metadata.file_type();
        let kind = if file_type.is_symlink() {
            FileKind::Symlink
        } else if file_type.is_dir() {
            FileKind::Dir
        } else if file_type.is_file() {
            FileKind::File
        } else {
            FileKind::Other
        };
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| Timestamp::try_from(time).ok());
        #[cfg(unix)]
        let (mode, uid) = {
            use std::os::unix::fs::MetadataExt;
            (Some(metadata.mode() & 0o7777), Some(metadata.uid()))
        };
        #[cfg(not(unix))]
        let (mode, uid) = (None, None);
        Ok(FileInfo {
            kind,
            mode,
            uid,
            len: metadata.len(),
            modified,
        })
    }

    fn is_privileged(&self) -> bool {
        #[cfg(unix)]
        {
            rustix::process::geteuid().is_root()
        }
        #[cfg(not(unix))]
        {
            // `fltmc` lists filter drivers only for an elevated administrator.
            self.run(Path::new(r"C:\Windows\System32\fltmc.exe"), &[])
                .is_ok_and(|output| output.success())
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn quick() -> RealSystem {
        RealSystem::new(Duration::from_millis(500))
    }

    #[test]
    fn runs_a_program_in_the_c_locale_and_keeps_both_streams_and_the_exit_code() {
        let output = quick()
            .run(
                Path::new("/bin/sh"),
                &["-c", "echo \"$LC_ALL\"; echo oops >&2; exit 3"],
            )
            .unwrap();
        assert_eq!(output.stdout, "C\n");
        assert_eq!(output.stderr, "oops\n");
        assert_eq!(output.code, Some(3));
        assert!(!output.success());
    }

    #[test]
    fn a_hung_program_is_stopped_at_the_timeout() {
        let started = Instant::now();
        let error = quick().run(Path::new("/bin/sleep"), &["30"]).unwrap_err();
        assert!(matches!(error, CommandError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_program_whose_child_keeps_the_output_open_does_not_hang_the_check() {
        let started = Instant::now();
        let error = quick()
            .run(Path::new("/bin/sh"), &["-c", "sleep 30 & echo started"])
            .unwrap_err();
        assert!(matches!(error, CommandError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_or_relative_program_is_not_found() {
        for program in ["/nonexistent/tool", "sh"] {
            let error = quick().run(Path::new(program), &[]).unwrap_err();
            assert!(matches!(error, CommandError::NotFound(_)), "{error}");
        }
    }
}
