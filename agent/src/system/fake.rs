//! A scripted machine for tests: files and command outputs are given up front,
//! so a probe can be run against captured outputs of any OS on any OS.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use shipshape_core::facts::OsFamily;

use super::{CommandError, CommandOutput, FileInfo, FileKind, System};

/// A machine made of given files and given command outputs.
#[derive(Debug)]
pub struct FakeSystem {
    os: OsFamily,
    privileged: bool,
    files: BTreeMap<PathBuf, FakeFile>,
    commands: BTreeMap<String, FakeCommand>,
    env: BTreeMap<String, String>,
    ran: Mutex<Vec<String>>,
}

#[derive(Debug, Clone)]
struct FakeFile {
    content: Vec<u8>,
    info: FileInfo,
}

#[derive(Debug, Clone)]
enum FakeCommand {
    Output(CommandOutput),
    Hangs,
}

impl FakeSystem {
    /// An empty machine of the given family, running unprivileged.
    pub fn new(os: OsFamily) -> Self {
        FakeSystem {
            os,
            privileged: false,
            files: BTreeMap::new(),
            commands: BTreeMap::new(),
            env: BTreeMap::new(),
            ran: Mutex::new(Vec::new()),
        }
    }

    pub fn privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    /// A regular file, mode 0644, owned by root.
    pub fn file(self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> Self {
        self.file_with(path, content, 0o644, 0)
    }

    /// A regular file with a given mode and owner.
    pub fn file_with(
        mut self,
        path: impl Into<PathBuf>,
        content: impl Into<Vec<u8>>,
        mode: u32,
        uid: u32,
    ) -> Self {
        let content = content.into();
        let info = FileInfo {
            kind: FileKind::File,
            mode: (self.os != OsFamily::Windows).then_some(mode),
            uid: (self.os != OsFamily::Windows).then_some(uid),
            len: content.len() as u64,
            modified: None,
        };
        self.files.insert(path.into(), FakeFile { content, info });
        self
    }

    /// Sets the modification time of a file given earlier.
    pub fn modified(mut self, path: impl AsRef<Path>, at: Timestamp) -> Self {
        if let Some(file) = self.files.get_mut(path.as_ref()) {
            file.info.modified = Some(at);
        }
        self
    }

    /// What `program args…` prints, with exit code 0. The key is the program's
    /// absolute path and its arguments joined by single spaces.
    pub fn command(self, command_line: &str, stdout: impl Into<String>) -> Self {
        self.command_output(
            command_line,
            CommandOutput {
                code: Some(0),
                stdout: stdout.into(),
                stderr: String::new(),
            },
        )
    }

    /// A command with a full output, including a failing exit code or stderr.
    pub fn command_output(mut self, command_line: &str, output: CommandOutput) -> Self {
        self.ensure_program(command_line);
        self.commands
            .insert(command_line.to_owned(), FakeCommand::Output(output));
        self
    }

    /// A command that never answers, as a hung tool would.
    pub fn command_hangs(mut self, command_line: &str) -> Self {
        self.ensure_program(command_line);
        self.commands
            .insert(command_line.to_owned(), FakeCommand::Hangs);
        self
    }

    pub fn env_var(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The command lines probes ran, in order.
    pub fn ran(&self) -> Vec<String> {
        self.ran.lock().expect("not poisoned").clone()
    }

    fn ensure_program(&mut self, command_line: &str) {
        let program = command_line.split(' ').next().unwrap_or_default();
        self.files
            .entry(PathBuf::from(program))
            .or_insert_with(|| FakeFile {
                content: Vec::new(),
                info: FileInfo {
                    kind: FileKind::File,
                    mode: Some(0o755),
                    uid: Some(0),
                    len: 0,
                    modified: None,
                },
            });
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.files
            .keys()
            .any(|file| file != path && file.starts_with(path))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl System for FakeSystem {
    fn os(&self) -> OsFamily {
        self.os
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, CommandError> {
        let mut line = program.display().to_string();
        for arg in args {
            line.push(' ');
            line.push_str(arg);
        }
        self.ran.lock().expect("not poisoned").push(line.clone());
        match self.commands.get(&line) {
            Some(FakeCommand::Output(output)) => Ok(output.clone()),
            Some(FakeCommand::Hangs) => Err(CommandError::TimedOut {
                program: program.to_owned(),
                after: super::DEFAULT_TIMEOUT,
            }),
            None if self.files.contains_key(program) => Err(CommandError::Io {
                program: program.to_owned(),
                source: io::Error::other(format!("the fake machine has no output for `{line}`")),
            }),
            None => Err(CommandError::NotFound(program.to_owned())),
        }
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .map(|file| file.content.clone())
            .ok_or_else(|| not_found(path))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        if !self.is_dir(path) {
            return Err(not_found(path));
        }
        let mut entries: Vec<PathBuf> = self
            .files
            .keys()
            .filter_map(|file| file.strip_prefix(path).ok())
            .filter_map(|rest| rest.components().next())
            .map(|first| path.join(first))
            .collect();
        entries.dedup();
        Ok(entries)
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<FileInfo> {
        if let Some(file) = self.files.get(path) {
            return Ok(file.info.clone());
        }
        if self.is_dir(path) {
            return Ok(FileInfo {
                kind: FileKind::Dir,
                mode: (self.os != OsFamily::Windows).then_some(0o755),
                uid: (self.os != OsFamily::Windows).then_some(0),
                len: 0,
                modified: None,
            });
        }
        Err(not_found(path))
    }

    fn is_privileged(&self) -> bool {
        self.privileged
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}

/// Reads a fixture file: the body after the `# ---` line that ends its header.
pub fn fixture_body(text: &str) -> &str {
    match text.find("\n# ---\n") {
        Some(at) => &text[at + "\n# ---\n".len()..],
        None if text.starts_with("# ---\n") => &text["# ---\n".len()..],
        None => text,
    }
}
