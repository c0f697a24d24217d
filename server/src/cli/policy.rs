//! `shipshape-server policy simulate FILE`: what a policy would change in
//! the fleet, from the stored facts, storing nothing.

use anyhow::Context as _;
use comfy_table::{Table, presets};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use shipshape_core::Policy;

use super::admin::{print, store};
use super::{GlobalArgs, ListFormat, PolicyCommand};
use crate::config::FileConfig;
use crate::simulate::{SimulatedDevice, Simulation, simulate};

/// The devices each list of the table shows; JSON lists them all.
const SHOWN: usize = 50;

pub(super) async fn run(
    command: PolicyCommand,
    global: &GlobalArgs,
    file: FileConfig,
) -> anyhow::Result<()> {
    let PolicyCommand::Simulate { file: path, format } = command;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    let now = Timestamp::now();
    let today = now.to_zoned(TimeZone::UTC).date();
    // The same checks as an upload: the error names the file, line and column.
    let policy = Policy::parse(&text, &path.display().to_string(), today)?;
    let store = store(global, file).await?;
    let simulation = simulate(store.as_ref(), &policy, now).await?;
    match format {
        ListFormat::Json => print(&format!("{}\n", serde_json::to_string_pretty(&simulation)?)),
        ListFormat::Table => print(&table(&simulation, &policy.name)),
    }
}

fn table(simulation: &Simulation, policy: &str) -> String {
    let mut out = format!(
        "Policy \"{policy}\" on the last facts of {} devices (nothing was changed):\n\
         \x20 would leak:        {} (leaky now: {})\n\
         \x20 newly leaky:       {}\n\
         \x20 no longer leaky:   {}\n\
         \x20 not graded:        {} (no report yet)\n",
        simulation.devices,
        simulation.would_leak,
        simulation.leaky_now,
        simulation.newly_leaky,
        simulation.no_longer_leaky,
        simulation.devices - simulation.graded,
    );
    out.push_str(&devices("Would spring a leak", &simulation.springs));
    out.push_str(&devices("Would bail out", &simulation.bails_out));
    out
}

fn devices(title: &str, devices: &[SimulatedDevice]) -> String {
    let mut out = format!("\n{title}: {}\n", plural(devices.len()));
    if devices.is_empty() {
        return out;
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(["HOSTNAME", "CHECKS", "ID"]);
    for device in devices.iter().take(SHOWN) {
        table.add_row([
            printable(&device.hostname),
            device.checks.join(", "),
            printable(&device.id),
        ]);
    }
    out.push_str(&table.trim_fmt());
    out.push('\n');
    if devices.len() > SHOWN {
        out.push_str(&format!(
            "… and {} more (--format json lists them all)\n",
            devices.len() - SHOWN
        ));
    }
    out
}

fn plural(count: usize) -> String {
    if count == 1 {
        "1 device".to_owned()
    } else {
        format!("{count} devices")
    }
}

/// The text with every control character shown escaped: a hostname cannot
/// repaint the operator's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(hostname: &str, checks: &[&str]) -> SimulatedDevice {
        SimulatedDevice {
            id: format!("id-{hostname}"),
            hostname: hostname.to_owned(),
            checks: checks.iter().map(|&check| check.to_owned()).collect(),
        }
    }

    #[test]
    fn the_table_counts_and_lists_the_changes() {
        let simulation = Simulation {
            devices: 5,
            graded: 4,
            leaky_now: 1,
            would_leak: 2,
            newly_leaky: 2,
            no_longer_leaky: 1,
            springs: vec![
                device("ada", &["firewall", "ssh-keys"]),
                device("evil\u{1b}[2J", &["firewall"]),
            ],
            bails_out: vec![device("bob", &["os-updates"])],
        };
        let text = table(&simulation, "strict");
        assert!(
            text.starts_with("Policy \"strict\" on the last facts of 5 devices"),
            "{text}"
        );
        assert!(
            text.contains("  would leak:        2 (leaky now: 1)\n"),
            "{text}"
        );
        assert!(
            text.contains("  not graded:        1 (no report yet)\n"),
            "{text}"
        );
        assert!(text.contains("Would spring a leak: 2 devices"), "{text}");
        assert!(text.contains("firewall, ssh-keys"), "{text}");
        assert!(text.contains("Would bail out: 1 device\n"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn long_lists_are_cut_with_a_pointer_to_json() {
        let many: Vec<SimulatedDevice> = (0..SHOWN + 3)
            .map(|n| device(&format!("host-{n:03}"), &["firewall"]))
            .collect();
        let text = devices("Would spring a leak", &many);
        assert!(text.contains("host-049"), "{text}");
        assert!(!text.contains("host-050"), "{text}");
        assert!(
            text.ends_with("… and 3 more (--format json lists them all)\n"),
            "{text}"
        );
    }
}
