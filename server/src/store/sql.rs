//! What the SQL backends share: the schema's migrations, the fleet report's
//! queries ([`fleet`]), re-grading's and the maintained counts' statements
//! ([`regrade`]), and how the model is kept in columns.
//! Everything here is pure; each backend runs it on its own connections.

pub(super) mod fleet;
pub(super) mod regrade;

use jiff::{SignedDuration, Timestamp};
use shipshape_core::Facts;
use shipshape_core::wire::{DeviceStatus, Receipt, facts_json_hash};

use super::StoreError;
use crate::grade::Grade;
use crate::model::{
    CurrentFacts, DeviceKey, EnrollRefusal, FactsOrigin, IncomingReport, NewToken, Staleness,
    TokenInfo, TokenKind, TransitionKind,
};

/// The schema, one migration per version, in the portable SQL both
/// backends run (PostgreSQL with the changes its backend makes, see
/// `postgres/migrate.rs`); a database is brought to the newest version when
/// opened.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_leaks_in_table_order.sql"),
    include_str!("migrations/0003_fleet_at_scale.sql"),
    include_str!("migrations/0004_facts_once.sql"),
    include_str!("migrations/0005_spread_counts.sql"),
];

/// Records which migrations ran; created before the first one.
pub(super) const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
     version BIGINT PRIMARY KEY,
     applied_at BIGINT NOT NULL
 )";

/// The schema version of a database: the newest migration it ran.
pub(super) const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

/// The migrations a database at schema version `current` still needs, with
/// their versions; refused when the database is newer than this server.
pub(super) fn pending_migrations(
    current: i64,
) -> Result<impl Iterator<Item = (i64, &'static str)>, StoreError> {
    let newest = MIGRATIONS.len() as i64;
    if current > newest {
        return Err(StoreError(format!(
            "the database has schema version {current}, newer than this server's {newest}: \
             run a newer shipshape-server"
        )));
    }
    let done = usize::try_from(current).unwrap_or(0);
    Ok((1..).zip(MIGRATIONS.iter().copied()).skip(done))
}

/// How long a nonce is remembered. A signature's `created` may be up to
/// 5 minutes off either way, so a request stays replayable for at most
/// 10 minutes after the server first saw it; 15 leaves a margin.
pub(super) const NONCE_MEMORY: SignedDuration = SignedDuration::from_mins(15);

/// How often a server forgets old nonces, at most.
pub(super) const PRUNE_NONCES_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// The id of the active policy (the newest), or NULL before the first.
pub(super) const ACTIVE_POLICY_ID: &str = "SELECT MAX(id) FROM policies";

/// The reports the device page lists.
pub(super) const DEVICE_PAGE_REPORTS: i64 = 50;

/// `time` cut to whole milliseconds, as it reads back from the database:
/// the schema keeps time as integer milliseconds since the Unix epoch.
pub(super) fn whole_millis(time: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(time.as_millisecond()).unwrap_or(time)
}

/// A time read back from a column of milliseconds.
pub(super) fn from_millis(millis: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(millis).map_err(|_| {
        StoreError(format!(
            "the database holds an impossible time: {millis} ms"
        ))
    })
}

/// The quoted `ETag` of a policy text: its SHA-256, shortened.
pub(super) fn etag(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!("\"sha256-{}\"", hex::encode(&digest[..16]))
}

/// A token kind as the `tokens.kind` column holds it.
pub(super) fn token_kind(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Enroll => "enroll",
        TokenKind::Admin => "admin",
    }
}

/// The token kind a `tokens.kind` column names.
pub(super) fn parse_token_kind(column: &str) -> Option<TokenKind> {
    [TokenKind::Enroll, TokenKind::Admin]
        .into_iter()
        .find(|kind| token_kind(*kind) == column)
}

/// A transition kind as the `transitions.kind` column holds it.
pub(super) fn transition_kind(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::SprangLeak => "sprang-leak",
        TransitionKind::BailedOut => "bailed-out",
    }
}

/// The transition kind a `transitions.kind` column names.
pub(super) fn parse_transition_kind(column: &str) -> Option<TransitionKind> {
    [TransitionKind::SprangLeak, TransitionKind::BailedOut]
        .into_iter()
        .find(|kind| transition_kind(*kind) == column)
}

/// What a device's table row shows as its status: silent once its last
/// contact is older than the cutoff, else its last grade.
pub(super) fn shown_status(
    graded: DeviceStatus,
    last_contact: Timestamp,
    staleness: Staleness,
) -> DeviceStatus {
    if last_contact < staleness.cutoff() {
        DeviceStatus::Silent
    } else {
        graded
    }
}

/// The leaking checks as the `leaking_checks` columns hold them.
pub(super) fn leaking_json(grade: &Grade) -> Result<String, StoreError> {
    let checks: Vec<&str> = grade
        .state
        .leaking
        .iter()
        .map(|check| check.as_str())
        .collect();
    to_json("leaking checks", &checks)
}

/// `value` as a JSON column.
pub(super) fn to_json(what: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError(format!("could not serialize the {what}: {error}")))
}

/// The statement that reads a device's current facts for
/// [`super::Store::current_facts`], with its one parameter, the device id:
/// the report holding them, their hash (`NULL` when stored before schema
/// version 4) and their JSON.
pub(super) const CURRENT_FACTS: &str = "SELECT d.facts_report_id, d.facts_hash, r.facts_json
 FROM devices d JOIN reports r ON r.id = d.facts_report_id
 WHERE d.id = :device";

/// A device's current facts as [`super::Store::current_facts`] answers
/// them, from the row of [`CURRENT_FACTS`]: only when they hash to `hash`.
/// A stored hash is compared without reading the facts; facts this server
/// cannot read (stored by an older one) count as none, so the agent sends
/// them in full again.
pub(super) fn current_facts(
    device_id: &str,
    hash: &str,
    row: Option<(String, Option<String>, String)>,
) -> Option<CurrentFacts> {
    let (report_id, stored_hash, json) = row?;
    if stored_hash.as_deref().is_some_and(|stored| stored != hash) {
        return None;
    }
    let facts: Facts = serde_json::from_str(&json)
        .inspect_err(|error| {
            tracing::warn!(
                device_id,
                %error,
                "the device's last facts are unreadable: its heartbeats are answered with resend-full"
            );
        })
        .ok()?;
    if stored_hash.is_none() && facts_json_hash(json.as_bytes()) != hash {
        return None;
    }
    Some(CurrentFacts {
        origin: FactsOrigin {
            report_id,
            hash: hash.to_owned(),
        },
        facts,
    })
}

/// A report with its JSON serialized, ready for its transaction.
#[derive(Debug)]
pub(super) struct PreparedReport {
    pub(super) id: String,
    pub(super) device_id: String,
    /// Whole milliseconds, as the database keeps it and the receipt repeats it.
    pub(super) received_at: Timestamp,
    pub(super) nonce: String,
    pub(super) facts: Facts,
    /// The facts' JSON; empty for a heartbeat, whose facts are stored in
    /// the report [`Self::facts_origin`] names.
    pub(super) facts_json: String,
    /// The report holding these facts (this one, for a full report) and
    /// their hash.
    pub(super) facts_origin: FactsOrigin,
    pub(super) agent_report_json: String,
}

impl PreparedReport {
    pub(super) fn new(report: IncomingReport) -> Result<Self, StoreError> {
        let json = |what: &str, error: serde_json::Error| {
            StoreError(format!(
                "could not serialize the {what} of report {}: {error}",
                report.submission.id
            ))
        };
        let (facts_json, facts_origin) = match report.repeats {
            Some(origin) => (String::new(), origin),
            None => {
                let json = serde_json::to_string(&report.submission.facts)
                    .map_err(|error| json("facts", error))?;
                let origin = FactsOrigin {
                    report_id: report.submission.id.clone(),
                    hash: facts_json_hash(json.as_bytes()),
                };
                (json, origin)
            }
        };
        let agent_report_json = serde_json::to_string(&report.submission.report)
            .map_err(|error| json("agent's findings", error))?;
        Ok(PreparedReport {
            received_at: whole_millis(report.received_at),
            nonce: report.nonce,
            facts_json,
            facts_origin,
            agent_report_json,
            id: report.submission.id,
            device_id: report.device_id,
            facts: report.submission.facts,
        })
    }

    /// The report whose facts this one repeats, as `reports.facts_from`
    /// holds it: `None` for a full report, which holds its own.
    pub(super) fn facts_from(&self) -> Option<&str> {
        let origin = &self.facts_origin.report_id;
        (*origin != self.id).then_some(origin.as_str())
    }

    /// The receipt the agent gets for this report, graded `grade`.
    pub(super) fn receipt(&self, grade: &Grade) -> Receipt {
        Receipt {
            report_id: self.id.clone(),
            device_id: self.device_id.clone(),
            received_at: self.received_at,
            status: grade.status,
            findings: grade.findings.clone(),
        }
    }

    /// The receipt stored with this report when it was first stored.
    pub(super) fn stored_receipt(&self, json: &str) -> Result<Receipt, StoreError> {
        serde_json::from_str(json).map_err(|error| {
            StoreError(format!(
                "the stored receipt of report {} is unreadable: {error}",
                self.id
            ))
        })
    }
}

/// A token as enrollment checks it.
#[derive(Debug)]
pub(super) struct EnrollToken {
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) uses_left: Option<i64>,
    pub(super) expires_at: Option<Timestamp>,
    pub(super) revoked: bool,
}

impl EnrollToken {
    /// Why it cannot enroll a device at `at`, if it cannot.
    pub(super) fn refusal(&self, at: Timestamp) -> Option<EnrollRefusal> {
        if parse_token_kind(&self.kind) != Some(TokenKind::Enroll) {
            Some(EnrollRefusal::UnknownToken)
        } else if self.revoked {
            Some(EnrollRefusal::Revoked)
        } else if self.expires_at.is_some_and(|expires| expires <= at) {
            Some(EnrollRefusal::Expired)
        } else if self.uses_left.is_some_and(|uses| uses <= 0) {
            Some(EnrollRefusal::UsedUp)
        } else {
            None
        }
    }
}

/// A fresh device id: UUID v7, so ids sort by enrollment.
pub(super) fn new_device_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new token as it is stored and listed: a fresh id of 12 hex digits
/// (what `token list` shows and `token revoke` takes), times in whole
/// milliseconds.
pub(super) fn new_token_info(token: &NewToken) -> Result<TokenInfo, StoreError> {
    let mut id = [0u8; 6];
    getrandom::fill(&mut id)
        .map_err(|error| StoreError(format!("no randomness for a token id: {error}")))?;
    Ok(TokenInfo {
        id: hex::encode(id),
        kind: token.kind,
        uses_left: token.uses,
        expires_at: token.expires_at.map(whole_millis),
        created_at: whole_millis(token.created_at),
        revoked_at: None,
    })
}

/// A device's key as it reads back from `devices.public_key` (hex).
pub(super) fn device_key(
    device_id: &str,
    public_key: &str,
    revoked: bool,
) -> Result<DeviceKey, StoreError> {
    let public_key = hex::decode(public_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| StoreError(format!("the stored key of device {device_id} is damaged")))?;
    Ok(DeviceKey {
        public_key,
        revoked,
    })
}
