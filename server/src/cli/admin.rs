//! The admin commands: tokens, device revocation and the fleet report in
//! the terminal. They open the database directly (SQLite's WAL lets them
//! run beside a serving server).

use std::io::Write as _;

use anyhow::{Context as _, bail};
use comfy_table::{Table, presets};
use futures_util::StreamExt as _;
use jiff::{SignedDuration, Timestamp};
use shipshape_core::policy::Grace;

use super::{
    DeviceCommand, FleetArgs, FleetFormat, GlobalArgs, ListFormat, TokenCommand, TokenCreateArgs,
    open_store,
};
use crate::api;
use crate::auth;
use crate::config::{self, FileConfig};
use crate::fleet;
use crate::model::{FleetQuery, NewToken, Staleness, TokenInfo, TokenKind};
use crate::store::Store;

pub(super) async fn store(
    global: &GlobalArgs,
    file: FileConfig,
) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let db = config::resolve_database(global.db.clone(), file.db)?;
    open_store(&db).await
}

pub(super) fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

pub(super) async fn token(
    command: TokenCommand,
    global: &GlobalArgs,
    file: FileConfig,
) -> anyhow::Result<()> {
    let store = store(global, file).await?;
    match command {
        TokenCommand::Create(args) => create_token(store.as_ref(), args).await,
        TokenCommand::List { format } => {
            let tokens = store.list_tokens().await?;
            match format {
                ListFormat::Json => print(&format!("{}\n", serde_json::to_string_pretty(&tokens)?)),
                ListFormat::Table => print(&token_table(&tokens, Timestamp::now())),
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(&id, Timestamp::now()).await? {
                bail!("no token has id `{id}`: see `shipshape-server token list`");
            }
            eprintln!("revoked token {id}");
            Ok(())
        }
    }
}

async fn create_token(store: &dyn Store, args: TokenCreateArgs) -> anyhow::Result<()> {
    let kind = if args.admin {
        TokenKind::Admin
    } else {
        TokenKind::Enroll
    };
    let now = Timestamp::now();
    let expires_at = args
        .expires
        .as_deref()
        .map(|text| expiry(text, now))
        .transpose()?;
    let secret = auth::generate_token(kind).context("cannot draw random bytes for the token")?;
    let info = store
        .create_token(NewToken {
            kind,
            hash: auth::hash_token(&secret),
            uses: args.uses,
            expires_at,
            created_at: now,
        })
        .await?;
    // The token alone on stdout, so `TOKEN=$(shipshape-server token create …)` works.
    print(&format!("{secret}\n"))?;
    let limits = match (info.uses_left, info.expires_at) {
        (None, None) => String::new(),
        (uses, expires) => {
            let uses = uses.map(|n| format!("{n} use{}", if n == 1 { "" } else { "s" }));
            let expires = expires.map(|at| format!("expires {at:.0}"));
            format!(
                " ({})",
                uses.into_iter()
                    .chain(expires)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let usage = match kind {
        TokenKind::Enroll => "enroll machines with `shipshape enroll --server URL --token TOKEN`",
        TokenKind::Admin => {
            "sign in to the fleet page with it, or send `Authorization: Bearer TOKEN`"
        }
    };
    eprintln!(
        "created {} token {}{limits}: {usage}.\nThe token is shown only this once; the server keeps only its hash.",
        kind_name(kind),
        info.id
    );
    Ok(())
}

/// When a token made now with a lifetime of `text` ("7d") expires.
fn expiry(text: &str, now: Timestamp) -> anyhow::Result<Timestamp> {
    let Grace(lifetime) = text
        .parse()
        .map_err(|message: String| anyhow::anyhow!("--expires: {message}"))?;
    if lifetime <= SignedDuration::ZERO {
        bail!("--expires: `{text}` has already passed: give a positive duration such as \"7d\"");
    }
    now.checked_add(lifetime)
        .with_context(|| format!("--expires: `{text}` is too far in the future"))
}

fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Enroll => "enrollment",
        TokenKind::Admin => "admin",
    }
}

fn token_table(tokens: &[TokenInfo], now: Timestamp) -> String {
    if tokens.is_empty() {
        return "no tokens: create one with `shipshape-server token create --enroll` or `--admin`\n"
            .to_owned();
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(["ID", "KIND", "USES LEFT", "EXPIRES", "CREATED", "STATE"]);
    for token in tokens {
        let state = if token.revoked_at.is_some() {
            "revoked"
        } else if token.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else if token.uses_left == Some(0) {
            "used up"
        } else {
            "active"
        };
        table.add_row([
            token.id.clone(),
            kind_name(token.kind).to_owned(),
            token
                .uses_left
                .map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
            token
                .expires_at
                .map_or_else(|| "never".to_owned(), |at| format!("{at:.0}")),
            format!("{:.0}", token.created_at),
            state.to_owned(),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

pub(super) async fn device(
    command: DeviceCommand,
    global: &GlobalArgs,
    file: FileConfig,
) -> anyhow::Result<()> {
    let store = store(global, file).await?;
    match command {
        DeviceCommand::Revoke { id } => {
            if !store.revoke_device(&id, Timestamp::now()).await? {
                bail!("no device has id `{id}`: see `shipshape-server fleet`");
            }
            eprintln!("revoked device {id}: its signed requests are refused from now on");
            Ok(())
        }
    }
}

pub(super) async fn fleet(
    args: FleetArgs,
    global: &GlobalArgs,
    file: FileConfig,
) -> anyhow::Result<()> {
    let stale_after = config::resolve_stale_after(args.stale_after, file.stale_after.clone())?;
    let store = store(global, file).await?;
    let now = Timestamp::now();
    let mut query = FleetQuery {
        status: args.status,
        check: args.check.map(|check| check.as_str().to_owned()),
        after: args.after,
        per_page: args.per_page,
        staleness: Staleness { now, stale_after },
    };
    if args.format == FleetFormat::Csv {
        query.after = None;
        query.per_page = api::MAX_PER_PAGE;
        let mut chunks = std::pin::pin!(api::csv_chunks(store, query));
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            print(std::str::from_utf8(&chunk).context("the CSV is not UTF-8")?)?;
        }
        return Ok(());
    }
    let first = api::fleet_page(store.as_ref(), &query).await?;
    if !args.all {
        return match args.format {
            FleetFormat::Json => print(&format!("{}\n", serde_json::to_string_pretty(&first)?)),
            _ => print(&fleet::table::fleet(&first, now)),
        };
    }
    // Every page, one at a time: the report's counts once, then the devices.
    let json = args.format == FleetFormat::Json;
    if json {
        // The report's shape, with every device and no next page.
        print(&format!(
            "{{\n  \"summary\": {},\n  \"failures_by_check\": {},\n  \"per_page\": {},\n  \
             \"matching\": {},\n  \"next\": null,\n  \"devices\": [",
            serde_json::to_string(&first.summary)?,
            serde_json::to_string(&first.failures_by_check)?,
            first.per_page,
            first.matching,
        ))?;
    } else {
        print(&fleet::table::summary(&first))?;
    }
    let mut page = first.devices;
    let mut next = first.next;
    let mut shown = 0usize;
    loop {
        if json {
            for row in &page {
                let separator = if shown == 0 { "\n    " } else { ",\n    " };
                print(&format!("{separator}{}", serde_json::to_string(row)?))?;
                shown += 1;
            }
        } else if !page.is_empty() {
            print(&fleet::table::devices(&page, now, shown == 0))?;
            shown += page.len();
        }
        let Some(cursor) = next else { break };
        query.after = Some(cursor);
        let more = store.fleet_devices(&query).await?;
        page = more.devices;
        next = more.next;
    }
    if json {
        print("\n  ]\n}\n")
    } else {
        print(&format!("\n{shown} devices\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_a_positive_lifetime() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            expiry("7d", now).unwrap(),
            "2026-01-08T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            expiry("24h", now).unwrap(),
            "2026-01-02T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(expiry("0s", now).is_err());
        assert!(
            expiry("soon", now)
                .unwrap_err()
                .to_string()
                .starts_with("--expires: ")
        );
    }

    #[test]
    fn token_table_shows_state_never_secrets() {
        let now: Timestamp = "2026-01-10T00:00:00Z".parse().unwrap();
        let token = |id: &str, uses_left, expires: Option<&str>, revoked: bool| TokenInfo {
            id: id.to_owned(),
            kind: TokenKind::Enroll,
            uses_left,
            expires_at: expires.map(|at| at.parse().unwrap()),
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            revoked_at: revoked.then_some(now),
        };
        let table = token_table(
            &[
                token("t1", None, None, false),
                token("t2", Some(0), None, false),
                token("t3", Some(2), Some("2026-01-05T00:00:00Z"), false),
                token("t4", Some(2), None, true),
            ],
            now,
        );
        let state = |id: &str| {
            let line = table
                .lines()
                .find(|line| line.trim_start().starts_with(id))
                .unwrap();
            line.split_whitespace().last().unwrap().to_owned()
        };
        assert_eq!(state("t1"), "active");
        assert_eq!(state("t2"), "up");
        assert_eq!(state("t3"), "expired");
        assert_eq!(state("t4"), "revoked");
        assert!(table.contains("unlimited"));
    }
}
