//! The one seam between Shipshape and the operating system.
//!
//! Probes see the machine only through [`System`]: run a program (by absolute
//! path, with a timeout), read a file, list a directory, stat a path. The real
//! implementation talks to the OS; [`fake::FakeSystem`] serves captured outputs,
//! so every probe — macOS and Windows ones included — runs in tests on any OS.

pub mod fake;
mod real;

pub use real::RealSystem;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use shipshape_core::facts::OsFamily;

/// How long a probe's command may run before it is killed and its fact is unknown.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A command that could not produce output.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{} is not installed", .0.display())]
    NotFound(PathBuf),
    #[error("{} did not answer within {} s and was stopped", .program.display(), .after.as_secs())]
    TimedOut { program: PathBuf, after: Duration },
    #[error("could not run {}: {source}", .program.display())]
    Io { program: PathBuf, source: io::Error },
}

/// What kind of thing a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The metadata probes need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: FileKind,
    /// Unix permission bits; `None` on Windows.
    pub mode: Option<u32>,
    /// Owner's uid; `None` on Windows.
    pub uid: Option<u32>,
    pub len: u64,
    pub modified: Option<Timestamp>,
}

/// The machine as probes see it.
pub trait System: Send + Sync {
    /// The OS family whose probes apply.
    fn os(&self) -> OsFamily;

    /// Runs `program` (an absolute path: never looked up in PATH) with `args`,
    /// in the C locale, with no input, killed after the timeout.
    fn run(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, CommandError>;

    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// A file to read as a stream, for files too large to hold in memory at once.
    fn open(&self, path: &Path) -> io::Result<Box<dyn io::Read + '_>> {
        self.read(path)
            .map(|bytes| Box::new(io::Cursor::new(bytes)) as Box<dyn io::Read>)
    }

    /// Entries of a directory, as full paths, sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;

    /// Metadata of `path` itself (a symlink is reported as a symlink).
    fn symlink_metadata(&self, path: &Path) -> io::Result<FileInfo>;

    /// Whether the process runs with full privileges (root / elevated).
    fn is_privileged(&self) -> bool;

    /// An environment variable of the agent's process.
    fn env(&self, name: &str) -> Option<String>;

    /// A file read as text (invalid UTF-8 replaced).
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        self.read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The first of `candidates` (absolute paths) that exists as a file.
    fn find_program(&self, candidates: &[&str]) -> Option<PathBuf> {
        candidates
            .iter()
            .map(PathBuf::from)
            .find(|path| self.symlink_metadata(path).is_ok())
    }
}
