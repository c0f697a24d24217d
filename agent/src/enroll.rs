//! `shipshape enroll`: create this machine's device key, register its public
//! half with the server, and remember the server in `agent.toml`.
//!
//! Order matters. The key store is settled before the server is asked, so a
//! store that cannot work fails before a token is spent; the previous
//! enrollment is replaced only once the server has accepted the new key.

use std::path::PathBuf;

use anyhow::Context;
use shipshape_core::wire::EnrollRequest;

use crate::config::{self, AgentConfig, Delivery, Notify};
use crate::exit;
use crate::keystore::{self, Choice, DeviceKey, KeyStore, Keyring};
use crate::paths::Paths;
use crate::probes;
use crate::system::System;
use crate::transport::{ServerUrl, Transport};

/// What `shipshape enroll` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub server: String,
    pub token: String,
    pub ca_file: Option<PathBuf>,
    pub key_store: Choice,
}

/// Enrolls this machine; prints where the key went and the device id.
pub fn run(
    system: &dyn System,
    paths: &Paths,
    keyring: &dyn Keyring,
    request: Request,
) -> anyhow::Result<u8> {
    let server = ServerUrl::parse(&request.server)
        .map_err(|message| anyhow::anyhow!("cannot enroll with this server URL: {message}"))?;
    let token = request.token.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the enrollment token is empty: pass the one `shipshape-server token create --enroll` printed"
    );
    let ca_file = request
        .ca_file
        .map(|path| {
            std::path::absolute(&path)
                .with_context(|| format!("could not resolve the CA file path {}", path.display()))
        })
        .transpose()?;
    let transport = Transport::new(&server, ca_file.as_deref())?;

    let config_path = paths.agent_config();
    let (previous, delivery) = match AgentConfig::load(&config_path) {
        Ok(Some(previous)) => {
            let delivery = previous.delivery.clone();
            (Some(previous), delivery)
        }
        Ok(None) => (None, Delivery::default()),
        Err(error) => {
            // An administrator may seed `[delivery]` before enrolling: keep it.
            let text = std::fs::read_to_string(&config_path).unwrap_or_default();
            let kept = Delivery::of_text(&text, &config_path.display().to_string()).map_err(
                |problem| {
                    anyhow::anyhow!(
                        "{problem}: fix or remove the [delivery] table, then enroll again"
                    )
                },
            )?;
            let keeping = if kept.is_some() {
                ", keeping its [delivery] table"
            } else {
                ""
            };
            println!(
                "replacing the unreadable {} ({error:#}){keeping}",
                config_path.display()
            );
            (None, kept.unwrap_or_default())
        }
    };
    // Notifications an administrator turned off before enrolling stay off.
    let notify = match &previous {
        Some(previous) => previous.notify,
        None => {
            let text = std::fs::read_to_string(&config_path).unwrap_or_default();
            Notify::of_text(&text, &config_path.display().to_string())
                .map_err(|problem| {
                    anyhow::anyhow!(
                        "{problem}: fix or remove the [notify] table, then enroll again"
                    )
                })?
                .unwrap_or_default()
        }
    };
    if let Some(previous) = &previous {
        println!(
            "this machine is enrolled with {} as device {}: enrolling again replaces that enrollment",
            previous.server, previous.device_id
        );
    }

    let key_file = paths.device_key_file();
    let chosen = keystore::choose(request.key_store, keyring, &key_file)?;
    let key = DeviceKey::generate()?;
    let enrollment = transport.enroll(&EnrollRequest {
        token: token.to_owned(),
        public_key: key.public_key_base64(),
        host: probes::host::probe(system),
    })?;
    let device_id = enrollment.device_id;
    config::check_device_id(&device_id).map_err(|message| {
        anyhow::anyhow!("the server answered with an unusable device id: {message}")
    })?;
    let orphaned = |what: &str| {
        format!(
            "the server enrolled this machine as device {device_id}, but {what}: enroll again \
             (with a new token if this one was single-use) and revoke device {device_id} on the server"
        )
    };
    chosen
        .store
        .save(&key)
        .with_context(|| orphaned("the device key could not be stored"))?;
    let config = AgentConfig {
        server: server.clone(),
        device_id: device_id.clone(),
        key_store: chosen.store.kind(),
        ca_file,
        delivery,
        notify,
    };
    config
        .save(&config_path)
        .with_context(|| orphaned("the agent config could not be written"))?;
    println!("{}", chosen.stored_message());

    if let Some(previous) = previous.filter(|previous| previous.key_store != config.key_store) {
        let old = KeyStore::of(previous.key_store, keyring, &key_file);
        if let Err(error) = old.remove() {
            eprintln!(
                "shipshape: warning: the previous device key is still in {}: {error}",
                old.describe()
            );
        }
    }
    println!("enrolled with {server} as device {device_id}");
    println!("config written to {}", config_path.display());
    Ok(exit::SHIPSHAPE)
}
