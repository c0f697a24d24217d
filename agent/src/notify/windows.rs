//! Windows: a toast, shown by Windows PowerShell through the WinRT
//! `ToastNotificationManager`, under PowerShell's own app id (an unpackaged
//! program has none registered).
//!
//! The script travels as `-EncodedCommand` (base64 of UTF-16LE), so no
//! command-line quoting can touch it; the texts sit in an XML document inside
//! a single-quoted PowerShell string, escaped to plain ASCII with no quote.
//! The SYSTEM account (a scheduled task run as SYSTEM) has no desktop: there
//! is no one to tell, and the employee hears from their own `shipshape check`.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

use super::{DeliveryError, Handed, Message, Urgency, run_quietly};
use crate::probes::POWERSHELL;
use crate::system::System;

/// Windows PowerShell's app user model id: `FOLDERID_System`\…\powershell.exe.
const POWERSHELL_APP_ID: &str =
    r"{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe";

pub(super) fn deliver(system: &dyn System, message: &Message) -> Result<Handed, DeliveryError> {
    if is_system_account(system) {
        return Ok(Handed::NoOne(
            "the SYSTEM account has no desktop to show a notification on".to_owned(),
        ));
    }
    let powershell = Path::new(POWERSHELL);
    if system.symlink_metadata(powershell).is_err() {
        return Ok(Handed::NoOne(format!("{POWERSHELL} is not installed")));
    }
    let encoded = encode_command(&script(message));
    run_quietly(
        system,
        powershell,
        &["-NoProfile", "-NonInteractive", "-EncodedCommand", &encoded],
    )?;
    Ok(Handed::Shown)
}

/// Whether the agent runs as LocalSystem (or another service account): its
/// user name is the machine account (`HOST$`) and its profile a service profile.
fn is_system_account(system: &dyn System) -> bool {
    let machine_account = system
        .env("USERNAME")
        .is_some_and(|name| name.ends_with('$') || name.eq_ignore_ascii_case("SYSTEM"));
    let service_profile = system.env("USERPROFILE").is_some_and(|profile| {
        let profile = profile.to_ascii_lowercase();
        profile.ends_with(r"\config\systemprofile") || profile.contains(r"\serviceprofiles\")
    });
    machine_account || service_profile
}

/// The PowerShell script that shows `message` as a toast.
pub(super) fn script(message: &Message) -> String {
    let duration = match message.urgency {
        Urgency::Critical => " duration=\"long\"",
        Urgency::Normal => "",
    };
    let toast = format!(
        "<toast{duration}><visual><binding template=\"ToastGeneric\"><text>{}</text><text>{}</text></binding></visual></toast>",
        xml_text(&format!("Shipshape: {}", message.title)),
        xml_text(&message.body),
    );
    [
        "$ErrorActionPreference = 'Stop'",
        "[Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime] | Out-Null",
        "[Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument, ContentType = WindowsRuntime] | Out-Null",
        "$xml = New-Object Windows.Data.Xml.Dom.XmlDocument",
        &format!("$xml.LoadXml('{toast}')"),
        "$toast = New-Object Windows.UI.Notifications.ToastNotification $xml",
        &format!(
            "[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier('{POWERSHELL_APP_ID}').Show($toast)"
        ),
    ]
    .join("\n")
}

/// XML character data that is also safe inside a single-quoted PowerShell
/// string: markup characters and quotes as entities, everything outside
/// printable ASCII as a character reference (PowerShell also ends a string at
/// the typographic quotes ‘ ’ ‚ ‛), and control characters XML forbids as spaces.
pub(super) fn xml_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if let Some(entity) = crate::xml::entity(c) {
            escaped.push_str(entity);
            continue;
        }
        match c {
            '\t' | '\n' | '\r' => {
                let _ = write!(escaped, "&#{};", u32::from(c));
            }
            c if c.is_control() => escaped.push(' '),
            c if c.is_ascii() => escaped.push(c),
            c => {
                let _ = write!(escaped, "&#x{:X};", u32::from(c));
            }
        }
    }
    escaped
}

/// `-EncodedCommand`'s form: base64 of the script in UTF-16LE.
pub(super) fn encode_command(script: &str) -> String {
    let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use shipshape_core::facts::OsFamily;

    use super::*;
    use crate::system::fake::FakeSystem;

    fn decode_command(encoded: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        String::from_utf16(&units).expect("UTF-16")
    }

    /// The texts of the toast's `<text>` elements, entities decoded.
    fn toast_texts(xml: &str) -> Vec<String> {
        xml.split("<text>")
            .skip(1)
            .map(|rest| {
                let raw = rest.split("</text>").next().expect("closed");
                let mut text = String::new();
                let mut pieces = raw.split('&');
                text.push_str(pieces.next().unwrap_or_default());
                for piece in pieces {
                    let (entity, after) = piece.split_once(';').expect("an entity ends with ;");
                    let c = match entity {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        hex if hex.starts_with("#x") => {
                            char::from_u32(u32::from_str_radix(&hex[2..], 16).unwrap()).unwrap()
                        }
                        decimal => char::from_u32(decimal[1..].parse().unwrap()).unwrap(),
                    };
                    text.push(c);
                    text.push_str(after);
                }
                text
            })
            .collect()
    }

    fn hostile() -> Message {
        Message {
            urgency: Urgency::Critical,
            title: "'); Remove-Item C:\\ -Recurse; ('".to_owned(),
            body: "‘smart’ ‚quotes‛ </text><script/> & \"$(calc)\"\nnext\u{1b}[31m".to_owned(),
        }
    }

    #[test]
    fn hostile_texts_stay_inside_the_xml_inside_the_powershell_string() {
        let message = hostile();
        let script = script(&message);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 7, "{script}");
        let literal = lines[4]
            .strip_prefix("$xml.LoadXml('")
            .and_then(|rest| rest.strip_suffix("')"))
            .expect("one single-quoted literal");
        assert!(
            literal.is_ascii() && !literal.contains('\''),
            "nothing can end the PowerShell string: {literal}"
        );
        assert!(
            literal.starts_with("<toast duration=\"long\"><visual>"),
            "{literal}"
        );
        assert_eq!(
            toast_texts(literal),
            [
                format!("Shipshape: {}", message.title),
                "‘smart’ ‚quotes‛ </text><script/> & \"$(calc)\"\nnext [31m".to_owned()
            ]
        );
    }

    #[test]
    fn the_toast_travels_encoded_and_not_from_the_system_account() {
        let message = hostile();
        let encoded = encode_command(&script(&message));
        let line = format!("{POWERSHELL} -NoProfile -NonInteractive -EncodedCommand {encoded}");
        let desktop = FakeSystem::new(OsFamily::Windows)
            .env_var("USERNAME", "alice")
            .env_var("USERPROFILE", r"C:\Users\alice")
            .command(&line, "");
        assert_eq!(deliver(&desktop, &message).unwrap(), Handed::Shown);
        let ran = desktop.ran();
        let sent = ran[0].rsplit(' ').next().unwrap();
        assert_eq!(decode_command(sent), script(&message));

        for (name, profile) in [
            ("LAPTOP-7$", r"C:\Windows\system32\config\systemprofile"),
            ("alice", r"C:\Windows\System32\config\systemprofile"),
            ("LOCAL SERVICE", r"C:\Windows\ServiceProfiles\LocalService"),
        ] {
            let service = FakeSystem::new(OsFamily::Windows)
                .env_var("USERNAME", name)
                .env_var("USERPROFILE", profile)
                .command(&line, "");
            assert!(
                matches!(deliver(&service, &message).unwrap(), Handed::NoOne(_)),
                "{name}"
            );
            assert!(service.ran().is_empty());
        }
    }
}
