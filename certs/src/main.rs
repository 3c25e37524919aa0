//! `fleet-certs`: command line for creating the LockerFleet CA and issuing device certificates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use certs::{
    CA_CERT, CA_KEY, Ca, DeviceId, SERVER_CERT, SERVER_KEY, check_device_files, device_cert_path,
    device_key_path, parse_device_id,
};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fleet-certs",
    version,
    about = "LockerFleet certificate authority"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the CA and the broker's server certificate (localhost, 127.0.0.1, ::1)
    Init {
        /// Directory for ca.crt, ca.key, server.crt and server.key (created if missing)
        #[arg(long, env = "FLEET_CERTS_DIR")]
        dir: PathBuf,
        /// Overwrite existing files; devices issued by the old CA will no longer be trusted
        #[arg(long)]
        force: bool,
    },
    /// Issue client certificates for devices, signed by the CA in --dir ({ID}.crt and
    /// {ID}.key are written there)
    Issue {
        #[command(flatten)]
        target: Devices,
        /// Overwrite existing device files
        #[arg(long)]
        force: bool,
    },
    /// Revoke devices' current certificates: adds them to crl.pem in --dir, which a running
    /// fleet-server applies within seconds (refused at the handshake, live sessions closed).
    /// `issue --force` then gives a device a new certificate.
    Revoke {
        #[command(flatten)]
        target: Devices,
    },
    /// Write mosquitto.conf and mosquitto.acl for running the fleet on an external mosquitto
    /// 2.x broker (TLS with the fleet's certificates, per-device topic rules), plus the server
    /// replicas' client certificate fleet-server.crt if missing
    Mosquitto {
        /// Directory holding the CA (the files are written there)
        #[arg(long, env = "FLEET_CERTS_DIR")]
        dir: PathBuf,
        /// Port of mosquitto's TLS listener
        #[arg(long, default_value_t = 8883)]
        port: u16,
    },
    /// Agent releases: the release key (Ed25519, not the CA), signing, key rotation, checking
    #[command(subcommand)]
    Release(ReleaseCommand),
}

#[derive(Debug, Subcommand)]
enum ReleaseCommand {
    /// Make the release key: release-key.pk8 (secret, 0600) and release-key.pub (what agents
    /// and the server trust) in --dir. Keep the secret key off the fleet's machines.
    Key {
        #[arg(long)]
        dir: PathBuf,
        /// Overwrite an existing key; cabinets trusting the old one will refuse releases
        /// signed by the new one (rotate instead)
        #[arg(long)]
        force: bool,
    },
    /// Sign an agent binary: writes release.json (the manifest and its signature)
    Sign {
        /// The release key (release-key.pk8)
        #[arg(long)]
        key: PathBuf,
        /// The agent binary
        #[arg(long)]
        binary: PathBuf,
        /// MAJOR.MINOR.PATCH; the version the binary reports when it runs
        #[arg(long)]
        version: String,
        /// The target triple it runs on, e.g. x86_64-unknown-linux-gnu
        #[arg(long)]
        target: String,
        /// The oldest fleet-server that can deploy it
        #[arg(long, default_value = "0.1.0")]
        min_server_version: String,
        #[arg(long, default_value = "")]
        notes: String,
        /// Where to write the signed manifest
        #[arg(long, default_value = "release.json")]
        out: PathBuf,
    },
    /// Vouch for a new release key with the current one: writes release-key-rotation.json,
    /// which cabinets trusting the current key accept
    Rotate {
        /// The current key (release-key.pk8)
        #[arg(long)]
        old_key: PathBuf,
        /// The new key's release-key.pub
        #[arg(long)]
        new_public: PathBuf,
        #[arg(long, default_value = "release-key-rotation.json")]
        out: PathBuf,
    },
    /// Check a release as a cabinet would: signature by a trusted key, manifest, binary
    Verify {
        /// Trusted public keys, one hex key per line (e.g. release-key.pub)
        #[arg(long)]
        trusted: PathBuf,
        /// release.json
        #[arg(long)]
        release: PathBuf,
        /// The binary it describes
        #[arg(long)]
        binary: PathBuf,
    },
}

/// The CA directory and the devices a command is about.
#[derive(Debug, clap::Args)]
struct Devices {
    /// Directory holding the CA and the devices' certificates
    #[arg(long, env = "FLEET_CERTS_DIR")]
    dir: PathBuf,
    /// Device id; repeat the option or separate ids with commas for several devices
    #[arg(
        long = "device",
        value_name = "ID",
        required = true,
        value_delimiter = ',',
        value_parser = parse_device_id
    )]
    devices: Vec<DeviceId>,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Init { dir, force } => init(&dir, force),
        Command::Issue { target, force } => issue(&target.dir, target.devices, force),
        Command::Revoke { target } => revoke(&target.dir, target.devices),
        Command::Mosquitto { dir, port } => mosquitto(&dir, port),
        Command::Release(cmd) => release(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line with the whole cause chain: these are operator mistakes (missing CA,
            // existing files), and anyhow's default report would add a backtrace whenever
            // RUST_BACKTRACE is set, burying the sentence that says what to do.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init(dir: &Path, force: bool) -> anyhow::Result<()> {
    certs::init(dir, force)
        .with_context(|| format!("could not create the CA in {}", dir.display()))?;
    for name in [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, certs::CRL] {
        println!("wrote {}", dir.join(name).display());
    }
    Ok(())
}

fn mosquitto(dir: &Path, port: u16) -> anyhow::Result<()> {
    let files = certs::write_mosquitto(dir, port).with_context(|| {
        format!(
            "could not write the mosquitto settings in {}",
            dir.display()
        )
    })?;
    if let Some(cert) = &files.server_client {
        println!(
            "wrote {} (the server replicas' client certificate)",
            cert.display()
        );
    }
    println!("wrote {}", files.acl.display());
    println!("wrote {}", files.conf.display());
    println!("start it with: mosquitto -c {}", files.conf.display());
    Ok(())
}

fn revoke(dir: &Path, devices: Vec<DeviceId>) -> anyhow::Result<()> {
    let ca = Ca::load(dir).context("could not load the CA")?;
    for id in &devices {
        let new = ca
            .revoke_device(dir, id)
            .with_context(|| format!("could not revoke the certificate of {id}"))?;
        if new {
            println!("revoked the certificate of {id}");
        } else {
            println!("the certificate of {id} was revoked already");
        }
    }
    println!("wrote {}", dir.join(certs::CRL).display());
    Ok(())
}

fn issue(dir: &Path, mut devices: Vec<DeviceId>, force: bool) -> anyhow::Result<()> {
    // Naming a device twice is a slip, not a request to overwrite the first certificate.
    let mut seen = std::collections::HashSet::new();
    devices.retain(|id| seen.insert(id.clone()));

    let ca = Ca::load(dir).context("could not load the CA")?;
    // Refuse before writing anything, so a rejected batch can simply be re-run with --force
    // or without the offending ids.
    for id in &devices {
        check_device_files(dir, id, force)
            .with_context(|| format!("could not issue a certificate for {id}"))?;
    }
    for id in &devices {
        ca.issue_device(dir, id, force)
            .with_context(|| format!("could not issue a certificate for {id}"))?;
        println!(
            "wrote {} and {}",
            device_cert_path(dir, id).display(),
            device_key_path(dir, id).display()
        );
    }
    Ok(())
}

fn release(cmd: ReleaseCommand) -> anyhow::Result<()> {
    match cmd {
        ReleaseCommand::Key { dir, force } => {
            let public = certs::new_release_key(&dir, force)?;
            println!("wrote {}", dir.join(certs::RELEASE_KEY).display());
            println!("wrote {}", dir.join(certs::RELEASE_PUB).display());
            println!("release key {} ({})", public.id(), public.to_hex());
        }
        ReleaseCommand::Sign {
            key,
            binary,
            version,
            target,
            min_server_version,
            notes,
            out,
        } => {
            let pair = certs::load_release_key(&key)?;
            let spec = certs::ReleaseSpec {
                version,
                target,
                min_server_version,
                notes,
            };
            let signed = certs::sign_release(&pair, &binary, &spec)
                .with_context(|| format!("could not sign {}", binary.display()))?;
            write_json(&out, &signed)?;
            println!(
                "wrote {} (signed by release key {})",
                out.display(),
                signed.key_id
            );
        }
        ReleaseCommand::Rotate {
            old_key,
            new_public,
            out,
        } => {
            let old = certs::load_release_key(&old_key)?;
            let rotation = certs::rotate_release_key(&old, &new_public)?;
            write_json(&out, &rotation)?;
            println!(
                "wrote {}: key {} vouches for the new key",
                out.display(),
                rotation.signed_by
            );
        }
        ReleaseCommand::Verify {
            trusted,
            release,
            binary,
        } => {
            let keys = certs::load_trusted_keys(&trusted)?;
            let text = std::fs::read_to_string(&release)
                .with_context(|| format!("could not read {}", release.display()))?;
            let signed: protocol::release::SignedRelease = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a release.json", release.display()))?;
            let manifest = signed
                .verify(&keys)
                .with_context(|| format!("{} refused", release.display()))?;
            let bytes = std::fs::read(&binary)
                .with_context(|| format!("could not read {}", binary.display()))?;
            manifest
                .check_binary(&bytes)
                .with_context(|| format!("{} refused", binary.display()))?;
            println!(
                "ok: device-agent {} for {}, signed by {}",
                manifest.version, manifest.target, signed.key_id
            );
        }
    }
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    std::fs::write(path, text + "\n").with_context(|| format!("could not write {}", path.display()))
}
