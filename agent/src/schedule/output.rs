//! What `schedule install|remove|status|render` print for a person.

use std::io::{self, Write};
use std::path::Path;

use super::{Activation, Installed, Removed, Scope, Status};

/// What was installed, where, and how it runs.
pub fn installed(out: &mut impl Write, installed: &Installed) -> io::Result<()> {
    match &installed.activation {
        Activation::Started => writeln!(
            out,
            "Installed the {} timer: {}",
            installed.scope, installed.schedule
        )?,
        Activation::Deferred(why) => writeln!(
            out,
            "{why}: the {} timer is installed and starts when it does. {}",
            installed.scope, installed.schedule
        )?,
    }
    for file in &installed.files {
        writeln!(out, "  {}", file.display())?;
    }
    for note in &installed.notes {
        writeln!(out, "{note}")?;
    }
    writeln!(out, "Check on it with `shipshape schedule status`.")
}

/// What was removed, or that nothing was installed.
pub fn removed(out: &mut impl Write, removed: &Removed) -> io::Result<()> {
    if removed.nothing_was_installed() {
        writeln!(
            out,
            "No {} timer is installed: nothing to remove.",
            removed.scope
        )?;
    } else {
        writeln!(out, "Removed the {} timer.", removed.scope)?;
        if let Some(task) = &removed.unregistered {
            writeln!(out, "  {task}")?;
        }
        for file in &removed.files {
            writeln!(out, "  {}", file.display())?;
        }
        if let Some(why) = &removed.deferred {
            writeln!(out, "{why}, so only its files were deleted.")?;
        }
    }
    for note in &removed.notes {
        writeln!(out, "{note}")?;
    }
    Ok(())
}

/// One file `schedule render` wrote.
pub fn wrote(out: &mut impl Write, path: &Path) -> io::Result<()> {
    writeln!(out, "wrote {}", path.display())
}

/// The status for a person: one aligned block per timer.
pub fn status(out: &mut impl Write, status: &Status) -> io::Result<()> {
    let label = |scope: Scope| format!("{scope} timer");
    if let Some(why) = &status.scheduler {
        writeln!(out, "{:<13} {why}", "scheduler")?;
    }
    for timer in &status.timers {
        let mut lines = Vec::new();
        if timer.installed {
            let files: Vec<String> = timer
                .files
                .iter()
                .map(|file| file.display().to_string())
                .collect();
            lines.push(if files.is_empty() {
                "installed".to_owned()
            } else {
                format!("installed: {}", files.join(", "))
            });
        } else {
            lines.push(format!(
                "not installed (`shipshape schedule install {}` installs it)",
                timer.scope.flag()
            ));
        }
        if let Some(state) = &timer.state {
            let mut line = format!(
                "{}: {}",
                if state.active { "active" } else { "NOT ACTIVE" },
                state.state
            );
            if let Some(next) = &state.next_run {
                line.push_str(&format!("; next run {next}"));
            }
            lines.push(line);
            lines.push(match &state.last_run {
                Some(when) => format!("last run {when}: {}", state.last_result),
                None => format!("last run: {}", state.last_result),
            });
        }
        if let Some(note) = &timer.note {
            lines.push(note.clone());
        }
        for (index, line) in lines.iter().enumerate() {
            let label = if index == 0 {
                label(timer.scope)
            } else {
                String::new()
            };
            writeln!(out, "{label:<13} {line}")?;
        }
    }
    Ok(())
}
